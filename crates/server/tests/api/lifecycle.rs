//! The appointment life cycle's guards through HTTP: the check-in window and its override,
//! the encounter that starting a visit opens by either route, time off and extra hours,
//! deactivated practitioners, overbookings in the audit log, one open queue entry per
//! patient, and the phone and e-mail checks of the field libraries.

use chrono::{DateTime, DurationRound, Utc};
use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, future_day, id_of};

crate::on_both_backends!(
    check_in_opens_with_the_clinics_window_and_staff_may_override_it,
    starting_a_visit_by_either_route_opens_its_encounter,
    time_off_and_extra_hours_are_listed_deleted_and_move_the_slots,
    a_deactivated_practitioner_takes_no_bookings_and_offers_no_slots,
    an_overbooking_is_audited_as_one,
    a_patient_waits_in_the_queue_once,
    phone_numbers_and_e_mail_addresses_are_checked_by_the_field_libraries,
);

/// A whole minute `minutes` from now.
fn in_minutes(minutes: i64) -> DateTime<Utc> {
    (Utc::now() + chrono::Duration::minutes(minutes))
        .duration_trunc(chrono::Duration::minutes(1))
        .expect("whole minute")
}

/// Books (overbooking, so any time is allowed) and confirms; returns the appointment id.
async fn confirmed(
    app: &TestApp,
    patient: &str,
    practitioner: &str,
    start: DateTime<Utc>,
) -> String {
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner,
                   "starts_at": start.to_rfc3339(), "overbook": true}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = id_of(res).await;
    let res = app
        .post(&format!("/api/v1/appointments/{id}/confirm"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    id
}

fn instant(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// The actions of the audit events about one resource, oldest first.
async fn audited(app: &TestApp, patient: &str, resource: &str) -> Vec<String> {
    let log: Value = app
        .get(&format!(
            "/api/v1/audit-events?patient_id={patient}&limit=200"
        ))
        .await
        .json()
        .await
        .expect("json");
    let mut actions: Vec<String> = log["results"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["resource_id"] == resource)
        .map(|e| e["action"].as_str().expect("action").to_owned())
        .collect();
    actions.reverse();
    actions
}

async fn check_in_opens_with_the_clinics_window_and_staff_may_override_it(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let app = &app;
    let practitioner = app.practitioner().await;
    let soon = confirmed(app, &app.patient(1).await, &practitioner, in_minutes(30)).await;
    let start = in_minutes(150);
    let patient = app.patient(2).await;
    let later = confirmed(app, &patient, &practitioner, start).await;
    let check_in = |id: &str, body: Value| {
        let path = format!("/api/v1/appointments/{id}/check-in");
        async move { app.post(&path, body).await }
    };

    // Half an hour ahead lies in the default window (an hour before to the no-show grace after).
    assert_eq!(check_in(&soon, json!({})).await.status(), StatusCode::OK);
    // Two and a half hours ahead does not: 409 with the window, and nothing changes.
    let res = check_in(&later, json!({})).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let problem: Value = res.json().await.expect("json");
    assert_eq!(problem["code"], "outside_check_in_window", "{problem}");
    assert_eq!(
        instant(&problem["opens_at"]),
        start - chrono::Duration::minutes(60)
    );
    assert_eq!(
        instant(&problem["closes_at"]),
        start + chrono::Duration::minutes(15)
    );
    let a: Value = app
        .get(&format!("/api/v1/appointments/{later}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(a["status"], "confirmed");

    // A receptionist may not override the window; the admin may, and the log says so.
    let desk = app
        .staff("desk@clinic-a.example", "receptionist", None)
        .await;
    let res = app
        .as_user(
            &desk,
            app.client
                .post(app.url(&format!("/api/v1/appointments/{later}/check-in")))
                .json(&json!({"override": true})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = check_in(&later, json!({"override": true})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.expect("json")["status"],
        "checked_in"
    );
    let actions = audited(app, &patient, &later).await;
    assert!(actions.contains(&"override".to_owned()), "{actions:?}");

    // The window is the clinic's: opened three hours ahead, the next check-in fits.
    let res = app
        .patch(
            "/api/v1/clinic",
            json!({"check_in_opens_minutes_before": 180}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let clinic: Value = res.json().await.expect("json");
    assert_eq!(clinic["check_in_opens_minutes_before"], 180);
    assert_eq!(clinic["check_in_closes_minutes_after"], Value::Null);
    // Right after `later`, three hours ahead: inside a window that opens 180 minutes before.
    let third = confirmed(app, &app.patient(3).await, &practitioner, in_minutes(180)).await;
    assert_eq!(check_in(&third, json!({})).await.status(), StatusCode::OK);
    let bad = app
        .patch(
            "/api/v1/clinic",
            json!({"check_in_closes_minutes_after": 1441}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// The patient's encounters, newest first.
async fn encounters(app: &TestApp, patient: &str) -> Vec<Value> {
    let page: Value = app
        .get(&format!("/api/v1/patients/{patient}/encounters"))
        .await
        .json()
        .await
        .expect("json");
    page["results"].as_array().expect("results").clone()
}

async fn starting_a_visit_by_either_route_opens_its_encounter(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let app = &app;
    let practitioner = app.practitioner().await;

    // The appointment route: start opens the encounter, linked to the queue entry the
    // check-in made; complete closes it.
    let booked_patient = app.patient(1).await;
    let id = confirmed(app, &booked_patient, &practitioner, in_minutes(10)).await;
    for action in ["check-in", "start"] {
        let res = app
            .post(&format!("/api/v1/appointments/{id}/{action}"), json!({}))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{action}");
    }
    let board: Value = app.get("/api/v1/queue").await.json().await.expect("json");
    let entry = board["entries"][0]["id"].clone();
    let visits = encounters(app, &booked_patient).await;
    assert_eq!(visits.len(), 1, "{visits:?}");
    assert_eq!(visits[0]["appointment_id"], id.as_str());
    assert_eq!(visits[0]["queue_entry_id"], entry);
    assert_eq!(visits[0]["practitioner_id"], practitioner.as_str());
    assert_eq!(visits[0]["ended_at"], Value::Null);
    let res = app
        .post(&format!("/api/v1/appointments/{id}/complete"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let visits = encounters(app, &booked_patient).await;
    assert_eq!(visits.len(), 1, "completing opens nothing new");
    assert!(visits[0]["ended_at"].is_string(), "{visits:?}");

    // The queue route: starting a called walk-in opens the encounter too.
    let walk_in = app.patient(2).await;
    let res = app
        .post(
            "/api/v1/queue/entries",
            json!({"patient_id": walk_in, "practitioner_id": practitioner, "category": "standard"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let entry = id_of(res).await;
    let res = app
        .post(
            "/api/v1/queue/call-next",
            json!({"practitioner_id": practitioner}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .post(&format!("/api/v1/queue/entries/{entry}/start"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let visits = encounters(app, &walk_in).await;
    assert_eq!(visits.len(), 1, "{visits:?}");
    assert_eq!(visits[0]["queue_entry_id"], entry.as_str());
    assert_eq!(visits[0]["appointment_id"], Value::Null);
}

/// The starts of the practitioner's free slots on `day`.
async fn slot_starts(app: &TestApp, practitioner: &str, day: &str) -> Vec<String> {
    let next = (chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").expect("date")
        + chrono::Duration::days(1))
    .to_string();
    let res = app
        .get(&format!(
            "/api/v1/practitioners/{practitioner}/slots?from={day}&to={next}"
        ))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    body["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| instant(&s["starts_at"]).format("%H:%M").to_string())
        .collect()
}

async fn time_off_and_extra_hours_are_listed_deleted_and_move_the_slots(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let app = &app;
    let practitioner = app.practitioner().await;
    let day = future_day();
    let base = format!("/api/v1/practitioners/{practitioner}");
    assert!(
        slot_starts(app, &practitioner, &day)
            .await
            .contains(&"08:00".to_owned())
    );

    let res = app
        .post(
            &format!("{base}/time-off"),
            json!({"starts_at": format!("{day}T08:00:00Z"), "ends_at": format!("{day}T09:00:00Z"), "reason": "dentist"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let time_off = id_of(res).await;
    let listed: Value = app
        .get(&format!("{base}/time-off"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], time_off.as_str());
    assert_eq!(listed[0]["kind"], "time_off");
    assert_eq!(listed[0]["reason"], "dentist");
    assert!(
        !slot_starts(app, &practitioner, &day)
            .await
            .contains(&"08:00".to_owned())
    );

    // Time off is no extra hours: its id is unknown there.
    let wrong = app.delete(&format!("{base}/extra-hours/{time_off}")).await;
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
    let res = app.delete(&format!("{base}/time-off/{time_off}")).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(
        slot_starts(app, &practitioner, &day)
            .await
            .contains(&"08:00".to_owned())
    );
    let again = app.delete(&format!("{base}/time-off/{time_off}")).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let listed: Value = app
        .get(&format!("{base}/time-off"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed, json!([]));

    // Extra hours in the afternoon add slots of the practitioner's length, until deleted.
    assert!(
        !slot_starts(app, &practitioner, &day)
            .await
            .contains(&"14:00".to_owned())
    );
    let res = app
        .post(
            &format!("{base}/extra-hours"),
            json!({"starts_at": format!("{day}T14:00:00Z"), "ends_at": format!("{day}T15:00:00Z")}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let extra = id_of(res).await;
    let slots = slot_starts(app, &practitioner, &day).await;
    assert!(
        slots.contains(&"14:00".to_owned()) && slots.contains(&"14:30".to_owned()),
        "{slots:?}"
    );
    let listed: Value = app
        .get(&format!("{base}/extra-hours"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed[0]["kind"], "extra_hours");
    let res = app.delete(&format!("{base}/extra-hours/{extra}")).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(
        !slot_starts(app, &practitioner, &day)
            .await
            .contains(&"14:00".to_owned())
    );

    let bad = app
        .post(
            &format!("{base}/extra-hours"),
            json!({"starts_at": format!("{day}T15:00:00Z"), "ends_at": format!("{day}T14:00:00Z")}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_deactivated_practitioner_takes_no_bookings_and_offers_no_slots(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let app = &app;
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let day = future_day();
    let next = (chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").expect("date")
        + chrono::Duration::days(1))
    .to_string();
    let book = |time: &str, overbook: bool| {
        let body = json!({"patient_id": patient, "practitioner_id": practitioner,
                          "starts_at": format!("{day}T{time}:00Z"), "overbook": overbook});
        async move { app.post("/api/v1/appointments", body).await }
    };
    let res = book("09:00", false).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let kept = id_of(res).await;
    // Warm the caches the deactivation must invalidate.
    assert!(!slot_starts(app, &practitioner, &day).await.is_empty());
    let search = format!("/api/v1/slots?from={day}&to={next}");
    let found: Value = app.get(&search).await.json().await.expect("json");
    assert!(!found["slots"].as_array().expect("slots").is_empty());

    let res = app
        .post(
            &format!("/api/v1/practitioners/{practitioner}/deactivate"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.expect("json")["active"], false);

    for overbook in [false, true] {
        let res = book("10:00", overbook).await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "overbook: {overbook}");
        let problem: Value = res.json().await.expect("json");
        assert_eq!(problem["code"], "practitioner_inactive");
    }
    assert_eq!(
        slot_starts(app, &practitioner, &day).await,
        Vec::<String>::new()
    );
    let found: Value = app.get(&search).await.json().await.expect("json");
    assert_eq!(found["slots"], json!([]), "left out of the search");
    let walk_in = app
        .post(
            "/api/v1/queue/entries",
            json!({"patient_id": app.patient(2).await, "practitioner_id": practitioner, "category": "standard"}),
        )
        .await;
    assert_eq!(walk_in.status(), StatusCode::CONFLICT);
    // The appointment made before stays, and the directory tells who is inactive.
    let a: Value = app
        .get(&format!("/api/v1/appointments/{kept}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(a["status"], "booked");
    let inactive: Value = app
        .get("/api/v1/practitioners?active=false")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(inactive["count"], 1);
    let active: Value = app
        .get("/api/v1/practitioners?active=true")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(active["count"], 0);

    let res = app
        .post(
            &format!("/api/v1/practitioners/{practitioner}/reactivate"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        slot_starts(app, &practitioner, &day)
            .await
            .contains(&"10:00".to_owned())
    );
    assert_eq!(book("10:00", false).await.status(), StatusCode::CREATED);
}

async fn an_overbooking_is_audited_as_one(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let app = &app;
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let day = future_day();
    let book = |time: &str, overbook: bool| {
        let body = json!({"patient_id": patient, "practitioner_id": practitioner,
                          "starts_at": format!("{day}T{time}:00Z"), "overbook": overbook});
        async move { id_of(app.post("/api/v1/appointments", body).await).await }
    };
    let plain = book("09:00", false).await;
    // 18:00 lies outside the 08:00-12:00 schedule: only an overbooking gets it.
    let overbooked = book("18:00", true).await;
    assert_eq!(audited(app, &patient, &plain).await, ["create"]);
    assert_eq!(audited(app, &patient, &overbooked).await, ["overbook"]);
}

async fn a_patient_waits_in_the_queue_once(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let app = &app;
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let join = |patient: String| async move {
        app.post(
            "/api/v1/queue/entries",
            json!({"patient_id": patient, "category": "standard"}),
        )
        .await
    };
    let res = join(patient.clone()).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let first = id_of(res).await;
    let res = join(patient.clone()).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "already_in_queue"
    );
    // Nor does their appointment's check-in queue them a second time.
    let appointment = confirmed(app, &patient, &practitioner, in_minutes(20)).await;
    let res = app
        .post(
            &format!("/api/v1/appointments/{appointment}/check-in"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "already_in_queue"
    );
    let board: Value = app.get("/api/v1/queue").await.json().await.expect("json");
    assert_eq!(board["entries"].as_array().map(Vec::len), Some(1));

    // Once the first entry is closed, the patient may join again.
    let res = app
        .post(&format!("/api/v1/queue/entries/{first}/leave"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(join(patient).await.status(), StatusCode::CREATED);
}

async fn phone_numbers_and_e_mail_addresses_are_checked_by_the_field_libraries(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let app = &app;
    let register = |phone: &str, email: &str| {
        let body = json!({"given_name": "Ada", "family_name": "Lovelace", "birth_date": "1985-12-10",
                          "phone": phone, "email": email});
        async move { app.post("/api/v1/patients", body).await }
    };
    // A German mobile number one digit short, and an address without a domain.
    let res = register("+49 151 1234567", "ada@example").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = res.json().await.expect("json");
    assert!(problem["errors"]["phone"].is_array(), "{problem}");
    assert!(problem["errors"]["email"].is_array(), "{problem}");
    let res = register("+49 151 1234 5678", "Ada@Example.org").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let patient: Value = res.json().await.expect("json");
    assert_eq!(patient["phone"], "+4915112345678");
    assert_eq!(patient["email"], "ada@example.org");
}
