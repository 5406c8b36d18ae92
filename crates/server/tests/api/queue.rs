//! The queue through HTTP: earliest-deadline-first order, re-triage, atomic call-next,
//! service with its encounter, statistics and the live board across instances.

use std::time::Duration;

use chrono::{DurationRound, Utc};
use clinicflow_store::testing::TestBackend;
use futures::StreamExt;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, id_of};

crate::on_both_backends!(
    walk_ins_and_checked_in_appointments_are_served_earliest_deadline_first,
    concurrent_calls_never_take_one_patient_twice,
    service_opens_and_closes_the_encounter_and_completes_the_appointment,
    the_live_board_pushes_every_change,
);

async fn walk_in(app: &TestApp, patient: &str, category: &str) -> String {
    let res = app
        .post(
            "/api/v1/queue/entries",
            json!({"patient_id": patient, "category": category}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "walk-in {category}");
    id_of(res).await
}

/// Books (overbooking, so any time is allowed), confirms and checks in; returns the appointment id.
async fn check_in(
    app: &TestApp,
    patient: &str,
    practitioner: &str,
    starts_in_minutes: i64,
) -> String {
    let start = (Utc::now() + chrono::Duration::minutes(starts_in_minutes))
        .duration_trunc(chrono::Duration::minutes(1))
        .expect("whole minute");
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": start.to_rfc3339(), "overbook": true}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = id_of(res).await;
    for action in ["confirm", "check-in"] {
        let res = app
            .post(&format!("/api/v1/appointments/{id}/{action}"), json!({}))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{action}");
    }
    id
}

async fn order(app: &TestApp) -> Vec<String> {
    let board: Value = app.get("/api/v1/queue").await.json().await.expect("json");
    board["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["patient_id"].as_str().expect("patient").to_owned())
        .collect()
}

async fn walk_ins_and_checked_in_appointments_are_served_earliest_deadline_first(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let p: Vec<String> = {
        let mut v = Vec::new();
        for n in 0..5 {
            v.push(app.patient(n).await);
        }
        v
    };
    let standard = walk_in(&app, &p[0], "standard").await; // due in 120 min
    walk_in(&app, &p[1], "urgent").await; // due in 60 min
    let non_urgent = walk_in(&app, &p[2], "non_urgent").await; // due in 240 min
    check_in(&app, &p[3], &practitioner, -20).await; // late already: due arrival + 10 min grace
    check_in(&app, &p[4], &practitioner, 90).await; // due at start + 10 = in 100 min
    assert_eq!(order(&app).await, [3, 1, 4, 0, 2].map(|i| p[i].clone()));

    let board: Value = app.get("/api/v1/queue").await.json().await.expect("json");
    let first = &board["entries"][0];
    assert_eq!(first["position"], 1);
    assert_eq!(first["estimated_wait_minutes"], 0);
    assert_eq!(first["priority"]["rule"], "appointment");
    assert_eq!(first["priority"]["grace_minutes"], 10);
    let urgent = &board["entries"][1];
    assert_eq!(
        (
            urgent["priority"]["rule"].as_str(),
            urgent["priority"]["target_minutes"].as_u64()
        ),
        (Some("walk_in"), Some(60))
    );
    assert_eq!(
        urgent["estimated_wait_minutes"], 15,
        "one patient ahead, 15 min default service, one practitioner"
    );
    assert!(urgent["minutes_early"].as_i64().expect("minutes") > 55);

    // Re-triage to immediate: that entry's deadline becomes its arrival, so it goes first.
    let res = app
        .post(
            &format!("/api/v1/queue/entries/{non_urgent}/retriage"),
            json!({"category": "immediate"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(order(&app).await, [2, 3, 1, 4, 0].map(|i| p[i].clone()));
    let res = app
        .post(
            &format!("/api/v1/queue/entries/{standard}/retriage"),
            json!({"category": "sometime"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .post(
            &format!("/api/v1/queue/entries/{standard}/start"),
            json!({}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CONFLICT,
        "a waiting patient must be called first"
    );
    assert_eq!(
        res.json::<Value>().await.expect("json")["allowed"],
        json!(["called", "left"])
    );
}

async fn concurrent_calls_never_take_one_patient_twice(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (a, b) = (app.practitioner().await, app.practitioner().await);
    for n in 0..10 {
        let patient = app.patient(n).await;
        walk_in(&app, &patient, "standard").await;
    }
    let calls = (0..20).map(|i| {
        let practitioner = if i % 2 == 0 { &a } else { &b };
        app.post(
            "/api/v1/queue/call-next",
            json!({"practitioner_id": practitioner}),
        )
    });
    let mut called = Vec::new();
    let mut empty = 0;
    for res in join_all(calls).await {
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.expect("json");
        if body["queue_empty"] == true {
            empty += 1;
        } else {
            called.push(body["entry"]["id"].as_str().expect("id").to_owned());
        }
    }
    let unique: std::collections::HashSet<_> = called.iter().collect();
    assert_eq!((called.len(), unique.len(), empty), (10, 10, 10));
    let board: Value = app.get("/api/v1/queue").await.json().await.expect("json");
    assert!(
        board["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .all(|e| e["status"] == "called")
    );
}

async fn service_opens_and_closes_the_encounter_and_completes_the_appointment(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let appointment = check_in(&app, &patient, &practitioner, 0).await;
    let called: Value = app
        .post(
            "/api/v1/queue/call-next",
            json!({"practitioner_id": practitioner}),
        )
        .await
        .json()
        .await
        .expect("json");
    let entry = called["entry"]["id"].as_str().expect("called").to_owned();
    assert_eq!(called["entry"]["appointment_id"], appointment.as_str());
    assert_eq!(
        app.post(&format!("/api/v1/queue/entries/{entry}/start"), json!({}))
            .await
            .status(),
        StatusCode::OK
    );
    let a: Value = app
        .get(&format!("/api/v1/appointments/{appointment}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(a["status"], "in_progress");
    let visits: Value = app
        .get(&format!("/api/v1/patients/{patient}/encounters"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(visits["count"], 1);
    let encounter = visits["results"][0]["id"].as_str().expect("id").to_owned();
    assert!(visits["results"][0]["ended_at"].is_null());
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/encounters/{encounter}")))
        .bearer_auth(&app.token)
        .json(&json!({"notes": "mild fever; fluids"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.post(&format!("/api/v1/queue/entries/{entry}/finish"), json!({}))
            .await
            .status(),
        StatusCode::OK
    );
    let e: Value = app
        .get(&format!("/api/v1/encounters/{encounter}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(e["notes"], "mild fever; fluids");
    assert!(e["ended_at"].is_string());
    let a: Value = app
        .get(&format!("/api/v1/appointments/{appointment}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(a["status"], "completed");
    let stats: Value = app
        .get("/api/v1/queue/stats")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (stats["done"].as_u64(), stats["waiting"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(stats["mean_wait_minutes"].is_number() && stats["p90_wait_minutes"].is_number());
    assert!(stats["mean_service_minutes"].is_number());
    let nurse = app.staff("nurse@clinic-a.example", "nurse", None).await;
    let desk = app
        .staff("desk@clinic-a.example", "receptionist", None)
        .await;
    let call = |token: &str| {
        app.client
            .post(app.url("/api/v1/queue/call-next"))
            .bearer_auth(token.to_owned())
            .json(&json!({"practitioner_id": practitioner}))
            .send()
    };
    assert_eq!(
        call(&desk).await.expect("request").status(),
        StatusCode::FORBIDDEN,
        "receptionists do not call patients"
    );
    assert_eq!(
        call(&nurse).await.expect("request").status(),
        StatusCode::OK
    );
}

/// Reads SSE events from a response until one of type `queue` whose data satisfies `pred`.
async fn next_board<B: AsRef<[u8]>>(
    events: &mut (impl futures::Stream<Item = reqwest::Result<B>> + Unpin),
    buffer: &mut String,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                    let board: Value = serde_json::from_str(data).expect("json board");
                    if pred(&board) {
                        return board;
                    }
                }
            }
            let chunk = events
                .next()
                .await
                .expect("the stream stays open")
                .expect("chunk");
            buffer.push_str(std::str::from_utf8(chunk.as_ref()).expect("utf-8"));
        }
    })
    .await
    .expect("the board arrives within 10 s")
}

fn holds(board: &Value, patient: &str) -> bool {
    board["entries"]
        .as_array()
        .is_some_and(|e| e.iter().any(|x| x["patient_id"] == patient))
}

async fn the_live_board_pushes_every_change(backend: TestBackend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.http.max_streams_per_user = 2;
        // The server learns that a client left when its next write fails: heartbeat often here.
        s.http.stream_heartbeat_secs = 1;
    })
    .await
    else {
        return;
    };
    let patient = app.patient(1).await;
    let open = || {
        app.client
            .get(app.url("/api/v1/queue/stream"))
            .bearer_auth(&app.token)
            .send()
    };
    let res = open().await.expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut events = res.bytes_stream();
    let mut buffer = String::new();
    let first = next_board(&mut events, &mut buffer, |_| true).await;
    assert_eq!(first["entries"], json!([]));
    walk_in(&app, &patient, "urgent").await;
    next_board(&mut events, &mut buffer, |b| holds(b, &patient)).await;

    let second = open().await.expect("request");
    assert_eq!(second.status(), StatusCode::OK);
    let third = open().await.expect("request");
    assert_eq!(
        third.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "two streams per user here"
    );
    drop(second);
    // The slot frees once the server notices the closed connection, at its next heartbeat.
    let mut reopened = StatusCode::TOO_MANY_REQUESTS;
    for _ in 0..50 {
        reopened = open().await.expect("request").status();
        if reopened == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reopened, StatusCode::OK);
}

/// Two instances on one PostgreSQL and one Redis: a change made on one reaches a board on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_instance_reaches_a_board_on_another() {
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
    let patient = app.patient(1).await;
    let res = app
        .client
        .get(format!("{other}/api/v1/queue/stream"))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let mut events = res.bytes_stream();
    let mut buffer = String::new();
    next_board(&mut events, &mut buffer, |_| true).await;
    walk_in(&app, &patient, "standard").await;
    next_board(&mut events, &mut buffer, |b| holds(b, &patient)).await;
}
