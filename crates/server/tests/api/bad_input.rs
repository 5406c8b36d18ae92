//! Bad input, by hand: unreadable, oversized, deep and mistyped bodies, timestamps without
//! offsets, impossible and far-off dates, a local time that a DST change skips, paging values
//! out of range, and injection strings in text fields and path segments. Each is a clear 4xx
//! problem and writes nothing.

use chrono::{Datelike, Duration, NaiveDate, Utc, Weekday};
use clinicflow_store::testing::TestBackend;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, future_day, id_of};

crate::on_both_backends!(
    unreadable_bodies_are_400_and_write_nothing,
    bodies_over_the_limit_are_413_and_write_nothing,
    bodies_that_are_not_json_are_415_and_write_nothing,
    a_malformed_optional_body_refuses_the_move,
    timestamps_without_an_offset_are_refused,
    the_29th_of_february_of_a_common_year_is_refused,
    a_local_time_that_dst_skips_is_never_offered_nor_guessed,
    dates_past_the_year_9999_are_refused,
    page_sizes_out_of_range_or_not_numbers_are_refused,
    injection_strings_in_structured_fields_are_refused,
    injection_strings_in_free_text_are_kept_as_text,
    injection_strings_in_path_segments_are_refused,
    a_method_a_route_does_not_take_is_a_405_problem,
    every_json_body_is_an_object_and_refusals_name_no_rust_type,
    arrays_in_place_of_objects_neither_log_in_nor_patch,
    a_null_body_is_no_body_on_the_moves_that_take_one,
);

/// Strings an attacker tries in text fields and path segments.
const INJECTIONS: [&str; 5] = [
    "'; DROP TABLE patients; --",
    "' OR '1'='1",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "%00",
];

/// An app whose per-user throttle leaves room for the many requests of one test.
async fn spawn(backend: TestBackend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |s| s.http.per_user_per_hour = 100_000).await
}

/// Asserts a problem answer of `status` and `code` and returns its body.
async fn problem(res: Response, status: StatusCode, code: &str, what: &str) -> Value {
    assert_eq!(res.status(), status, "{what}");
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "{what}"
    );
    let body: Value = res.json().await.expect("a problem body");
    assert_eq!(body["code"], code, "{what}: {body}");
    assert_eq!(body["status"], status.as_u16(), "{what}");
    assert_eq!(
        body["type"],
        format!("urn:clinicflow:problem:{code}"),
        "{what}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{what}"
    );
    body
}

/// A 422 `validation_failed` whose `errors` name `field`.
async fn invalid(res: Response, field: &str, what: &str) {
    let body = problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        what,
    )
    .await;
    let errors = body["errors"].as_object().expect("errors per field");
    assert!(
        errors.keys().any(|k| k == field
            || k.starts_with(&format!("{field}."))
            || k.starts_with(&format!("{field}["))),
        "{what}: errors {errors:?} should name {field}"
    );
}

