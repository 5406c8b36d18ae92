//! The pages for people: `/docs`, which renders the OpenAPI document with Redoc, the Redoc
//! script itself (vendored in `assets/redoc/` and embedded in the binary, so the page works
//! without internet), and `/`, which links to the docs, the document and the health probes.

use actix_web::HttpResponse;
use actix_web::http::header;

/// Where the browsable documentation is served.
pub const DOCS_PATH: &str = "/docs";

/// The Redoc release in `assets/redoc/` (its README says how to update it).
pub const REDOC_VERSION: &str = "2.5.0";

/// Where the embedded Redoc script is served. The version is in the path, so a browser may
/// keep the file for good: a new release is a new path.
pub const REDOC_SCRIPT_PATH: &str = "/docs/redoc-2.5.0.standalone.js";

/// `bundles/redoc.standalone.js` of the npm package redoc, byte for byte.
const REDOC_SCRIPT: &[u8] = include_bytes!("../assets/redoc/redoc.standalone.js");

/// The Subresource Integrity hash (SHA-384) of [`REDOC_SCRIPT`]: the same as the npm
/// package's file, so the browser refuses any other bytes under this path.
pub const REDOC_INTEGRITY: &str =
    "sha384-4vOjrBu7SuDWXcAw1qFznVLA/sKL+0l4nn+J1HY8w7cpa6twQEYuh4b0Cwuo7CyX";

/// How long browsers and proxies may keep the script: a year, the longest `max-age` that
/// caches honour, and `immutable`, so a reload does not ask again.
const SCRIPT_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// The page behind `/docs`. No inline script: the `<redoc>` element carries the document's
/// URL. The text inside `<redoc>` shows until Redoc replaces it, so a script that fails to
/// load leaves a way to the document instead of a blank page; `<noscript>` does the same
/// without JavaScript.
const DOCS_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clinicflow API</title>
</head>
<body style="margin: 0">
<noscript><p style="margin: 1em">This page needs JavaScript to render the API reference. The OpenAPI document it renders is <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>; docs/api.md in the source has the rules behind each route.</p></noscript>
<redoc spec-url="/api/v1/openapi.json"><p style="margin: 1em">Loading the API reference… The OpenAPI document is <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p></redoc>
<script src="/docs/redoc-2.5.0.standalone.js" integrity="sha384-4vOjrBu7SuDWXcAw1qFznVLA/sKL+0l4nn+J1HY8w7cpa6twQEYuh4b0Cwuo7CyX"></script>
</body>
</html>
"#;

/// The Content-Security-Policy of `/docs`, which replaces the server's default
/// `default-src 'none'` for that page only. Everything comes from this server: Redoc's script
/// (`'self'`), the document (`connect-src 'self'`), the styles Redoc injects into the page
/// (`'unsafe-inline'` styles; inline scripts stay forbidden) and its search worker, which it
/// starts from a `blob:` URL. Nothing may load from another host; Redoc's "API docs by
/// Redocly" logo, an image on a CDN, is blocked by `img-src` and shows its alt text.
pub const DOCS_CSP: &str = "default-src 'none'; \
    script-src 'self'; \
    style-src 'unsafe-inline'; \
    img-src 'self' data:; \
    font-src 'self' data:; \
    connect-src 'self'; \
    worker-src blob:; \
    base-uri 'none'; \
    form-action 'none'; \
    frame-ancestors 'none'";

/// The page behind `/`: where a person who opens the server's address can go.
const INDEX_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clinicflow</title>
</head>
<body>
<h1>clinicflow</h1>
<p>The HTTP API of a clinic's patient flow lives under <code>/api/v1</code>.</p>
<ul>
<li><a href="/docs">/docs</a>: the API reference, rendered from the OpenAPI document</li>
<li><a href="/api/v1/openapi.json">/api/v1/openapi.json</a>: the OpenAPI 3.1 document</li>
<li><a href="/health/live">/health/live</a> and <a href="/health/ready">/health/ready</a>: the health probes</li>
</ul>
</body>
</html>
"#;

/// `GET /docs`: the document rendered for people.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "api_docs",
    tag = "openapi",
    responses(
        (status = 200, description = "An HTML page that renders `/api/v1/openapi.json` with Redoc, served by this server", content_type = "text/html", body = String),
    )
)]
pub async fn page() -> HttpResponse {
    // The server's default headers leave a header the handler set alone, so this policy
    // replaces the strict default for this page only.
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, DOCS_CSP))
        .body(DOCS_PAGE)
}

/// `GET /docs/redoc-2.5.0.standalone.js`: the Redoc script `/docs` loads.
#[utoipa::path(
    get,
    path = "/docs/redoc-2.5.0.standalone.js",
    operation_id = "api_docs_script",
    tag = "openapi",
    responses(
        (status = 200, description = "Redoc 2.5.0 (`bundles/redoc.standalone.js` of the npm package), embedded in the server; cached for a year", content_type = "text/javascript", body = String),
    )
)]
pub async fn redoc_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, SCRIPT_CACHE_CONTROL))
        .body(REDOC_SCRIPT)
}

