//! What every page of a client asks first, served from the cache: `/me` and the practitioner
//! directory follow each change at once, and a dashboard hit answers the same bytes and ETag.

use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde_json::{Value, json};

use crate::helpers::TestApp;

crate::on_both_backends!(
    me_follows_a_role_change_at_once,
    the_directory_follows_a_new_and_a_changed_practitioner_at_once,
    a_dashboard_hit_answers_the_same_bytes_and_etag,
);

async fn me(app: &TestApp, token: &str) -> Value {
    let res = app
        .as_user(token, app.client.get(app.url("/api/v1/me")))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("json")
}

async fn me_follows_a_role_change_at_once(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app
        .staff("desk@clinic-a.example", "receptionist", None)
        .await;
    let first = me(&app, &token).await;
    assert_eq!(first["role"], "receptionist");
    assert_eq!(me(&app, &token).await, first, "read again, from the cache");
    let id = first["id"].as_str().expect("an id");

    let res = app
        .patch(&format!("/api/v1/users/{id}"), json!({"role": "nurse"}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let token = app.login("desk@clinic-a.example").await;
    let after = me(&app, &token).await;
    assert_eq!(
        after["role"], "nurse",
        "the cached profile went with the change"
    );
    assert_eq!(after["email"], first["email"]);
    assert_eq!(after["clinic"], first["clinic"]);
}

async fn directory(app: &TestApp) -> Vec<Value> {
    let res = app.get("/api/v1/practitioners").await;
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.expect("json");
    page["results"].as_array().expect("results").clone()
}

async fn the_directory_follows_a_new_and_a_changed_practitioner_at_once(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let before = directory(&app).await;
    assert_eq!(directory(&app).await, before, "read again, from the cache");

    let id = app.practitioner().await;
    let listed = directory(&app).await;
    assert_eq!(
        listed.len(),
        before.len() + 1,
        "a new practitioner is listed at once"
    );

    let res = app
        .patch(
            &format!("/api/v1/practitioners/{id}"),
            json!({"department": "cardiology"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let changed = directory(&app).await;
    let shown = changed
        .iter()
        .find(|p| p["id"] == id.as_str())
        .expect("listed");
    assert_eq!(
        shown["department"], "cardiology",
        "a change is listed at once"
    );
}

async fn a_dashboard_hit_answers_the_same_bytes_and_etag(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let read = || async {
        let res = app.get("/api/v1/dashboard/stats").await;
        assert_eq!(res.status(), StatusCode::OK);
        let etag = res.headers().get(ETAG).expect("an ETag").clone();
        (etag, res.bytes().await.expect("a body"))
    };
    // The warmer may store a newer dashboard between two reads (a new ETag then); two reads
    // of one stored dashboard answer the same bytes and ETag, and a conditional read a 304.
    for _ in 0..20 {
        let (etag, body) = read().await;
        let (again, body_again) = read().await;
        if again != etag {
            continue;
        }
        assert_eq!(body_again, body, "one ETag, one body");
        assert!(etag.to_str().expect("ASCII").starts_with("W/\""));
        let parsed: Value = serde_json::from_slice(&body).expect("JSON");
        assert!(parsed["appointments"]["booked"].is_u64());
        let res = app
            .client
            .get(app.url("/api/v1/dashboard/stats"))
            .bearer_auth(&app.token)
            .header(IF_NONE_MATCH, etag.clone())
            .send()
            .await
            .expect("request");
        if res.status() == StatusCode::OK {
            assert_ne!(
                res.headers().get(ETAG),
                Some(&etag),
                "a 200 is a newer body"
            );
            continue;
        }
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(res.headers().get(ETAG), Some(&etag));
        assert_eq!(
            res.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("private, max-age=5")
        );
        return;
    }
    panic!("the dashboard changed between every two reads");
}
