//! Optional JSON request bodies, for the routes whose body may be left out.
//!
//! actix's `Option<Json<T>>` turns every failure into `None`, so a body that is malformed, of
//! the wrong type or with a misspelt field would be dropped silently and the move made anyway.
//! [`OptionalJson`] answers `None` only for an absent (empty) body and refuses any other
//! unreadable one exactly as `Json<T>` does.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON body that may be absent: `None` for an empty body, else the parsed value.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

/// Whether the request says its body is JSON (`application/json` or a `+json` type).
fn declares_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|v| v == "application/json" || v.ends_with("+json"))
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = declares_json(req);
        // Bytes honours the configured `PayloadConfig` limit.
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::Malformed {
                        code: crate::error::ErrorCode::MalformedBody,
                        detail: format!("the body could not be read: {e}"),
                    }
                }
            })?;
            if bytes.is_empty() {
                return Ok(Self(None));
            }
            if !json {
                return Err(ApiError::UnsupportedMediaType);
            }
            serde_json::from_slice(&bytes)
                .map(|value| Self(Some(value)))
                .map_err(|e| ApiError::Malformed {
                    code: crate::error::ErrorCode::MalformedJson,
                    detail: format!("the body is not valid: {e}"),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Reason {
        reason: Option<String>,
    }

    async fn extract(req: TestRequest) -> Result<Option<Reason>, ApiError> {
        let (req, mut payload) = req.to_http_parts();
        OptionalJson::<Reason>::from_request(&req, &mut payload)
            .await
            .map(|b| b.0)
    }

    #[actix_web::test]
    async fn an_empty_body_is_none_and_a_json_one_is_parsed() {
        assert_eq!(extract(TestRequest::post()).await.expect("empty"), None);
        let json = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"))
            .set_payload(r#"{"reason":"ill"}"#);
        assert_eq!(
            extract(json).await.expect("json"),
            Some(Reason {
                reason: Some("ill".into())
            })
        );
    }

    #[actix_web::test]
    async fn a_body_that_is_not_json_of_the_shape_is_refused() {
        let plain = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, "text/plain"))
            .set_payload(r#"{"reason":"ill"}"#);
        assert!(matches!(
            extract(plain).await,
            Err(ApiError::UnsupportedMediaType)
        ));
        for body in [r#"{"reason":"#, r#"{"reasn":"ill"}"#, r#"{"reason":1}"#] {
            let req = TestRequest::post()
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(body);
            assert!(
                matches!(
                    extract(req).await,
                    Err(ApiError::Malformed {
                        code: crate::error::ErrorCode::MalformedJson,
                        ..
                    })
                ),
                "{body}"
            );
        }
    }
}
