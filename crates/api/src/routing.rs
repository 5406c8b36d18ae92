//! What every route answers beyond its handler, read from the OpenAPI document so that a new
//! route is covered as soon as it is documented (a test holds the document to the route table,
//! less [`OUTSIDE_THE_DOCUMENT`]):
//! `HEAD` wherever `GET` is served, `405` with `Allow` for a method a path does not take, and
//! `400` for a query parameter the operation does not take.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, HttpResponse, ResponseError, web};
use serde_json::Value;

use crate::ApiError;

/// Routes served but left out of the OpenAPI document, with their one method: `/metrics`
/// answers in the OpenMetrics text format, a media type API client generators cannot handle,
/// and Prometheus is its only client.
pub const OUTSIDE_THE_DOCUMENT: [(&str, Method); 1] = [("/metrics", Method::GET)];

/// One documented path: its methods, each with the query parameters it takes.
type Operations = Vec<(Method, BTreeSet<String>)>;

/// The query parameters `method` takes on a path, if the path has that method.
fn takes<'a>(operations: &'a Operations, method: &Method) -> Option<&'a BTreeSet<String>> {
    operations
        .iter()
        .find_map(|(m, query)| (m == method).then_some(query))
}

/// Every documented path template, with its operations.
static DOCUMENTED: LazyLock<BTreeMap<String, Operations>> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(crate::openapi::document_json())
        .expect("the OpenAPI document is JSON");
    let mut paths = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let mut operations = Operations::new();
        for (method, op) in item.as_object().into_iter().flatten() {
            let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            let query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            operations.push((method, query));
        }
        paths.insert(path.clone(), operations);
    }
    for (path, method) in OUTSIDE_THE_DOCUMENT {
        paths.insert(path.to_owned(), vec![(method, BTreeSet::new())]);
    }
    paths
});

/// The documented templates in a radix tree. actix finds a path's template by trying each
/// route's pattern (a regex) in turn, which on this route table cost a tenth of a cached
/// read's server time; this finds the same template (a test holds the two to each other)
/// in a walk down the path.
static TEMPLATES: LazyLock<matchit::Router<&'static str>> = LazyLock::new(|| {
    let mut router = matchit::Router::new();
    for template in DOCUMENTED.keys() {
        router
            .insert(template.as_str(), template.as_str())
            .expect("documented templates do not conflict");
    }
    router
});

/// The documented template `path` matches (`/api/v1/patients/{id}`), if any.
pub(crate) fn documented_template(path: &str) -> Option<&'static str> {
    TEMPLATES.at(path).ok().map(|found| *found.value)
}

/// The operations of the documented path `req` matches, if any.
fn operations(req: &HttpRequest) -> Option<&'static Operations> {
    documented_template(req.path()).and_then(|template| DOCUMENTED.get(template))
}

/// The `Allow` value of a documented path: its methods, and `HEAD` where `GET` is.
fn allow(operations: &Operations) -> String {
    let mut methods: Vec<&str> = operations.iter().map(|(m, _)| m.as_str()).collect();
    if takes(operations, &Method::GET).is_some() {
        methods.push(Method::HEAD.as_str());
    }
    methods.join(", ")
}

/// The query parameters of `query_string` that `takes` does not list; `None` when the string
/// does not parse, which the handler's own extractor then refuses.
fn unknown_parameters(query_string: &str, takes: &BTreeSet<String>) -> Option<BTreeSet<String>> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query_string).ok()?;
    Some(
        pairs
            .into_inner()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| !takes.contains(name))
            .collect(),
    )
}

/// The refusal of unknown query parameters: a `400 invalid_query` naming each.
fn unknown_query(unknown: &BTreeSet<String>, takes: &BTreeSet<String>) -> ApiError {
    // Names are client input: shown shortened.
    let named: Vec<String> = unknown
        .iter()
        .map(|n| format!("`{}`", n.chars().take(64).collect::<String>()))
        .collect();
    let takes = if takes.is_empty() {
        "this operation takes no query parameters".to_owned()
    } else {
        let names: Vec<&str> = takes.iter().map(String::as_str).collect();
        format!("this operation takes: {}", names.join(", "))
    };
    ApiError::Malformed {
        code: crate::error::ErrorCode::InvalidQuery,
        detail: format!(
            "unknown query parameter{} {}; {takes}",
            if named.len() == 1 { "" } else { "s" },
            named.join(", ")
        ),
    }
}

/// Middleware: serves `HEAD` as `GET` without a body, refuses query parameters the operation
/// does not document, and gives every `405` the `Allow` header of the documented methods.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let head = req.method() == Method::HEAD;
    if head {
        // Routed as the GET it mirrors; the status and headers are the GET's.
        req.head_mut().method = Method::GET;
    }
    // Finding the documented path walks the route table, matching each dynamic route's
    // pattern (a regex) against the path: done only for what needs it, a query string to
    // check or a 405 to explain, never for the plain reads that are most requests.
    if !req.query_string().is_empty()
        && let Some(takes) = operations(req.request()).and_then(|ops| takes(ops, req.method()))
        && let Some(unknown) = unknown_parameters(req.query_string(), takes)
        && !unknown.is_empty()
    {
        let answer = unknown_query(&unknown, takes).error_response();
        return Ok(req.into_response(answer));
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    if res.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(ops) = operations(res.request())
        && let Ok(value) = header::HeaderValue::from_str(&allow(ops))
    {
        res.headers_mut().insert(header::ALLOW, value);
    }
    if head && matches!(res.response().body().size(), BodySize::Stream) {
        // A sized body is dropped by the server after its length is sent; a stream (the live
        // board) would be read to its end, which for a stream that never ends is never.
        res = res.map_body(|_, _| BoxBody::new(()));
    }
    Ok(res)
}

/// The default service: `405` with `Allow` when the path is documented for other methods (a
/// route registered with a method guard falls through to here), else the `404` problem.
pub async fn unmatched(req: HttpRequest) -> HttpResponse {
    match operations(&req) {
        Some(ops) if !ops.is_empty() => {
            let mut res = ApiError::MethodNotAllowed.error_response();
            if let Ok(value) = header::HeaderValue::from_str(&allow(ops)) {
                res.headers_mut().insert(header::ALLOW, value);
            }
            res
        }
        _ => ApiError::NoRoute.error_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_get_path_allows_head_and_the_document_lists_the_rest() {
        let login = &DOCUMENTED["/api/v1/auth/login"];
        assert_eq!(allow(login), "POST");
        let clinic = &DOCUMENTED["/api/v1/clinic"];
        assert_eq!(allow(clinic), "GET, PATCH, HEAD");
        assert!(takes(&DOCUMENTED["/metrics"], &Method::GET).is_some());
    }

    #[test]
    fn unknown_parameters_are_named_and_documented_ones_pass() {
        let takes = names(&["page", "page_size"]);
        assert_eq!(
            unknown_parameters("page=1&page_size=2", &takes),
            Some(BTreeSet::new())
        );
        assert_eq!(
            unknown_parameters("page=1&pgae=2&x%20y=&page=3", &takes),
            Some(names(&["pgae", "x y"]))
        );
        assert_eq!(unknown_parameters("", &takes), Some(BTreeSet::new()));
        let ApiError::Malformed { code, detail } = unknown_query(&names(&["pgae"]), &takes) else {
            panic!("a malformed request")
        };
        assert_eq!(code, crate::error::ErrorCode::InvalidQuery);
        assert_eq!(
            detail,
            "unknown query parameter `pgae`; this operation takes: page, page_size"
        );
    }
}
