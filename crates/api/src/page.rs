//! Shared HTTP shapes: page-number and keyset pagination, field selection, ETags and
//! If-Match, partial updates.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use clinicflow_domain::{Page, PageRequest};
use clinicflow_services::FieldErrors;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;

/// `?page=&page_size=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The page, from 1.
    #[param(minimum = 1)]
    page: Option<u64>,
    /// Items per page: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    page_size: Option<u64>,
}

impl PageParams {
    /// The validated page request.
    pub fn request(&self) -> Result<PageRequest, ApiError> {
        PageRequest::parse(self.page, self.page_size).map_err(|e| {
            // One message for either value; a page that passes alone leaves the size to blame.
            let field = if PageRequest::parse(self.page, None).is_ok() {
                "page_size"
            } else {
                "page"
            };
            ApiError::Service(FieldErrors::single(field, e.0))
        })
    }
}

/// Writes an instant exactly as chrono's `Serialize` does (RFC 3339, `Z`, fractional seconds
/// only when there are any), for the DTOs that lists carry by the dozen: chrono hands
/// serde_json a `Display` that writes a character at a time, each escaped on its own, which
/// made formatting the timestamps most of the cost of a cached 30-day slot list.
pub(crate) fn instant<S: serde::Serializer>(
    t: &chrono::DateTime<chrono::Utc>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// `{count, next, previous, results}`.
// `deny_unknown_fields` only closes the schema (serialization ignores it): a closed page and a
// closed keyset page are told apart by their fields, so an empty page is exactly one of the two.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageOut<T> {
    /// Items in the whole list.
    count: u64,
    /// The next page's URL (relative, other parameters kept); `null` on the last page.
    next: Option<String>,
    /// The previous page's URL; `null` on the first page.
    previous: Option<String>,
    /// This page's items.
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

/// `?page=&page_size=` or `?cursor=&limit=`, for the lists that offer both.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page-number paging: the page, from 1.
    #[param(minimum = 1)]
    page: Option<u64>,
    /// Page-number paging: items per page, 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    page_size: Option<u64>,
    /// Keyset paging: the `next_cursor` of the previous page; absent or empty for the first.
    /// Not to be combined with `page` or `page_size`.
    cursor: Option<String>,
    /// Keyset paging: items per page, 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// How a client pages through a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// By page number: `{count, next, previous, results}`.
    Pages(PageRequest),
    /// By keyset: `{results, next_cursor}`; the service validates both values.
    Keyset {
        /// Where the previous page ended; absent or empty for the first page.
        cursor: Option<String>,
        /// Page size.
        limit: Option<u32>,
    },
}

impl ListParams {
    /// The paging asked for: keyset when `cursor` or `limit` is given, else page numbers.
    /// Mixing the two styles is refused, naming the page-number parameter.
    pub fn paging(self) -> Result<Paging, ApiError> {
        if self.cursor.is_none() && self.limit.is_none() {
            return PageParams {
                page: self.page,
                page_size: self.page_size,
            }
            .request()
            .map(Paging::Pages);
        }
        let mut errors = FieldErrors::new();
        for (name, given) in [
            ("page", self.page.is_some()),
            ("page_size", self.page_size.is_some()),
        ] {
            if given {
                errors.add(
                    name,
                    "cannot be combined with cursor or limit; use page and page_size, or cursor and limit",
                );
            }
        }
        errors.into_result()?;
        Ok(Paging::Keyset {
            cursor: self.cursor,
            limit: self.limit,
        })
    }
}

/// `{results, next_cursor}`: one keyset page; `next_cursor` is absent on the last page.
// Closed for the same reason as `PageOut`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CursorPageOut<T> {
    /// This page's items.
    results: Vec<T>,
    /// Pass it back as `cursor`, with the same filters, for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    next_cursor: Option<String>,
}

impl<T> CursorPageOut<T> {
    /// Wraps a keyset page and the cursor of the next one.
    pub fn new<D>(items: Vec<D>, next_cursor: Option<String>, f: impl FnMut(D) -> T) -> Self {
        Self {
            results: items.into_iter().map(f).collect(),
            next_cursor,
        }
    }
}

/// `?fields=a,b`: the top-level fields a client wants of each object.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FieldsParams {
    /// Comma-separated top-level fields to keep of each object (`id` is always kept); absent
    /// or empty keeps them all. An unknown name is a 422 naming `fields`.
    #[param(example = "given_name,family_name")]
    fields: Option<String>,
}

