//! The dashboard: today's figures per clinic and practitioner, served from the cache and
//! kept fresh by the warmer.

use chrono::{Duration, DurationRound, Timelike, Utc};
use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, id_of};

crate::on_both_backends!(the_dashboard_counts_today_per_practitioner_and_the_warmer_refreshes_it);

async fn the_dashboard_counts_today_per_practitioner_and_the_warmer_refreshes_it(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.cache.dashboard_refresh_secs = 1).await
    else {
        return;
    };
    let practitioner = app.practitioner().await;
    // Every appointment of this test (base to base + 2.5 h) lies today in the clinic (UTC):
    // later today until 20:00, earlier today after that.
    let now = Utc::now()
        .duration_trunc(Duration::minutes(1))
        .expect("a minute");
    let base = if now.hour() < 20 {
        now + Duration::hours(1)
    } else {
        now - Duration::hours(4)
    };
    let mut ids = Vec::new();
    for n in 0..4 {
        let patient = app.patient(n).await;
        let res = app
            .post(
                "/api/v1/appointments",
                json!({"patient_id": patient, "practitioner_id": practitioner, "overbook": true,
                       "starts_at": (base + Duration::minutes(30 * n as i64)).to_rfc3339(),
                       "duration_minutes": 15}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        ids.push(id_of(res).await);
    }
    for (id, action) in [(&ids[1], "confirm"), (&ids[2], "cancel")] {
        let res = app
            .post(&format!("/api/v1/appointments/{id}/{action}"), json!({}))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{action}");
    }
    let walk_in = app.patient(9).await;
    let res = app
        .post(
            "/api/v1/queue/entries",
            json!({"patient_id": walk_in, "practitioner_id": practitioner, "category": "standard"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);

    let dashboard = |want_booked: u64| {
        let app = &app;
        async move {
            for _ in 0..60 {
                let res = app.get("/api/v1/dashboard/stats").await;
                assert_eq!(res.status(), StatusCode::OK);
                let d: Value = res.json().await.expect("json");
                if d["appointments"]["booked"] == want_booked {
                    return d;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("the dashboard never showed {want_booked} booked");
        }
    };
    let d = dashboard(2).await;
    assert_eq!(d["date"], now.date_naive().to_string());
    assert_eq!(d["appointments"]["confirmed"], 1);
    assert_eq!(d["appointments"]["cancelled"], 1);
    assert_eq!(d["appointments"]["no_show"], 0, "every status is listed");
    assert_eq!(d["queue_waiting"], 1);
    assert!(d["no_show_rate"].is_null(), "no appointment was due yet");
    let mine = d["practitioners"]
        .as_array()
        .expect("practitioners")
        .iter()
        .find(|p| p["practitioner_id"] == practitioner.as_str())
        .expect("the practitioner's day")
        .clone();
    assert_eq!(mine["appointments"]["booked"], 2);
    assert_eq!(mine["queue_waiting"], 1);

    // A booking shows within a refresh, not instantly: the figures come from the cache.
    let patient = app.patient(5).await;
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner, "overbook": true,
                   "starts_at": (base + Duration::minutes(150)).to_rfc3339(), "duration_minutes": 15}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let d = dashboard(3).await;
    assert_eq!(d["appointments"]["booked"], 3);

    // The other clinic sees its own (empty) day.
    let other = app.login("admin@clinic-b.example").await;
    let theirs: Value = app
        .as_user(&other, app.client.get(app.url("/api/v1/dashboard/stats")))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(theirs["appointments"]["booked"], 0);
    assert_eq!(theirs["practitioners"], json!([]));
}