/// What the clinic holds: counts of every list a bad request could add to, and the settings.
async fn snapshot(app: &TestApp) -> Value {
    let mut counts = serde_json::Map::new();
    for list in [
        "patients",
        "practitioners",
        "appointments",
        "users",
        "outbox",
    ] {
        let page: Value = app
            .get(&format!("/api/v1/{list}?page_size=1"))
            .await
            .json()
            .await
            .expect("json");
        counts.insert(list.into(), page["count"].clone());
    }
    // The board's waits change by the minute; who is on it, and how, does not.
    let board: Value = app.get("/api/v1/queue").await.json().await.expect("json");
    let entries: Vec<Value> = board["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| json!([e["id"], e["status"], e["priority"]["category"]]))
        .collect();
    counts.insert("queue".into(), Value::Array(entries));
    let clinic: Value = app.get("/api/v1/clinic").await.json().await.expect("json");
    counts.insert("clinic".into(), clinic);
    Value::Object(counts)
}

/// A request with the admin's token and a raw body of `content_type`.
fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> RequestBuilder {
    let req = app
        .client
        .request(method, app.url(path))
        .bearer_auth(&app.token);
    match content_type {
        Some(ct) => req.header("content-type", ct),
        None => req,
    }
    .body(body)
}

async fn send(req: RequestBuilder) -> Response {
    req.send().await.expect("request")
}

/// A patient, a practitioner working 08:00–12:00 UTC every day, and a booked appointment.
struct World {
    patient: String,
    practitioner: String,
    appointment: String,
    queue_entry: String,
}

async fn world(app: &TestApp) -> World {
    let patient = app.patient(1).await;
    let practitioner = app.practitioner().await;
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner,
                   "starts_at": format!("{}T09:00:00Z", future_day())}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let appointment = id_of(res).await;
    let walk_in = app.patient(2).await;
    let res = app
        .post(
            "/api/v1/queue/entries",
            json!({"patient_id": walk_in, "category": "standard"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let queue_entry = id_of(res).await;
    World {
        patient,
        practitioner,
        appointment,
        queue_entry,
    }
}

/// The POST bodies of the four resources a front desk creates, valid as they are.
fn valid_bodies(w: &World) -> [(&'static str, Value); 4] {
    [
        (
            "/api/v1/patients",
            json!({"given_name": "Ada", "family_name": "Lovelace", "birth_date": "1985-12-10"}),
        ),
        (
            "/api/v1/practitioners",
            json!({"given_name": "Gregory", "family_name": "House", "specialties": ["diagnostics"]}),
        ),
        (
            "/api/v1/appointments",
            json!({"patient_id": w.patient, "practitioner_id": w.practitioner,
                   "starts_at": format!("{}T10:00:00Z", future_day())}),
        ),
        (
            "/api/v1/queue/entries",
            json!({"patient_id": w.patient, "category": "urgent"}),
        ),
    ]
}

async fn unreadable_bodies_are_400_and_write_nothing(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let before = snapshot(&app).await;
    for (path, body) in valid_bodies(&w) {
        // Invalid UTF-8 inside a string, an unterminated document, a wrong type and a misspelt
        // field: each a 400 before any use case runs.
        let text = body.to_string();
        let mut invalid_utf8 = text.clone().into_bytes();
        let quote = invalid_utf8
            .iter()
            .rposition(|b| *b == b'"')
            .expect("a string value");
        invalid_utf8.splice(quote..quote, [0xff, 0xfe]);
        let unknown_field = text.replacen('{', r#"{"x-unknown": 1, "#, 1);
        for (what, bytes) in [
            ("invalid UTF-8", invalid_utf8),
            ("truncated", text.as_bytes()[..text.len() / 2].to_vec()),
            ("an array", b"[]".to_vec()),
            ("unknown field", unknown_field.into_bytes()),
            ("empty", Vec::new()),
        ] {
            let res = send(raw(
                &app,
                Method::POST,
                path,
                Some("application/json"),
                bytes,
            ))
            .await;
            problem(
                res,
                StatusCode::BAD_REQUEST,
                "malformed_json",
                &format!("{what} to {path}"),
            )
            .await;
        }
        for nesting in [("[", "]"), (r#"{"a":"#, "}")] {
            let deep = format!("{}1{}", nesting.0.repeat(10_000), nesting.1.repeat(10_000));
            let res = send(raw(
                &app,
                Method::POST,
                path,
                Some("application/json"),
                deep,
            ))
            .await;
            problem(
                res,
                StatusCode::BAD_REQUEST,
                "json_too_deep",
                &format!("10,000 levels of {} to {path}", nesting.0),
            )
            .await;
        }
    }
    let res = send(raw(
        &app,
        Method::GET,
        "/api/v1/patients/%FF%FE",
        None,
        Vec::new(),
    ))
    .await;
    problem(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_path",
        "invalid UTF-8 id",
    )
    .await;
    assert_eq!(snapshot(&app).await, before, "nothing was written");
}

async fn bodies_over_the_limit_are_413_and_write_nothing(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let before = snapshot(&app).await;
    // Over the default 256 KiB, in a string that is also under the length limit per chunk of
    // 10,000 characters, so only the size can refuse it.
    let names: Vec<String> = (0..40).map(|_| "x".repeat(9_000)).collect();
    let huge = json!({"given_name": "A", "family_name": "B", "birth_date": "1980-01-01",
                      "padding": names})
    .to_string();
    assert!(huge.len() > 256 * 1024);
    let cancel = format!("/api/v1/appointments/{}/cancel", w.appointment);
    for path in ["/api/v1/patients", "/api/v1/queue/entries", cancel.as_str()] {
        let res = send(raw(
            &app,
            Method::POST,
            path,
            Some("application/json"),
            huge.clone(),
        ))
        .await;
        problem(
            res,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("{path}, with a length"),
        )
        .await;
        // The same bytes chunked, without a Content-Length to refuse them by.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = huge
            .as_bytes()
            .chunks(16 * 1024)
            .map(|c| Ok(c.to_vec()))
            .collect();
        let stream = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        let res = send(raw(
            &app,
            Method::POST,
            path,
            Some("application/json"),
            stream,
        ))
        .await;
        problem(
            res,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("{path}, chunked"),
        )
        .await;
    }
    assert_eq!(snapshot(&app).await, before, "nothing was written");
}

async fn bodies_that_are_not_json_are_415_and_write_nothing(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let before = snapshot(&app).await;
    for (path, body) in valid_bodies(&w) {
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/xml"),
        ] {
            let res = send(raw(
                &app,
                Method::POST,
                path,
                content_type,
                body.to_string(),
            ))
            .await;
            problem(
                res,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                &format!("{path} as {content_type:?}"),
            )
            .await;
        }
    }
    let retriage = format!("/api/v1/queue/entries/{}/retriage", w.queue_entry);
    let res = send(raw(
        &app,
        Method::POST,
        &retriage,
        Some("text/plain"),
        r#"{"category":"immediate"}"#,
    ))
    .await;
    problem(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "re-triage as text",
    )
    .await;
    assert_eq!(snapshot(&app).await, before, "nothing was written");
}

/// Regression: the action routes read their optional body as `Option<Json<_>>`, which turned a
/// body that failed to parse into "no body", so a cancel with a broken body cancelled anyway.
async fn a_malformed_optional_body_refuses_the_move(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let cancel = format!("/api/v1/appointments/{}/cancel", w.appointment);
    for (content_type, body, status, code) in [
        (
            "application/json",
            r#"{"reason": "ill""#,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "application/json",
            r#"{"reasn": "ill"}"#,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "application/json",
            r#"{"reason": 7}"#,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "text/plain",
            r#"{"reason": "ill"}"#,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ] {
        let res = send(raw(&app, Method::POST, &cancel, Some(content_type), body)).await;
        problem(
            res,
            status,
            code,
            &format!("cancel with {body} as {content_type}"),
        )
        .await;
    }
    let appointment: Value = app
        .get(&format!("/api/v1/appointments/{}", w.appointment))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(appointment["status"], "booked", "not cancelled");
    let retriage = format!("/api/v1/queue/entries/{}/retriage", w.queue_entry);
    let res = send(raw(
        &app,
        Method::POST,
        &retriage,
        Some("application/json"),
        r#"{"category": "immediate", "extra": 1}"#,
    ))
    .await;
    problem(
        res,
        StatusCode::BAD_REQUEST,
        "malformed_json",
        "re-triage with an unknown field",
    )
    .await;
    // No body at all is still the move without a reason.
    let res = send(raw(&app, Method::POST, &cancel, None, Vec::new())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.expect("json")["status"],
        "cancelled"
    );
}

async fn timestamps_without_an_offset_are_refused(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let before = snapshot(&app).await;
    let day = future_day();
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": w.patient, "practitioner_id": w.practitioner,
                   "starts_at": format!("{day}T10:00:00")}),
        )
        .await;
    invalid(res, "starts_at", "booking without an offset").await;
    let res = app
        .post(
            &format!("/api/v1/appointments/{}/reschedule", w.appointment),
            json!({"starts_at": format!("{day}T10:00:00")}),
        )
        .await;
    invalid(res, "starts_at", "reschedule without an offset").await;
    let res = app
        .post(
            &format!("/api/v1/practitioners/{}/time-off", w.practitioner),
            json!({"starts_at": format!("{day}T08:00:00"), "ends_at": format!("{day}T12:00:00Z")}),
        )
        .await;
    invalid(res, "starts_at", "time off without an offset").await;
    for query in [
        format!("/api/v1/appointments?from={day}T00:00:00"),
        format!("/api/v1/appointments?to={day}"),
        format!("/api/v1/audit-events?from={day}T00:00:00"),
    ] {
        let res = app.get(&query).await;
        let field = if query.contains("to=") { "to" } else { "from" };
        invalid(res, field, &query).await;
    }
    assert_eq!(snapshot(&app).await, before, "nothing was written");
    let slots: Value = app
        .get(&format!(
            "/api/v1/practitioners/{}/slots?from={day}&to={}",
            w.practitioner,
            next_day(&day)
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        slots["slots"].as_array().map(Vec::len),
        Some(7),
        "no time off was added: 8 slots but the booked one"
    );
}

fn next_day(day: &str) -> String {
    let date: NaiveDate = day.parse().expect("a date");
    (date + Duration::days(1)).to_string()
}

async fn the_29th_of_february_of_a_common_year_is_refused(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let before = snapshot(&app).await;
    let res = app
        .post(
            "/api/v1/patients",
            json!({"given_name": "Leap", "family_name": "Year", "birth_date": "2023-02-29"}),
        )
        .await;
    invalid(res, "birth_date", "born on 2023-02-29").await;
    let res = app
        .patch(
            &format!("/api/v1/patients/{}", w.patient),
            json!({"birth_date": "1900-02-29"}),
        )
        .await;
    invalid(res, "birth_date", "changed to 1900-02-29").await;
    // 2100 is divisible by 4 but not a leap year.
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": w.patient, "practitioner_id": w.practitioner,
                   "starts_at": "2100-02-29T09:00:00Z"}),
        )
        .await;
    invalid(res, "starts_at", "booked on 2100-02-29").await;
    let res = app
        .put(
            &format!("/api/v1/practitioners/{}/schedule", w.practitioner),
            json!({"rules": [], "valid_from": "2100-02-29"}),
        )
        .await;
    invalid(res, "valid_from", "schedule from 2100-02-29").await;
    for (query, field) in [
        (
            format!(
                "/api/v1/practitioners/{}/slots?from=2100-02-29&to=2100-03-01",
                w.practitioner
            ),
            "from",
        ),
        ("/api/v1/queue/stats?date=2100-02-29".to_owned(), "date"),
    ] {
        invalid(app.get(&query).await, field, &query).await;
    }
    assert_eq!(snapshot(&app).await, before, "nothing was written");
    let patient: Value = app
        .get(&format!("/api/v1/patients/{}", w.patient))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(patient["birth_date"], "1980-01-01");
    let res = app
        .post(
            "/api/v1/patients",
            json!({"given_name": "Leap", "family_name": "Year", "birth_date": "2024-02-29"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "a leap day that exists");
}

/// The next last Sunday of March, when Europe/Berlin skips 02:00–03:00.
fn next_spring_forward() -> NaiveDate {
    let today = Utc::now().date_naive();
    (today.year()..)
        .filter_map(|year| {
            let april = NaiveDate::from_ymd_opt(year, 4, 1)?;
            let back = (april.weekday().num_days_from_sunday() + 7 - 1) % 7 + 1;
            Some(april - Duration::days(i64::from(back)))
        })
        .find(|sunday| *sunday > today + Duration::days(1))
        .expect("a future year")
}

async fn a_local_time_that_dst_skips_is_never_offered_nor_guessed(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    // The second clinic is in Europe/Berlin.
    let berlin = app.login("admin@clinic-b.example").await;
    let as_berlin = |req: RequestBuilder| app.as_user(&berlin, req);
    let res = as_berlin(app.client.post(app.url("/api/v1/practitioners")).json(
        &json!({"given_name": "Night", "family_name": "Shift", "specialties": [], "slot_minutes": 20}),
    ))
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let practitioner = id_of(res).await;
    let res = as_berlin(
        app.client
            .put(app.url(&format!("/api/v1/practitioners/{practitioner}/schedule")))
            .json(
                &json!({"rules": [{"weekday": "sun", "start": "02:30", "end": "03:30"}],
                          "valid_from": "2020-01-01"}),
            ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "a weekly rule in the night");
    let res =
        as_berlin(app.client.post(app.url("/api/v1/patients")).json(
            &json!({"given_name": "Early", "family_name": "Bird", "birth_date": "1970-01-01"}),
        ))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let patient = id_of(res).await;

    let sunday = next_spring_forward();
    assert_eq!(sunday.weekday(), Weekday::Sun);
    let slots_url = format!(
        "/api/v1/practitioners/{practitioner}/slots?from={sunday}&to={}",
        sunday + Duration::days(1)
    );
    let slots = |res: Response| async move {
        assert_eq!(res.status(), StatusCode::OK);
        res.json::<Value>().await.expect("json")["slots"].clone()
    };
    let offered = slots(as_berlin(app.client.get(app.url(&slots_url))).await).await;
    // 02:30 and 02:50 do not exist that night; 03:10 CEST is 01:10 UTC.
    assert_eq!(
        offered,
        json!([{"starts_at": format!("{sunday}T01:10:00Z"), "ends_at": format!("{sunday}T01:30:00Z")}])
    );

    let book = |starts_at: String| {
        app.client
            .post(app.url("/api/v1/appointments"))
            .json(&json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": starts_at}))
    };
    let res = as_berlin(book(format!("{sunday}T02:30:00"))).await;
    invalid(res, "starts_at", "a skipped local time, no offset").await;
    let res = as_berlin(
        app.client
            .post(app.url(&format!("/api/v1/practitioners/{practitioner}/time-off")))
            .json(&json!({"starts_at": format!("{sunday}T02:30:00"),
                          "ends_at": format!("{sunday}T03:30:00")})),
    )
    .await;
    invalid(res, "starts_at", "time off at a skipped local time").await;
    // With an offset the instant is exact: 02:30+01:00 is 03:30 CEST, when the rule has ended.
    let res = as_berlin(book(format!("{sunday}T02:30:00+01:00"))).await;
    problem(
        res,
        StatusCode::CONFLICT,
        "outside_availability",
        "02:30+01:00",
    )
    .await;
    let res = as_berlin(app.client.get(app.url("/api/v1/appointments?page_size=1"))).await;
    assert_eq!(
        res.json::<Value>().await.expect("json")["count"],
        0,
        "nothing was booked"
    );
    let again = slots(as_berlin(app.client.get(app.url(&slots_url))).await).await;
    assert_eq!(again, offered, "no time off was written");
}

async fn dates_past_the_year_9999_are_refused(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let before = snapshot(&app).await;
    let res = app
        .post(
            "/api/v1/patients",
            json!({"given_name": "Far", "family_name": "Future", "birth_date": "10000-01-01"}),
        )
        .await;
    invalid(res, "birth_date", "born in 10000").await;
    for starts_at in ["10000-01-01T09:00:00Z", "+10000-01-01T09:00:00Z"] {
        let res = app
            .post(
                "/api/v1/appointments",
                json!({"patient_id": w.patient, "practitioner_id": w.practitioner,
                       "starts_at": starts_at, "overbook": true}),
            )
            .await;
        invalid(res, "starts_at", starts_at).await;
    }
    // Regression: a booking that starts in 9999 and ends in 10000 was a 500 on SQLite, whose
    // text timestamps stop sorting in time order there, and stored on PostgreSQL.
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": w.patient, "practitioner_id": w.practitioner,
                   "starts_at": "9999-12-31T23:45:00Z", "overbook": true}),
        )
        .await;
    invalid(res, "starts_at", "a booking that ends in 10000").await;
    let res = app
        .post(
            &format!("/api/v1/appointments/{}/reschedule", w.appointment),
            json!({"starts_at": "9999-12-31T23:45:00Z"}),
        )
        .await;
    invalid(res, "starts_at", "a reschedule that ends in 10000").await;
    let res = app
        .post(
            &format!("/api/v1/practitioners/{}/time-off", w.practitioner),
            json!({"starts_at": "9999-12-31T00:00:00Z", "ends_at": "10000-01-01T00:00:00Z"}),
        )
        .await;
    invalid(res, "ends_at", "time off until 10000").await;
    let res = app
        .put(
            &format!("/api/v1/practitioners/{}/schedule", w.practitioner),
            json!({"rules": [], "valid_from": "2020-01-01", "valid_to": "10000-01-01"}),
        )
        .await;
    invalid(res, "valid_to", "a schedule until 10000").await;
    let query = format!(
        "/api/v1/practitioners/{}/slots?from=9999-12-31&to=10000-01-01",
        w.practitioner
    );
    invalid(app.get(&query).await, "to", &query).await;
    assert_eq!(snapshot(&app).await, before, "nothing was written");
    let appointment: Value = app
        .get(&format!("/api/v1/appointments/{}", w.appointment))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        appointment["status"], "booked",
        "the reschedule wrote nothing"
    );
}

async fn page_sizes_out_of_range_or_not_numbers_are_refused(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let before = snapshot(&app).await;
    let not_numbers = ["-1", "abc", "1.5", "18446744073709551616", "%FF"];
    for list in [
        "patients",
        "practitioners",
        "appointments",
        "users",
        "outbox",
    ] {
        for value in not_numbers {
            for param in ["page", "page_size"] {
                let query = format!("/api/v1/{list}?{param}={value}");
                problem(
                    app.get(&query).await,
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    &query,
                )
                .await;
            }
        }
        for (param, value) in [
            ("page_size", "0"),
            ("page_size", "201"),
            ("page_size", "4294967296"),
            ("page", "0"),
            ("page", "1000001"),
        ] {
            let query = format!("/api/v1/{list}?{param}={value}");
            invalid(app.get(&query).await, param, &query).await;
        }
    }
    let day = future_day();
    let slots = format!("/api/v1/slots?from={day}&to={}", next_day(&day));
    for list in [
        "/api/v1/patients?",
        "/api/v1/appointments?",
        "/api/v1/audit-events?",
        &format!("{slots}&"),
    ] {
        for value in ["-1", "abc", "4294967296"] {
            let query = format!("{list}limit={value}");
            problem(
                app.get(&query).await,
                StatusCode::BAD_REQUEST,
                "invalid_query",
                &query,
            )
            .await;
        }
        for value in ["0", "201"] {
            let query = format!("{list}limit={value}");
            invalid(app.get(&query).await, "limit", &query).await;
        }
    }
    let query = format!("/api/v1/patients/{}/encounters?page_size=0", w.patient);
    invalid(app.get(&query).await, "page_size", &query).await;
    assert_eq!(snapshot(&app).await, before, "nothing was written");
}

/// Sets `pointer` (a top-level field, or `field/0`, `field/sub`) of `body` to `value`.
fn with(body: &Value, pointer: &str, value: &str) -> Value {
    let mut body = body.clone();
    let mut parts = pointer.split('/');
    let top = parts.next().expect("a field");
    match (parts.next(), parts.next()) {
        (None, _) => body[top] = json!(value),
        (Some(index), None) if index.parse::<usize>().is_ok() => body[top] = json!([value]),
        (Some(sub), None) => {
            if !body[top].is_object() {
                body[top] = json!({"name": "Charles", "phone": "+4915100000000"});
            }
            body[top][sub] = json!(value);
        }
        _ => panic!("pointer {pointer} is deeper than the bodies"),
    }
    body
}

async fn injection_strings_in_structured_fields_are_refused(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let before = snapshot(&app).await;
    let [patients, practitioners, appointments, queue] = valid_bodies(&w);
    let cases: [(&(&str, Value), &[&str]); 4] = [
        (
            &patients,
            &[
                "birth_date",
                "sex",
                "phone",
                "email",
                "emergency_contact/phone",
            ],
        ),
        (&practitioners, &["specialties/0", "department"]),
        (
            &appointments,
            &["patient_id", "practitioner_id", "starts_at", "urgency"],
        ),
        (
            &queue,
            &["patient_id", "practitioner_id", "department", "category"],
        ),
    ];
    for ((path, body), fields) in cases {
        for field in fields {
            for injection in INJECTIONS {
                let res = app.post(path, with(body, field, injection)).await;
                let top = field.split('/').next().expect("a field");
                invalid(res, top, &format!("{path} {field} = {injection}")).await;
            }
        }
    }
    assert_eq!(snapshot(&app).await, before, "nothing was written");
}

async fn injection_strings_in_free_text_are_kept_as_text(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    // Names, reasons and notes are free text: an apostrophe or a slash belongs in them
    // ("O'Brien", "post-op 2/3"), so the strings are stored as they are, and stay inert.
    for injection in INJECTIONS {
        let res = app
            .post(
                "/api/v1/patients",
                json!({"given_name": injection, "family_name": injection, "birth_date": "1980-01-01",
                       "emergency_contact": {"name": injection, "phone": "+4915100000000"},
                       "insurance": {"payer": injection, "member_id": injection}}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "{injection}");
        let patient: Value = res.json().await.expect("json");
        let read: Value = app
            .get(&format!(
                "/api/v1/patients/{}",
                patient["id"].as_str().expect("id")
            ))
            .await
            .json()
            .await
            .expect("json");
        for field in [
            "/given_name",
            "/family_name",
            "/emergency_contact/name",
            "/insurance/payer",
            "/insurance/member_id",
        ] {
            assert_eq!(read.pointer(field), Some(&json!(injection)), "{field}");
        }
        let res = app
            .post(
                "/api/v1/practitioners",
                json!({"given_name": injection, "family_name": injection, "specialties": []}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "{injection}");
        assert_eq!(
            res.json::<Value>().await.expect("json")["family_name"],
            injection
        );
        let res = app
            .post(
                &format!("/api/v1/appointments/{}/cancel", w.appointment),
                json!({"reason": injection}),
            )
            .await;
        // Cancelled once; every later cancel is an illegal move, not a failure of the text.
        assert!(
            res.status() == StatusCode::OK || res.status() == StatusCode::CONFLICT,
            "{injection}: {}",
            res.status()
        );
    }
    let patients: Value = app
        .get("/api/v1/patients?page_size=1")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        patients["count"],
        2 + INJECTIONS.len(),
        "the table is intact: the world's two and one per string"
    );
    let res = app
        .post(
            "/api/v1/queue/entries",
            json!({"patient_id": w.patient, "category": "urgent", "note": INJECTIONS[0]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let search: Value = app
        .get("/api/v1/patients?q=%27%20OR%20%271%27%3D%271")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        search["count"], 1,
        "a search for the string finds only its patient"
    );
}

/// `s` with every byte but the unreserved ones percent-encoded, to travel as one path segment.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn injection_strings_in_path_segments_are_refused(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let before = snapshot(&app).await;
    let doc: Value = app
        .client
        .get(app.url(clinicflow_api::openapi::DOCUMENT_PATH))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("the document");
    let mut tried = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        let params: Vec<&str> = template
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, _) in item.as_object().expect("a path item") {
            for target in &params {
                for injection in INJECTIONS.iter().chain(&["\0", "NULL", "-1"]) {
                    let path = params.iter().fold(template.clone(), |path, param| {
                        let value = if param == target {
                            segment(injection)
                        } else if *param == "action" {
                            // A move every resource with an {action} has.
                            if template.starts_with("/api/v1/queue") {
                                "start".into()
                            } else {
                                "confirm".into()
                            }
                        } else {
                            w.appointment.clone()
                        };
                        path.replace(&format!("{{{param}}}"), &value)
                    });
                    let method: Method = method.to_uppercase().parse().expect("a method");
                    let res = send(raw(
                        &app,
                        method.clone(),
                        &path,
                        Some("application/json"),
                        "{}",
                    ))
                    .await;
                    let (status, code) = if *target == "action" {
                        (StatusCode::NOT_FOUND, "not_found")
                    } else {
                        (StatusCode::BAD_REQUEST, "invalid_path")
                    };
                    problem(res, status, code, &format!("{method} {path}")).await;
                    tried += 1;
                }
            }
        }
    }
    assert!(
        tried > 100,
        "every path parameter of every operation: {tried}"
    );
    assert_eq!(snapshot(&app).await, before, "nothing was written");
}

/// Regression: actix answered these with an empty 405, no problem body.
async fn a_method_a_route_does_not_take_is_a_405_problem(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let before = snapshot(&app).await;
    for (method, path) in [
        (Method::DELETE, "/api/v1/appointments".to_owned()),
        (Method::PUT, format!("/api/v1/patients/{}", w.patient)),
        (
            Method::GET,
            format!("/api/v1/appointments/{}/cancel", w.appointment),
        ),
        (Method::PATCH, "/api/v1/queue/entries".to_owned()),
    ] {
        let res = send(raw(
            &app,
            method.clone(),
            &path,
            Some("application/json"),
            "{}",
        ))
        .await;
        problem(
            res,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{method} {path}"),
        )
        .await;
    }
    assert_eq!(snapshot(&app).await, before, "nothing was written");
}

/// Words of Rust that a refusal must not show a client.
const RUST_WORDS: [&str; 9] = [
    "struct",
    "PatientIn",
    "LoginIn",
    "Dto",
    " u32",
    " u64",
    " i32",
    " i64",
    "elements",
];

/// `template` with its path parameters filled from the world: ids, and a move every resource
/// with an `{action}` has.
fn filled(template: &str, w: &World) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{action}" if template.starts_with("/api/v1/queue") => "start".to_owned(),
            "{action}" => "confirm".to_owned(),
            s if s.starts_with('{') => {
                if template.starts_with("/api/v1/queue") {
                    w.queue_entry.clone()
                } else if template.starts_with("/api/v1/practitioners") {
                    w.practitioner.clone()
                } else if template.starts_with("/api/v1/patients") {
                    w.patient.clone()
                } else {
                    w.appointment.clone()
                }
            }
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Regression: serde filled object bodies from arrays by position, and its refusals named the
/// Rust types (`expected struct PatientIn with 8 elements`). Every documented body is tried, so
/// a new route is covered as soon as it is documented.
async fn every_json_body_is_an_object_and_refusals_name_no_rust_type(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let before = snapshot(&app).await;
    let doc: Value = app
        .get(clinicflow_api::openapi::DOCUMENT_PATH)
        .await
        .json()
        .await
        .expect("the document");
    let mut tried = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if op.get("requestBody").is_none() {
                continue;
            }
            let path = filled(template, &w);
            let method: Method = method.to_uppercase().parse().expect("a method");
            for body in [
                r#"["admin@clinic-a.example", "admin password 123", null]"#,
                "[null, null]",
                "[]",
                r#"{"email": ["x"], "given_name": ["Ada"], "rules": {}}"#,
                "7",
            ] {
                let res = send(raw(
                    &app,
                    method.clone(),
                    &path,
                    Some("application/json"),
                    body,
                ))
                .await;
                let what = format!("{method} {path} with {body}");
                let problem = problem(res, StatusCode::BAD_REQUEST, "malformed_json", &what).await;
                let detail = problem["detail"].as_str().expect("a detail");
                for word in RUST_WORDS {
                    assert!(!detail.contains(word), "{what}: {detail:?} shows {word:?}");
                }
                tried += 1;
            }
        }
    }
    assert!(tried >= 5 * 20, "every body of the document: {tried}");
    assert_eq!(snapshot(&app).await, before, "nothing was written");
}

