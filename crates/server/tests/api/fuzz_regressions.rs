//! What `cargo xtask fuzz` (schemathesis over the OpenAPI document) found, kept as tests: each
//! answer is held to the schema the served document gives for its operation and status, with
//! the `jsonschema` crate.

use clinicflow_api::openapi::DOCUMENT_PATH;
use clinicflow_store::testing::TestBackend;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, future_day, id_of};

crate::on_both_backends!(
    schedule_answers_match_their_schema,
    empty_pages_are_exactly_one_of_the_two_list_shapes,
    field_selections_match_the_documented_answers,
);

/// What a `$ref` within the document points at.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{reference} does not resolve")),
        None => schema,
    }
}

/// Why `value` does not conform to `schema`, a schema of `doc` whose `$ref`s point into the
/// document's components (OpenAPI 3.1 schemas are JSON Schema 2020-12).
fn violation(doc: &Value, schema: &Value, value: &Value) -> Option<String> {
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::new(&root).expect("the documented schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// Holds an answer to the schema the document gives for `method path` and its status.
async fn assert_documented(app: &TestApp, method: &str, path: &str, res: Response) -> Value {
    let status = res.status();
    let content_type = res.headers()["content-type"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    let body: Value = res.json().await.expect("a JSON answer");
    let doc: Value = app
        .client
        .get(app.url(DOCUMENT_PATH))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("the document");
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is documented");
    let response = resolve(&doc, &operation["responses"][status.as_str()]);
    let schema = &response["content"][&content_type]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} documents {status} as {content_type}"
    );
    if let Some(why) = violation(&doc, schema, &body) {
        panic!("{method} {path} answered {status} with {body}, against its schema: {why}");
    }
    body
}

/// Schemathesis: `GET` and `PUT /practitioners/{id}/schedule` answered `practitioner_id` and
/// `time_zone`, which the closed schema of the request body, flattened into the answer's,
/// declared not allowed.
async fn schedule_answers_match_their_schema(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let path = "/api/v1/practitioners/{id}/schedule";
    let url = format!("/api/v1/practitioners/{practitioner}/schedule");
    let res = app
        .put(
            &url,
            json!({"rules": [{"weekday": "mon", "start": "09:00", "end": "12:00"}]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let put = assert_documented(&app, "put", path, res).await;
    assert_eq!(put["practitioner_id"], practitioner.as_str());
    assert_eq!(put["time_zone"], "UTC");
    let res = app.get(&url).await;
    assert_eq!(res.status(), StatusCode::OK);
    let got = assert_documented(&app, "get", path, res).await;
    assert_eq!(got, put);
}

/// Schemathesis: an empty page (`{count: 0, …, results: []}`) matched both the page-number and
/// the keyset shape of the lists' `oneOf`, which must match exactly one.
async fn empty_pages_are_exactly_one_of_the_two_list_shapes(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for (path, query) in [
        ("/api/v1/appointments", "?to=2000-01-01T00:00:00Z"),
        ("/api/v1/appointments", "?to=2000-01-01T00:00:00Z&limit=5"),
        ("/api/v1/patients", "?q=nobody"),
        ("/api/v1/patients", "?q=nobody&cursor="),
    ] {
        let res = app.get(&format!("{path}{query}")).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}{query}");
        let page = assert_documented(&app, "get", path, res).await;
        assert_eq!(page["results"], json!([]), "{path}{query}");
    }
}

/// Schemathesis: with `?fields=`, reads answered only the selected fields and `id`, which the
/// documented objects require all of.
async fn field_selections_match_the_documented_answers(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
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
    for (path, url, fields) in [
        (
            "/api/v1/patients/{id}",
            format!("/api/v1/patients/{patient}"),
            "given_name,family_name",
        ),
        (
            "/api/v1/appointments/{id}",
            format!("/api/v1/appointments/{appointment}"),
            "status",
        ),
    ] {
        let res = app.get(&format!("{url}?fields={fields}")).await;
        assert_eq!(res.status(), StatusCode::OK, "{url}");
        let one = assert_documented(&app, "get", path, res).await;
        let mut names: Vec<&str> = one
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        let mut expected: Vec<&str> = fields.split(',').chain(["id"]).collect();
        expected.sort_unstable();
        assert_eq!(names, expected, "{url}");
    }
    for (path, query) in [
        ("/api/v1/patients", "?fields=given_name,family_name"),
        ("/api/v1/patients", "?fields=given_name&limit=10"),
        ("/api/v1/appointments", "?fields=status"),
        ("/api/v1/appointments", "?fields=status&limit=10"),
    ] {
        let res = app.get(&format!("{path}{query}")).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}{query}");
        let page = assert_documented(&app, "get", path, res).await;
        assert_eq!(
            page["results"].as_array().map(Vec::len),
            Some(1),
            "{path}{query}"
        );
    }
}
