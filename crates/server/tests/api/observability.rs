//! What operators and clients see beyond the data: `/metrics`, the readiness probe, and
//! the caching and compression headers.

use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::{TestApp, test_redis_url};

crate::on_both_backends!(
    metrics_with_a_listener_of_their_own_are_not_served_on_the_api_listener,
    a_configured_metrics_token_is_required_and_guesses_are_throttled,
    metrics_count_requests_by_route_template_and_show_the_pool,
    lists_get_etags_and_304s_reads_get_cache_control_and_big_bodies_are_compressed,
);

/// The `Server-Timing` durations by name, in milliseconds.
fn server_timing(res: &reqwest::Response) -> std::collections::HashMap<String, f64> {
    let header = res.headers()["server-timing"].to_str().expect("text");
    header
        .split(',')
        .map(|metric| {
            let mut parts = metric.trim().split(';');
            let name = parts.next().expect("a name").to_owned();
            let dur = parts
                .find_map(|p| p.strip_prefix("dur="))
                .expect("a duration")
                .parse()
                .expect("a number");
            (name, dur)
        })
        .collect()
}

async fn metrics_with_a_listener_of_their_own_are_not_served_on_the_api_listener(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.metrics.bind = Some("127.0.0.1:0".into());
    })
    .await
    else {
        return;
    };
    let res = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "not on the API's listener"
    );
    let metrics = app.metrics_base.clone().expect("a metrics listener");
    let res = app
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("text");
    assert!(text.contains("clinicflow_outbox_depth"), "{text}");
    // The metrics listener serves nothing else.
    let res = app
        .client
        .get(format!("{metrics}/api/v1/me"))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

async fn a_configured_metrics_token_is_required_and_guesses_are_throttled(backend: TestBackend) {
    const TOKEN: &str = "metrics token 0123456789abcdef0123456789";
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.metrics.token = Some(SecretString::from(TOKEN));
        s.http.per_ip_per_hour = 4;
    })
    .await
    else {
        return;
    };
    let scrape = |token: Option<&str>| {
        let req = app.client.get(app.url("/metrics"));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
        .send()
    };
    let res = scrape(None).await.expect("request");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let problem: Value = res.json().await.expect("a problem");
    assert_eq!(problem["code"], "unauthenticated");
    // An access token of the API is not the metrics token.
    let res = scrape(Some(&app.token)).await.expect("request");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = scrape(Some(TOKEN)).await.expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .expect("text")
            .contains("clinicflow_http_requests_in_flight")
    );
    // Wrong tokens spend the address's anonymous budget (the login above spent from it too);
    // the right one does not.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(scrape(Some("guess")).await.expect("request").status());
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED, "{statuses:?}");
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    for _ in 0..5 {
        assert_eq!(
            scrape(Some(TOKEN)).await.expect("request").status(),
            StatusCode::OK
        );
    }
}