/// The two cases the review found, end to end: an array logs nobody in, and `[null, null]`
/// changes no user. A nested object given as an array is refused too.
async fn arrays_in_place_of_objects_neither_log_in_nor_patch(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let res = send(
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("content-type", "application/json")
            .body(r#"["admin@clinic-a.example","admin password 123",null]"#),
    )
    .await;
    let body = problem(
        res,
        StatusCode::BAD_REQUEST,
        "malformed_json",
        "login array",
    )
    .await;
    assert!(
        !body.to_string().contains("access_token"),
        "no tokens: {body}"
    );
    let res = app
        .post(
            "/api/v1/users",
            json!({"email": "nurse@clinic-a.example", "password": "a long password", "role": "nurse"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let user: Value = res.json().await.expect("json");
    let path = format!("/api/v1/users/{}", user["id"].as_str().expect("an id"));
    let res = send(raw(
        &app,
        Method::PATCH,
        &path,
        Some("application/json"),
        "[null,null]",
    ))
    .await;
    let body = problem(
        res,
        StatusCode::BAD_REQUEST,
        "malformed_json",
        "patch array",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("expected an object")),
        "{body}"
    );
    let res = app
        .post(
            "/api/v1/patients",
            json!({"given_name": "Ada", "family_name": "Lovelace", "birth_date": "1985-12-10",
                   "emergency_contact": ["Charles", "+4915100000000"]}),
        )
        .await;
    problem(
        res,
        StatusCode::BAD_REQUEST,
        "malformed_json",
        "a nested array",
    )
    .await;
    let users: Value = app.get("/api/v1/users").await.json().await.expect("json");
    let nurse = users["results"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["id"] == user["id"])
        .expect("the nurse");
    assert_eq!(nurse["role"], "nurse");
    assert_eq!(nurse["active"], true);
    let patients: Value = app
        .get("/api/v1/patients?page_size=1")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(patients["count"], 0, "no patient was created");
}

/// Regression: the document said an optional body may be `null`, and generated clients send
/// it, but the server refused it with a 400.
async fn a_null_body_is_no_body_on_the_moves_that_take_one(backend: TestBackend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    for action in ["confirm", "cancel"] {
        let res = send(raw(
            &app,
            Method::POST,
            &format!("/api/v1/appointments/{}/{action}", w.appointment),
            Some("application/json"),
            "null",
        ))
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{action} with null");
        let appointment: Value = res.json().await.expect("json");
        assert_eq!(appointment["cancel_reason"], Value::Null);
    }
    let res = send(raw(
        &app,
        Method::POST,
        &format!("/api/v1/queue/entries/{}/leave", w.queue_entry),
        Some("application/json"),
        " null ",
    ))
    .await;
    assert_eq!(res.status(), StatusCode::OK, "queue leave with null");
    let doc: Value = app
        .get(clinicflow_api::openapi::DOCUMENT_PATH)
        .await
        .json()
        .await
        .expect("the document");
    for path in [
        "/api/v1/appointments/{id}/{action}",
        "/api/v1/queue/entries/{id}/{action}",
    ] {
        let body = &doc["paths"][path]["post"]["requestBody"];
        assert_eq!(body["required"], false, "{path}: {body}");
        let schema = &body["content"]["application/json"]["schema"];
        assert!(
            schema["$ref"].is_string() && schema.get("oneOf").is_none(),
            "{path}: a plain reference, not {schema}"
        );
    }
}
