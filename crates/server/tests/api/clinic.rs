//! The clinic's settings: versioned like every mutable record.

use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(settings_carry_a_version_and_a_stale_change_is_refused);

async fn settings_carry_a_version_and_a_stale_change_is_refused(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let read = app.get("/api/v1/clinic").await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()["etag"], "\"1\"");
    let settings: Value = read.json().await.expect("json");
    assert_eq!(settings["version"], 1);

    // Two admins read version 1. The first change goes through and moves the version on.
    let patch = |if_match: &str, body: Value| {
        app.client
            .patch(app.url("/api/v1/clinic"))
            .bearer_auth(&app.token)
            .header("If-Match", if_match.to_owned())
            .json(&body)
            .send()
    };
    let renamed = patch("\"1\"", json!({"name": "Praxis im Park"}))
        .await
        .expect("request");
    assert_eq!(renamed.status(), StatusCode::OK);
    assert_eq!(renamed.headers()["etag"], "\"2\"");
    // The second, based on what it read, is refused and changes nothing.
    let stale = patch("\"1\"", json!({"no_show_grace_minutes": 30}))
        .await
        .expect("request");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        stale.json::<Value>().await.expect("json")["code"],
        "precondition_failed"
    );
    // Read twice: the second answer comes from the cache and must carry the version too.
    for _ in 0..2 {
        let read = app.get("/api/v1/clinic").await;
        assert_eq!(read.headers()["etag"], "\"2\"");
    }
    let now: Value = app.get("/api/v1/clinic").await.json().await.expect("json");
    assert_eq!(
        (&now["name"], &now["no_show_grace_minutes"], &now["version"]),
        (
            &json!("Praxis im Park"),
            &settings["no_show_grace_minutes"],
            &json!(2)
        )
    );

    // Without If-Match, concurrent changes of different settings all stand: a change that
    // lost the race is read and applied again instead of writing back what it read. Three,
    // because a change is tried three times and each loss means another one committed.
    let changes = [
        json!({"no_show_grace_minutes": 25}),
        json!({"checkin_grace_minutes": 7}),
        json!({"check_in_opens_minutes_before": 45}),
    ];
    let answers = futures::future::join_all(
        changes
            .iter()
            .map(|c| app.patch("/api/v1/clinic", c.clone())),
    )
    .await;
    for answer in answers {
        assert_eq!(answer.status(), StatusCode::OK);
    }
    let after: Value = app.get("/api/v1/clinic").await.json().await.expect("json");
    assert_eq!(
        (
            &after["no_show_grace_minutes"],
            &after["checkin_grace_minutes"],
            &after["check_in_opens_minutes_before"],
            &after["version"],
        ),
        (&json!(25), &json!(7), &json!(45), &json!(5)),
        "{after}"
    );
}
