//! `Idempotency-Key` through HTTP: a retried write gets its first answer and writes nothing,
//! the same key with another request is a 422, and concurrent requests with one key make
//! one resource.

use clinicflow_store::testing::TestBackend;
use futures::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, future_day, id_of};

crate::on_both_backends!(
    a_retried_booking_gets_the_first_answer_and_books_once,
    concurrent_requests_with_one_key_register_one_patient,
    walk_ins_status_moves_and_reschedules_are_made_once_per_key,
    keys_belong_to_their_user_and_malformed_keys_are_refused,
    a_write_that_failed_is_not_remembered,
    a_replayed_patient_is_audited_and_refused_once_the_patient_is_deleted,
    replayed_bookings_and_walk_ins_are_audited_as_reads_of_what_they_show,
);

/// POSTs `body` (JSON text, sent as is) with the admin's token and `key`.
async fn keyed(app: &TestApp, token: &str, path: &str, key: &str, body: &str) -> Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request")
}

/// Status, the headers a retry must repeat, and the body.
async fn parts(res: Response) -> (StatusCode, Option<String>, Option<String>, bool, String) {
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().expect("ASCII header").to_owned())
    };
    let (location, etag) = (header("location"), header("etag"));
    let replayed = header("idempotent-replayed").as_deref() == Some("true");
    (
        res.status(),
        location,
        etag,
        replayed,
        res.text().await.expect("body"),
    )
}

async fn count(app: &TestApp, path: &str) -> u64 {
    let page: Value = app.get(path).await.json().await.expect("json");
    page["count"].as_u64().expect("a count")
}

async fn a_retried_booking_gets_the_first_answer_and_books_once(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (practitioner, patient) = (app.practitioner().await, app.patient(1).await);
    let day = future_day();
    let body = format!(
        r#"{{"patient_id":"{patient}","practitioner_id":"{practitioner}","starts_at":"{day}T09:00:00Z","duration_minutes":30}}"#
    );
    let list = format!("/api/v1/appointments?practitioner_id={practitioner}");
    let first =
        parts(keyed(&app, &app.token, "/api/v1/appointments", "booking-1", &body).await).await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.4);
    assert!(!first.3, "a first answer is not marked replayed");
    assert!(first.1.is_some() && first.2.is_some(), "Location and ETag");

    // The same request, spaced and ordered differently, is the same request.
    let respelled = format!(
        r#"{{ "duration_minutes": 30, "starts_at": "{day}T09:00:00Z",
             "practitioner_id": "{practitioner}", "patient_id": "{patient}" }}"#
    );
    for retry_body in [&body, &respelled] {
        let retry = parts(
            keyed(
                &app,
                &app.token,
                "/api/v1/appointments",
                "booking-1",
                retry_body,
            )
            .await,
        )
        .await;
        assert!(retry.3, "a retry is marked replayed");
        assert_eq!(
            (retry.0, &retry.1, &retry.2, &retry.4),
            (first.0, &first.1, &first.2, &first.4),
            "a retry gets the first answer"
        );
    }
    assert_eq!(count(&app, &list).await, 1, "one appointment only");

    // Without the key, the same request is a new booking, which conflicts.
    let again = app
        .post(
            "/api/v1/appointments",
            serde_json::from_str(&body).expect("json"),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let other = body.replace("T09:00:00Z", "T10:00:00Z");
    let reused = keyed(
        &app,
        &app.token,
        "/api/v1/appointments",
        "booking-1",
        &other,
    )
    .await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.headers()["content-type"], "application/problem+json");
    let problem: Value = reused.json().await.expect("json");
    assert_eq!(problem["code"], "idempotency_key_reused");
    assert_eq!(count(&app, &list).await, 1, "a reused key writes nothing");
}

