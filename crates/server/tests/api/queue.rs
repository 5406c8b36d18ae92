//! The queue through HTTP: earliest-deadline-first order, re-triage, atomic call-next,
//! service with its encounter, statistics and the live board across instances.

use std::time::Duration;

use chrono::{DurationRound, Utc};
use clinicflow_store::testing::TestBackend;
use futures::StreamExt;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, id_of, metric};

crate::on_both_backends!(
    walk_ins_and_checked_in_appointments_are_served_earliest_deadline_first,
    concurrent_calls_never_take_one_patient_twice,
    service_opens_and_closes_the_encounter_and_completes_the_appointment,
    the_live_board_pushes_every_change,
    streams_of_one_scope_share_one_board_and_another_clinics_is_not_recomputed,
    changed_triage_targets_set_a_new_walk_ins_deadline_and_bad_ones_write_nothing,
    recall_and_leave_over_http_stamp_the_entry_and_refuse_illegal_moves,
    queue_stats_count_one_days_arrivals_per_practitioner_with_no_shows,
    a_practitioner_serves_only_the_patients_they_called,
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

/// Books (overbooking, so any time is allowed), confirms and checks in (overriding the
/// check-in window, so any time is allowed there too); returns the appointment id.
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
    for (action, body) in [
        ("confirm", json!({})),
        ("check-in", json!({"override": true})),
    ] {
        let res = app
            .post(&format!("/api/v1/appointments/{id}/{action}"), body)
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{action}");
    }
    id
}

