//! Patients through HTTP: registration, search, partial updates, soft deletion, bad input.

use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

crate::on_both_backends!(
    patients_are_created_searched_updated_and_soft_deleted,
    bad_input_is_a_clear_4xx_and_writes_nothing
);

async fn patients_are_created_searched_updated_and_soft_deleted(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ada = app
        .post(
            "/api/v1/patients",
            json!({"given_name": "Ada", "family_name": "Lovelace", "birth_date": "1985-12-10", "sex": "female",
                   "phone": "+49 151 1234 5678", "email": "Ada@Example.org",
                   "emergency_contact": {"name": "Charles", "phone": "+4915100000000"},
                   "insurance": {"payer": "TK", "member_id": "A123456789"}}),
        )
        .await;
    assert_eq!(ada.status(), StatusCode::CREATED);
    let ada: Value = ada.json().await.expect("json");
    assert_eq!(
        (ada["phone"].as_str(), ada["email"].as_str()),
        (Some("+4915112345678"), Some("ada@example.org"))
    );
    let id = ada["id"].as_str().expect("id").to_owned();
    for n in 0..3 {
        app.patient(n).await;
    }
    for (q, expected) in [
        ("love", 1),
        ("ada lov", 1),
        ("LOVELACE ADA", 1),
        ("%2B4915112345678", 1),
        ("ada%40example.org", 1),
        ("tester", 3),
        ("zzz", 0),
    ] {
        let page: Value = app
            .get(&format!("/api/v1/patients?q={q}"))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(page["count"], expected, "search {q}");
    }
    let page: Value = app
        .get("/api/v1/patients?page_size=2")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            page["count"].as_u64(),
            page["results"].as_array().map(Vec::len)
        ),
        (Some(4), Some(2))
    );
    assert_eq!(page["next"], "/api/v1/patients?page_size=2&page=2");

    let res = app
        .client
        .patch(app.url(&format!("/api/v1/patients/{id}")))
        .bearer_auth(&app.token)
        .json(&json!({"phone": null, "family_name": "King"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let changed: Value = res.json().await.expect("json");
    assert_eq!(
        (
            changed["phone"].clone(),
            changed["family_name"].as_str(),
            changed["version"].as_i64()
        ),
        (Value::Null, Some("King"), Some(2))
    );
    let stale = app
        .client
        .patch(app.url(&format!("/api/v1/patients/{id}")))
        .bearer_auth(&app.token)
        .header("If-Match", "\"1\"")
        .json(&json!({"family_name": "Byron"}))
        .send()
        .await
        .expect("request");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);

    let deleted = app
        .client
        .delete(app.url(&format!("/api/v1/patients/{id}")))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("request");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/v1/patients/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    let page: Value = app
        .get("/api/v1/patients?q=king")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["count"], 0);
}

async fn bad_input_is_a_clear_4xx_and_writes_nothing(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (app.client.get(app.url("/api/v1/patients")), StatusCode::UNAUTHORIZED, "unauthenticated"),
        (app.client.get(app.url("/api/v1/patients")).bearer_auth("not.a.token"), StatusCode::UNAUTHORIZED, "unauthenticated"),
        (
            app.client.post(app.url("/api/v1/patients")).bearer_auth(&app.token).header("content-type", "application/json").body("{\"given_name\":"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            app.client.post(app.url("/api/v1/patients")).bearer_auth(&app.token).header("content-type", "text/plain").body("hello"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            app.client.post(app.url("/api/v1/patients")).bearer_auth(&app.token).json(&json!({"given_name": "A", "family_name": "B", "birth_date": "1980-01-01", "ssn": "x"})),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            app.client.post(app.url("/api/v1/patients")).bearer_auth(&app.token).json(&json!({"given_name": "A", "family_name": "B", "birth_date": "1980-02-30", "phone": "0151", "sex": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            app.client.post(app.url("/api/v1/patients")).bearer_auth(&app.token).header("content-type", "application/json").body(vec![b'"'; 300 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (app.client.get(app.url("/api/v1/patients/not-a-uuid")).bearer_auth(&app.token), StatusCode::BAD_REQUEST, "invalid_path"),
        (app.client.get(app.url("/api/v1/patients?page_size=100000")).bearer_auth(&app.token), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (app.client.get(app.url("/api/v1/patients?page=-1")).bearer_auth(&app.token), StatusCode::BAD_REQUEST, "invalid_query"),
        (app.client.get(app.url("/api/v1/nothing-here")).bearer_auth(&app.token), StatusCode::NOT_FOUND, "not_found"),
        (
            app.client.post(app.url("/api/v1/auth/login")).json(&json!({"email": "admin@clinic-a.example", "password": "wrong password"})),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            app.client.post(app.url("/api/v1/auth/login")).json(&json!({"email": "nobody@clinic-a.example", "password": "wrong password"})),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
    ];
    for (request, status, code) in cases {
        let res = request.send().await.expect("request");
        assert_eq!(res.status(), status, "expected {code}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{code}"
        );
        let problem: Value = res.json().await.expect("json");
        assert_eq!(problem["code"], code);
        assert_eq!(problem["status"], status.as_u16());
    }
    let page: Value = app
        .get("/api/v1/patients")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["count"], 0, "nothing was written");
    let me: Value = app.get("/api/v1/me").await.json().await.expect("json");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["clinic"]["time_zone"], "UTC");
}