async fn concurrent_requests_with_one_key_register_one_patient(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let before = count(&app, "/api/v1/patients").await;
    let body = r#"{"given_name":"Ada","family_name":"Lovelace","birth_date":"1985-12-10"}"#;
    let answers = join_all(
        (0..20).map(|_| keyed(&app, &app.token, "/api/v1/patients", "register-ada", body)),
    )
    .await;
    let mut ids = Vec::new();
    for res in answers {
        let (status, _, _, _, text) = parts(res).await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
        let patient: Value = serde_json::from_str(&text).expect("json");
        ids.push(patient["id"].as_str().expect("an id").to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every answer names the one patient: {ids:?}");
    assert_eq!(count(&app, "/api/v1/patients").await, before + 1);
}

async fn walk_ins_status_moves_and_reschedules_are_made_once_per_key(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (practitioner, patient) = (app.practitioner().await, app.patient(1).await);

    let walk_in = json!({"patient_id": patient, "category": "standard"}).to_string();
    let first = parts(
        keyed(
            &app,
            &app.token,
            "/api/v1/queue/entries",
            "walk-in",
            &walk_in,
        )
        .await,
    )
    .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.4);
    let retry = parts(
        keyed(
            &app,
            &app.token,
            "/api/v1/queue/entries",
            "walk-in",
            &walk_in,
        )
        .await,
    )
    .await;
    assert!(retry.3);
    assert_eq!((retry.0, &retry.4), (first.0, &first.4));
    let board: Value = app.get("/api/v1/queue").await.json().await.expect("json");
    let entries = board["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "one walk-in: {board}");

    let day = future_day();
    let booked = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner,
                   "starts_at": format!("{day}T09:00:00Z"), "duration_minutes": 30}),
        )
        .await;
    assert_eq!(booked.status(), StatusCode::CREATED);
    let appointment = id_of(booked).await;

    // A reschedule retried gets the same new appointment, not a second one.
    let path = format!("/api/v1/appointments/{appointment}/reschedule");
    let to_ten = json!({"starts_at": format!("{day}T10:00:00Z")}).to_string();
    let moved = parts(keyed(&app, &app.token, &path, "move-1", &to_ten).await).await;
    assert_eq!(moved.0, StatusCode::CREATED, "{}", moved.4);
    let moved_again = parts(keyed(&app, &app.token, &path, "move-1", &to_ten).await).await;
    assert!(moved_again.3);
    assert_eq!(
        (moved_again.0, &moved_again.1, &moved_again.4),
        (moved.0, &moved.1, &moved.4)
    );
    let new: Value = serde_json::from_str(&moved.4).expect("json");
    let new_id = new["id"].as_str().expect("an id");

    // A cancel retried gets its first 200, where a second cancel would be an illegal move.
    let cancel = format!("/api/v1/appointments/{new_id}/cancel");
    let reason = json!({"reason": "patient called"}).to_string();
    let cancelled = parts(keyed(&app, &app.token, &cancel, "cancel-1", &reason).await).await;
    assert_eq!(cancelled.0, StatusCode::OK, "{}", cancelled.4);
    let cancelled_again = parts(keyed(&app, &app.token, &cancel, "cancel-1", &reason).await).await;
    assert!(cancelled_again.3);
    assert_eq!(
        (cancelled_again.0, &cancelled_again.2, &cancelled_again.4),
        (cancelled.0, &cancelled.2, &cancelled.4)
    );
    let unkeyed = app.post(&cancel, json!({"reason": "patient called"})).await;
    assert_eq!(
        unkeyed.status(),
        StatusCode::CONFLICT,
        "a second cancel is illegal"
    );
    let all = format!("/api/v1/appointments?practitioner_id={practitioner}");
    assert_eq!(
        count(&app, &all).await,
        2,
        "the original and one replacement"
    );
}

async fn keys_belong_to_their_user_and_malformed_keys_are_refused(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let desk = app
        .staff("desk@clinic-a.example", "receptionist", None)
        .await;
    let body = r#"{"given_name":"Ada","family_name":"Lovelace","birth_date":"1985-12-10"}"#;
    let admins = keyed(&app, &app.token, "/api/v1/patients", "k-1", body).await;
    let desks = keyed(&app, &desk, "/api/v1/patients", "k-1", body).await;
    assert_eq!(admins.status(), StatusCode::CREATED);
    assert_eq!(desks.status(), StatusCode::CREATED);
    assert!(desks.headers().get("idempotent-replayed").is_none());
    assert_ne!(
        id_of(admins).await,
        id_of(desks).await,
        "two users, two keys"
    );

    let before = count(&app, "/api/v1/patients").await;
    for key in ["", "has space", &"k".repeat(256)] {
        let res = keyed(&app, &app.token, "/api/v1/patients", key, body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "key {key:?}");
        let problem: Value = res.json().await.expect("json");
        assert_eq!(problem["code"], "invalid_idempotency_key", "key {key:?}");
    }
    assert_eq!(
        count(&app, "/api/v1/patients").await,
        before,
        "nothing written"
    );
}