/// A validated field selection: all fields, or the named ones and `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields(Option<Vec<String>>);

impl FieldsParams {
    /// The selection, every name checked against `allowed` (the object's field names); absent
    /// or empty means every field.
    pub fn select(&self, allowed: &[&str]) -> Result<Fields, ApiError> {
        let Some(raw) = self.fields.as_deref() else {
            return Ok(Fields(None));
        };
        let names: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Ok(Fields(None));
        }
        let mut errors = FieldErrors::new();
        for name in names.iter().filter(|n| !allowed.contains(&n.as_str())) {
            // Truncated: the message echoes client input.
            let shown: String = name.chars().take(64).collect();
            errors.add(
                "fields",
                format!("unknown field `{shown}`; allowed: {}", allowed.join(", ")),
            );
        }
        errors.into_result()?;
        Ok(Fields(Some(names)))
    }
}

/// One object of an answer after a field selection: the object itself when every field is
/// kept, so a list of fifty is written straight from its structs, or the kept fields.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Shown<T> {
    /// Every field.
    Whole(T),
    /// The selected fields and `id`.
    Picked(Value),
}

impl Fields {
    /// `body`, keeping only the selected top-level fields (and `id`) of an object.
    pub fn apply<T: Serialize>(&self, body: T) -> Shown<T> {
        let Some(keep) = &self.0 else {
            return Shown::Whole(body);
        };
        let value = serde_json::to_value(body)
            .expect("API DTOs are plain structs with string keys, which always serialize");
        Shown::Picked(match value {
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .filter(|(name, _)| name == "id" || keep.contains(name))
                    .collect(),
            ),
            value => value,
        })
    }

    /// A single read: the whole resource with its version as ETag (and 304 when the client
    /// holds it); a selection goes without the version ETag, because a version's tag must name
    /// one representation, so the body-derived ETag of the HTTP layer covers it instead.
    pub fn read<T: Serialize>(&self, req: &HttpRequest, version: i32, body: &T) -> HttpResponse {
        match self.0 {
            None => versioned(req, version, body),
            Some(_) => HttpResponse::Ok().json(self.apply(body)),
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
    let invalid = || ApiError::Malformed {
        code: crate::error::ErrorCode::InvalidHeader,
        detail: "If-Match must be `*` or an ETag such as \"3\"".into(),
    };
    // Bytes outside visible ASCII are no entity tag, and must not read as an empty list.
    let raw = value.to_str().map_err(|_| invalid())?.trim();
    // An empty list of entity tags is valid syntax (RFC 9110 `#entity-tag`) and names none.
    if raw == "*" || raw.is_empty() {
        return Ok(None);
    }
    // Exactly the syntax the document's pattern states: a strong or weak entity tag of digits.
    raw.strip_prefix("W/")
        .unwrap_or(raw)
        .strip_prefix('"')
        .and_then(|tag| tag.strip_suffix('"'))
        .filter(|version| !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|version| version.parse().ok())
        .map(Some)
        .ok_or_else(invalid)
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
    fresh_version(version, body)
}

/// A 200 with a versioned resource and its `ETag`, whatever the request's preconditions.
pub fn fresh_version<T: Serialize>(version: i32, body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, etag(version)))
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

/// The unit enum variant a path segment names by its serde name, such as the `{action}` of a
/// status move; `None` for any other word.
pub fn path_action<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    let segment = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(segment);
    T::deserialize(segment).ok()
}

/// Deserializes a field that may be absent (`None`), null (`Some(None)`) or set (`Some(Some(v))`).
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[cfg(test)]
mod tests {
    use clinicflow_services::ServiceError;
    use serde_json::json;

    use super::*;

