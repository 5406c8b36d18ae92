//! The outbox through HTTP: a booking's events are written with it and delivered by the
//! dispatcher (to the log channel here); a cancellation withdraws the reminders.

use std::time::Duration;

use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, future_day, id_of};

crate::on_both_backends!(
    a_bookings_events_are_delivered_and_a_cancellation_withdraws_its_reminders
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
