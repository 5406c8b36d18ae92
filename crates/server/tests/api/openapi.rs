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
    assert!(operations.len() >= 50, "{} operations", operations.len());
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