async fn a_write_that_failed_is_not_remembered(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let (ada, bob) = (app.patient(1).await, app.patient(2).await);
    let day = future_day();
    let slot = |patient: &str| {
        json!({"patient_id": patient, "practitioner_id": practitioner,
               "starts_at": format!("{day}T09:00:00Z"), "duration_minutes": 30})
    };
    let taken = app.post("/api/v1/appointments", slot(&ada)).await;
    assert_eq!(taken.status(), StatusCode::CREATED);
    let adas = id_of(taken).await;

    let bobs = slot(&bob).to_string();
    let refused = keyed(&app, &app.token, "/api/v1/appointments", "bob-9am", &bobs).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let cancel = app
        .post(&format!("/api/v1/appointments/{adas}/cancel"), json!({}))
        .await;
    assert_eq!(cancel.status(), StatusCode::OK);
    // The conflict wrote nothing, the key included, so the retry books now that the slot is free.
    let retried = keyed(&app, &app.token, "/api/v1/appointments", "bob-9am", &bobs).await;
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert!(retried.headers().get("idempotent-replayed").is_none());
}

/// The audit events about `patient` (newest first): their actions.
async fn audited_actions(app: &TestApp, patient: &str) -> Vec<String> {
    let page: Value = app
        .get(&format!("/api/v1/audit-events?patient_id={patient}"))
        .await
        .json()
        .await
        .expect("json");
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|e| e["action"].as_str().expect("an action").to_owned())
        .collect()
}

async fn a_replayed_patient_is_audited_and_refused_once_the_patient_is_deleted(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let body = r#"{"given_name":"Ada","family_name":"Lovelace","birth_date":"1985-12-10"}"#;
    let first = parts(keyed(&app, &app.token, "/api/v1/patients", "ada-1", body).await).await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.4);
    let id = serde_json::from_str::<Value>(&first.4).expect("json")["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert_eq!(audited_actions(&app, &id).await, ["create"]);

    // The replay shows the record again: that disclosure is in the log like a read.
    let replay = parts(keyed(&app, &app.token, "/api/v1/patients", "ada-1", body).await).await;
    assert_eq!(
        (replay.0, replay.3),
        (StatusCode::CREATED, true),
        "{}",
        replay.4
    );
    assert_eq!(replay.4, first.4);
    assert_eq!(audited_actions(&app, &id).await, ["read", "create"]);

    // Once the patient is deleted, the stored record is not given out again.
    let res = app.delete(&format!("/api/v1/patients/{id}")).await;
    assert!(res.status().is_success(), "{}", res.status());
    let gone = parts(keyed(&app, &app.token, "/api/v1/patients", "ada-1", body).await).await;
    assert_eq!(gone.0, StatusCode::NOT_FOUND, "{}", gone.4);
    let problem: Value = serde_json::from_str(&gone.4).expect("a problem");
    assert_eq!(problem["code"], "not_found");
    assert!(!gone.4.contains("Lovelace"), "{}", gone.4);
    // Nothing was registered again under the key either.
    assert_eq!(count(&app, "/api/v1/patients").await, 0);
}

/// The newest audit event about `patient`: its action and resource type.
async fn newest_event(app: &TestApp, patient: &str) -> (String, String, usize) {
    let page: Value = app
        .get(&format!("/api/v1/audit-events?patient_id={patient}"))
        .await
        .json()
        .await
        .expect("json");
    let results = page["results"].as_array().expect("results");
    let newest = &results[0];
    (
        newest["action"].as_str().expect("an action").to_owned(),
        newest["resource_type"].as_str().expect("a type").to_owned(),
        results.len(),
    )
}

async fn replayed_bookings_and_walk_ins_are_audited_as_reads_of_what_they_show(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (practitioner, patient) = (app.practitioner().await, app.patient(1).await);
    let day = future_day();
    let cases = [
        (
            "/api/v1/queue/entries".to_owned(),
            json!({"patient_id": patient, "category": "standard"}).to_string(),
            "queue_entry",
        ),
        (
            "/api/v1/appointments".to_owned(),
            json!({"patient_id": patient, "practitioner_id": practitioner,
                   "starts_at": format!("{day}T09:00:00Z"), "duration_minutes": 30})
            .to_string(),
            "appointment",
        ),
    ];
    for (path, body, resource) in cases {
        let first =
            parts(keyed(&app, &app.token, &path, &format!("{resource}-1"), &body).await).await;
        assert_eq!(first.0, StatusCode::CREATED, "{}", first.4);
        let (_, _, before) = newest_event(&app, &patient).await;
        let replay =
            parts(keyed(&app, &app.token, &path, &format!("{resource}-1"), &body).await).await;
        assert_eq!(
            (replay.0, replay.3),
            (StatusCode::CREATED, true),
            "{}",
            replay.4
        );
        assert_eq!(
            newest_event(&app, &patient).await,
            ("read".to_owned(), resource.to_owned(), before + 1),
            "the replay of {path} is in the log as a read of the {resource}"
        );
    }
}
