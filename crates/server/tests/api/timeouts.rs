//! The database's bounds as a client meets them: a request stuck behind a lock another
//! connection holds answers `503 database_timeout` with `Retry-After` within the bound,
//! instead of waiting for as long as the lock is held.

use std::time::{Duration, Instant};

use clinicflow_store::testing::{TestBackend, hold_lock};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(a_request_behind_a_held_lock_answers_503_within_the_bound);

/// The bound plus generous slack for a busy machine; an unbounded wait never ends.
const WITHIN: Duration = Duration::from_secs(5);

/// Sends `req` and checks it is a `503 database_timeout` problem that came within [`WITHIN`].
async fn assert_timed_out(req: reqwest::RequestBuilder) {
    let started = Instant::now();
    let res = req.send().await.expect("an answer, not a hang");
    assert!(started.elapsed() < WITHIN, "{:?}", started.elapsed());
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.expect("json");
    assert_eq!(problem["code"], "database_timeout", "{problem}");
}

async fn a_request_behind_a_held_lock_answers_503_within_the_bound(backend: TestBackend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.db.lock_timeout_ms = 300;
        s.db.sqlite_busy_timeout_ms = 300;
    })
    .await
    else {
        return;
    };
    let me: Value = app.get("/api/v1/me").await.json().await.expect("json");
    let (user, clinic) = (
        me["id"].as_str().expect("id"),
        me["clinic"]["id"].as_str().expect("clinic"),
    );
    let change = || {
        app.client
            .patch(app.url(&format!("/api/v1/users/{user}")))
            .bearer_auth(&app.token)
            .timeout(Duration::from_secs(30))
            .json(&json!({"role": "admin"}))
    };
    {
        // PostgreSQL: another transaction holds the user's row and an uncommitted
        // Idempotency-Key of this user; SQLite: another writer holds the write lock.
        let locks = match backend {
            TestBackend::Postgres => vec![
                format!("SELECT id FROM users WHERE id = '{user}' FOR UPDATE"),
                format!(
                    "INSERT INTO idempotency_keys (clinic_id, user_id, key, fingerprint, \
                     created_at, expires_at) VALUES ('{clinic}', '{user}', 'in-flight', 'x', \
                     now(), now() + interval '1 day')"
                ),
            ],
            TestBackend::Sqlite => Vec::new(),
        };
        let locks: Vec<&str> = locks.iter().map(String::as_str).collect();
        let _held = hold_lock(app.database_url(), &locks).await;
        assert_timed_out(change()).await;
        assert_timed_out(
            app.client
                .post(app.url("/api/v1/patients"))
                .bearer_auth(&app.token)
                .timeout(Duration::from_secs(30))
                .header("Idempotency-Key", "in-flight")
                .json(&json!({"given_name": "Ada", "family_name": "Lovelace",
                    "birth_date": "1985-12-10", "sex": "female"})),
        )
        .await;
    }
    // Once the lock is gone, the same requests go through.
    assert_eq!(
        change().send().await.expect("answer").status(),
        StatusCode::OK
    );
}
