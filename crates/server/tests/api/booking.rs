//! Booking through HTTP: the conflict answer, and the invariant under concurrent requests.

use clinicflow_store::testing::TestBackend;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, future_day, id_of};

crate::on_both_backends!(
    two_hundred_concurrent_overlapping_bookings_yield_exactly_one,
    a_double_booking_answers_409_with_the_taken_interval_and_next_slots,
    appointments_move_through_their_statuses_and_refuse_illegal_moves,
    a_reschedule_links_old_and_new,
);

async fn two_hundred_concurrent_overlapping_bookings_yield_exactly_one(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let mut patients = Vec::new();
    for n in 0..200 {
        patients.push(app.patient(n).await);
    }
    let day = future_day();
    // Starts from 09:00 to 09:25 with 30 minutes each: every pair overlaps.
    let requests = patients.iter().enumerate().map(|(i, patient)| {
        let body = json!({
            "patient_id": patient, "practitioner_id": practitioner,
            "starts_at": format!("{day}T09:{:02}:00Z", (i % 6) * 5), "duration_minutes": 30,
        });
        app.post("/api/v1/appointments", body)
    });
    let answers = join_all(requests).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|r| r.status()).collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    if (created, conflicts) != (1, 199) {
        let odd = answers
            .into_iter()
            .find(|r| ![StatusCode::CREATED, StatusCode::CONFLICT].contains(&r.status()));
        let body = match odd {
            Some(r) => r.text().await.unwrap_or_default(),
            None => String::new(),
        };
        panic!("expected 1 × 201 and 199 × 409, got {statuses:?}; an odd answer: {body}");
    }
    let list: Value = app
        .get(&format!(
            "/api/v1/appointments?practitioner_id={practitioner}&status=booked"
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["count"], 1, "exactly one active appointment is stored");
}

