//! How a live stream ends: at the expiry of the access token it was opened with, on its
//! user's logout or deactivation (on any instance), and at once when its client leaves.

use std::time::{Duration, Instant};

use clinicflow_store::testing::TestBackend;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp};

crate::on_both_backends!(
    a_live_stream_ends_when_its_access_token_expires,
    logging_out_ends_the_users_live_streams_and_no_one_elses,
    deactivating_a_user_ends_their_live_streams,
    a_stream_whose_client_left_frees_its_slot_at_once,
);

type Body = BoxStream<'static, reqwest::Result<Vec<u8>>>;

/// Opens the live board at `base` with `token` and reads until its first board arrived.
async fn open(app: &TestApp, base: &str, token: &str) -> (Body, String) {
    let res = app
        .client
        .get(format!("{base}/api/v1/queue/stream"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let mut body: Body = res.bytes_stream().map(|c| c.map(|b| b.to_vec())).boxed();
    let mut seen = String::new();
    while !seen.contains("event: queue\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("the first board arrives")
            .expect("the stream stays open")
            .expect("a chunk");
        seen.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    (body, seen)
}

/// Reads `body` until the server ends it, within `limit`; everything it sent.
async fn until_ended(mut body: Body, mut seen: String, limit: Duration) -> String {
    tokio::time::timeout(limit, async {
        while let Some(chunk) = body.next().await {
            seen.push_str(std::str::from_utf8(&chunk.expect("a chunk")).expect("utf-8"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the stream did not end within {limit:?}; it sent: {seen}"));
    seen
}

/// The `data` of the stream's last event, which must be `end`.
fn end_event(seen: &str) -> Value {
    let last = seen.trim_end().rsplit("\n\n").next().expect("an event");
    let data = last
        .strip_prefix("event: end\ndata: ")
        .unwrap_or_else(|| panic!("the last event is `end`: {seen}"));
    serde_json::from_str(data).expect("json")
}

async fn a_live_stream_ends_when_its_access_token_expires(backend: TestBackend) {
    // Shorter than configuration allows, to see the expiry happen.
    let Some(app) = TestApp::spawn_with(backend, |s| s.auth.access_token_ttl_secs = 2).await else {
        return;
    };
    let opened = Instant::now();
    let (body, seen) = open(&app, &app.base, &app.token).await;
    let seen = until_ended(body, seen, Duration::from_secs(20)).await;
    assert_eq!(
        end_event(&seen),
        json!({"reason": "token_expired", "reconnect": true})
    );
    assert!(
        opened.elapsed() < Duration::from_secs(20),
        "ended at the token's expiry, not at some later timeout"
    );
}

/// Logs `email` in; its access and refresh tokens.
async fn session(app: &TestApp, email: &str) -> (String, String) {
    let res = app.login_answer(email, ADMIN_PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.expect("json");
    (
        tokens["access_token"].as_str().expect("access").to_owned(),
        tokens["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned(),
    )
}

async fn logging_out_ends_the_users_live_streams_and_no_one_elses(backend: TestBackend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.http.stream_heartbeat_secs = 1).await else {
        return;
    };
    app.staff("nurse@clinic-a.example", "nurse", None).await;
    let (access, refresh) = session(&app, "nurse@clinic-a.example").await;
    let (nurse_stream, nurse_seen) = open(&app, &app.base, &access).await;
    let (mut admin_stream, _) = open(&app, &app.base, &app.token).await;

    let res = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let seen = until_ended(nurse_stream, nurse_seen, Duration::from_secs(10)).await;
    assert_eq!(
        end_event(&seen),
        json!({"reason": "logged_out", "reconnect": false})
    );

    // The admin's stream goes on: heartbeats keep coming, and no `end`.
    let mut later = String::new();
    while !later.contains(": heartbeat") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), admin_stream.next())
            .await
            .expect("a heartbeat arrives")
            .expect("the admin's stream stays open")
            .expect("a chunk");
        later.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    assert!(!later.contains("event: end"), "{later}");
}

async fn deactivating_a_user_ends_their_live_streams(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app
        .staff("reception@clinic-a.example", "receptionist", None)
        .await;
    let me: Value = app
        .as_user(&token, app.client.get(app.url("/api/v1/me")))
        .await
        .json()
        .await
        .expect("json");
    let id = me["id"].as_str().expect("an id").to_owned();
    let (body, seen) = open(&app, &app.base, &token).await;

    let res = app
        .patch(&format!("/api/v1/users/{id}"), json!({"active": false}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen = until_ended(body, seen, Duration::from_secs(10)).await;
    assert_eq!(
        end_event(&seen),
        json!({"reason": "deactivated", "reconnect": false})
    );
}

async fn a_stream_whose_client_left_frees_its_slot_at_once(backend: TestBackend) {
    // One stream per user, and heartbeats far apart: only noticing the closed connection
    // itself frees the slot within the wait below.
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.http.max_streams_per_user = 1;
        s.http.stream_heartbeat_secs = 300;
    })
    .await
    else {
        return;
    };
    let (body, _) = open(&app, &app.base, &app.token).await;
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = app
            .client
            .get(app.url("/api/v1/queue/stream"))
            .bearer_auth(&app.token)
            .send()
            .await
            .expect("request");
        if res.status() == StatusCode::OK {
            break;
        }
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            Instant::now() < deadline,
            "the slot of the closed stream was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two instances on one PostgreSQL and one Redis: a logout on one ends the user's stream on
/// the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_ends_the_stream_on_another() {
    let Some(redis) = crate::helpers::test_redis_url() else {
        return;
    };
    let Some(app) = TestApp::spawn_with(TestBackend::Postgres, |s| {
        s.redis_url = Some(secrecy::SecretString::from(redis.clone()));
    })
    .await
    else {
        return;
    };
    let other = app.another_instance().await;
    let (access, refresh) = session(&app, "admin@clinic-a.example").await;
    let (body, seen) = open(&app, &other, &access).await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let seen = until_ended(body, seen, Duration::from_secs(10)).await;
    assert_eq!(
        end_event(&seen),
        json!({"reason": "logged_out", "reconnect": false})
    );
}
