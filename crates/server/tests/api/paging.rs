//! Keyset pagination (`?cursor=&limit=`) and field selection (`?fields=`) through HTTP:
//! complete walks, stability while rows are inserted between page fetches, bad cursors,
//! and selected fields on reads and lists.

use std::collections::HashSet;

use clinicflow_store::testing::TestBackend;
use reqwest::{Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, future_day, id_of};

crate::on_both_backends!(
    a_cursor_walk_returns_every_row_once_in_list_order,
    a_cursor_walk_is_stable_while_patients_are_inserted,
    a_cursor_walk_is_stable_while_appointments_are_booked,
    bad_cursors_limits_and_mixed_paging_are_422_naming_the_parameter,
    fields_keep_only_the_named_fields_and_the_id
);

/// Creates a patient with these names and returns its id.
async fn patient_named(app: &TestApp, given: &str, family: &str) -> String {
    let res = app
        .post(
            "/api/v1/patients",
            json!({"given_name": given, "family_name": family, "birth_date": "1980-01-01"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    id_of(res).await
}

/// Books a 30-minute appointment at `time` (`HH:MM`, UTC) on the future day; returns its id.
async fn book(app: &TestApp, patient: &str, practitioner: &str, time: &str) -> String {
    let day = future_day();
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner,
                   "starts_at": format!("{day}T{time}:00Z")}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "booking at {time}");
    id_of(res).await
}

/// `path` (which may have a query already) with `params` appended.
fn with(path: &str, params: &str) -> String {
    let joiner = if path.contains('?') { '&' } else { '?' };
    format!("{path}{joiner}{params}")
}

/// Fetches one keyset page as `token`, checking its shape; returns the rows and the next cursor.
async fn fetch(app: &TestApp, token: &str, path: &str) -> (Vec<Value>, Option<String>) {
    let res = app.as_user(token, app.client.get(app.url(path))).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    let page: Value = res.json().await.expect("json");
    let object = page.as_object().expect("an object");
    assert!(
        object.keys().all(|k| k == "results" || k == "next_cursor"),
        "a keyset page has results and next_cursor only: {page}"
    );
    let next = match object.get("next_cursor") {
        None => None,
        Some(Value::String(c)) => Some(c.clone()),
        Some(other) => panic!("next_cursor is a string when present, got {other}"),
    };
    let rows = page["results"].as_array().expect("results").clone();
    (rows, next)
}

/// Walks every keyset page of `path`, `limit` rows at a time; returns the rows in order.
async fn walk(app: &TestApp, token: &str, path: &str, limit: u32) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = match &cursor {
            Some(c) => format!("cursor={c}&limit={limit}"),
            None => format!("limit={limit}"),
        };
        let (page, next) = fetch(app, token, &with(path, &params)).await;
        assert!(page.len() <= limit as usize);
        rows.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => return rows,
        }
    }
}

/// The ids of every row of `path`, in list order, by page number (one large page).
async fn listed(app: &TestApp, path: &str) -> Vec<String> {
    let res = app.get(&with(path, "page_size=200")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.expect("json");
    assert!(page["count"].as_u64() < Some(200));
    ids(page["results"].as_array().expect("results"))
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().expect("an id").to_owned())
        .collect()
}

fn assert_each_once(walked: &[String]) {
    let unique: HashSet<&String> = walked.iter().collect();
    assert_eq!(unique.len(), walked.len(), "no row twice: {walked:?}");
}

