//! The outbox through HTTP: a booking's events are written with it and delivered by the
//! dispatcher to the log or to the clinic's webhook; a cancellation withdraws the reminders;
//! admins set the reminder offsets and the webhook.

use std::time::Duration;

use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, future_day, id_of};

crate::on_both_backends!(
    a_bookings_events_are_delivered_and_a_cancellation_withdraws_its_reminders,
    clinic_reminder_offsets_and_webhook_are_set_through_the_api,
    a_booking_reaches_the_clinics_webhook_signed,
);

async fn events(app: &TestApp, status: &str) -> Vec<(String, String)> {
    let page: Value = app
        .get(&format!("/api/v1/outbox?status={status}&page_size=200"))
        .await
        .json()
        .await
        .expect("json");
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|m| {
            (
                m["event"].as_str().expect("event").to_owned(),
                m["appointment_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn a_bookings_events_are_delivered_and_a_cancellation_withdraws_its_reminders(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.outbox.poll_interval_ms = 50).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let day = future_day();
    let appointment = id_of(
        app.post("/api/v1/appointments", json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": format!("{day}T10:00:00Z")}))
            .await,
    )
    .await;
    // The confirmation is due at once and the dispatcher delivers it; the two reminders wait.
    let mut delivered = Vec::new();
    for _ in 0..100 {
        delivered = events(&app, "delivered").await;
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        delivered,
        [("booking.confirmed".to_owned(), appointment.clone())]
    );
    let pending = events(&app, "pending").await;
    assert_eq!(
        pending.iter().filter(|(e, _)| e == "reminder.due").count(),
        2,
        "24 h and 2 h before"
    );

    let res = app
        .post(
            &format!("/api/v1/appointments/{appointment}/cancel"),
            json!({"reason": "feels better"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cancelled = events(&app, "cancelled").await;
    assert_eq!(
        cancelled
            .iter()
            .filter(|(e, _)| e == "reminder.due")
            .count(),
        2
    );
    let mut delivered_now = Vec::new();
    for _ in 0..100 {
        delivered_now = events(&app, "delivered").await;
        if delivered_now.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        delivered_now.iter().any(|(e, _)| e == "booking.cancelled"),
        "{delivered_now:?}"
    );

    let page: Value = app
        .get("/api/v1/outbox?status=delivered")
        .await
        .json()
        .await
        .expect("json");
    let id = page["results"][0]["id"].as_str().expect("id").to_owned();
    let again = app
        .post(&format!("/api/v1/outbox/{id}/retry"), json!({}))
        .await;
    assert_eq!(
        again.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a delivered message is not sent again"
    );
    let desk = app
        .staff("desk@clinic-a.example", "receptionist", None)
        .await;
    let res = app
        .as_user(&desk, app.client.get(app.url("/api/v1/outbox")))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

async fn clinic_reminder_offsets_and_webhook_are_set_through_the_api(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let clinic: Value = app.get("/api/v1/clinic").await.json().await.expect("json");
    assert_eq!(clinic["reminder_offsets_minutes"], json!([1440, 120]));
    assert_eq!(clinic["time_zone"], "UTC");

    let res = app
        .patch(
            "/api/v1/clinic",
            json!({"reminder_offsets_minutes": [0], "no_show_grace_minutes": 100000}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = res.json().await.expect("json");
    let mut fields: Vec<&String> = problem["errors"]
        .as_object()
        .expect("errors by field")
        .keys()
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["no_show_grace_minutes", "reminder_offsets_minutes"]
    );

    let desk = app
        .staff("desk@clinic-a.example", "receptionist", None)
        .await;
    let res = app
        .as_user(&desk, app.client.get(app.url("/api/v1/clinic")))
        .await;
    assert_eq!(res.status(), StatusCode::OK, "staff read the settings");
    let res = app
        .as_user(
            &desk,
            app.client
                .patch(app.url("/api/v1/clinic"))
                .json(&json!({"reminder_offsets_minutes": [60]})),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "only admins change them"
    );

    let res = app
        .patch(
            "/api/v1/clinic",
            json!({"reminder_offsets_minutes": [60, 4320, 60]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let clinic: Value = res.json().await.expect("json");
    assert_eq!(
        clinic["reminder_offsets_minutes"],
        json!([4320, 60]),
        "sorted, once each"
    );

    // A booking now gets reminders three days and one hour ahead.
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let day = future_day();
    let res = app
        .post("/api/v1/appointments", json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": format!("{day}T10:00:00Z")}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let page: Value = app
        .get("/api/v1/outbox?status=pending&page_size=50")
        .await
        .json()
        .await
        .expect("json");
    let mut due: Vec<String> = page["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|m| m["event"] == "reminder.due")
        .map(|m| m["next_attempt_at"].as_str().expect("time").to_owned())
        .collect();
    due.sort();
    let start = chrono::DateTime::parse_from_rfc3339(&format!("{day}T10:00:00Z")).expect("time");
    let expected: Vec<String> = [chrono::Duration::days(3), chrono::Duration::hours(1)]
        .iter()
        .map(|o| (start - *o).with_timezone(&chrono::Utc))
        .map(|t| {
            serde_json::to_value(t)
                .expect("json")
                .as_str()
                .expect("text")
                .to_owned()
        })
        .collect();
    assert_eq!(due, expected);

    // The webhook: none yet, a bad URL refused, the secret shown once, rotated on request.
    assert_eq!(
        app.get("/api/v1/clinic/webhook").await.status(),
        StatusCode::NOT_FOUND
    );
    let res = app
        .put(
            "/api/v1/clinic/webhook",
            json!({"url": "ftp://hooks.example/"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .put(
            "/api/v1/clinic/webhook",
            json!({"url": "https://hooks.example/clinicflow"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()
            .get("cache-control")
            .map(|v| v.to_str().expect("text")),
        Some("no-store")
    );
    let made: Value = res.json().await.expect("json");
    let secret = made["secret"].as_str().expect("the new secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    let shown: Value = app
        .get("/api/v1/clinic/webhook")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(shown["url"], "https://hooks.example/clinicflow");
    assert!(shown.get("secret").is_none(), "never shown again");
    assert_eq!(shown["secret_hint"], made["secret_hint"]);
    let moved: Value = app
        .put(
            "/api/v1/clinic/webhook",
            json!({"url": "https://hooks.example/v2"}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert!(moved.get("secret").is_none(), "a new URL keeps the secret");
    let rotated: Value = app
        .put(
            "/api/v1/clinic/webhook",
            json!({"url": "https://hooks.example/v2", "rotate_secret": true}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_ne!(rotated["secret"].as_str().expect("a new secret"), secret);
    let res = app
        .as_user(&desk, app.client.get(app.url("/api/v1/clinic/webhook")))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.delete("/api/v1/clinic/webhook").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/clinic/webhook").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete("/api/v1/clinic/webhook").await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn a_booking_reaches_the_clinics_webhook_signed(backend: TestBackend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.outbox.poll_interval_ms = 50;
        crate::helpers::allow_loopback_webhooks(s);
    })
    .await
    else {
        return;
    };
    let receiver = crate::receiver::Receiver::start().await;
    let made: Value = app
        .put("/api/v1/clinic/webhook", json!({"url": receiver.url}))
        .await
        .json()
        .await
        .expect("json");
    let secret = made["secret"].as_str().expect("secret").to_owned();
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let appointment = id_of(
        app.post("/api/v1/appointments", json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": format!("{}T10:00:00Z", future_day())}))
            .await,
    )
    .await;
    for _ in 0..100 {
        if !receiver.seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "the confirmation, in one request");
    assert!(seen[0].verifies_with(&secret));
    let body: Value = serde_json::from_slice(&seen[0].body).expect("json");
    assert_eq!(body[0]["event"], "booking.confirmed");
    assert_eq!(body[0]["appointment_id"], appointment);
    assert_eq!(body[0]["patient_id"], patient, "ids only, no names");
    assert!(body[0].get("given_name").is_none());
}
