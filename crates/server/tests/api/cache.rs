//! The shared cache across instances: a write through one instance is never followed by a
//! stale read on another.

use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{TestApp, test_redis_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_change_on_one_instance_is_read_at_once_on_another() {
    let Some(redis) = test_redis_url() else {
        return;
    };
    let Some(app) = TestApp::spawn_with(TestBackend::Postgres, |s| {
        s.redis_url = Some(SecretString::from(redis.clone()));
    })
    .await
    else {
        return;
    };
    let other = app.another_instance().await;
    let read_on_other = async || -> Value {
        app.as_user(&app.token, app.client.get(format!("{other}/api/v1/clinic")))
            .await
            .json()
            .await
            .expect("json")
    };
    // Both instances hold the settings in their caches now.
    assert_eq!(
        read_on_other().await["reminder_offsets_minutes"],
        json!([1440, 120])
    );
    assert_eq!(
        app.get("/api/v1/clinic")
            .await
            .json::<Value>()
            .await
            .expect("json")["reminder_offsets_minutes"],
        json!([1440, 120])
    );
    for (offsets, grace) in [(json!([60]), 5), (json!([2880, 30]), 20), (json!([]), 0)] {
        let res = app
            .patch(
                "/api/v1/clinic",
                json!({"reminder_offsets_minutes": offsets, "no_show_grace_minutes": grace}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let seen = read_on_other().await;
        assert_eq!(seen["reminder_offsets_minutes"], offsets, "no stale read");
        assert_eq!(seen["no_show_grace_minutes"], grace);
    }
}