async fn a_double_booking_answers_409_with_the_taken_interval_and_next_slots(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let (ada, bob) = (app.patient(1).await, app.patient(2).await);
    let day = future_day();
    let slots: Value = app
        .get(&format!(
            "/api/v1/practitioners/{practitioner}/slots?from={day}&to={day}"
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        slots["code"], "validation_failed",
        "an empty range is refused"
    );
    let next_day = (chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").expect("date")
        + chrono::Duration::days(1))
    .to_string();
    let slots: Value = app
        .get(&format!(
            "/api/v1/practitioners/{practitioner}/slots?from={day}&to={next_day}"
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(slots["slots"].as_array().expect("slots").len(), 8);
    let first = slots["slots"][0]["starts_at"]
        .as_str()
        .expect("a start")
        .to_owned();
    assert_eq!(first, format!("{day}T08:00:00Z"));

    let booked = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": ada, "practitioner_id": practitioner, "starts_at": first}),
        )
        .await;
    assert_eq!(booked.status(), StatusCode::CREATED);
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": bob, "practitioner_id": practitioner, "starts_at": format!("{day}T08:15:00Z")}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.expect("json");
    assert_eq!(problem["code"], "booking_conflict");
    assert_eq!(problem["conflict"]["with"], "practitioner");
    assert_eq!(problem["conflict"]["starts_at"], format!("{day}T08:00:00Z"));
    assert!(problem.get("patient_id").is_none() && problem["conflict"].get("patient_id").is_none());
    let next: Vec<&str> = problem["next_slots"]
        .as_array()
        .expect("next slots")
        .iter()
        .map(|s| s["starts_at"].as_str().expect("start"))
        .collect();
    assert_eq!(
        next,
        [
            format!("{day}T08:30:00Z"),
            format!("{day}T09:00:00Z"),
            format!("{day}T09:30:00Z")
        ]
    );

    let outside = app
        .post("/api/v1/appointments", json!({"patient_id": bob, "practitioner_id": practitioner, "starts_at": format!("{day}T13:00:00Z")}))
        .await;
    assert_eq!(outside.status(), StatusCode::CONFLICT);
    assert_eq!(
        outside.json::<Value>().await.expect("json")["code"],
        "outside_availability"
    );

    let past = app
        .post("/api/v1/appointments", json!({"patient_id": bob, "practitioner_id": practitioner, "starts_at": "2020-01-01T08:00:00Z"}))
        .await;
    assert_eq!(past.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        past.json::<Value>().await.expect("json")["code"],
        "booking_in_past"
    );

    let bad = app
        .post("/api/v1/appointments", json!({"patient_id": "x", "practitioner_id": practitioner, "starts_at": "2026-12-01T08:00:00"}))
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = bad.json().await.expect("json");
    assert!(
        problem["errors"]["patient_id"].is_array() && problem["errors"]["starts_at"].is_array(),
        "{problem}"
    );

    let list: Value = app
        .get(&format!(
            "/api/v1/appointments?practitioner_id={practitioner}"
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["count"], 1, "refused bookings wrote nothing");
}

async fn appointments_move_through_their_statuses_and_refuse_illegal_moves(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let day = future_day();
    let res = app
        .post("/api/v1/appointments", json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": format!("{day}T10:00:00Z"), "reason": "check-up"}))
        .await;
    assert_eq!(res.headers()["etag"], "\"1\"");
    let id = id_of(res).await;

    let illegal = app
        .post(&format!("/api/v1/appointments/{id}/complete"), json!({}))
        .await;
    assert_eq!(illegal.status(), StatusCode::CONFLICT);
    let problem: Value = illegal.json().await.expect("json");
    assert_eq!(problem["code"], "illegal_transition");
    assert_eq!(
        problem["allowed"],
        json!(["confirmed", "cancelled", "no_show"])
    );

    let early_no_show = app
        .post(&format!("/api/v1/appointments/{id}/no-show"), json!({}))
        .await;
    assert_eq!(
        early_no_show.json::<Value>().await.expect("json")["code"],
        "no_show_too_early"
    );

    let stale = app
        .client
        .post(app.url(&format!("/api/v1/appointments/{id}/confirm")))
        .bearer_auth(&app.token)
        .header("If-Match", "\"5\"")
        .send()
        .await
        .expect("request");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);

    // The queue follows: the check-in queues the patient, starting serves them, completing ends it.
    for (action, status, queue_status) in [
        ("confirm", "confirmed", None),
        ("check-in", "checked_in", Some("waiting")),
        ("start", "in_progress", Some("in_service")),
        ("complete", "completed", None),
    ] {
        let res = app
            .post(&format!("/api/v1/appointments/{id}/{action}"), json!({}))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{action}");
        assert_eq!(res.json::<Value>().await.expect("json")["status"], status);
        let board: Value = app.get("/api/v1/queue").await.json().await.expect("json");
        let statuses: Vec<&str> = board["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["status"].as_str().expect("status"))
            .collect();
        assert_eq!(
            statuses,
            queue_status.into_iter().collect::<Vec<_>>(),
            "after {action}"
        );
    }
    let read = app.get(&format!("/api/v1/appointments/{id}")).await;
    assert_eq!(read.headers()["etag"], "\"5\"");
    let not_modified = app
        .client
        .get(app.url(&format!("/api/v1/appointments/{id}")))
        .bearer_auth(&app.token)
        .header("If-None-Match", "\"5\"")
        .send()
        .await
        .expect("request");
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    let unknown = app
        .post(&format!("/api/v1/appointments/{id}/teleport"), json!({}))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

async fn a_reschedule_links_old_and_new(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let day = future_day();
    let old = id_of(
        app.post("/api/v1/appointments", json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": format!("{day}T10:00:00Z")}))
            .await,
    )
    .await;
    // Overlapping its own old time is fine: the old one stops holding it in the same transaction.
    let res = app
        .post(
            &format!("/api/v1/appointments/{old}/reschedule"),
            json!({"starts_at": format!("{day}T10:15:00Z")}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let new: Value = res.json().await.expect("json");
    assert_eq!(new["rescheduled_from"], old.as_str());
    assert_eq!(new["starts_at"], format!("{day}T10:15:00Z"));
    let old_read: Value = app
        .get(&format!("/api/v1/appointments/{old}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(old_read["status"], "cancelled");
    assert_eq!(old_read["rescheduled_to"], new["id"]);
    let again = app
        .post(
            &format!("/api/v1/appointments/{old}/reschedule"),
            json!({"starts_at": format!("{day}T11:00:00Z")}),
        )
        .await;
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "a cancelled appointment cannot be rescheduled"
    );
}
