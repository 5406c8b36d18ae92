//! Tenant isolation through HTTP: clinic B's admin tries every route on clinic A's ids.

use clinicflow_store::testing::TestBackend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, future_day, id_of};

crate::on_both_backends!(another_clinics_ids_are_not_found_anywhere_and_nothing_changes);

async fn another_clinics_ids_are_not_found_anywhere_and_nothing_changes(backend: TestBackend) {
    let Some(mut app) = TestApp::spawn(backend).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let day = future_day();
    let appointment = id_of(
        app.post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": format!("{day}T10:00:00Z")}),
        )
        .await,
    )
    .await;
    // A visit in progress: a walk-in called and started, so it has an encounter.
    let walk_in = id_of(
        app.post(
            "/api/v1/queue/entries",
            json!({"patient_id": patient, "category": "urgent"}),
        )
        .await,
    )
    .await;
    let called = app
        .post(
            "/api/v1/queue/call-next",
            json!({"practitioner_id": practitioner}),
        )
        .await;
    assert_eq!(called.status(), StatusCode::OK);
    let started = app
        .post(&format!("/api/v1/queue/entries/{walk_in}/start"), json!({}))
        .await;
    assert_eq!(started.status(), StatusCode::OK);
    let visits: Value = app
        .get(&format!("/api/v1/patients/{patient}/encounters"))
        .await
        .json()
        .await
        .expect("json");
    let encounter = visits["results"][0]["id"]
        .as_str()
        .expect("an encounter")
        .to_owned();
    // The call announced itself through the outbox, so clinic A has a message to retry.
    let outbox: Value = app.get("/api/v1/outbox").await.json().await.expect("json");
    let message = outbox["results"][0]["id"]
        .as_str()
        .expect("an outbox message")
        .to_owned();
    // Clinic A's own figures for its practitioner count the walk-in, so clinic B's zeros for
    // the same id below mean the filter stayed in clinic B, not that the day was empty.
    let today = chrono::Utc::now().date_naive();
    let own_stats: Value = app
        .get(&format!(
            "/api/v1/queue/stats?date={today}&practitioner_id={practitioner}"
        ))
        .await
        .json()
        .await
        .expect("json");
    let counted = |stats: &Value| -> u64 {
        ["waiting", "called", "in_service", "done", "left"]
            .iter()
            .map(|k| stats[*k].as_u64().expect("a count"))
            .sum()
    };
    assert_eq!(counted(&own_stats), 1, "{own_stats}");
    let users: Value = app.get("/api/v1/users").await.json().await.expect("json");
    let user = users["results"][0]["id"]
        .as_str()
        .expect("a user")
        .to_owned();
    let snapshot = |app: &TestApp| {
        let (patient, practitioner, appointment) =
            (patient.clone(), practitioner.clone(), appointment.clone());
        let token = app.token.clone();
        let (client, base) = (app.client.clone(), app.base.clone());
        async move {
            let mut out = Vec::new();
            for path in [
                format!("/api/v1/patients/{patient}"),
                format!("/api/v1/practitioners/{practitioner}"),
                format!("/api/v1/appointments/{appointment}"),
                format!("/api/v1/practitioners/{practitioner}/schedule"),
            ] {
                let res = client
                    .get(format!("{base}{path}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(res.status(), StatusCode::OK, "{path}");
                out.push(res.json::<Value>().await.expect("json"));
            }
            out
        }
    };
    let before = snapshot(&app).await;

    let clinic_a_token = app.token.clone();
    app.token = app.login("admin@clinic-b.example").await;
    let own_patient = app.patient(9).await;
    let own_practitioner = app.practitioner().await;
    let not_found: Vec<(Method, String, Value)> = vec![
        (
            Method::GET,
            format!("/api/v1/patients/{patient}"),
            json!(null),
        ),
        (
            Method::PATCH,
            format!("/api/v1/patients/{patient}"),
            json!({"family_name": "Hijacked"}),
        ),
        (
            Method::DELETE,
            format!("/api/v1/patients/{patient}"),
            json!(null),
        ),
        (
            Method::GET,
            format!("/api/v1/practitioners/{practitioner}"),
            json!(null),
        ),
        (
            Method::PATCH,
            format!("/api/v1/practitioners/{practitioner}"),
            json!({"slot_minutes": 5}),
        ),
        (
            Method::GET,
            format!("/api/v1/practitioners/{practitioner}/schedule"),
            json!(null),
        ),
        (
            Method::PUT,
            format!("/api/v1/practitioners/{practitioner}/schedule"),
            json!({"rules": []}),
        ),
        (
            Method::POST,
            format!("/api/v1/practitioners/{practitioner}/time-off"),
            json!({"starts_at": format!("{day}T00:00:00Z"), "ends_at": format!("{day}T23:00:00Z")}),
        ),
        (
            Method::GET,
            format!("/api/v1/practitioners/{practitioner}/slots?from={day}&to=2099-01-01"),
            json!(null),
        ),
        (
            Method::GET,
            format!("/api/v1/appointments/{appointment}"),
            json!(null),
        ),
        (
            Method::POST,
            format!("/api/v1/appointments/{appointment}/confirm"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/appointments/{appointment}/cancel"),
            json!({"reason": "x"}),
        ),
        (
            Method::POST,
            format!("/api/v1/appointments/{appointment}/reschedule"),
            json!({"starts_at": format!("{day}T11:00:00Z")}),
        ),
        (
            Method::POST,
            format!("/api/v1/appointments/{appointment}/check-in"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/appointments/{appointment}/start"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/appointments/{appointment}/complete"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/appointments/{appointment}/no-show"),
            json!({}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{user}"),
            json!({"active": false}),
        ),
        (
            Method::POST,
            format!("/api/v1/queue/entries/{walk_in}/finish"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/queue/entries/{walk_in}/retriage"),
            json!({"category": "immediate"}),
        ),
        (
            Method::POST,
            format!("/api/v1/queue/entries/{walk_in}/start"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/queue/entries/{walk_in}/leave"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/queue/entries/{walk_in}/recall"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/outbox/{message}/retry"),
            json!({}),
        ),
        (
            Method::GET,
            format!("/api/v1/encounters/{encounter}"),
            json!(null),
        ),
        (
            Method::PATCH,
            format!("/api/v1/encounters/{encounter}"),
            json!({"notes": "x"}),
        ),
        (
            Method::GET,
            format!("/api/v1/patients/{patient}/encounters"),
            json!(null),
        ),
    ];
    for (method, path, body) in not_found {
        let mut req = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&app.token);
        if !body.is_null() {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        // A slot range request is checked before the practitioner, so it may be a 422 for the range.
        let ok = status == StatusCode::NOT_FOUND
            || (path.contains("/slots") && status == StatusCode::UNPROCESSABLE_ENTITY);
        assert!(ok, "{method} {path}: {status}");
    }
    // Clinic A's ids inside a body are unknown here, even next to clinic B's own.
    for body in [
        json!({"patient_id": patient, "practitioner_id": own_practitioner, "starts_at": format!("{day}T09:00:00Z")}),
        json!({"patient_id": own_patient, "practitioner_id": practitioner, "starts_at": format!("{day}T09:00:00Z")}),
    ] {
        let res = app.post("/api/v1/appointments", body).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Clinic A's practitioner and patient are unknown to the queue routes here.
    let res = app
        .post(
            "/api/v1/queue/call-next",
            json!({"practitioner_id": practitioner}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .post(
            "/api/v1/queue/entries",
            json!({"patient_id": patient, "category": "urgent"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let board: Value = app.get("/api/v1/queue").await.json().await.expect("json");
    assert_eq!(
        board["entries"],
        json!([]),
        "clinic A's lobby is not on clinic B's board"
    );
    let res = app
        .get(&format!("/api/v1/queue?practitioner_id={practitioner}"))
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A filter on clinic A's practitioner counts nothing here, as the list filters below do.
    let res = app
        .get(&format!(
            "/api/v1/queue/stats?date={today}&practitioner_id={practitioner}"
        ))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let stats: Value = res.json().await.expect("json");
    assert_eq!(counted(&stats), 0, "{stats}");
    assert_eq!(stats["no_shows"], 0, "{stats}");
    // Lists, filters and search show nothing of clinic A: only clinic B's own patient (a
    // "Tester" too) and practitioner (also in diagnostics).
    for (path, expected) in [
        ("/api/v1/patients?q=tester".to_owned(), 1),
        (format!("/api/v1/appointments?patient_id={patient}"), 0),
        (
            format!("/api/v1/appointments?practitioner_id={practitioner}"),
            0,
        ),
        ("/api/v1/practitioners?specialty=diagnostics".to_owned(), 1),
    ] {
        let page: Value = app.get(&path).await.json().await.expect("json");
        assert_eq!(page["count"], expected, "{path}");
    }
    // Clinic B's log holds only clinic B's own actions (its list query naming that id), none of clinic A's.
    let me: Value = app.get("/api/v1/me").await.json().await.expect("json");
    let log: Value = app
        .get(&format!("/api/v1/audit-events?patient_id={patient}"))
        .await
        .json()
        .await
        .expect("json");
    let events = log["results"].as_array().expect("events");
    assert!(events.iter().all(|e| e["actor_id"] == me["id"]), "{log}");
    assert!(events.iter().all(|e| e["action"] == "list"), "{log}");
    let slots: Value = app
        .get(&format!("/api/v1/slots?from={day}&to=2099-01-01"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        slots["code"], "validation_failed",
        "a too long range is refused before anything is read"
    );

    app.token = clinic_a_token;
    assert_eq!(snapshot(&app).await, before, "nothing of clinic A changed");
}