/// `GET /`: links to the documentation, the document and the health probes.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "index",
    tag = "openapi",
    responses(
        (status = 200, description = "An HTML page linking `/docs`, `/api/v1/openapi.json` and the health probes", content_type = "text/html", body = String),
    )
)]
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX_PAGE)
}

#[cfg(test)]
mod tests {
    use actix_web::App;
    use actix_web::body::to_bytes;
    use actix_web::http::StatusCode;
    use actix_web::http::header::HeaderMap;
    use actix_web::test as actix_test;
    use base64::Engine as _;
    use sha2::{Digest, Sha384};

    use super::*;
    use crate::openapi::DOCUMENT_PATH;

    /// The status, headers and body of `GET uri` from the routes alone.
    async fn get(uri: &str) -> (StatusCode, HeaderMap, String) {
        let app = actix_test::init_service(App::new().configure(crate::routes)).await;
        let res =
            actix_test::call_service(&app, actix_test::TestRequest::get().uri(uri).to_request())
                .await;
        let (status, headers) = (res.status(), res.headers().clone());
        let body = to_bytes(res.into_body()).await.expect("a body");
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn value(headers: &HeaderMap, name: header::HeaderName) -> &str {
        headers
            .get(&name)
            .unwrap_or_else(|| panic!("a {name} header"))
            .to_str()
            .expect("ascii")
    }

    /// The attribute `name` of the page's `<script>` element.
    fn script_attribute<'a>(page: &'a str, name: &str) -> &'a str {
        let script = page.split("<script ").nth(1).expect("a script element");
        script
            .split(&format!("{name}=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("the script has {name}"))
    }

    #[actix_web::test]
    async fn the_docs_page_loads_everything_from_this_server_under_its_own_policy() {
        let (status, headers, page) = get(DOCS_PATH).await;
        assert_eq!(status, StatusCode::OK);
        assert!(value(&headers, header::CONTENT_TYPE).starts_with("text/html"));
        assert_eq!(value(&headers, header::CONTENT_SECURITY_POLICY), DOCS_CSP);
        assert!(page.contains(&format!("spec-url=\"{DOCUMENT_PATH}\"")));
        assert_eq!(script_attribute(&page, "src"), REDOC_SCRIPT_PATH);
        assert_eq!(script_attribute(&page, "integrity"), REDOC_INTEGRITY);
        assert!(REDOC_SCRIPT_PATH.contains(REDOC_VERSION));
        assert!(!page.contains("<script>"), "no inline script");
        // Nothing names another host: every URL in the page is a path of this server.
        for attribute in ["src=\"", "href=\"", "spec-url=\""] {
            for url in page.split(attribute).skip(1) {
                assert!(
                    url.starts_with('/') && !url.starts_with("//"),
                    "{attribute}{url} leaves the server"
                );
            }
        }
        // Without JavaScript the page still leads to the document.
        let noscript = page
            .split("<noscript>")
            .nth(1)
            .and_then(|rest| rest.split("</noscript>").next())
            .expect("a noscript element");
        assert!(noscript.contains(&format!("<a href=\"{DOCUMENT_PATH}\">")));
        // Scripts only from this origin, never inline or evaluated; no other host anywhere.
        let directives: Vec<&str> = DOCS_CSP.split(';').map(str::trim).collect();
        assert!(directives.contains(&"default-src 'none'"));
        assert!(directives.contains(&"script-src 'self'"));
        assert!(!DOCS_CSP.contains("unsafe-eval"));
        assert!(!DOCS_CSP.contains("http"), "no host is allowed: {DOCS_CSP}");
    }

    #[actix_web::test]
    async fn the_redoc_script_is_served_from_the_binary_for_a_year() {
        let (status, headers, _) = get(REDOC_SCRIPT_PATH).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            value(&headers, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            value(&headers, header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        // The embedded file is the pinned release's: the integrity the page asks for.
        let digest = Sha384::digest(REDOC_SCRIPT);
        assert_eq!(
            format!(
                "sha384-{}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            ),
            REDOC_INTEGRITY
        );
        let readme = include_str!("../assets/redoc/README.md");
        assert!(
            readme.contains(&format!("redoc@{REDOC_VERSION}")),
            "assets/redoc/README.md names the version served"
        );
    }

    #[actix_web::test]
    async fn the_root_links_the_docs_the_document_and_the_probes() {
        let (status, headers, page) = get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(value(&headers, header::CONTENT_TYPE).starts_with("text/html"));
        for target in [DOCS_PATH, DOCUMENT_PATH, "/health/live", "/health/ready"] {
            assert!(
                page.contains(&format!("<a href=\"{target}\">")),
                "/ links {target}"
            );
        }
    }
}
