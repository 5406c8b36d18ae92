//! Starting an app per test and talking to it.

use std::sync::Arc;

use clinicflow::Settings;
use clinicflow_ports::{Clock, SystemClock};
use clinicflow_services::NewClinic;
use clinicflow_store::testing::{TestBackend, TestDatabase};
use reqwest::{Client, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};

/// Runs each listed test body once per backend, as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(clinicflow_store::testing::TestBackend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(clinicflow_store::testing::TestBackend::Postgres).await;
                }
            )*
        }
    };
}

/// Lets webhooks reach the test receivers on loopback, which the server refuses by default.
pub fn allow_loopback_webhooks(settings: &mut Settings) {
    settings.webhook.allowed_hosts = vec!["127.0.0.1".into()];
}

/// A running server with a clinic, its admin's token, and a client.
pub struct TestApp {
    pub base: String,
    /// The metrics listener, when the settings give `/metrics` one of its own.
    pub metrics_base: Option<String>,
    pub client: Client,
    pub token: String,
    settings: Settings,
    clock: Arc<dyn Clock>,
    _db: TestDatabase,
}

pub const ADMIN_PASSWORD: &str = "admin password 123";

impl TestApp {
    /// Starts the app on a fresh database with one clinic (UTC) and its admin logged in;
    /// `None` when the backend is not available (PostgreSQL tests skip outside `cargo xtask test`).
    pub async fn spawn(backend: TestBackend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// As [`TestApp::spawn`], with settings changed by `configure` first.
    pub async fn spawn_with(
        backend: TestBackend,
        configure: impl FnOnce(&mut Settings),
    ) -> Option<TestApp> {
        Self::spawn_with_clock(backend, Arc::new(SystemClock), configure).await
    }

    /// As [`TestApp::spawn_with`], with the server telling time by `clock`.
    pub async fn spawn_with_clock(
        backend: TestBackend,
        clock: Arc<dyn Clock>,
        configure: impl FnOnce(&mut Settings),
    ) -> Option<TestApp> {
        let Some(db) = TestDatabase::new(backend).await else {
            return None; // recorded as skipped by `testing`
        };
        let settings = Settings {
            bind: "127.0.0.1:0".into(),
            database_url: SecretString::from(db.url.clone()),
            jwt_secret: Some(SecretString::from(
                "test secret that is long enough for hs256",
            )),
            ..Settings::default()
        };
        let mut settings = settings;
        configure(&mut settings);
        let app = clinicflow::Application::build_with_clock(&settings, Arc::clone(&clock))
            .await
            .expect("the app starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_base = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        app.services()
            .clinics
            .create(NewClinic {
                name: "Test Clinic".into(),
                time_zone: "UTC".into(),
                admin_email: "admin@clinic-a.example".into(),
                admin_password: ADMIN_PASSWORD.into(),
            })
            .await
            .expect("clinic created");
        app.services()
            .clinics
            .create(NewClinic {
                name: "Other Clinic".into(),
                time_zone: "Europe/Berlin".into(),
                admin_email: "admin@clinic-b.example".into(),
                admin_password: ADMIN_PASSWORD.into(),
            })
            .await
            .expect("second clinic created");
        tokio::spawn(app.run_until_stopped());
        let client = Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("a client");
        let mut test = TestApp {
            base,
            metrics_base,
            client,
            token: String::new(),
            settings,
            clock,
            _db: db,
        };
        test.token = test.login("admin@clinic-a.example").await;
        Some(test)
    }

    /// Creates a staff user of `role` (as the admin) and returns their access token.
    pub async fn staff(&self, email: &str, role: &str, practitioner_id: Option<&str>) -> String {
        let res = self
            .post(
                "/api/v1/users",
                json!({"email": email, "password": ADMIN_PASSWORD, "role": role, "practitioner_id": practitioner_id}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "user {email} created");
        self.login(email).await
    }

    /// Logs in and returns the whole answer.
    pub async fn login_answer(&self, email: &str, password: &str) -> Response {
        self.client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login request")
    }

    /// Sends `req` with another access token.
    pub async fn as_user(&self, token: &str, req: reqwest::RequestBuilder) -> Response {
        req.bearer_auth(token).send().await.expect("request")
    }

    /// Starts a second server instance on the same database (and Redis, when configured) and
    /// returns its base URL; tokens of the first work there too.
    pub async fn another_instance(&self) -> String {
        let app =
            clinicflow::Application::build_with_clock(&self.settings, Arc::clone(&self.clock))
                .await
                .expect("the second instance starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        base
    }

    /// Logs in and returns an access token.
    pub async fn login(&self, email: &str) -> String {
        let res = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .expect("login request");
        assert_eq!(res.status(), StatusCode::OK);
        res.json::<Value>().await.expect("json")["access_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    /// The URL of the test's database, for a second connection of the test's own.
    pub fn database_url(&self) -> &str {
        &self._db.url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request")
    }

    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.client
            .put(self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Creates a patient and returns its id.
    pub async fn patient(&self, n: usize) -> String {
        let res = self
            .post(
                "/api/v1/patients",
                json!({"given_name": format!("Pat{n}"), "family_name": "Tester", "birth_date": "1980-01-01",
                       "phone": format!("+4915100{n:06}")}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        id_of(res).await
    }

    /// Creates a practitioner working every day 08:00-12:00 (UTC clinic) with 30-minute slots.
    pub async fn practitioner(&self) -> String {
        let res = self
            .post(
                "/api/v1/practitioners",
                json!({"given_name": "Gregory", "family_name": "House", "specialties": ["diagnostics"],
                       "department": "internal-medicine", "slot_minutes": 30, "buffer_minutes": 0}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let id = id_of(res).await;
        let rules: Vec<Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .map(|d| json!({"weekday": d, "start": "08:00", "end": "12:00"}))
            .collect();
        let res = self
            .put(
                &format!("/api/v1/practitioners/{id}/schedule"),
                json!({"rules": rules, "valid_from": "2020-01-01"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        id
    }
}

pub async fn id_of(res: Response) -> String {
    res.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

/// A date comfortably in the future, as `YYYY-MM-DD`.
pub fn future_day() -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(30)).to_string()
}

/// The test Redis server's URL; `None` (the test skips) when there is none, which is an
/// error under `CLINICFLOW_REQUIRE_SERVICES=1`.
pub fn test_redis_url() -> Option<String> {
    let Ok(redis) = std::env::var("CLINICFLOW_TEST_REDIS_URL") else {
        assert!(
            std::env::var("CLINICFLOW_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "CLINICFLOW_TEST_REDIS_URL is required (run through `cargo xtask test`)"
        );
        clinicflow_store::testing::record_skip("no Redis (CLINICFLOW_TEST_REDIS_URL is not set)");
        return None;
    };
    Some(redis)
}

/// The value of the metric line that starts with `name`, if the scrape has it.
pub async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
