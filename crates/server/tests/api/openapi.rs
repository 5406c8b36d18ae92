//! The OpenAPI document and the browsable docs through the real server: both are public and
//! outside the anonymous throttle, `/docs` keeps its own Content-Security-Policy, and every
//! operation the document lists answers, with or without a token, as it says it does.

use clinicflow_api::docs::{DOCS_CSP, REDOC_SCRIPT_PATH};
use clinicflow_api::openapi::DOCUMENT_PATH;
use clinicflow_store::testing::TestBackend;
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use crate::helpers::TestApp;

/// Every operation of the document: method, path template, operation.
fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .iter()
                .map(|(method, op)| {
                    let method = method.to_uppercase().parse().expect("a method");
                    (method, path.clone(), op.clone())
                })
        })
        .collect()
}

/// A path that matches `template`: ids are UUIDs, other parameters a word.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{id}" => "00000000-0000-0000-0000-000000000000",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The body of an answer if it is JSON (problems included), else `Null`; never reads a stream.
async fn json_body(res: Response) -> Value {
    let json = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if json {
        res.json().await.expect("JSON")
    } else {
        Value::Null
    }
}

async fn anonymous(app: &TestApp, path: &str) -> Response {
    app.client.get(app.url(path)).send().await.expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_and_the_docs_page_are_public_and_outside_the_anonymous_throttle() {
    let Some(app) = TestApp::spawn_with(TestBackend::Sqlite, |s| s.http.per_ip_per_hour = 2).await
    else {
        return;
    };
    for _ in 0..5 {
        let res = anonymous(&app, DOCUMENT_PATH).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/json");
        let doc: Value = res.json().await.expect("JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "clinicflow");

        let res = anonymous(&app, "/docs").await;
        assert_eq!(res.status(), StatusCode::OK);
        let headers = res.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .expect("text")
                .starts_with("text/html")
        );
        // The server's default policy does not replace the page's own.
        assert_eq!(headers["content-security-policy"], DOCS_CSP);
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let page = res.text().await.expect("text");
        assert!(page.contains(&format!("spec-url=\"{DOCUMENT_PATH}\"")));
        // The one script is this server's, pinned by its hash.
        for script in page.split("<script").skip(1) {
            let tag = &script[..script.find('>').expect("a closed tag")];
            assert!(
                tag.contains("integrity=\"sha384-"),
                "unpinned: <script{tag}>"
            );
            assert!(tag.contains(&format!("src=\"{REDOC_SCRIPT_PATH}\"")));
        }
        assert_eq!(page.matches("<script").count(), 1);

        // The script and the index page are as public, and as free of the throttle.
        let res = anonymous(&app, REDOC_SCRIPT_PATH).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            res.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(res.bytes().await.expect("the script").len() > 500_000);
        let res = anonymous(&app, "/").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            res.text()
                .await
                .expect("text")
                .contains("<a href=\"/docs\">")
        );
    }
    // Every other answer keeps the strict default policy.
    let res = anonymous(&app, "/health/live").await;
    assert_eq!(
        res.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    // The throttle itself is on: the login of `spawn` took one of the two anonymous requests.
    assert_eq!(
        anonymous(&app, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        anonymous(&app, "/api/v1/me").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_answers_as_documented_with_and_without_a_token() {
    let Some(app) = TestApp::spawn(TestBackend::Sqlite).await else {
        return;
    };
    let doc: Value = anonymous(&app, DOCUMENT_PATH)
        .await
        .json()
        .await
        .expect("JSON");
    let operations = operations(&doc);
    assert!(operations.len() >= 45, "{} operations", operations.len());
    for (method, path, op) in &operations {
        // Without a token: exactly the operations that declare the bearer scheme refuse it.
        let res = app
            .client
            .request(method.clone(), app.url(&concrete(path)))
            .send()
            .await
            .expect("request");
        let status = res.status();
        let body = json_body(res).await;
        let declares_bearer = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let refused = status == StatusCode::UNAUTHORIZED && body["code"] == "unauthenticated";
        assert_eq!(
            declares_bearer, refused,
            "{method} {path} answered {status} {body} without a token"
        );
        assert!(
            op["responses"].get(status.as_str()).is_some(),
            "{method} {path} answered {status}, which it does not document: {body}"
        );
    }
    // With a token: every documented read without parameters is routed (not the problem for
    // unknown routes), and answers a status it documents.
    for (method, path, op) in &operations {
        if method != Method::GET || path.contains('{') {
            continue;
        }
        let res = app.get(path).await;
        let status = res.status();
        let body = json_body(res).await;
        assert!(
            !(status == StatusCode::NOT_FOUND && body["detail"] == "no such route"),
            "GET {path} is documented but not routed"
        );
        assert!(
            op["responses"].get(status.as_str()).is_some(),
            "GET {path} answered {status}, which it does not document: {body}"
        );
    }
}

/// The `Allow` a documented path answers with: its methods, and `HEAD` where `GET` is.
fn allowed(item: &Value) -> Vec<String> {
    let mut methods: Vec<String> = item
        .as_object()
        .expect("a path item")
        .keys()
        .map(|m| m.to_uppercase())
        .collect();
    if methods.iter().any(|m| m == "GET") {
        methods.push("HEAD".into());
    }
    methods.sort();
    methods
}

/// Regression: the routes registered with a method guard (`/api/v1/auth/*`, `/me`, the
/// document, `/docs`, `/health/*`, `/metrics`) answered a wrong method with the 404 of unknown
/// routes, and no route served `HEAD`. Every documented path is tried, so a new one is covered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_answers_a_wrong_method_with_405_and_allow_and_head_as_get() {
    let Some(app) = TestApp::spawn_with(TestBackend::Sqlite, |s| {
        s.http.per_user_per_hour = 100_000;
    })
    .await
    else {
        return;
    };
    let doc: Value = anonymous(&app, DOCUMENT_PATH)
        .await
        .json()
        .await
        .expect("JSON");
    let paths = doc["paths"].as_object().expect("paths");
    let mut wrong = 0;
    for (template, item) in paths {
        let path = concrete(template);
        let allow = allowed(item);
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if allow.contains(&method.to_string()) {
                continue;
            }
            let res = app
                .client
                .request(method.clone(), app.url(&path))
                .bearer_auth(&app.token)
                .send()
                .await
                .expect("request");
            assert_eq!(
                res.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {template}"
            );
            assert_eq!(
                res.headers()["content-type"],
                "application/problem+json",
                "{method} {template}"
            );
            let mut listed: Vec<String> = res.headers()["allow"]
                .to_str()
                .expect("ASCII")
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            listed.sort();
            assert_eq!(listed, allow, "Allow of {method} {template}");
            let body: Value = res.json().await.expect("a problem");
            assert_eq!(body["code"], "method_not_allowed");
            wrong += 1;
        }
        if !allow.iter().any(|m| m == "GET") {
            continue;
        }
        let get = app.get(&path).await;
        let head = app
            .client
            .head(app.url(&path))
            .bearer_auth(&app.token)
            .send()
            .await
            .expect("request");
        assert_eq!(head.status(), get.status(), "HEAD {template}");
        assert_ne!(
            head.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "HEAD {template}"
        );
        for name in ["content-type", "cache-control", "allow"] {
            assert_eq!(
                head.headers().get(name),
                get.headers().get(name),
                "{name} of HEAD {template}"
            );
        }
        assert!(
            head.bytes().await.expect("no body").is_empty(),
            "HEAD {template} has no body"
        );
    }
    assert!(wrong >= 100, "{wrong} wrong methods tried");
    // The public ones answer 405 without a token too, before any authentication.
    for (method, path) in [
        (Method::GET, "/api/v1/auth/login"),
        (Method::DELETE, "/health/live"),
        (Method::POST, "/metrics"),
        (Method::PUT, DOCUMENT_PATH),
        (Method::POST, "/docs"),
    ] {
        let res = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(
            res.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(res.headers().get("allow").is_some(), "{method} {path}");
    }
    let res = app
        .client
        .head(app.url("/health/live"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.expect("no body").is_empty());
}

/// Regression: unknown query parameters were ignored, so `/queue?practioner_id=…` answered the
/// whole board. Every documented operation refuses one, naming it, before it does anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_refuses_an_unknown_query_parameter_by_name() {
    let Some(app) = TestApp::spawn_with(TestBackend::Sqlite, |s| {
        s.http.per_user_per_hour = 100_000;
    })
    .await
    else {
        return;
    };
    let doc: Value = anonymous(&app, DOCUMENT_PATH)
        .await
        .json()
        .await
        .expect("JSON");
    let operations = operations(&doc);
    for (method, template, op) in &operations {
        let path = format!(
            "{}?practioner_id=00000000-0000-0000-0000-000000000000",
            concrete(template)
        );
        let res = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&app.token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{method} {path}");
        let body: Value = res.json().await.expect("a problem");
        assert_eq!(body["code"], "invalid_query", "{method} {path}");
        let detail = body["detail"].as_str().expect("a detail");
        assert!(
            detail.contains("`practioner_id`"),
            "{method} {path}: {detail}"
        );
        // The answer lists what the operation does take.
        for parameter in op["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] == "query" {
                let name = parameter["name"].as_str().expect("a name");
                assert!(
                    detail.contains(name),
                    "{method} {path}: {detail} omits {name}"
                );
            }
        }
        assert!(
            op["responses"].get("400").is_some(),
            "{method} {template} answers 400 but does not document it"
        );
    }
    let board = app.get("/api/v1/queue?practioner_id=x&department=y").await;
    assert_eq!(board.status(), StatusCode::BAD_REQUEST);
    let detail = board.json::<Value>().await.expect("a problem")["detail"].clone();
    assert!(
        detail
            .as_str()
            .is_some_and(|d| d.contains("`practioner_id`")
                && d.contains("practitioner_id")
                && !d.contains("`department`")),
        "{detail}"
    );
    // The documented ones pass, paging included.
    for path in [
        "/api/v1/queue?department=cardiology",
        "/api/v1/patients?page=1&page_size=5&q=a&fields=id",
        "/api/v1/appointments?limit=5",
    ] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
}

/// Every property schema of the document's components: schema name, property, schema.
fn properties(doc: &Value) -> Vec<(String, String, Value)> {
    doc["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .iter()
        .flat_map(|(name, schema)| {
            let own = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            own.into_iter()
                .map(move |(property, value)| (name.clone(), property, value))
        })
        .collect()
}

/// The `enum` of a named schema.
fn vocabulary(doc: &Value, name: &str) -> Vec<String> {
    serde_json::from_value(doc["components"]["schemas"][name]["enum"].clone())
        .unwrap_or_else(|_| panic!("{name} is an enum schema"))
}

/// Regression: the document left out what the server enforces, so generated clients and
/// validators let through what the server refuses. The values are compared with the domain's
/// own constants, so the document and the parsers cannot drift apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_states_the_bounds_formats_enums_and_patterns_the_server_enforces() {
    use clinicflow_domain::appointment::DURATION_MINUTES;
    use clinicflow_domain::page::{MAX_PAGE, MAX_PAGE_SIZE};
    use clinicflow_domain::practitioner::{BUFFER_MINUTES, SLOT_MINUTES};
    use clinicflow_domain::{AppointmentStatus, QueueStatus, Role, Sex, TriageCategory, Urgency};

    let Some(app) = TestApp::spawn(TestBackend::Sqlite).await else {
        return;
    };
    let doc: Value = anonymous(&app, DOCUMENT_PATH)
        .await
        .json()
        .await
        .expect("JSON");
    let schemas = &doc["components"]["schemas"];
    let range = |schema: &str, property: &str| {
        let p = &schemas[schema]["properties"][property];
        (p["minimum"].as_u64(), p["maximum"].as_u64())
    };
    let bounds = |r: &std::ops::RangeInclusive<u32>| {
        (Some(u64::from(*r.start())), Some(u64::from(*r.end())))
    };
    for schema in ["BookIn", "RescheduleIn"] {
        assert_eq!(
            range(schema, "duration_minutes"),
            bounds(&DURATION_MINUTES),
            "{schema}"
        );
    }
    for schema in ["PractitionerIn", "PractitionerPatch", "RuleDto"] {
        assert_eq!(
            range(schema, "slot_minutes"),
            bounds(&SLOT_MINUTES),
            "{schema}"
        );
    }
    assert_eq!(
        range("PractitionerIn", "buffer_minutes"),
        bounds(&BUFFER_MINUTES)
    );

    let names = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        vocabulary(&doc, "Sex"),
        names(&Sex::ALL.map(|s| s.as_str()))
    );
    assert_eq!(
        vocabulary(&doc, "Urgency"),
        names(&Urgency::ALL.map(|s| s.as_str()))
    );
    assert_eq!(
        vocabulary(&doc, "AppointmentStatus"),
        names(&AppointmentStatus::ALL.map(|s| s.as_str()))
    );
    assert_eq!(
        vocabulary(&doc, "TriageCategory"),
        names(&TriageCategory::ALL.map(|s| s.as_str()))
    );
    assert_eq!(
        vocabulary(&doc, "QueueStatus"),
        names(&QueueStatus::ALL.map(|s| s.as_str()))
    );
    assert_eq!(
        vocabulary(&doc, "Role"),
        names(&Role::STAFF.map(|s| s.as_str()))
    );
    for (schema, property, vocabulary) in [
        ("PatientIn", "sex", "Sex"),
        ("PatientOut", "sex", "Sex"),
        ("BookIn", "urgency", "Urgency"),
        ("AppointmentOut", "status", "AppointmentStatus"),
        ("JoinIn", "category", "TriageCategory"),
        ("EntryOut", "status", "QueueStatus"),
        ("UserIn", "role", "Role"),
        ("MessageOut", "event", "EventKind"),
        ("RuleDto", "weekday", "Weekday"),
    ] {
        let property = schemas[schema]["properties"][property].to_string();
        assert!(
            property.contains(&format!("\"#/components/schemas/{vocabulary}\"")),
            "{schema}: {property}"
        );
    }

    // Every id, in bodies and answers alike, is a UUID.
    for (schema, property, value) in properties(&doc) {
        if property == "id" || (property.ends_with("_id") && property != "member_id") {
            assert_eq!(value["format"], "uuid", "{schema}.{property}: {value}");
        }
    }
    let mut headers = 0;
    for (method, path, op) in operations(&doc) {
        for parameter in op["parameters"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().expect("a name");
            let schema = &parameter["schema"];
            match name {
                "id" => assert_eq!(schema["format"], "uuid", "{method} {path}"),
                "page" => assert_eq!(
                    (schema["minimum"].as_u64(), schema["maximum"].as_u64()),
                    (Some(1), Some(MAX_PAGE)),
                    "{method} {path}"
                ),
                "page_size" => assert_eq!(
                    (schema["minimum"].as_u64(), schema["maximum"].as_u64()),
                    (Some(1), Some(u64::from(MAX_PAGE_SIZE))),
                    "{method} {path}"
                ),
                "If-Match" => {
                    assert_eq!(
                        schema["pattern"],
                        clinicflow_api::openapi::constraints::IF_MATCH_PATTERN
                    );
                    headers += 1;
                }
                "Idempotency-Key" => {
                    assert_eq!(schema["maxLength"], 255, "{method} {path}");
                    assert!(schema["pattern"].is_string(), "{method} {path}");
                    headers += 1;
                }
                _ => {}
            }
        }
        // One short line; the rest of the text is the description.
        let summary = op["summary"].as_str().expect("a summary");
        assert!(
            summary.chars().count() <= 80 && !summary.contains('\n') && !summary.ends_with('.'),
            "{method} {path}: {summary:?}"
        );
    }
    assert!(
        headers >= 8,
        "If-Match and Idempotency-Key are described: {headers}"
    );
    for property in ["start", "end"] {
        assert_eq!(
            schemas["RuleDto"]["properties"][property]["pattern"],
            clinicflow_api::openapi::constraints::TIME_PATTERN
        );
    }
    // Pages refer to their items instead of inlining a copy.
    for page in [
        "PageOut_UserOut",
        "PageOut_PractitionerOut",
        "PageOut_MessageOut",
    ] {
        let items = &schemas[page]["properties"]["results"]["items"];
        assert!(items["$ref"].is_string(), "{page}: {items}");
    }
    // /metrics answers in a media type generators cannot read; it is not part of the API.
    assert!(doc["paths"].get("/metrics").is_none());
}
