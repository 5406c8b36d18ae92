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
    the_sweeper_marks_unattended_appointments_no_show_and_announces_recent_ones,
    the_first_free_slots_across_practitioners_leave_out_booked_time,
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
    // Every stored appointment of that practitioner, whatever its status: only a 201 writes one.
    let list: Value = app
        .get(&format!(
            "/api/v1/appointments?practitioner_id={practitioner}"
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        list["count"], 1,
        "exactly one appointment is stored: {list}"
    );
    assert_eq!(list["results"][0]["status"], "booked", "and it is active");
}

async fn the_first_free_slots_across_practitioners_leave_out_booked_time(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (house, wilson) = (app.practitioner().await, app.practitioner().await);
    let patient = app.patient(1).await;
    let day = future_day();
    let next_day = (chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").expect("date")
        + chrono::Duration::days(1))
    .to_string();
    let first = |limit: u32| {
        let app = &app;
        let path =
            format!("/api/v1/slots?specialty=diagnostics&from={day}&to={next_day}&limit={limit}");
        async move {
            let res = app.get(&path).await;
            assert_eq!(res.status(), StatusCode::OK);
            let body: Value = res.json().await.expect("json");
            body["slots"]
                .as_array()
                .expect("slots")
                .iter()
                .map(|s| {
                    (
                        s["practitioner_id"].as_str().expect("id").to_owned(),
                        s["starts_at"].as_str().expect("start").to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let at = |h: u32, m: u32| format!("{day}T{h:02}:{m:02}:00Z");
    let mut both = [house.clone(), wilson.clone()];
    both.sort();
    // Earliest first, ties in practitioner order; read twice so the second answer is cached.
    let expected = vec![
        (both[0].clone(), at(8, 0)),
        (both[1].clone(), at(8, 0)),
        (both[0].clone(), at(8, 30)),
    ];
    assert_eq!(first(3).await, expected);
    assert_eq!(first(3).await, expected);

    let booked = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": both[0], "starts_at": at(8, 0)}),
        )
        .await;
    assert_eq!(booked.status(), StatusCode::CREATED);
    assert_eq!(
        first(3).await,
        [
            (both[1].clone(), at(8, 0)),
            (both[0].clone(), at(8, 30)),
            (both[1].clone(), at(8, 30)),
        ],
        "the booked slot is gone at once, cached or not"
    );
    assert_eq!(first(100).await.len(), 15, "16 slots, one booked");
    let none = app
        .get(&format!(
            "/api/v1/slots?specialty=dermatology&from={day}&to={next_day}"
        ))
        .await;
    assert_eq!(none.status(), StatusCode::OK);
    assert_eq!(
        none.json::<Value>().await.expect("json")["slots"],
        json!([])
    );
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
    // The appointment is days ahead, so the admin checks in outside the check-in window.
    for (action, status, queue_status) in [
        ("confirm", "confirmed", None),
        ("check-in", "checked_in", Some("waiting")),
        ("start", "in_progress", Some("in_service")),
        ("complete", "completed", None),
    ] {
        let body = if action == "check-in" {
            json!({"override": true})
        } else {
            json!({})
        };
        let res = app
            .post(&format!("/api/v1/appointments/{id}/{action}"), body)
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

async fn the_sweeper_marks_unattended_appointments_no_show_and_announces_recent_ones(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.sweeper.interval_secs = 1;
        // Leave the outbox alone, so the test can read what the sweep wrote.
        s.outbox.poll_interval_ms = 3_600_000;
    })
    .await
    else {
        return;
    };
    let practitioner = app.practitioner().await;
    // The longest grace while the test sets up, so the sweeper cannot take an appointment
    // before it is checked in.
    let res = app
        .patch("/api/v1/clinic", json!({"no_show_grace_minutes": 240}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // Appointments start on whole minutes.
    let now =
        chrono::DurationRound::duration_trunc(chrono::Utc::now(), chrono::Duration::minutes(1))
            .expect("a minute");
    let book = async |n: usize, start: chrono::DateTime<chrono::Utc>| {
        let patient = app.patient(n).await;
        let res = app
            .post(
                "/api/v1/appointments",
                json!({"patient_id": patient, "practitioner_id": practitioner,
                       "starts_at": start.to_rfc3339(), "duration_minutes": 15, "overbook": true}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        id_of(res).await
    };
    let missed = book(1, now - chrono::Duration::hours(1)).await;
    let long_ago = book(2, now - chrono::Duration::days(3)).await;
    let in_grace = book(3, now - chrono::Duration::minutes(5)).await;
    let attended = book(4, now - chrono::Duration::hours(2)).await;
    for step in ["confirm", "check-in"] {
        let res = app
            .post(
                &format!("/api/v1/appointments/{attended}/{step}"),
                json!({}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{step}");
    }
    // Grace is 15 minutes from here: one an hour ago is overdue, one five minutes ago not yet.
    let res = app
        .patch("/api/v1/clinic", json!({"no_show_grace_minutes": 15}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    let status = async |id: &str| -> String {
        let a: Value = app
            .get(&format!("/api/v1/appointments/{id}"))
            .await
            .json()
            .await
            .expect("json");
        a["status"].as_str().expect("status").to_owned()
    };
    for _ in 0..100 {
        if status(&missed).await == "no_show" && status(&long_ago).await == "no_show" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status(&missed).await, "no_show");
    assert_eq!(status(&long_ago).await, "no_show");
    assert_eq!(status(&in_grace).await, "booked", "still inside its grace");
    assert_eq!(status(&attended).await, "checked_in");

    let page: Value = app
        .get("/api/v1/outbox?status=pending&page_size=200")
        .await
        .json()
        .await
        .expect("json");
    let announced: Vec<&str> = page["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|m| m["event"] == "appointment.no_show")
        .map(|m| m["appointment_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        announced,
        [missed.as_str()],
        "only the recent one is announced"
    );

    // The audit log says clinicflow itself did it.
    let log: Value = app
        .get("/api/v1/audit-events?actor_id=00000000-0000-0000-0000-000000000000")
        .await
        .json()
        .await
        .expect("json");
    let by_system = log["results"].as_array().expect("results").iter().any(|e| {
        e["actor_role"] == "system"
            && e["action"] == "update"
            && e["resource_id"] == missed.as_str()
    });
    assert!(by_system, "audit: {log}");
}
