//! The logs never hold a password, a token, a webhook secret or a patient's data, at the
//! production filter; and they show what the outbox does.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::Utc;
use clinicflow_services::NewClinic;
use clinicflow_store::testing::{TestBackend, TestDatabase};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp};

crate::on_both_backends!(no_secret_or_patient_data_reaches_the_logs);

/// Whether some JSON log line has `message` and every `(field, value)`.
fn logged(text: &str, message: &str, fields: &[(&str, i64)]) -> bool {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|line| {
            line["fields"]["message"] == message
                && fields
                    .iter()
                    .all(|(k, v)| line["fields"][*k].as_i64() == Some(*v))
        })
}

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
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.outbox.poll_interval_ms = 50;
        s.outbox.retry_base_secs = 1;
        s.outbox.retry_cap_secs = 1;
        crate::helpers::allow_loopback_webhooks(s);
    })
    .await
    else {
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

    // The outbox's work shows in the logs, its secrets do not: a receiver that fails once
    // behind a URL carrying its own token.
    let receiver = crate::receiver::Receiver::start().await;
    receiver.script([crate::receiver::Reply::status(503)]);
    let hook: Value = app
        .put(
            "/api/v1/clinic/webhook",
            json!({"url": format!("{}?token=receiver-token-4711", receiver.url)}),
        )
        .await
        .json()
        .await
        .expect("json");
    let webhook_secret = hook["secret"].as_str().expect("secret").to_owned();
    let practitioner = app.practitioner().await;
    let patient = created.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let res = app
        .post("/api/v1/appointments", json!({"patient_id": patient, "practitioner_id": practitioner,
                                             "starts_at": format!("{}T10:00:00Z", crate::helpers::future_day())}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    for _ in 0..100 {
        if receiver.seen().iter().any(|d| d.status == 200) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        receiver.seen().iter().map(|d| d.status).collect::<Vec<_>>(),
        [503, 200]
    );
    // The round's line is written after the outcome is recorded: wait for it, within a bound.
    let read = || String::from_utf8(logs.lock().expect("log buffer").clone()).expect("utf-8 logs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !logged(&read(), "outbox round", &[("claimed", 1), ("delivered", 1)])
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let text = read();
    assert!(
        text.contains("request finished"),
        "the capture works: {text}"
    );
    assert!(logged(&text, "outbox depth", &[]), "the depth is reported");
    assert!(
        logged(&text, "outbox round", &[("claimed", 1), ("retried", 1)]),
        "the failure is reported"
    );
    assert!(
        logged(&text, "outbox round", &[("claimed", 1), ("delivered", 1)]),
        "the delivery is reported"
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
        "receiver-token-4711",
        &webhook_secret,
    ] {
        assert!(!text.contains(secret), "`{secret}` appears in the logs");
    }
}

/// The server as the demo runs it (the development profile's readable lines), its log sent to
/// a file: no colour codes, and the log channel's deliveries summarised once per round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_file_gets_no_colour_and_one_line_per_round_of_log_deliveries() {
    let Some(db) = TestDatabase::new(TestBackend::Sqlite).await else {
        return;
    };
    let wiring = clinicflow::connect(&crate::dispatch::settings(&db))
        .await
        .expect("wiring");
    // A clinic without a webhook: its messages go to the log.
    let (clinic, _) = wiring
        .services
        .clinics
        .create(NewClinic {
            name: "Log Clinic".into(),
            time_zone: "UTC".into(),
            admin_email: "admin@log-clinic.example".into(),
            admin_password: ADMIN_PASSWORD.into(),
        })
        .await
        .expect("clinic");
    // More than one round's claim (100): two rounds.
    let messages = 130;
    crate::webhook::enqueue(&wiring, clinic.id, messages, Utc::now()).await;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let log_path = dir.path().join("server.log");
    let log_file = std::fs::File::create(&log_path).expect("a log file");
    let mut server = Command::new(env!("CARGO_BIN_EXE_clinicflow"))
        .arg("serve")
        .env_remove("REDIS_URL")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env("DATABASE_URL", &db.url)
        .env("CLINICFLOW_BIND", "127.0.0.1:0")
        .env("CLINICFLOW_PROFILE", "development")
        .env("CLINICFLOW_OUTBOX_POLL_INTERVAL_MS", "100")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("the server starts");
    let summaries = |text: &str| -> Vec<usize> {
        text.lines()
            .filter(|l| l.contains("outbox messages delivered to the log"))
            .map(|l| {
                l.split_whitespace()
                    .find_map(|word| word.strip_prefix("count="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("a count in {l}"))
            })
            .collect()
    };
    crate::dispatch::eventually(
        Duration::from_secs(60),
        "the server delivers every message",
        || async { wiring.services.outbox.depth().await.expect("depth") == 0 },
    )
    .await;
    // SIGTERM lets the dispatcher finish its round, summary included, and the log is whole.
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.try_wait().expect("the server runs").is_none() {
        if std::time::Instant::now() > deadline {
            server.kill().expect("stopped");
            panic!("the server did not stop on SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let text = std::fs::read_to_string(&log_path).expect("the log");
    assert!(
        !text.contains('\u{1b}'),
        "no ANSI escape codes in a file:\n{text}"
    );
    assert!(text.contains(" INFO "), "the readable format: {text}");
    let summaries = summaries(&text);
    let rounds = text.lines().filter(|l| l.contains("outbox round")).count();
    assert_eq!(summaries.iter().sum::<usize>(), messages, "{text}");
    assert_eq!(summaries.len(), rounds, "one summary per round: {text}");
    assert_eq!(rounds, 2, "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("outbox messages delivered to the log")
                && l.contains("events=queue.called=")),
        "the summary names the events: {text}"
    );
    assert!(
        !text.contains("outbox message delivered to the log"),
        "no line per message at the default filter"
    );
    assert!(!text.contains("message_id"), "no message ids at info");
}
