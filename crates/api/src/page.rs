//! Shared HTTP shapes: page-number pagination, ETags and If-Match, partial updates.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use clinicflow_domain::{Page, PageRequest};
use clinicflow_services::FieldErrors;
use serde::{Deserialize, Deserializer, Serialize};

use crate::ApiError;

/// `?page=&page_size=`.
#[derive(Debug, Deserialize)]
pub struct PageParams {
    page: Option<u64>,
    page_size: Option<u64>,
}

impl PageParams {
    /// The validated page request.
    pub fn request(&self) -> Result<PageRequest, ApiError> {
        PageRequest::parse(self.page, self.page_size)
            .map_err(|e| ApiError::Service(FieldErrors::single("page", e.0)))
    }
}

/// `{count, next, previous, results}`.
#[derive(Debug, Serialize)]
pub struct PageOut<T> {
    count: u64,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<T>,
}

/// The request's own URL with `page` set to `page`, other parameters kept.
fn page_url(req: &HttpRequest, page: u32) -> String {
    let mut params: Vec<&str> = req
        .query_string()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("page="))
        .collect();
    let page = format!("page={page}");
    params.push(&page);
    format!("{}?{}", req.path(), params.join("&"))
}

impl<T> PageOut<T> {
    /// Wraps a page with links to its neighbours.
    pub fn new<D>(req: &HttpRequest, page: Page<D>, f: impl FnMut(D) -> T) -> Self {
        let next = page
            .has_next()
            .then(|| page_url(req, page.request.page() + 1));
        let previous = page
            .has_previous()
            .then(|| page_url(req, page.request.page() - 1));
        Self {
            count: page.total,
            next,
            previous,
            results: page.items.into_iter().map(f).collect(),
        }
    }
}

/// The ETag of a versioned resource.
pub fn etag(version: i32) -> String {
    format!("\"{version}\"")
}

/// The version named by `If-Match`, if the header is present; `*` means any.
pub fn if_match(req: &HttpRequest) -> Result<Option<i32>, ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = value.to_str().unwrap_or_default().trim();
    if raw == "*" {
        return Ok(None);
    }
    raw.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| ApiError::Malformed {
            code: "invalid_header",
            detail: "If-Match must be an ETag such as \"3\"".into(),
        })
}

/// A 200 with the resource's ETag, or 304 when the client's `If-None-Match` already holds it.
pub fn versioned<T: Serialize>(req: &HttpRequest, version: i32, body: &T) -> HttpResponse {
    let tag = etag(version);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == tag || t.trim() == "*")
        });
    if fresh {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::ETAG, tag))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .json(body)
}

/// A 201 for a new versioned resource, with its `Location` and `ETag`.
pub fn created<T: Serialize>(location: String, version: i32, body: &T) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .insert_header((header::ETAG, etag(version)))
        .json(body)
}

/// Deserializes a field that may be absent (`None`), null (`Some(None)`) or set (`Some(Some(v))`).
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}