async fn a_cursor_walk_returns_every_row_once_in_list_order(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut patients = Vec::new();
    for n in 0..7 {
        patients.push(app.patient(n).await);
    }
    // Same names, other ids: the id decides their order.
    for _ in 0..2 {
        patient_named(&app, "Pat3", "Tester").await;
    }
    let expected = listed(&app, "/api/v1/patients").await;
    assert_eq!(expected.len(), 9);
    for limit in [1, 2, 4, 9, 50] {
        let walked = ids(&walk(&app, &app.token, "/api/v1/patients", limit).await);
        assert_eq!(walked, expected, "limit {limit}");
    }
    let searched = ids(&walk(&app, &app.token, "/api/v1/patients?q=pat3", 1).await);
    assert_eq!(searched.len(), 3);
    assert_eq!(searched, listed(&app, "/api/v1/patients?q=pat3").await);
    // Without a limit, a page holds 50 rows.
    let (rows, next) = fetch(&app, &app.token, "/api/v1/patients?cursor=").await;
    assert_eq!((rows.len(), next), (9, None));
    // A name search is ordered by the name as typed ("john smith" before "johnson anna"),
    // not by family name, in both styles of paging.
    let johnson = patient_named(&app, "Anna", "Johnson").await;
    let john = patient_named(&app, "John", "Smith").await;
    assert_eq!(
        listed(&app, "/api/v1/patients?q=joh").await,
        [john.clone(), johnson.clone()]
    );
    let walked = ids(&walk(&app, &app.token, "/api/v1/patients?q=joh", 1).await);
    assert_eq!(walked, [john, johnson]);

    // Two practitioners, three equal starts each way: pages break inside groups of equal starts.
    let house = app.practitioner().await;
    let wilson = app.practitioner().await;
    let mut booked = Vec::new();
    for time in ["10:00", "08:00", "09:00"] {
        booked.push(book(&app, &patients[0], &house, time).await);
        booked.push(book(&app, &patients[1], &wilson, time).await);
    }
    let expected = listed(&app, "/api/v1/appointments").await;
    assert_eq!(expected.len(), 6);
    for limit in [1, 4, 7] {
        let rows = walk(&app, &app.token, "/api/v1/appointments", limit).await;
        assert_eq!(ids(&rows), expected, "limit {limit}");
        let starts: Vec<&str> = rows
            .iter()
            .filter_map(|r| r["starts_at"].as_str())
            .collect();
        assert!(starts.is_sorted(), "{starts:?}");
    }
    let path = format!("/api/v1/appointments?practitioner_id={house}");
    assert_eq!(
        ids(&walk(&app, &app.token, &path, 2).await),
        listed(&app, &path).await
    );

    // A practitioner pages through their own appointments only, as with page numbers.
    let doctor = app
        .staff("house@clinic-a.example", "practitioner", Some(&house))
        .await;
    let own = walk(&app, &doctor, "/api/v1/appointments", 2).await;
    assert_eq!(own.len(), 3);
    assert!(own.iter().all(|a| a["practitioner_id"] == house.as_str()));
    let path = format!("/api/v1/appointments?practitioner_id={wilson}");
    assert!(walk(&app, &doctor, &path, 2).await.is_empty());
    let seen = walk(&app, &doctor, "/api/v1/patients", 1).await;
    assert_eq!(ids(&seen), [patients[0].clone()]);
}

async fn a_cursor_walk_is_stable_while_patients_are_inserted(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut original = Vec::new();
    for given in ["Bella", "Carl", "Dora", "Emil", "Frida", "Gustav", "Hanna"] {
        original.push(patient_named(&app, given, "Miller").await);
    }
    let mut before_cursor = HashSet::new();
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    for round in 0.. {
        let params = match &cursor {
            Some(c) => format!("cursor={c}&limit=2"),
            None => "limit=2".to_owned(),
        };
        let (page, next) = fetch(&app, &app.token, &with("/api/v1/patients", &params)).await;
        walked.extend(ids(&page));
        let Some(next) = next else { break };
        cursor = Some(next);
        // Between the first fetches (two rows join per page of two, so inserting on every
        // page would never let the walk end): one row sorting before the cursor (which must
        // not show up), the cursor row's own name again (a newer id sorts right after it) and
        // one at the end.
        if round >= 4 {
            continue;
        }
        let last = page.last().expect("a full page");
        let before = patient_named(&app, &format!("Aaron{round}"), "Miller").await;
        before_cursor.insert(before);
        let earlier_family = patient_named(&app, "Zoe", &format!("Adams{round}")).await;
        before_cursor.insert(earlier_family);
        let given = last["given_name"].as_str().expect("a name");
        patient_named(&app, given, "Miller").await;
        patient_named(&app, &format!("Zack{round}"), "Miller").await;
    }
    assert_each_once(&walked);
    for id in &original {
        assert_eq!(walked.iter().filter(|w| *w == id).count(), 1, "{id}");
    }
    assert!(walked.iter().all(|w| !before_cursor.contains(w)));
    // Exactly the rows after the cursor at the time, in list order: nothing skipped.
    let now: Vec<String> = listed(&app, "/api/v1/patients")
        .await
        .into_iter()
        .filter(|id| !before_cursor.contains(id))
        .collect();
    assert_eq!(walked, now);
    assert!(walked.len() > original.len(), "later inserts do show up");
}

