//! How responses may be cached and compressed: `Cache-Control` for every answer that does not
//! set its own, an ETag (and 304 to `If-None-Match`) for every read without one, and
//! compression only where it pays.

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use actix_web::{HttpRequest, HttpResponse};

use crate::AppState;

/// Route templates of reads that hold no patient data and change rarely: browsers may keep
/// them for a minute. Slots are not among them; they change with every booking.
const SHAREABLE_READS: [&str; 3] = [
    "/api/v1/practitioners",
    "/api/v1/practitioners/{id}",
    "/api/v1/practitioners/{id}/schedule",
];

/// The `Cache-Control` an answer gets unless its handler chose one.
fn cache_control(
    method: &Method,
    route: Option<&str>,
    status: u16,
    has_etag: bool,
) -> &'static str {
    let read = method == Method::GET && (200..300).contains(&status);
    match route {
        Some(r) if read && SHAREABLE_READS.contains(&r) => "private, max-age=60",
        // A read with an ETag may be kept by the client, which asks again with If-None-Match
        // each time and usually gets a 304.
        _ if read && has_etag => "private, no-cache",
        // Patient data, tokens and errors are never stored anywhere.
        _ => "no-store",
    }
}

/// Sets `Cache-Control`, and keeps bodies below the configured size (and streams, such as the
/// live board, whose events must not wait in a compressor's buffer) from being compressed.
pub async fn headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let min_bytes = req
        .app_data::<web::Data<AppState>>()
        .map_or(1024, |s| s.limits.compress_min_bytes);
    let mut res = with_etag(next.call(req).await?.map_into_boxed_body());
    let route = crate::routing::documented_template(res.request().path());
    let method = res.request().method().clone();
    let status = res.status().as_u16();
    let headers = res.headers();
    if !headers.contains_key(header::CACHE_CONTROL) {
        let value = cache_control(&method, route, status, headers.contains_key(header::ETAG));
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    let small = match res.response().body().size() {
        BodySize::Sized(n) => n < min_bytes as u64,
        BodySize::None => true,
        BodySize::Stream => true,
    };
    if small && !res.headers().contains_key(header::CONTENT_ENCODING) {
        // The compressor leaves alone what already names its encoding.
        res.headers_mut().insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    Ok(res)
}

/// Gives a successful read without an ETag one derived from its body (lists, slots, the
/// board), and answers 304 when the client already holds that body. The handler still runs;
/// what is saved is the transfer, which on a clinic's network is what costs.
fn with_etag(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    if res.request().method() != Method::GET
        || res.status().as_u16() != 200
        || res.headers().contains_key(header::ETAG)
        || !matches!(res.response().body().size(), BodySize::Sized(_))
    {
        return res;
    }
    let (req, response) = res.into_parts();
    let (head, body) = response.into_parts();
    let bytes = match body.try_into_bytes() {
        Ok(bytes) => bytes,
        Err(body) => return ServiceResponse::new(req, head.set_body(body)),
    };
    let tag = etag_of(&bytes);
    let mut response = if holds(&req, &tag) {
        not_modified(head.headers())
    } else {
        head.set_body(BoxBody::new(bytes))
    };
    if let Ok(v) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    ServiceResponse::new(req, response)
}

/// The weak ETag of a body: a 128-bit digest of its bytes. A weak validator only has to tell
/// two bodies of one URL apart, and its client already holds the body, so no cryptographic
/// hash is needed; SHA-256 was a twentieth of the server's time on a page of fifty.
fn etag_of(body: &[u8]) -> String {
    format!("W/\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(body))
}

/// Whether the client already holds the body tagged `tag` (`If-None-Match`).
fn holds(req: &HttpRequest, tag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
}

/// A `304` keeping the caching headers of the answer it stands for.
fn not_modified(headers: &header::HeaderMap) -> HttpResponse {
    let mut not_modified = HttpResponse::NotModified().finish();
    for name in [header::CACHE_CONTROL, header::VARY] {
        if let Some(v) = headers.get(&name) {
            not_modified.headers_mut().insert(name, v.clone());
        }
    }
    not_modified
}

/// A JSON answer rendered once, with the ETag [`headers`] would give it: kept by a cache
/// beside the value it renders, so serving it again is a copy of ready bytes, with no
/// serializing and no hashing.
#[derive(Debug, Clone)]
pub struct ReadyJson {
    body: web::Bytes,
    etag: HeaderValue,
}

impl ReadyJson {
    /// Renders `value` as `HttpResponse::json` would, and tags it.
    pub fn render(value: &impl serde::Serialize) -> Self {
        let body = web::Bytes::from(
            serde_json::to_vec(value)
                .expect("the API's answers serialize: their maps all have string keys"),
        );
        let etag = HeaderValue::from_str(&etag_of(&body))
            .expect("an ETag is a quoted hex digest, a valid header value");
        Self { body, etag }
    }

    /// `200` with the body and its ETag, or `304` when the client holds it.
    pub fn respond(&self, req: &HttpRequest, cache_control: &'static str) -> HttpResponse {
        let mut response = if self.etag.to_str().is_ok_and(|tag| holds(req, tag)) {
            let mut headers = header::HeaderMap::new();
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            );
            not_modified(&headers)
        } else {
            HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, cache_control))
                .content_type(header::ContentType::json())
                .body(self.body.clone())
        };
        response
            .headers_mut()
            .insert(header::ETAG, self.etag.clone());
        response
    }
}

/// The first 16 bytes of a digest in hex: plenty to tell two bodies apart.
pub(crate) fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directory_reads_are_kept_and_patient_data_never() {
        let get = Method::GET;
        assert_eq!(
            cache_control(&get, Some("/api/v1/practitioners/{id}"), 200, true),
            "private, max-age=60"
        );
        assert_eq!(
            cache_control(&get, Some("/api/v1/patients/{id}"), 200, true),
            "private, no-cache"
        );
        assert_eq!(
            cache_control(&get, Some("/api/v1/patients"), 200, false),
            "no-store"
        );
        assert_eq!(
            cache_control(&get, Some("/api/v1/practitioners/{id}/slots"), 200, false),
            "no-store"
        );
        assert_eq!(
            cache_control(&get, Some("/api/v1/practitioners/{id}"), 404, false),
            "no-store"
        );
        assert_eq!(
            cache_control(&Method::POST, Some("/api/v1/auth/login"), 200, false),
            "no-store"
        );
    }
}
