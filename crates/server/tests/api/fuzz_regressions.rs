//! What `cargo xtask fuzz` (schemathesis over the OpenAPI document) found, kept as tests: each
//! answer is held to the schema the served document gives for its operation and status, by a
//! small validator of the JSON Schema subset the document uses.

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

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        other => panic!("unknown JSON Schema type {other}"),
    }
}

/// Why `value` does not conform to `schema`, if it does not: `$ref`, `allOf`, `anyOf`, `oneOf`,
/// `type`, `enum`, `required`, `properties`, `additionalProperties` and `items`.
fn violation(doc: &Value, schema: &Value, value: &Value, at: &str) -> Option<String> {
    let schema = resolve(doc, schema);
    let matches = |s: &Value| violation(doc, s, value, at).is_none();
    if let Some(all) = schema["allOf"].as_array()
        && let Some(why) = all.iter().find_map(|s| violation(doc, s, value, at))
    {
        return Some(why);
    }
    if let Some(any) = schema["anyOf"].as_array()
        && !any.iter().any(matches)
    {
        return Some(format!("{at}: matches none of anyOf"));
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let n = one.iter().filter(|s| matches(s)).count();
        if n != 1 {
            return Some(format!("{at}: matches {n} of oneOf, not exactly one"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| has_type(value, t)) {
        return Some(format!("{at}: {value} is not of type {types:?}"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Some(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().expect("required names are strings");
            if !object.contains_key(name) {
                return Some(format!("{at}: `{name}` is required"));
            }
        }
        for (name, field) in object {
            let at = format!("{at}.{name}");
            match schema["properties"].get(name) {
                Some(property) => {
                    if let Some(why) = violation(doc, property, field, &at) {
                        return Some(why);
                    }
                }
                None if schema["additionalProperties"] == json!(false) => {
                    return Some(format!("{at} is not allowed"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(schema_items)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            if let Some(why) = violation(doc, schema_items, item, &format!("{at}[{i}]")) {
                return Some(why);
            }
        }
    }
    None
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
    if let Some(why) = violation(&doc, schema, &body, "answer") {
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