async fn metrics_count_requests_by_route_template_and_show_the_pool(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let patient = app.patient(7).await;
    for _ in 0..3 {
        let res = app.get(&format!("/api/v1/patients/{patient}")).await;
        assert_eq!(res.status(), StatusCode::OK);
        let timing = server_timing(&res);
        assert!(
            timing["db"] > 0.0,
            "a read spends time in the database: {timing:?}"
        );
        assert!(timing["db"] <= timing["app"], "{timing:?}");
        assert!(timing.contains_key("cache"));
    }
    for _ in 0..2 {
        assert_eq!(app.get("/api/v1/clinic").await.status(), StatusCode::OK);
    }
    let live = app.get("/health/live").await;
    assert_eq!(
        server_timing(&live)["db"],
        0.0,
        "liveness touches no database"
    );
    assert_eq!(
        app.get("/api/v1/patients/00000000-0000-0000-0000-000000000001")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // No token: metrics are for the scraper, and carry nothing about patients.
    let res = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("text")
            .starts_with("application/openmetrics-text")
    );
    let text = res.text().await.expect("text");
    for line in [
        r#"clinicflow_http_request_duration_seconds_count{method="GET",route="/api/v1/patients/{id}",status="200"} 3"#,
        r#"clinicflow_http_request_duration_seconds_count{method="GET",route="/api/v1/patients/{id}",status="404"} 1"#,
        r#"clinicflow_http_request_duration_seconds_count{method="POST",route="/api/v1/patients",status="201"} 1"#,
        r#"clinicflow_db_pool_connections{state="max"} 10"#,
        r#"clinicflow_db_pool_connections{state="waiting"} 0"#,
        "clinicflow_outbox_depth 0",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    // The clinic's settings are read through the cache: the first read anywhere misses, the
    // second settings read above hits (workers read them too, so counts are not exact).
    for result in ["hit", "miss"] {
        let line =
            format!(r#"clinicflow_cache_lookups_total{{keyspace="clinic",result="{result}"}} "#);
        let count: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .unwrap_or_else(|| panic!("missing `{line}` in:\n{text}"))
            .parse()
            .expect("a count");
        assert!(count >= 1, "{result}: {count}");
    }
    // The scrape itself is in flight while the text is written.
    assert!(
        text.contains("clinicflow_http_requests_in_flight 1"),
        "{text}"
    );
    assert!(!text.contains(&patient), "no ids in metrics");
    assert!(!text.contains("Pat7"), "no names in metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_redis_and_degrades_without_failing_when_it_is_gone() {
    let Some(redis) = test_redis_url() else {
        return;
    };
    let Some(app) = TestApp::spawn_with(TestBackend::Sqlite, |s| {
        s.redis_url = Some(SecretString::from(redis.clone()));
    })
    .await
    else {
        return;
    };
    let ready: Value = app.get("/health/ready").await.json().await.expect("json");
    assert_eq!(ready["status"], "ok");
    assert_eq!(ready["checks"]["database"]["status"], "ok");
    assert_eq!(ready["checks"]["redis"]["status"], "ok");

    // Port 1 never answers: the counters fall back in-process, so the instance still serves.
    let Some(app) = TestApp::spawn_with(TestBackend::Sqlite, |s| {
        s.redis_url = Some(SecretString::from("redis://127.0.0.1:1"));
    })
    .await
    else {
        return;
    };
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), StatusCode::OK);
    let ready: Value = res.json().await.expect("json");
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["checks"]["redis"]["status"], "unavailable");
    assert_eq!(ready["checks"]["database"]["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_readiness_checks_only_the_database() {
    let Some(app) = TestApp::spawn(TestBackend::Sqlite).await else {
        return;
    };
    let ready: Value = app.get("/health/ready").await.json().await.expect("json");
    assert_eq!(ready["status"], "ok");
    assert!(ready["checks"].get("redis").is_none());
}

async fn lists_get_etags_and_304s_reads_get_cache_control_and_big_bodies_are_compressed(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for n in 0..30 {
        app.patient(n).await;
    }
    let list = app.get("/api/v1/patients?page_size=50").await;
    assert_eq!(list.status(), StatusCode::OK);
    let tag = list.headers()["etag"].to_str().expect("text").to_owned();
    assert!(tag.starts_with("W/\""), "a weak tag: {tag}");
    assert_eq!(list.headers()["cache-control"], "private, no-cache");
    let again = app
        .as_user(
            &app.token,
            app.client
                .get(app.url("/api/v1/patients?page_size=50"))
                .header("if-none-match", &tag),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().expect("text"), tag);
    assert!(again.bytes().await.expect("body").is_empty());
    // A new patient changes the list, and so its tag.
    app.patient(99).await;
    let changed = app
        .as_user(
            &app.token,
            app.client
                .get(app.url("/api/v1/patients?page_size=50"))
                .header("if-none-match", &tag),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"].to_str().expect("text"), tag);

    // Tokens and errors are never stored; the practitioner directory may be kept a minute.
    let login = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "admin@clinic-a.example", "password": crate::helpers::ADMIN_PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_eq!(login.headers()["cache-control"], "no-store");
    let missing = app
        .get("/api/v1/patients/00000000-0000-0000-0000-000000000001")
        .await;
    assert_eq!(missing.headers()["cache-control"], "no-store");
    app.practitioner().await;
    let directory = app.get("/api/v1/practitioners").await;
    assert_eq!(directory.headers()["cache-control"], "private, max-age=60");

    // Compression as the client asks, above 1 KiB only.
    for (asked, used) in [("gzip", "gzip"), ("br", "br"), ("br, gzip", "br")] {
        let res = app
            .as_user(
                &app.token,
                app.client
                    .get(app.url("/api/v1/patients?page_size=50"))
                    .header("accept-encoding", asked),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-encoding"], used, "asked for {asked}");
    }
    let small = app
        .as_user(
            &app.token,
            app.client
                .get(app.url("/api/v1/me"))
                .header("accept-encoding", "gzip"),
        )
        .await;
    assert_eq!(small.status(), StatusCode::OK);
    assert_ne!(
        small
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().expect("text")),
        Some("gzip"),
        "a small body is sent as it is"
    );
    let plain = app.get("/api/v1/patients?page_size=50").await;
    assert!(
        plain
            .headers()
            .get("content-encoding")
            .is_none_or(|v| v == "identity")
    );
}