async fn a_cursor_walk_is_stable_while_appointments_are_booked(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let house = app.practitioner().await;
    let wilson = app.practitioner().await;
    let mut patients = Vec::new();
    for n in 0..12 {
        patients.push(app.patient(n).await);
    }
    let mut original = Vec::new();
    for (i, time) in ["09:00", "09:30", "10:00", "10:30", "11:00"]
        .iter()
        .enumerate()
    {
        original.push(book(&app, &patients[i], &house, time).await);
    }
    let path = "/api/v1/appointments";
    let (first, next) = fetch(&app, &app.token, &with(path, "limit=2")).await;
    assert_eq!(ids(&first), original[..2]);
    let mut walked = ids(&first);
    let mut cursor = next.expect("more pages");
    // Before the cursor (09:30): an earlier start. At it, with a newer id: right after it.
    // Later: at the end.
    let before = book(&app, &patients[5], &wilson, "08:00").await;
    let twin = book(&app, &patients[6], &wilson, "09:30").await;
    let (page, next) = fetch(
        &app,
        &app.token,
        &with(path, &format!("cursor={cursor}&limit=2")),
    )
    .await;
    walked.extend(ids(&page));
    cursor = next.expect("more pages");
    // Again between fetches: one before the new cursor, one after it.
    let before_again = book(&app, &patients[7], &wilson, "08:30").await;
    let after = book(&app, &patients[8], &wilson, "11:30").await;
    loop {
        let (page, next) = fetch(
            &app,
            &app.token,
            &with(path, &format!("cursor={cursor}&limit=2")),
        )
        .await;
        walked.extend(ids(&page));
        match next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_each_once(&walked);
    let mut expected = original.clone();
    expected.insert(2, twin);
    expected.push(after);
    assert_eq!(walked, expected);
    assert!(!walked.contains(&before) && !walked.contains(&before_again));
}

/// Checks a 422 `validation_failed` whose errors name exactly `field`.
async fn assert_invalid(res: Response, field: &str) -> Value {
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let problem: Value = res.json().await.expect("json");
    assert_eq!(problem["code"], "validation_failed");
    let errors = problem["errors"].as_object().expect("errors");
    assert_eq!(errors.keys().collect::<Vec<_>>(), [field], "{problem}");
    problem
}

async fn bad_cursors_limits_and_mixed_paging_are_422_naming_the_parameter(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let house = app.practitioner().await;
    let patient = app.patient(0).await;
    app.patient(1).await;
    book(&app, &patient, &house, "09:00").await;
    book(&app, &app.patient(2).await, &house, "10:00").await;
    let (_, patient_cursor) = fetch(&app, &app.token, "/api/v1/patients?limit=1").await;
    let patient_cursor = patient_cursor.expect("more pages");
    let (_, appointment_cursor) = fetch(&app, &app.token, "/api/v1/appointments?limit=1").await;
    let appointment_cursor = appointment_cursor.expect("more pages");

    for list in ["/api/v1/patients", "/api/v1/appointments"] {
        for cursor in ["garbage", "%E2%9C%93", "AAAA", "eyJpZCI6MX0"] {
            let res = app.get(&format!("{list}?cursor={cursor}")).await;
            assert_invalid(res, "cursor").await;
        }
        for limit in [0, 201] {
            let res = app.get(&format!("{list}?limit={limit}")).await;
            assert_invalid(res, "limit").await;
        }
        let res = app.get(&format!("{list}?page=2&cursor=")).await;
        assert_invalid(res, "page").await;
        let res = app.get(&format!("{list}?page_size=2&limit=2")).await;
        assert_invalid(res, "page_size").await;
        let res = app.get(&format!("{list}?limit=abc")).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "not a number at all");
    }
    // Well-formed cursors with a bad key inside: a NUL in a name (which PostgreSQL could not
    // even compare) and an id that is no UUID.
    let forged_patient =
        "ODpwYXRpZW50czk6TG92ZQBsYWNlMzpBZGEzNjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA";
    let res = app
        .get(&format!("/api/v1/patients?cursor={forged_patient}"))
        .await;
    assert_invalid(res, "cursor").await;
    let forged_appointment = "MTI6YXBwb2ludG1lbnRzMjA6MjAyNi0xMi0wMVQwODowMDowMFozNjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMGc";
    let res = app
        .get(&format!("/api/v1/appointments?cursor={forged_appointment}"))
        .await;
    assert_invalid(res, "cursor").await;
    // A cursor of one list is not a cursor of another.
    let res = app
        .get(&format!("/api/v1/patients?cursor={appointment_cursor}"))
        .await;
    assert_invalid(res, "cursor").await;
    let res = app
        .get(&format!("/api/v1/appointments?cursor={patient_cursor}"))
        .await;
    assert_invalid(res, "cursor").await;
    // Page numbers still answer as before.
    let page: Value = app
        .get("/api/v1/patients?page=2&page_size=2")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["count"], 3);
    assert_eq!(page["previous"], "/api/v1/patients?page_size=2&page=1");
}

