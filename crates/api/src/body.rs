//! JSON request bodies: [`Json`] for the routes that need one, [`OptionalJson`] for the routes
//! whose body may be left out.
//!
//! Both parse through [`from_slice`], which differs from plain serde in two ways. An object is
//! only ever read from a JSON object: serde's derive would also fill a struct from an array by
//! position, so `["a@b", "pw", null]` logged in and `[null, null]` patched a user. And the
//! messages of a refusal name JSON shapes, never a Rust type (`expected struct PatientIn with 8
//! elements`, `expected u32`), because they are part of the answer a client reads.
//!
//! actix's `Option<Json<T>>` turns every failure into `None`, so a body that is malformed, of
//! the wrong type or with a misspelt field would be dropped silently and the move made anyway.
//! [`OptionalJson`] answers `None` only for an absent (empty) body or a literal `null`, and
//! refuses any other unreadable one exactly as [`Json`] does.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected,
    Visitor,
};

use crate::ApiError;

/// A JSON object body, parsed by [`from_slice`]; a missing or unreadable one is refused.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The parsed body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A JSON body that may be absent: `None` for an empty body or `null`, else the parsed value.
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

/// The body's bytes; `PayloadConfig`'s limit applies.
async fn read(
    bytes: impl Future<Output = Result<web::Bytes, actix_web::Error>>,
) -> Result<web::Bytes, ApiError> {
    bytes.await.map_err(|e| {
        if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::Malformed {
                code: crate::error::ErrorCode::MalformedBody,
                detail: format!("the body could not be read: {e}"),
            }
        }
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = declares_json(req);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !json {
                return Err(ApiError::UnsupportedMediaType);
            }
            from_slice(&read(bytes).await?).map(Self)
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = declares_json(req);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = read(bytes).await?;
            if bytes.is_empty() {
                return Ok(Self(None));
            }
            if !json {
                return Err(ApiError::UnsupportedMediaType);
            }
            // `Option` reads a literal `null` as no body, which is how generated clients send
            // an optional body they were given none for.
            from_slice::<Option<T>>(&bytes).map(Self)
        })
    }
}

/// Parses a JSON body: objects only from JSON objects, and messages without Rust type names.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    T::deserialize(Strict(&mut json))
        .and_then(|value| json.end().map(|()| value))
        .map_err(|e| ApiError::Malformed {
            code: crate::error::ErrorCode::MalformedJson,
            detail: format!("the body is not valid: {}", plain(&e.to_string())),
        })
}

/// Rewrites the Rust type names serde puts into its messages as the JSON they stand for.
fn plain(message: &str) -> String {
    const NAMES: [(&str, &str); 12] = [
        ("u8", "an integer from 0 to 255"),
        ("u16", "an integer from 0 to 65535"),
        ("u32", "an integer from 0 to 4294967295"),
        ("u64", "an integer from 0 to 18446744073709551615"),
        ("usize", "an integer from 0 to 18446744073709551615"),
        ("i8", "an integer from -128 to 127"),
        ("i16", "an integer from -32768 to 32767"),
        ("i32", "an integer from -2147483648 to 2147483647"),
        ("i64", "an integer"),
        ("f32", "a number"),
        ("f64", "a number"),
        ("char", "a one-character string"),
    ];
    let mut out = message
        .replace("invalid type: sequence", "invalid type: array")
        .replace("invalid type: map", "invalid type: object")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected an object");
    for (name, json) in NAMES {
        for end in [" ", ",", ""] {
            let from = format!("expected {name}{end}");
            if end.is_empty() {
                if out.ends_with(&from) {
                    out.truncate(out.len() - from.len());
                    out.push_str(&format!("expected {json}"));
                }
            } else {
                out = out.replace(&from, &format!("expected {json}{end}"));
            }
        }
    }
    // What the derive names after `expected`: `struct X`, `tuple struct X`, `enum X`,
    // `struct variant X::Y`, each up to the next space or comma.
    for (kind, json) in [
        ("struct variant ", "an object"),
        ("tuple struct ", "an array"),
        ("struct ", "an object"),
        ("enum ", "one of the documented values"),
    ] {
        let pattern = format!("expected {kind}");
        while let Some(at) = out.find(&pattern) {
            let name_start = at + pattern.len();
            let name_end = out[name_start..]
                .find([' ', ','])
                .map_or(out.len(), |i| name_start + i);
            let mut end = name_end;
            // "with 8 elements" is how many fields the struct has: the position fill, gone.
            if let Some(rest) = out[end..].strip_prefix(" with ")
                && let Some(i) = rest.find(" element")
            {
                let tail = &rest[i + " element".len()..];
                end += " with ".len() + i + " element".len() + usize::from(tail.starts_with('s'));
            }
            out.replace_range(at..end, &format!("expected {json}"));
        }
    }
    out
}