fn instant(v: &Value) -> chrono::DateTime<Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// Minutes from an entry's arrival to its deadline.
fn target_of(entry: &Value) -> i64 {
    (instant(&entry["deadline"]) - instant(&entry["arrived_at"])).num_minutes()
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

async fn changed_triage_targets_set_a_new_walk_ins_deadline_and_bad_ones_write_nothing(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (ada, grace, alan) = (
        app.patient(1).await,
        app.patient(2).await,
        app.patient(3).await,
    );
    // Read first, so that the settings are cached and the change must invalidate them.
    let before: Value = app.get("/api/v1/clinic").await.json().await.expect("json");
    assert_eq!(
        before["triage_target_minutes"],
        json!({"immediate": 0, "very_urgent": 10, "urgent": 60, "standard": 120, "non_urgent": 240})
    );
    let first: Value = app
        .post(
            "/api/v1/queue/entries",
            json!({"patient_id": ada, "category": "urgent"}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(target_of(&first), 60);

    let targets =
        json!({"immediate": 0, "very_urgent": 5, "urgent": 30, "standard": 90, "non_urgent": 180});
    let res = app
        .patch("/api/v1/clinic", json!({"triage_target_minutes": targets}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.expect("json")["triage_target_minutes"],
        targets
    );
    let second: Value = app
        .post(
            "/api/v1/queue/entries",
            json!({"patient_id": grace, "category": "urgent"}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(target_of(&second), 30, "the new target, not the cached one");
    let board: Value = app.get("/api/v1/queue").await.json().await.expect("json");
    let entries = board["entries"].as_array().expect("entries");
    let of = |patient: &str| {
        entries
            .iter()
            .find(|e| e["patient_id"] == patient)
            .expect("on the board")
    };
    assert_eq!(
        of(&ada)["deadline"],
        first["deadline"],
        "who already waits keeps the deadline they joined with"
    );
    assert_eq!(of(&grace)["priority"]["target_minutes"], 30);
    assert_eq!(
        entries[0]["patient_id"],
        grace.as_str(),
        "due 30 min after arriving, before the earlier arrival due after 60"
    );

    let bad = [
        json!({"immediate": 0, "very_urgent": -1, "urgent": 30, "standard": 90, "non_urgent": 180}),
        json!({"immediate": 0, "very_urgent": 5, "urgent": 30, "standard": 90, "non_urgent": 1441}),
        json!({"immediate": 0, "very_urgent": 5, "urgent": 100, "standard": 90, "non_urgent": 180}),
    ];
    for targets in bad {
        let res = app
            .patch(
                "/api/v1/clinic",
                json!({"name": "Renamed", "triage_target_minutes": targets}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{targets}");
        let problem: Value = res.json().await.expect("json");
        assert_eq!(problem["code"], "validation_failed");
        assert!(
            problem["errors"]["triage_target_minutes"].is_array(),
            "{problem}"
        );
    }
    let missing = app
        .patch(
            "/api/v1/clinic",
            json!({"triage_target_minutes": {"urgent": 30}}),
        )
        .await;
    assert_eq!(
        missing.status(),
        StatusCode::BAD_REQUEST,
        "all five targets at once"
    );
    let after: Value = app.get("/api/v1/clinic").await.json().await.expect("json");
    assert_eq!(
        (&after["name"], &after["triage_target_minutes"]),
        (
            &before["name"],
            &json!({"immediate": 0, "very_urgent": 5, "urgent": 30, "standard": 90, "non_urgent": 180})
        ),
        "refused changes wrote nothing"
    );
    let third: Value = app
        .post(
            "/api/v1/queue/entries",
            json!({"patient_id": alan, "category": "very_urgent"}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(target_of(&third), 5);
}

async fn recall_and_leave_over_http_stamp_the_entry_and_refuse_illegal_moves(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let (ada, grace) = (app.patient(1).await, app.patient(2).await);
    let first = walk_in(&app, &ada, "standard").await;
    let second = walk_in(&app, &grace, "standard").await;
    let call = || {
        app.post(
            "/api/v1/queue/call-next",
            json!({"practitioner_id": practitioner}),
        )
    };
    let called: Value = call().await.json().await.expect("json");
    assert_eq!(called["entry"]["id"], first.as_str());
    let deadline = called["entry"]["deadline"].clone();
    assert!(called["entry"]["recalled_at"].is_null());

    let res = app
        .post(&format!("/api/v1/queue/entries/{first}/recall"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let recalled: Value = res.json().await.expect("json");
    assert_eq!(recalled["status"], "waiting");
    assert_eq!(
        recalled["deadline"], deadline,
        "a recall keeps the deadline"
    );
    assert!(recalled["called_at"].is_null() && recalled["called_by"].is_null());
    assert!(
        instant(&recalled["recalled_at"]) >= instant(&called["entry"]["called_at"]),
        "{recalled}"
    );
    let board: Value = app.get("/api/v1/queue").await.json().await.expect("json");
    assert_eq!(board["entries"][0]["id"], first.as_str());
    assert_eq!(board["entries"][0]["position"], 1, "back in their place");
    assert_eq!(board["entries"][0]["recalled_at"], recalled["recalled_at"]);

    let again = app
        .post(&format!("/api/v1/queue/entries/{first}/recall"), json!({}))
        .await;
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "only the called are recalled"
    );
    let problem: Value = again.json().await.expect("json");
    assert_eq!(problem["code"], "illegal_transition");
    assert_eq!(problem["allowed"], json!(["called", "left"]));

    let res = app
        .post(&format!("/api/v1/queue/entries/{second}/leave"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let left: Value = res.json().await.expect("json");
    assert_eq!(left["status"], "left");
    assert!(left["left_at"].is_string());
    assert_eq!(
        order(&app).await,
        std::slice::from_ref(&ada),
        "who left is off the board"
    );
    let twice = app
        .post(&format!("/api/v1/queue/entries/{second}/leave"), json!({}))
        .await;
    assert_eq!(twice.status(), StatusCode::CONFLICT);
    assert_eq!(
        twice.json::<Value>().await.expect("json")["allowed"],
        json!([])
    );

    let called: Value = call().await.json().await.expect("json");
    assert_eq!(called["entry"]["id"], first.as_str(), "called again");
    assert_eq!(
        called["entry"]["recalled_at"], recalled["recalled_at"],
        "the recall stays on record"
    );
    let res = app
        .post(&format!("/api/v1/queue/entries/{first}/start"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .post(&format!("/api/v1/queue/entries/{first}/leave"), json!({}))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CONFLICT,
        "a patient in service cannot leave unseen"
    );
    let problem: Value = res.json().await.expect("json");
    assert_eq!(problem["code"], "illegal_transition");
    assert_eq!(problem["allowed"], json!(["done"]));
    let res = app
        .post(&format!("/api/v1/queue/entries/{first}/recall"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(
        res.json::<Value>().await.expect("json")["allowed"],
        json!(["done"])
    );
    let board: Value = app.get("/api/v1/queue").await.json().await.expect("json");
    assert_eq!(
        board["entries"][0]["status"], "in_service",
        "the refused moves wrote nothing"
    );
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(
        app.post(&format!("/api/v1/queue/entries/{unknown}/leave"), json!({}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

/// The day's figures for `query`: its date, then waiting, called, in service, done, left and no-shows.
async fn day_stats(app: &TestApp, query: String) -> (String, Vec<u64>) {
    let res = app.get(&format!("/api/v1/queue/stats{query}")).await;
    assert_eq!(res.status(), StatusCode::OK, "{query}");
    let s: Value = res.json().await.expect("json");
    let counts = [
        "waiting",
        "called",
        "in_service",
        "done",
        "left",
        "no_shows",
    ]
    .iter()
    .map(|k| s[*k].as_u64().expect("a count"))
    .collect();
    (s["date"].as_str().expect("date").to_owned(), counts)
}

async fn queue_stats_count_one_days_arrivals_per_practitioner_with_no_shows(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (house, wilson) = (app.practitioner().await, app.practitioner().await);
    let p: Vec<String> = {
        let mut v = Vec::new();
        for n in 0..5 {
            v.push(app.patient(n).await);
        }
        v
    };
    let res = app
        .post(
            "/api/v1/queue/entries",
            json!({"patient_id": p[0], "practitioner_id": house, "category": "standard"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let leaving = walk_in(&app, &p[1], "standard").await;
    walk_in(&app, &p[2], "standard").await;
    walk_in(&app, &p[3], "standard").await;
    let call = |practitioner: &str| {
        app.post(
            "/api/v1/queue/call-next",
            json!({"practitioner_id": practitioner}),
        )
    };
    let called: Value = call(&house).await.json().await.expect("json");
    assert_eq!(called["entry"]["patient_id"], p[0].as_str());
    let res = app
        .post(&format!("/api/v1/queue/entries/{leaving}/leave"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let served: Value = call(&wilson).await.json().await.expect("json");
    assert_eq!(served["entry"]["patient_id"], p[2].as_str());
    let served = served["entry"]["id"].as_str().expect("id").to_owned();
    for action in ["start", "finish"] {
        let res = app
            .post(
                &format!("/api/v1/queue/entries/{served}/{action}"),
                json!({}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{action}");
    }
    // House's patient did not come: past start + the 15-minute grace, so a no-show.
    let missed_start = (Utc::now() - chrono::Duration::minutes(30))
        .duration_trunc(chrono::Duration::minutes(1))
        .expect("whole minute");
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": p[4], "practitioner_id": house, "starts_at": missed_start.to_rfc3339(), "overbook": true}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let missed = id_of(res).await;
    let res = app
        .post(&format!("/api/v1/appointments/{missed}/no-show"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    let (today, all) = day_stats(&app, String::new()).await;
    // The UTC test clinic's day; the no-show is counted on the day its appointment started.
    let missed_day = missed_start.date_naive().to_string();
    if today == missed_day {
        assert_eq!(all, [1, 1, 0, 1, 1, 1]);
    } else {
        assert_eq!(all[..5], [1, 1, 0, 1, 1]);
        assert_eq!(day_stats(&app, format!("?date={missed_day}")).await.1[5], 1);
    }
    assert_eq!(
        day_stats(&app, format!("?date={today}")).await,
        (today.clone(), all.clone())
    );
    // House's own and the one House called; Wilson's: the one he served.
    let (_, of_house) = day_stats(&app, format!("?date={today}&practitioner_id={house}")).await;
    assert_eq!(of_house[..5], [0, 1, 0, 0, 0]);
    let (_, of_wilson) = day_stats(&app, format!("?date={today}&practitioner_id={wilson}")).await;
    assert_eq!(of_wilson, [0, 0, 0, 1, 0, 0], "no no-show of Wilson's");
    if today == missed_day {
        assert_eq!(of_house[5], 1);
    }
    // Two days back: before every arrival and before the missed appointment, even just after midnight.
    let other_day = (chrono::NaiveDate::parse_from_str(&today, "%Y-%m-%d").expect("a date")
        - chrono::Duration::days(2))
    .to_string();
    assert_eq!(
        day_stats(&app, format!("?date={other_day}")).await,
        (other_day.clone(), vec![0; 6]),
        "another day counts none of this day's arrivals"
    );
    for bad in ["?date=yesterday", "?practitioner_id=house"] {
        assert_eq!(
            app.get(&format!("/api/v1/queue/stats{bad}")).await.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
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

/// Reads SSE frames until a comment frame (every line starting with `:`) and returns it.
async fn next_comment<B: AsRef<[u8]>>(
    events: &mut (impl futures::Stream<Item = reqwest::Result<B>> + Unpin),
    buffer: &mut String,
    within: Duration,
) -> String {
    tokio::time::timeout(within, async {
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if frame.trim_end().lines().all(|l| l.starts_with(':')) {
                    return frame;
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
    .expect("a comment frame arrives in time")
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
    // With nothing changing, the 1-second heartbeat keeps the idle stream alive.
    assert_eq!(
        next_comment(&mut events, &mut buffer, Duration::from_secs(5)).await,
        ": heartbeat\n\n"
    );

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

/// Opens the live board with `token`, with `query`, and reads its first board.
async fn follow(
    app: &TestApp,
    token: &str,
    query: &str,
) -> (
    futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    String,
) {
    let res = app
        .client
        .get(app.url(&format!("/api/v1/queue/stream{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let mut events = res.bytes_stream().map(|c| c.map(|b| b.to_vec())).boxed();
    let mut buffer = String::new();
    next_board(&mut events, &mut buffer, |_| true).await;
    (events, buffer)
}

async fn live_metrics(app: &TestApp) -> (f64, f64) {
    (
        metric(app, "clinicflow_live_board_scopes")
            .await
            .unwrap_or(-1.0),
        metric(app, "clinicflow_live_board_recomputes_total")
            .await
            .unwrap_or(-1.0),
    )
}

async fn streams_of_one_scope_share_one_board_and_another_clinics_is_not_recomputed(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.http.stream_heartbeat_secs = 1).await else {
        return;
    };
    let patient = app.patient(1).await;
    let other_clinic = app.login("admin@clinic-b.example").await;
    let mut ours = Vec::new();
    for _ in 0..3 {
        ours.push(follow(&app, &app.token, "").await);
    }
    let (mut theirs, mut their_buffer) = follow(&app, &other_clinic, "").await;
    assert_eq!(
        live_metrics(&app).await,
        (2.0, 2.0),
        "one board per scope, read once for all its streams"
    );

    walk_in(&app, &patient, "urgent").await;
    for (events, buffer) in &mut ours {
        next_board(events, buffer, |b| holds(b, &patient)).await;
    }
    assert_eq!(
        live_metrics(&app).await,
        (2.0, 3.0),
        "the change recomputed the changed clinic's board once, and the other clinic's not at all"
    );
    // The other clinic's stream goes on with heartbeats and no board.
    tokio::time::timeout(Duration::from_secs(5), async {
        while !their_buffer.contains(": heartbeat") {
            let chunk = theirs.next().await.expect("open").expect("a chunk");
            their_buffer.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    })
    .await
    .expect("a heartbeat arrives");
    assert!(
        !their_buffer.contains("event: queue"),
        "another clinic's stream got a board: {their_buffer}"
    );

    drop(ours);
    drop(theirs);
    let mut scopes = -1.0;
    for _ in 0..100 {
        scopes = live_metrics(&app).await.0;
        if scopes == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(scopes, 0.0, "a scope without streams is forgotten");
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

async fn a_practitioner_serves_only_the_patients_they_called(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (house, wilson) = (app.practitioner().await, app.practitioner().await);
    let house_token = app
        .staff("house@clinic-a.example", "practitioner", Some(&house))
        .await;
    let wilson_token = app
        .staff("wilson@clinic-a.example", "practitioner", Some(&wilson))
        .await;
    let entry = walk_in(&app, &app.patient(1).await, "standard").await;
    let act = |token: &str, action: &str| {
        let url = app.url(&format!("/api/v1/queue/entries/{entry}/{action}"));
        let req = app.client.post(url).json(&json!({}));
        let token = token.to_owned();
        let app = &app;
        async move { app.as_user(&token, req).await }
    };
    let called = app
        .as_user(
            &house_token,
            app.client
                .post(app.url("/api/v1/queue/call-next"))
                .json(&json!({"practitioner_id": house})),
        )
        .await;
    assert_eq!(called.status(), StatusCode::OK);
    for action in ["start", "finish"] {
        let res = act(&wilson_token, action).await;
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "{action} by a colleague"
        );
        let problem: Value = res.json().await.expect("json");
        assert_eq!(problem["code"], "forbidden");
    }
    let entry_now: Value = app.get("/api/v1/queue").await.json().await.expect("json");
    assert!(
        entry_now["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["id"] == entry.as_str() && e["status"] == "called"),
        "the refused start changed nothing: {entry_now}"
    );
    assert_eq!(act(&house_token, "start").await.status(), StatusCode::OK);
    assert_eq!(
        act(&wilson_token, "finish").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(act(&house_token, "finish").await.status(), StatusCode::OK);
    // Staff who are not practitioners (here the admin) are not bound to the caller.
    let other = walk_in(&app, &app.patient(2).await, "standard").await;
    let called = app
        .as_user(
            &house_token,
            app.client
                .post(app.url("/api/v1/queue/call-next"))
                .json(&json!({"practitioner_id": house})),
        )
        .await;
    assert_eq!(called.status(), StatusCode::OK);
    let res = app
        .post(&format!("/api/v1/queue/entries/{other}/start"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}