/// The top-level field names of a JSON object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

async fn fields_keep_only_the_named_fields_and_the_id(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let patient = app.patient(0).await;
    app.patient(1).await;
    let house = app.practitioner().await;
    let appointment = book(&app, &patient, &house, "09:00").await;

    let full = app.get(&format!("/api/v1/patients/{patient}")).await;
    let full_tag = full.headers()[header::ETAG].clone();
    let res = app
        .get(&format!(
            "/api/v1/patients/{patient}?fields=family_name,phone"
        ))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // A selection is another representation: it must not share the version's tag, or a
    // client holding the whole resource would get a 304 for the selection.
    let selected_tag = res.headers()[header::ETAG].clone();
    assert_ne!(selected_tag, full_tag);
    let revalidated = app
        .as_user(
            &app.token,
            app.client
                .get(app.url(&format!(
                    "/api/v1/patients/{patient}?fields=family_name,phone"
                )))
                .header(header::IF_NONE_MATCH, full_tag.clone()),
        )
        .await;
    assert_eq!(
        revalidated.status(),
        StatusCode::OK,
        "the whole resource's tag is not this view's"
    );
    let revalidated = app
        .as_user(
            &app.token,
            app.client
                .get(app.url(&format!(
                    "/api/v1/patients/{patient}?fields=family_name,phone"
                )))
                .header(header::IF_NONE_MATCH, selected_tag.clone()),
        )
        .await;
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    let body: Value = res.json().await.expect("json");
    assert_eq!(keys(&body), ["family_name", "id", "phone"]);
    assert_eq!(body["id"], patient.as_str());

    for path in [
        "/api/v1/patients?fields=given_name",
        "/api/v1/patients?fields=given_name&page_size=1&page=2",
        "/api/v1/patients?fields=given_name&limit=1",
    ] {
        let page: Value = app.get(path).await.json().await.expect("json");
        let results = page["results"].as_array().expect("results");
        assert_eq!(
            results.len(),
            if path.ends_with("fields=given_name") {
                2
            } else {
                1
            }
        );
        for row in results {
            assert_eq!(keys(row), ["given_name", "id"], "{path}");
        }
    }

    let res = app
        .get(&format!(
            "/api/v1/appointments/{appointment}?fields=status,starts_at"
        ))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_ne!(
        res.headers()[header::ETAG],
        "\"1\"",
        "a view, not the version"
    );
    let body: Value = res.json().await.expect("json");
    assert_eq!(keys(&body), ["id", "starts_at", "status"]);
    assert_eq!(body["status"], "booked");
    for path in [
        "/api/v1/appointments?fields=id",
        "/api/v1/appointments?fields=patient_id&cursor=",
    ] {
        let page: Value = app.get(path).await.json().await.expect("json");
        let results = page["results"].as_array().expect("results");
        assert_eq!(results.len(), 1);
        let expected: &[&str] = if path.contains("patient_id") {
            &["id", "patient_id"]
        } else {
            &["id"]
        };
        assert_eq!(keys(&results[0]), expected, "{path}");
    }

    for path in [
        format!("/api/v1/patients/{patient}?fields=given_name,ssn"),
        "/api/v1/patients?fields=given_name,ssn".to_owned(),
        format!("/api/v1/appointments/{appointment}?fields=ssn"),
        "/api/v1/appointments?fields=ssn&limit=5".to_owned(),
    ] {
        let problem = assert_invalid(app.get(&path).await, "fields").await;
        let message = problem["errors"]["fields"][0].as_str().expect("a message");
        assert!(
            message.contains("`ssn`") && message.contains("allowed: id, "),
            "{message}"
        );
    }
}