/// A deserializer that reads structs from JSON objects only, at every depth.
///
/// It forwards to the wrapped deserializer, asking for a map where a struct is wanted, so an
/// array is refused; and it wraps what it hands to visitors (the content of an `Option`, the
/// elements of a sequence, the values of a map) so that nested structs are held to the same.
struct Strict<D>(D);

/// A visitor that forwards to the wrapped one, wrapping nested deserializers in [`Strict`].
/// `object` marks a struct's visitor: it says it expects an object, and refuses a sequence.
struct StrictVisitor<V> {
    inner: V,
    object: bool,
}

impl<V> StrictVisitor<V> {
    fn new(inner: V) -> Self {
        Self {
            inner,
            object: false,
        }
    }
}

macro_rules! forward {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(StrictVisitor::new(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_unit_struct(name, StrictVisitor::new(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_newtype_struct(name, StrictVisitor::new(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, StrictVisitor::new(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_tuple_struct(name, len, StrictVisitor::new(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        // A map, not a struct: serde_json reads a struct from an array too, by position.
        self.0.deserialize_map(StrictVisitor {
            inner: visitor,
            object: true,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        // The API's enums are plain strings; their variants carry nothing to hold strict.
        self.0.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for StrictVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.object {
            f.write_str("an object")
        } else {
            self.inner.expecting(f)
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // JSON has numbers, not integers and floats: `5.0` is the integer 5 (JSON Schema
        // agrees), which serde would refuse for an integer field.
        if v.fract() == 0.0 && v >= 0.0 && v < u64::MAX as f64 {
            self.inner.visit_u64(v as u64)
        } else if v.fract() == 0.0 && v < 0.0 && v >= i64::MIN as f64 {
            self.inner.visit_i64(v as i64)
        } else {
            self.inner.visit_f64(v)
        }
    }

    visit! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64)
        visit_i128(i128) visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64)
        visit_u128(u128) visit_f32(f32) visit_char(char) visit_str(&str)
        visit_borrowed_str(&'de str) visit_string(String) visit_bytes(&[u8])
        visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Strict(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Strict(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if self.object {
            return Err(de::Error::invalid_type(Unexpected::Seq, &self));
        }
        self.inner.visit_seq(StrictSeq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(StrictMap(map))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(data)
    }
}

/// A seed whose deserializer is wrapped in [`Strict`].
struct StrictSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Strict(d))
    }
}

/// A sequence whose elements are read through [`Strict`].
struct StrictSeq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for StrictSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// A map whose values are read through [`Strict`] (keys are strings in JSON).
struct StrictMap<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StrictMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(seed)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
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

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Contact {
        name: String,
        minutes: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct PersonIn {
        given_name: String,
        contact: Option<Contact>,
        #[serde(default)]
        others: Vec<Contact>,
    }

    async fn extract(req: TestRequest) -> Result<Option<Reason>, ApiError> {
        let (req, mut payload) = req.to_http_parts();
        OptionalJson::<Reason>::from_request(&req, &mut payload)
            .await
            .map(|b| b.0)
    }

    fn refusal<T: DeserializeOwned + fmt::Debug>(body: &str) -> String {
        match from_slice::<T>(body.as_bytes()) {
            Err(ApiError::Malformed {
                code: crate::error::ErrorCode::MalformedJson,
                detail,
            }) => detail,
            other => panic!("{body} should be refused as malformed_json: {other:?}"),
        }
    }

    #[actix_web::test]
    async fn an_empty_body_or_null_is_none_and_a_json_one_is_parsed() {
        assert_eq!(extract(TestRequest::post()).await.expect("empty"), None);
        for null in ["null", " null\n"] {
            let req = TestRequest::post()
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(null);
            assert_eq!(extract(req).await.expect("null"), None, "{null:?}");
        }
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
        for body in [
            r#"{"reason":"#,
            r#"{"reasn":"ill"}"#,
            r#"{"reason":1}"#,
            r#"["ill"]"#,
            r#"[null]"#,
            r#"null null"#,
        ] {
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

    #[actix_web::test]
    async fn a_required_body_refuses_no_body_null_and_other_types() {
        for (content_type, body) in [
            (Some("application/json"), ""),
            (Some("application/json"), "null"),
            (Some("application/json"), "[]"),
            (None, r#"{"reason":"ill"}"#),
        ] {
            let mut req = TestRequest::post().set_payload(body);
            if let Some(ct) = content_type {
                req = req.insert_header((header::CONTENT_TYPE, ct));
            }
            let (req, mut payload) = req.to_http_parts();
            let answer = Json::<Reason>::from_request(&req, &mut payload).await;
            match content_type {
                None => assert!(matches!(answer, Err(ApiError::UnsupportedMediaType))),
                Some(_) => assert!(
                    matches!(
                        answer,
                        Err(ApiError::Malformed {
                            code: crate::error::ErrorCode::MalformedJson,
                            ..
                        })
                    ),
                    "{body:?}: {answer:?}"
                ),
            }
        }
    }

    #[test]
    fn objects_are_read_from_json_objects_only_at_every_depth() {
        assert_eq!(
            from_slice::<PersonIn>(
                br#"{"given_name": "Ada", "contact": {"name": "C", "minutes": 5},
                    "others": [{"name": "D", "minutes": null}]}"#
            )
            .expect("objects"),
            PersonIn {
                given_name: "Ada".into(),
                contact: Some(Contact {
                    name: "C".into(),
                    minutes: Some(5)
                }),
                others: vec![Contact {
                    name: "D".into(),
                    minutes: None
                }],
            }
        );
        for body in [
            r#"["Ada", null, []]"#,
            r#"{"given_name": "Ada", "contact": ["C", 5]}"#,
            r#"{"given_name": "Ada", "others": [["D", 1]]}"#,
        ] {
            let detail = refusal::<PersonIn>(body);
            assert!(detail.contains("expected an object"), "{body}: {detail}");
        }
    }

    #[test]
    fn a_whole_number_written_with_a_fraction_is_an_integer() {
        let read = |body: &str| from_slice::<Contact>(body.as_bytes()).map(|c| c.minutes);
        assert_eq!(
            read(r#"{"name": "C", "minutes": 5.0}"#).expect("5.0"),
            Some(5)
        );
        assert_eq!(
            read(r#"{"name": "C", "minutes": 5e1}"#).expect("5e1"),
            Some(50)
        );
        for body in [
            r#"{"name": "C", "minutes": 5.5}"#,
            r#"{"name": "C", "minutes": -1.0}"#,
            r#"{"name": "C", "minutes": 1e300}"#,
        ] {
            assert!(read(body).is_err(), "{body}");
        }
    }

    #[test]
    fn refusals_name_json_shapes_not_rust_types() {
        for (body, shape) in [
            (r#"["Ada"]"#, "expected an object"),
            (r#"{"given_name": 1}"#, "expected a string"),
            (
                r#"{"given_name": "A", "contact": {"name": "C", "minutes": -1}}"#,
                "expected an integer from 0 to 4294967295",
            ),
            (
                r#"{"given_name": "A", "contact": {"name": "C", "minutes": "5"}}"#,
                "expected an integer from 0 to 4294967295",
            ),
            (r#"{"given_name": "A", "contact": 3}"#, "expected an object"),
            (r#"{"given_name": "A", "others": {}}"#, "expected an array"),
        ] {
            let detail = refusal::<PersonIn>(body);
            assert!(detail.contains(shape), "{body}: {detail}");
            for rust in [
                "PersonIn", "Contact", "struct", "u32", "sequence", "elements",
            ] {
                assert!(!detail.contains(rust), "{body}: {detail} names {rust}");
            }
        }
    }

    #[test]
    fn type_names_in_serde_messages_become_json_words() {
        assert_eq!(
            plain("invalid type: sequence, expected struct PatientIn with 8 elements at line 1"),
            "invalid type: array, expected an object at line 1"
        );
        assert_eq!(
            plain("invalid value: integer `-1`, expected u32 at line 1 column 3"),
            "invalid value: integer `-1`, expected an integer from 0 to 4294967295 at line 1 column 3"
        );
        assert_eq!(
            plain("invalid type: integer `1`, expected enum Urgency"),
            "invalid type: integer `1`, expected one of the documented values"
        );
        assert_eq!(
            plain("invalid type: map, expected a sequence"),
            "invalid type: object, expected an array"
        );
    }
}
