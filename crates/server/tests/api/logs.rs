//! The logs never hold a password, a token or a patient's data, at the production filter.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp};

crate::on_both_backends!(no_secret_or_patient_data_reaches_the_logs);

/// Everything every thread logs, in the production format (JSON) and filter.
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let sink = buffer.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_current_span(true)
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    clinicflow::telemetry::DEFAULT_FILTER,
                ))
                .with_writer(move || Sink(sink.clone()))
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("the only global subscriber of this process");
            buffer
        })
        .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn no_secret_or_patient_data_reaches_the_logs(backend: TestBackend) {
    let logs = captured();
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let login: Value = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "admin@clinic-a.example", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let (access, refresh) = (
        login["access_token"].as_str().expect("token"),
        login["refresh_token"].as_str().expect("token"),
    );
    let wrong = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "admin@clinic-a.example", "password": "Wr0ng-Secret-Guess"}))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let created = app
        .client
        .post(app.url("/api/v1/patients"))
        .bearer_auth(access)
        .json(&json!({"given_name": "Zenobia", "family_name": "Quixote-Marsh", "birth_date": "1971-07-29",
                      "phone": "+4917712398765", "email": "zenobia.qm@example.org",
                      "insurance": {"payer": "AOK", "member_id": "Q987654321"}}))
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), StatusCode::CREATED);
    let search = app
        .client
        .get(app.url("/api/v1/patients?q=Quixote"))
        .bearer_auth(access)
        .send()
        .await
        .expect("request");
    assert_eq!(search.status(), StatusCode::OK);
    let text = String::from_utf8(logs.lock().expect("log buffer").clone()).expect("utf-8 logs");
    assert!(
        text.contains("request finished"),
        "the capture works: {text}"
    );
    for secret in [
        ADMIN_PASSWORD,
        "Wr0ng-Secret-Guess",
        access,
        refresh,
        "test secret that is long enough",
        "Zenobia",
        "Quixote",
        "1971-07-29",
        "+4917712398765",
        "17712398765",
        "zenobia.qm",
        "Q987654321",
    ] {
        assert!(!text.contains(secret), "`{secret}` appears in the logs");
    }
}