    fn field_errors(err: ApiError) -> Vec<String> {
        match err {
            ApiError::Service(ServiceError::Validation(fields)) => {
                fields.fields().keys().cloned().collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn params(
        page: Option<u64>,
        page_size: Option<u64>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> ListParams {
        ListParams {
            page,
            page_size,
            cursor: cursor.map(str::to_owned),
            limit,
        }
    }

    #[test]
    fn a_cursor_or_limit_chooses_keyset_paging_and_page_numbers_stay_the_default() {
        assert_eq!(
            params(None, None, None, None).paging().expect("valid"),
            Paging::Pages(PageRequest::default())
        );
        assert_eq!(
            params(None, None, Some(""), None).paging().expect("valid"),
            Paging::Keyset {
                cursor: Some(String::new()),
                limit: None
            }
        );
        assert_eq!(
            params(None, None, None, Some(10)).paging().expect("valid"),
            Paging::Keyset {
                cursor: None,
                limit: Some(10)
            }
        );
    }

    #[test]
    fn mixing_page_numbers_with_a_cursor_names_the_page_parameters() {
        let err = params(Some(2), None, Some("abc"), None)
            .paging()
            .expect_err("mixed");
        assert_eq!(field_errors(err), ["page"]);
        let err = params(Some(2), Some(10), None, Some(10))
            .paging()
            .expect_err("mixed");
        assert_eq!(field_errors(err), ["page", "page_size"]);
    }

    #[test]
    fn if_match_takes_exactly_the_documented_syntax() {
        let read = |value: &str| {
            let req = actix_web::test::TestRequest::default()
                .insert_header((header::IF_MATCH, value))
                .to_http_request();
            if_match(&req)
        };
        let obs_text = actix_web::test::TestRequest::default()
            .insert_header((
                header::IF_MATCH,
                header::HeaderValue::from_bytes(b"\xc2\x84").expect("obs-text is a value"),
            ))
            .to_http_request();
        assert!(if_match(&obs_text).is_err(), "not visible ASCII");
        assert_eq!(read("\"3\"").expect("strong"), Some(3));
        assert_eq!(read("W/\"12\"").expect("weak"), Some(12));
        assert_eq!(read("*").expect("any"), None);
        assert_eq!(read("").expect("an empty list"), None);
        for bad in [
            "3",
            "\"3",
            "W/3",
            "\"\"",
            "\"-1\"",
            "\"3\", \"4\"",
            "\"99999999999\"",
        ] {
            assert!(
                matches!(
                    read(bad),
                    Err(ApiError::Malformed {
                        code: crate::error::ErrorCode::InvalidHeader,
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let pattern = crate::openapi::constraints::IF_MATCH_PATTERN;
        assert_eq!(
            pattern, "^(|\\*|(W/)?\"[0-9]+\")$",
            "the pattern states this syntax"
        );
    }

    #[test]
    fn instants_are_written_exactly_as_chrono_writes_them() {
        #[derive(Serialize)]
        struct Ours(#[serde(serialize_with = "instant")] chrono::DateTime<chrono::Utc>);
        for micros in [
            0,
            1_764_576_000_000_000,
            1_764_576_000_123_000,
            1_764_576_000_123_456,
            -86_400_000_001,
        ] {
            let t = chrono::DateTime::from_timestamp_micros(micros).expect("valid");
            let chrono = serde_json::to_string(&t).expect("serializes");
            assert_eq!(serde_json::to_string(&Ours(t)).expect("serializes"), chrono);
        }
        let nanos = chrono::DateTime::from_timestamp(1_764_576_000, 7).expect("valid");
        assert_eq!(
            serde_json::to_string(&Ours(nanos)).expect("serializes"),
            serde_json::to_string(&nanos).expect("serializes")
        );
    }

    #[test]
    fn a_selection_keeps_the_named_fields_and_the_id() {
        let body = json!({"id": "1", "a": 1, "b": 2, "c": 3});
        let select = |raw: Option<&str>| {
            FieldsParams {
                fields: raw.map(str::to_owned),
            }
            .select(&["id", "a", "b", "c"])
        };
        let shown = |raw: Option<&str>| {
            let fields = select(raw).expect("valid");
            serde_json::to_value(fields.apply(&body)).expect("serializes")
        };
        assert_eq!(shown(None), body);
        assert_eq!(shown(Some(" , ")), body);
        assert_eq!(shown(Some("c, a")), json!({"id": "1", "a": 1, "c": 3}));
        assert_eq!(shown(Some("id")), json!({"id": "1"}));
        let err = select(Some("a,secret")).expect_err("unknown");
        let ApiError::Service(ServiceError::Validation(fields)) = err else {
            panic!("expected a validation error, got {err:?}")
        };
        assert_eq!(
            fields.fields()["fields"],
            ["unknown field `secret`; allowed: id, a, b, c"]
        );
    }
}
