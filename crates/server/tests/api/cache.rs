//! The shared cache across instances: a write through one instance is never followed by a
//! stale read on another.

use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{TestApp, metric, test_redis_url};

/// An app on PostgreSQL and Redis, and the base URL of a second instance sharing both;
/// `None` (the test skips) without those servers.
async fn two_instances_on_one_redis() -> Option<(TestApp, String)> {
    let redis = test_redis_url()?;
    let app = TestApp::spawn_with(TestBackend::Postgres, |s| {
        s.redis_url = Some(SecretString::from(redis.clone()));
    })
    .await?;
    let other = app.another_instance().await;
    Some((app, other))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_change_on_one_instance_is_read_at_once_on_another() {
    let Some((app, other)) = two_instances_on_one_redis().await else {
        return;
    };
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

crate::on_both_backends!(cached_slots_follow_bookings_cancellations_and_time_off);

/// The starts of a practitioner's free slots on `day`, read through `base` (an instance).
async fn starts(app: &TestApp, base: &str, practitioner: &str, day: &str) -> Vec<String> {
    let next = (chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").expect("date")
        + chrono::Duration::days(1))
    .to_string();
    let slots: Value = app
        .as_user(
            &app.token,
            app.client.get(format!(
                "{base}/api/v1/practitioners/{practitioner}/slots?from={day}&to={next}"
            )),
        )
        .await
        .json()
        .await
        .expect("json");
    slots["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s["starts_at"].as_str().expect("start").to_owned())
        .collect()
}

async fn cached_slots_follow_bookings_cancellations_and_time_off(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let day = crate::helpers::future_day();
    let before = starts(&app, &app.base, &practitioner, &day).await;
    assert_eq!(before.len(), 8, "08:00 to 12:00 in half hours");
    // Read twice: the second answer comes from the cache.
    assert_eq!(starts(&app, &app.base, &practitioner, &day).await, before);

    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": before[0]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let booked = crate::helpers::id_of(res).await;
    let after = starts(&app, &app.base, &practitioner, &day).await;
    assert_eq!(after, before[1..], "the booked slot is gone at once");

    let res = app
        .post(&format!("/api/v1/appointments/{booked}/cancel"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        starts(&app, &app.base, &practitioner, &day).await,
        before,
        "a cancellation frees it at once"
    );

    let res = app
        .post(
            &format!("/api/v1/practitioners/{practitioner}/time-off"),
            json!({"starts_at": format!("{day}T10:00:00Z"), "ends_at": format!("{day}T12:00:00Z")}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(
        starts(&app, &app.base, &practitioner, &day).await,
        before[..4],
        "time off takes its slots at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_on_one_instance_takes_the_slot_from_another_instances_cache() {
    let Some((app, other)) = two_instances_on_one_redis().await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let day = crate::helpers::future_day();
    let before = starts(&app, &other, &practitioner, &day).await;
    assert_eq!(starts(&app, &other, &practitioner, &day).await, before);
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": before[0]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(
        starts(&app, &other, &practitioner, &day).await,
        before[1..],
        "no stale slot on the other instance"
    );
}

async fn readiness(app: &TestApp) -> (StatusCode, Value) {
    let res = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .expect("ready answers");
    (res.status(), res.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_cut_off_mid_run_answers_stay_right_and_the_cache_returns_with_it() {
    use crate::redis_relay::{Relay, redis_addr, url_through};
    let Some(redis) = test_redis_url() else {
        return;
    };
    let relay = Relay::start(redis_addr(&redis).await).await;
    let through = url_through(&redis, relay.addr);
    let Some(app) = TestApp::spawn_with(TestBackend::Sqlite, |s| {
        s.redis_url = Some(SecretString::from(through.clone()));
    })
    .await
    else {
        return;
    };
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let day = crate::helpers::future_day();
    let before = starts(&app, &app.base, &practitioner, &day).await;
    assert_eq!(before.len(), 8);
    assert_eq!(readiness(&app).await.1["status"], "ok");
    let errors_before = metric(&app, "clinicflow_cache_redis_errors_total")
        .await
        .expect("the Redis error count is exported");

    relay.cut();
    // Logins, reads and writes all still answer, from the database, and none is stale.
    assert_eq!(starts(&app, &app.base, &practitioner, &day).await, before);
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": before[0]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let booked = crate::helpers::id_of(res).await;
    assert_eq!(
        starts(&app, &app.base, &practitioner, &day).await,
        before[1..],
        "the booking shows at once although its invalidation could not reach Redis"
    );
    assert_eq!(
        app.login_answer("admin@clinic-a.example", crate::helpers::ADMIN_PASSWORD)
            .await
            .status(),
        StatusCode::OK,
        "rate limits fall back in-process"
    );
    let (status, ready) = readiness(&app).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "degraded");
    let errors_during = metric(&app, "clinicflow_cache_redis_errors_total")
        .await
        .expect("exported");
    assert!(errors_during > errors_before, "failures are counted");

    relay.restore();
    let mut back = false;
    for _ in 0..100 {
        if readiness(&app).await.1["status"] == "ok" {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back, "ready again once Redis answers");
    // What was cached before the outage is not served again: the booking stays visible.
    assert_eq!(
        starts(&app, &app.base, &practitioner, &day).await,
        before[1..]
    );
    let res = app
        .post(&format!("/api/v1/appointments/{booked}/cancel"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(starts(&app, &app.base, &practitioner, &day).await, before);
    // And the cache serves hits again.
    let hits = |m: Option<f64>| m.unwrap_or(0.0);
    let slot_hits = r#"clinicflow_cache_lookups_total{keyspace="slots",result="hit"}"#;
    let hits_before = hits(metric(&app, slot_hits).await);
    starts(&app, &app.base, &practitioner, &day).await;
    assert!(
        hits(metric(&app, slot_hits).await) > hits_before,
        "a hit after the outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practitioner_change_on_one_instance_is_read_at_once_on_another() {
    let Some((app, other)) = two_instances_on_one_redis().await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let read_on_other = async || -> Value {
        let res = app
            .as_user(
                &app.token,
                app.client
                    .get(format!("{other}/api/v1/practitioners/{practitioner}")),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.expect("json")
    };
    // Read twice on the other instance: the second answer is its cached copy.
    assert_eq!(read_on_other().await["slot_minutes"], 30);
    assert_eq!(read_on_other().await["slot_minutes"], 30);
    let day = crate::helpers::future_day();
    assert_eq!(starts(&app, &other, &practitioner, &day).await.len(), 8);

    let res = app
        .patch(
            &format!("/api/v1/practitioners/{practitioner}"),
            json!({"slot_minutes": 20, "specialties": ["nephrology"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen = read_on_other().await;
    assert_eq!(seen["slot_minutes"], 20, "no stale read: {seen}");
    assert_eq!(seen["specialties"], json!(["nephrology"]));
    assert_eq!(
        starts(&app, &other, &practitioner, &day).await.len(),
        12,
        "the slots follow the new length on the other instance too"
    );
    // Another clinic's admin gets a 404 from the same instance, cached copy or not.
    let outsider = app.login("admin@clinic-b.example").await;
    let res = app
        .as_user(
            &outsider,
            app.client
                .get(format!("{other}/api/v1/practitioners/{practitioner}")),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
