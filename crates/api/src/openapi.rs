//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]`
//! attributes and the DTOs' schemas, served at `/api/v1/openapi.json` and browsable at `/docs`.
//!
//! Every error answer is the [`Problem`] schema as `application/problem+json`; the reusable
//! error responses live in `components.responses`, and the sets below (`problems::Common`, …)
//! attach them to operations.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::openapi::schema::{AnyOfBuilder, ArrayItems, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, OpenApi as Document, Ref, RefOr, Required};
use utoipa::{Modify, OpenApi};

use crate::error::Problem;
use crate::{
    appointment, audit, auth, clinic, dashboard, docs, encounter, health, outbox, patient,
    practitioner, queue, user,
};

pub mod constraints;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";

/// The name of the bearer security scheme operations refer to.
pub const BEARER: &str = "bearer";

/// The API's OpenAPI description; [`document_json`] serves it.
#[derive(OpenApi)]
#[openapi(
    version = "3.1.0",
    info(
        title = "clinicflow",
        version = env!("CARGO_PKG_VERSION"),
        description = "The clinicflow HTTP API: patients, practitioners and schedules, \
            conflict-free booking, the walk-in queue and its live board, visit records, the \
            clinic's outbox and audit log. Every route under `/api/v1` except login, refresh and \
            logout needs `Authorization: Bearer <access_token>` and is confined to the token's \
            clinic. Errors are RFC 9457 problems (`application/problem+json`, schema `Problem`) \
            with a stable `code`. docs/api.md has the rules behind each route."
    ),
    servers((url = "/", description = "The server that serves this document")),
    paths(
        health::live,
        health::ready,
        document,
        docs::page,
        docs::redoc_script,
        docs::index,
        auth::login,
        auth::refresh,
        auth::logout,
        auth::change_password,
        auth::me,
        clinic::get,
        clinic::update,
        clinic::get_webhook,
        clinic::set_webhook,
        clinic::remove_webhook,
        dashboard::stats,
        user::create,
        user::list,
        user::get,
        user::update,
        user::unlock,
        queue::board,
        queue::stream,
        queue::stats,
        queue::call_next,
        queue::join,
        queue::act,
        encounter::get,
        encounter::update,
        encounter::for_patient,
        outbox::list,
        outbox::retry,
        audit::list,
        patient::create,
        patient::list,
        patient::get,
        patient::update,
        patient::delete,
        practitioner::create,
        practitioner::list,
        practitioner::get,
        practitioner::update,
        practitioner::put_schedule,
        practitioner::get_schedule,
        practitioner::deactivate,
        practitioner::reactivate,
        practitioner::add_time_off,
        practitioner::list_time_off,
        practitioner::remove_time_off,
        practitioner::add_extra_hours,
        practitioner::list_extra_hours,
        practitioner::remove_extra_hours,
        practitioner::slots,
        practitioner::first_slots,
        appointment::book,
        appointment::list,
        appointment::get,
        appointment::reschedule,
        appointment::act,
    ),
    // Schemas that only path parameters refer to are not collected from the paths.
    components(schemas(Problem, appointment::StatusMove, queue::EntryAction)),
    modifiers(&SharedComponents, &FieldSelections, &OptionalBodies),
    tags(
        (name = "auth", description = "Logging in, token refresh and rotation, sessions."),
        (name = "clinic", description = "The caller's clinic: settings and webhook (admins change them)."),
        (name = "dashboard", description = "The clinic's day at a glance."),
        (name = "user", description = "Staff accounts (admins)."),
        (name = "patient", description = "Registration, reads, partial updates, soft deletion and search."),
        (name = "practitioner", description = "Practitioners, weekly schedules, time off and free slots."),
        (name = "appointment", description = "Conflict-free booking, status moves and reschedules."),
        (name = "queue", description = "The walk-in queue, its live board (Server-Sent Events) and statistics."),
        (name = "encounter", description = "Visit records."),
        (name = "outbox", description = "Messages for the clinic's webhook (admins)."),
        (name = "audit", description = "The append-only log of patient-data access (admins)."),
        (name = "health", description = "Liveness and readiness probes."),
        (name = "openapi", description = "This document and its browsable form."),
    )
)]
pub struct ApiDoc;

/// Adds what the derive cannot express: the bearer scheme and the reusable error responses.
struct SharedComponents;

impl Modify for SharedComponents {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Components::new);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /api/v1/auth/login` or `/auth/refresh` \
                         (HS256 JWT, 15 minutes).",
                    ))
                    .build(),
            ),
        );
        for problem in problems::ALL {
            components
                .responses
                .insert(problem.name.to_owned(), problem.response().into());
        }
    }
}

/// The objects `?fields=` may cut down to the fields named and `id`.
const SELECTABLE: [&str; 2] = ["PatientOut", "AppointmentOut"];

/// Describes what `?fields=` answers, which the derive cannot: for each [`SELECTABLE`] object
/// `X`, a schema `XSelection` (the same properties, only `id` required), and every answer of a
/// read that takes `fields` (the single read, and the items of its list pages) is either.
struct FieldSelections;

impl Modify for FieldSelections {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Components::new);
        let mut either_of = BTreeMap::new();
        for name in SELECTABLE {
            let Some(RefOr::T(Schema::Object(full))) = components.schemas.get(name) else {
                continue;
            };
            let mut selection = full.clone();
            selection.required = vec!["id".to_owned()];
            selection.description = Some(format!(
                "{} With `fields`: only the fields named, and `id`.",
                full.description.as_deref().unwrap_or_default()
            ));
            let selection_name = format!("{name}Selection");
            components
                .schemas
                .insert(selection_name.clone(), RefOr::T(Schema::Object(selection)));
            let either: RefOr<Schema> = AnyOfBuilder::new()
                .item(Ref::from_schema_name(name))
                .item(Ref::from_schema_name(selection_name))
                .into();
            for page in [format!("PageOut_{name}"), format!("CursorPageOut_{name}")] {
                if let Some(RefOr::T(Schema::Object(page))) = components.schemas.get_mut(&page)
                    && let Some(RefOr::T(Schema::Array(results))) =
                        page.properties.get_mut("results")
                {
                    results.items = ArrayItems::RefOrSchema(Box::new(either.clone()));
                }
            }
            either_of.insert(Ref::from_schema_name(name).ref_location, either);
        }
        let single_reads = openapi
            .paths
            .paths
            .values_mut()
            .filter_map(|item| item.get.as_mut())
            .filter(|op| {
                op.parameters.iter().flatten().any(|p| match p {
                    RefOr::T(p) => p.name == "fields",
                    RefOr::Ref(_) => false,
                })
            });
        for op in single_reads {
            let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") else {
                continue;
            };
            for content in ok.content.values_mut() {
                if let RefOr::T(content) = content
                    && let Some(RefOr::Ref(schema)) = &content.schema
                    && let Some(either) = either_of.get(&schema.ref_location)
                {
                    content.schema = Some(either.clone());
                }
            }
        }
    }
}

/// Describes a body a handler reads as [`crate::body::OptionalJson`] (declared
/// `request_body(content = Option<X>)`) as generators understand it: `required: false` and a
/// plain `$ref` to `X`. utoipa writes `oneOf: [X, null]` instead, which tells a client to send
/// `null`, and makes generated clients send an unset value they cannot serialize.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut Document) {
        let operations = openapi.paths.paths.values_mut().flat_map(|item| {
            [
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
        });
        for op in operations {
            let Some(RefOr::T(body)) = op.request_body.as_mut() else {
                continue;
            };
            let mut optional = false;
            for content in body.content.values_mut() {
                let RefOr::T(content) = content else {
                    continue;
                };
                let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                    continue;
                };
                let is_null = |s: &RefOr<Schema>| {
                    matches!(s, RefOr::T(Schema::Object(o))
                        if o.schema_type == SchemaType::Type(Type::Null))
                };
                if let [RefOr::Ref(reference), null] | [null, RefOr::Ref(reference)] =
                    one_of.items.as_slice()
                    && is_null(null)
                {
                    content.schema = Some(RefOr::Ref(reference.clone()));
                    optional = true;
                }
            }
            if optional {
                body.required = Some(Required::False);
            }
        }
    }
}

/// The document, serialized once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(ApiDoc::openapi())
        .expect("the OpenAPI document is plain data, which always serializes");
    constraints::apply(&mut doc);
    doc.to_string()
});

/// The OpenAPI document as JSON, built on first use.
pub fn document_json() -> &'static str {
    DOCUMENT.as_str()
}

/// `GET /api/v1/openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi_document",
    tag = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document (this document)", content_type = "application/json", body = Object),
        (status = 304, description = "Not modified: the `If-None-Match` ETag is current"),
    )
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}

/// The reusable error responses and the sets operations list them by.
pub mod problems {
    use std::collections::BTreeMap;

    use utoipa::IntoResponses;
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::response::{Response, ResponseBuilder};
    use utoipa::openapi::{ContentBuilder, Object, Ref, RefOr, Type};

    /// The media type of every error answer.
    pub const MEDIA_TYPE: &str = "application/problem+json";

    /// One reusable error response: `#/components/responses/{name}`.
    #[derive(Debug)]
    pub struct ProblemResponse {
        /// The component name.
        pub name: &'static str,
        /// The HTTP status.
        pub status: u16,
        /// When it is answered, with its codes.
        pub description: &'static str,
        /// Response headers it carries: name, kind of value, meaning.
        pub headers: &'static [(&'static str, HeaderValue, &'static str)],
    }

    /// The kind of value a response header carries.
    #[derive(Debug, Clone, Copy)]
    pub enum HeaderValue {
        /// A string.
        Text,
        /// A number of seconds.
        Seconds,
    }

    impl ProblemResponse {
        /// The response object: a `Problem` as `application/problem+json`.
        pub fn response(&self) -> Response {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            self.headers
                .iter()
                .fold(
                    ResponseBuilder::new()
                        .description(self.description)
                        .content(MEDIA_TYPE, content),
                    |builder, (name, kind, description)| {
                        builder.header(
                            *name,
                            HeaderBuilder::new()
                                .schema(Some(Object::with_type(match kind {
                                    HeaderValue::Text => Type::String,
                                    HeaderValue::Seconds => Type::Integer,
                                })))
                                .description(Some(*description))
                                .build(),
                        )
                    },
                )
                .build()
        }
    }

    const RETRY_AFTER: (&str, HeaderValue, &str) = (
        "Retry-After",
        HeaderValue::Seconds,
        "Seconds to wait before trying again",
    );

    /// 400.
    pub const BAD_REQUEST: ProblemResponse = ProblemResponse {
        name: "BadRequest",
        status: 400,
        description: "Malformed request: an unreadable body (`malformed_json`, `malformed_body`; \
            unknown fields included), query (`invalid_query`), path segment (`invalid_path`) or \
            header (`invalid_header`, `invalid_idempotency_key`), or JSON nested deeper than 16 \
            levels (`json_too_deep`) or holding a string over 10,000 characters (`string_too_long`).",
        headers: &[],
    };
    /// 401 for a missing, invalid or expired access token.
    pub const UNAUTHORIZED: ProblemResponse = ProblemResponse {
        name: "Unauthorized",
        status: 401,
        description: "`unauthenticated`: no access token, or an invalid or expired one.",
        headers: &[(
            "WWW-Authenticate",
            HeaderValue::Text,
            "`Bearer`: the scheme to authenticate with",
        )],
    };
    /// 401 for wrong credentials.
    pub const INVALID_CREDENTIALS: ProblemResponse = ProblemResponse {
        name: "InvalidCredentials",
        status: 401,
        description: "`invalid_credentials`: a wrong e-mail or password, an unknown, disabled or \
            locked account, or a refresh token that is unknown, expired or already used (which \
            ends its whole session).",
        headers: &[],
    };
    /// 403.
    pub const FORBIDDEN: ProblemResponse = ProblemResponse {
        name: "Forbidden",
        status: 403,
        description: "`forbidden`: the caller's role may not do this (see Roles in docs/api.md).",
        headers: &[],
    };
    /// 404.
    pub const NOT_FOUND: ProblemResponse = ProblemResponse {
        name: "NotFound",
        status: 404,
        description: "`not_found`: no such resource in the caller's clinic.",
        headers: &[],
    };
    /// 409.
    pub const CONFLICT: ProblemResponse = ProblemResponse {
        name: "Conflict",
        status: 409,
        description: "The request conflicts with the current state: `booking_conflict` \
            (`conflict`, `practitioner_id`, `next_slots`), `outside_availability` \
            (`practitioner_id`, `next_slots`), `illegal_transition` (`from`, `to`, `allowed`), \
            `no_show_too_early` (`allowed_from`) or `duplicate`.",
        headers: &[],
    };
    /// 412.
    pub const PRECONDITION_FAILED: ProblemResponse = ProblemResponse {
        name: "PreconditionFailed",
        status: 412,
        description: "`precondition_failed`: the version in `If-Match` is stale; \
            `current_version` holds the current one when known.",
        headers: &[],
    };
    /// 413.
    pub const PAYLOAD_TOO_LARGE: ProblemResponse = ProblemResponse {
        name: "PayloadTooLarge",
        status: 413,
        description: "`payload_too_large`: the body is over the limit (256 KiB by default).",
        headers: &[],
    };
    /// 415.
    pub const UNSUPPORTED_MEDIA_TYPE: ProblemResponse = ProblemResponse {
        name: "UnsupportedMediaType",
        status: 415,
        description: "`unsupported_media_type`: the body is not `application/json`.",
        headers: &[],
    };
    /// 422.
    pub const UNPROCESSABLE: ProblemResponse = ProblemResponse {
        name: "Unprocessable",
        status: 422,
        description: "`validation_failed`: `errors` lists the messages per invalid field; \
            `booking_in_past`; or `idempotency_key_reused`: the `Idempotency-Key` was sent before \
            with a different request.",
        headers: &[],
    };
    /// 429.
    pub const TOO_MANY_REQUESTS: ProblemResponse = ProblemResponse {
        name: "TooManyRequests",
        status: 429,
        description: "`rate_limited`: a login, per-user, per-IP or live-stream limit is reached.",
        headers: &[RETRY_AFTER],
    };
    /// 500.
    pub const INTERNAL_ERROR: ProblemResponse = ProblemResponse {
        name: "InternalError",
        status: 500,
        description: "`internal_error`: a bug; logged with its cause, no internals in the answer.",
        headers: &[],
    };
    /// 503.
    pub const UNAVAILABLE: ProblemResponse = ProblemResponse {
        name: "Unavailable",
        status: 503,
        description: "`unavailable`: the database is unreachable; `concurrent_update`: a \
            concurrent request held the same records; or `database_timeout`: a statement or a \
            wait for a lock took longer than the configured bound. Retry.",
        headers: &[RETRY_AFTER],
    };

    /// Every reusable error response, as `components.responses` lists them.
    pub const ALL: [ProblemResponse; 13] = [
        BAD_REQUEST,
        UNAUTHORIZED,
        INVALID_CREDENTIALS,
        FORBIDDEN,
        NOT_FOUND,
        CONFLICT,
        PRECONDITION_FAILED,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        UNPROCESSABLE,
        TOO_MANY_REQUESTS,
        INTERNAL_ERROR,
        UNAVAILABLE,
    ];

    /// References to `set`, keyed by status.
    fn refs(set: &[ProblemResponse]) -> BTreeMap<String, RefOr<Response>> {
        set.iter()
            .map(|p| {
                (
                    p.status.to_string(),
                    RefOr::Ref(Ref::from_response_name(p.name)),
                )
            })
            .collect()
    }

    macro_rules! problem_sets {
        ($($(#[$doc:meta])* $set:ident = [$($problem:ident),+ $(,)?];)+) => {$(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $set;

            impl IntoResponses for $set {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    refs(&[$($problem),+])
                }
            }
        )+};
    }

    problem_sets! {
        /// What every route behind a token may answer: 400, 401, 429, 500, 503.
        Common = [BAD_REQUEST, UNAUTHORIZED, TOO_MANY_REQUESTS, INTERNAL_ERROR, UNAVAILABLE];
        /// What a public route may answer: 400, 500, 503.
        Public = [BAD_REQUEST, INTERNAL_ERROR, UNAVAILABLE];
        /// 401 `invalid_credentials`.
        InvalidCredentials = [INVALID_CREDENTIALS];
        /// 429 without a token (login's own limits).
        TooManyRequests = [TOO_MANY_REQUESTS];
        /// 403: the role may not.
        Forbidden = [FORBIDDEN];
        /// 404: no such resource.
        NotFound = [NOT_FOUND];
        /// 409: a booking or status conflict, or a duplicate.
        Conflict = [CONFLICT];
        /// 412: a stale `If-Match`.
        PreconditionFailed = [PRECONDITION_FAILED];
        /// 422: invalid fields.
        Invalid = [UNPROCESSABLE];
        /// 413 and 415: what a JSON body may be refused for.
        JsonBody = [PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE];
        /// `/metrics`: 401 (and 429 for repeated guesses) when the operator requires a token;
        /// 404 on the API's listener when the metrics have a listener of their own.
        Scrape = [UNAUTHORIZED, NOT_FOUND, TOO_MANY_REQUESTS];
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use actix_web::body::to_bytes;
    use actix_web::dev::ResourceMap;
    use actix_web::http::{Method, StatusCode, header};
    use actix_web::test as actix_test;
    use actix_web::{App, ResponseError};
    use chrono::{Duration, TimeZone, Utc};
    use clinicflow_domain::{AppointmentStatus, IllegalTransition, Interval, PractitionerId};
    use clinicflow_ports::OverlapParty;
    use clinicflow_services::error::ConflictKind;
    use clinicflow_services::{Conflict, FieldErrors, ServiceError};
    use serde_json::Value;
    use uuid::Uuid;

    use super::*;
    use crate::ApiError;
    use crate::appointment::StatusMove;
    use crate::docs::{DOCS_PATH, REDOC_SCRIPT_PATH};
    use crate::page::path_action;
    use crate::queue::EntryAction;

    /// Operations that are not the API proper: probes and the documentation itself.
    const OUTSIDE_THE_API: [&str; 6] = [
        "/health/live",
        "/health/ready",
        DOCUMENT_PATH,
        DOCS_PATH,
        REDOC_SCRIPT_PATH,
        "/",
    ];

    /// Every method a route could be registered for.
    const METHODS: [Method; 7] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ];

    fn document() -> Value {
        serde_json::from_str(document_json()).expect("the document is JSON")
    }

    /// Every operation of the document: method (upper case), path, operation.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let paths = doc["paths"].as_object().expect("paths is an object");
        paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("a path item is an object")
                    .iter()
                    .map(|(method, op)| (method.to_uppercase(), path.clone(), op.clone()))
            })
            .collect()
    }

    /// What a `$ref` within the document points at.
    fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str() {
            Some(reference) => {
                let pointer = reference
                    .strip_prefix('#')
                    .expect("references stay inside the document");
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("{reference} does not resolve"))
            }
            None => value,
        }
    }

    /// The route templates registered in `rmap`, each with the scopes around it.
    ///
    /// actix has no API to list routes, and its resource map's fields are private; the Debug
    /// form is the only way to walk it. Each template read is checked against actix's own
    /// matcher, so a change of that form fails here instead of hiding routes.
    fn registered_templates(rmap: &ResourceMap) -> Vec<String> {
        let dump = format!("{rmap:#?}");
        let mut lines = dump.lines();
        let mut templates = Vec::new();
        // (indent of the node's fields, its pattern), from the root down to the current node.
        let mut stack: Vec<(usize, String)> = Vec::new();
        // `named` repeats nodes of the tree; its block is skipped.
        let mut skipping_named_at: Option<usize> = None;
        while let Some(line) = lines.next() {
            let text = line.trim_start();
            let indent = line.len() - text.len();
            if let Some(at) = skipping_named_at {
                if indent == at && text.starts_with('}') {
                    skipping_named_at = None;
                }
                continue;
            }
            if text == "named: {" {
                skipping_named_at = Some(indent);
            } else if text == "patterns: Single(" {
                let literal = lines.next().expect("a pattern follows").trim();
                let pattern = literal.trim_end_matches(',').trim_matches('"').to_owned();
                let fields = indent - 4;
                stack.retain(|(at, _)| *at < fields);
                stack.push((fields, pattern));
            } else if text.starts_with("patterns: List(") {
                panic!("a resource with several patterns; teach this test to read them");
            } else if text == "nodes: None," {
                assert_eq!(
                    stack.last().map(|(at, _)| *at),
                    Some(indent),
                    "a leaf without a pattern in:\n{dump}"
                );
                templates.push(stack.iter().map(|(_, p)| p.as_str()).collect::<String>());
            }
        }
        templates
    }

    /// A path that matches `template`: ids are UUIDs, other parameters a word.
    fn concrete(template: &str) -> String {
        template
            .replace("{id}", &Uuid::nil().to_string())
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "x"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[actix_web::test]
    async fn every_registered_route_is_documented_and_every_documented_route_is_registered() {
        // The routes alone, without state: handlers fail to extract it (500) or refuse the
        // missing token (401), a resource without the method answers 405, and no resource 404.
        let app = actix_test::init_service(App::new().configure(crate::routes)).await;
        let probe = actix_test::call_service(
            &app,
            actix_test::TestRequest::get()
                .uri("/no/such/route")
                .to_request(),
        )
        .await;
        assert_eq!(probe.status(), StatusCode::NOT_FOUND);
        let rmap = probe.request().resource_map().clone();
        let mut registered = BTreeSet::new();
        for template in registered_templates(&rmap) {
            let path = concrete(&template);
            assert_eq!(
                rmap.match_pattern(&path).as_deref(),
                Some(template.as_str()),
                "the resource map was misread: {path} does not match {template}"
            );
            assert_eq!(
                crate::routing::documented_template(&path),
                Some(template.as_str()),
                "the routing guard's lookup and actix disagree on {path}"
            );
            for method in METHODS {
                let res = actix_test::call_service(
                    &app,
                    actix_test::TestRequest::default()
                        .method(method.clone())
                        .uri(&path)
                        .to_request(),
                )
                .await;
                if !matches!(
                    res.status(),
                    StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                ) {
                    registered.insert((method.to_string(), template.clone()));
                }
            }
        }
        let documented: BTreeSet<(String, String)> = operations(&document())
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .chain(
                crate::routing::OUTSIDE_THE_DOCUMENT
                    .iter()
                    .map(|(path, method)| (method.to_string(), (*path).to_owned())),
            )
            .collect();
        let undocumented: Vec<_> = registered.difference(&documented).collect();
        let unregistered: Vec<_> = documented.difference(&registered).collect();
        assert!(
            undocumented.is_empty() && unregistered.is_empty(),
            "registered but not in the OpenAPI document (add #[utoipa::path] and list it in \
             ApiDoc): {undocumented:?}\ndocumented but not registered: {unregistered:?}"
        );
        assert!(
            registered.len() >= 50,
            "only {} routes found",
            registered.len()
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_with_unique_operation_ids_and_references_that_resolve() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "clinicflow");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        let mut ids = BTreeSet::new();
        for (method, path, op) in operations(&doc) {
            let id = op["operationId"].as_str().expect("an operation id");
            assert!(
                ids.insert(id.to_owned()),
                "{method} {path}: {id} is not unique"
            );
        }
        fn check_refs(doc: &Value, value: &Value) {
            match value {
                Value::Object(map) => {
                    if map.contains_key("$ref") {
                        resolve(doc, value);
                    }
                    map.values().for_each(|v| check_refs(doc, v));
                }
                Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v)),
                _ => {}
            }
        }
        check_refs(&doc, &doc);
    }

    #[test]
    fn every_api_error_answer_is_a_problem_and_every_api_operation_has_one() {
        let doc = document();
        for (method, path, op) in operations(&doc) {
            let outside = OUTSIDE_THE_API.contains(&path.as_str());
            let responses = op["responses"].as_object().expect("responses");
            let mut problems = 0;
            for (status, response) in responses {
                if !(status.starts_with('4') || status.starts_with('5')) || outside {
                    continue;
                }
                let content = &resolve(&doc, response)["content"];
                let media = content.as_object().expect("error content");
                assert_eq!(
                    media.keys().collect::<Vec<_>>(),
                    [problems::MEDIA_TYPE],
                    "{method} {path} {status}"
                );
                assert_eq!(
                    content[problems::MEDIA_TYPE]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
                if status.starts_with('4') {
                    problems += 1;
                }
            }
            assert!(
                outside || problems > 0,
                "{method} {path} documents no 4xx problem"
            );
        }
    }

    #[test]
    fn operations_behind_a_token_declare_the_bearer_scheme_and_its_401() {
        let doc = document();
        let scheme = &doc["components"]["securitySchemes"][BEARER];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
        assert_eq!(scheme["bearerFormat"], "JWT");
        let public = [
            "/api/v1/auth/login",
            "/api/v1/auth/refresh",
            "/api/v1/auth/logout",
        ];
        for (method, path, op) in operations(&doc) {
            let needs_token = path.starts_with("/api/v1/")
                && path != DOCUMENT_PATH
                && !public.contains(&path.as_str());
            let security = op["security"].as_array().cloned().unwrap_or_default();
            if needs_token {
                assert_eq!(
                    security,
                    [serde_json::json!({ BEARER: [] })],
                    "{method} {path} must declare the bearer scheme"
                );
                assert_eq!(
                    op["responses"]["401"]["$ref"], "#/components/responses/Unauthorized",
                    "{method} {path}"
                );
            } else {
                assert!(security.is_empty(), "{method} {path} is public");
            }
        }
    }

    /// Keys of `body` against the object schema `name`: none unknown, none required missing.
    fn assert_fits(doc: &Value, name: &str, body: &Value) {
        let schema = &doc["components"]["schemas"][name];
        let properties = schema["properties"].as_object().expect("properties");
        let keys = body.as_object().expect("an object");
        for key in keys.keys() {
            assert!(
                properties.contains_key(key),
                "{name} has no `{key}`: {body}"
            );
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            let required = required.as_str().expect("a name");
            assert!(
                keys.contains_key(required),
                "{name} needs `{required}`: {body}"
            );
        }
    }

    #[actix_web::test]
    async fn problem_answers_fit_the_problem_schema() {
        let doc = document();
        let now = Utc
            .with_ymd_and_hms(2026, 1, 1, 9, 0, 0)
            .single()
            .expect("a valid instant");
        let slot = Interval::starting_at(now, Duration::minutes(30)).expect("valid");
        let errors = [
            ApiError::Service(FieldErrors::single("birth_date", "must be a date")),
            ApiError::Service(ServiceError::BookingConflict(Conflict {
                kind: ConflictKind::Overlap {
                    party: OverlapParty::Patient,
                    with: Some(slot),
                },
                next_slots: vec![slot],
                practitioner_id: PractitionerId::from_uuid(Uuid::nil()),
            })),
            ApiError::Service(ServiceError::IllegalTransition(
                IllegalTransition::NotAllowed {
                    from: AppointmentStatus::Completed,
                    to: AppointmentStatus::Cancelled,
                    allowed: vec![],
                },
            )),
            ApiError::Service(ServiceError::IllegalTransition(
                IllegalTransition::NoShowTooEarly { allowed_from: now },
            )),
            ApiError::Service(ServiceError::PreconditionFailed { current: Some(3) }),
            ApiError::Service(ServiceError::PreconditionFailed { current: None }),
            ApiError::Service(ServiceError::RateLimited {
                retry_after_secs: 5,
            }),
            ApiError::Unauthenticated("no token"),
            ApiError::NoRoute,
        ];
        for error in errors {
            let res = error.error_response();
            assert_eq!(
                res.headers().get(header::CONTENT_TYPE).expect("a type"),
                problems::MEDIA_TYPE
            );
            let status = res.status().as_u16();
            let body = to_bytes(res.into_body()).await.expect("a body");
            let body: Value = serde_json::from_slice(&body).expect("JSON");
            assert_fits(&doc, "Problem", &body);
            assert_eq!(body["status"], status);
            if let Some(conflict) = body.get("conflict") {
                assert_fits(&doc, "ConflictOut", conflict);
            }
        }
    }

    #[test]
    fn the_dashboard_answer_fits_its_schema() {
        let day = clinicflow_services::PractitionerDay {
            practitioner_id: Uuid::nil().to_string(),
            appointments: [("booked".to_owned(), 1)].into(),
            queue_waiting: 2,
            mean_wait_minutes: Some(4.5),
            no_show_rate: None,
        };
        let dashboard = clinicflow_services::Dashboard {
            date: "2026-01-01".into(),
            generated_at: Utc::now(),
            appointments: [("booked".to_owned(), 1)].into(),
            queue_waiting: 2,
            mean_wait_minutes: None,
            no_show_rate: Some(0.1),
            practitioners: vec![day],
        };
        let body = serde_json::to_value(crate::dashboard::DashboardOut::from(dashboard))
            .expect("serializes");
        let doc = document();
        assert_fits(&doc, "DashboardOut", &body);
        assert_fits(&doc, "PractitionerDayOut", &body["practitioners"][0]);
    }

    #[test]
    fn the_clinic_patch_takes_triage_targets_in_the_shape_get_shows() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let keys = |schema: &str| -> Vec<String> {
            let mut keys: Vec<String> = schemas[schema]["properties"]
                .as_object()
                .expect("properties")
                .keys()
                .cloned()
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(keys("TargetsIn"), keys("TargetsOut"));
        let mut required: Vec<String> =
            serde_json::from_value(schemas["TargetsIn"]["required"].clone())
                .expect("every category is required");
        required.sort();
        assert_eq!(required, keys("TargetsIn"));
        for (name, property) in schemas["TargetsIn"]["properties"]
            .as_object()
            .expect("properties")
        {
            assert_eq!(
                (&property["minimum"], &property["maximum"]),
                (&serde_json::json!(0), &serde_json::json!(1440)),
                "{name}"
            );
        }
        let patch = schemas["ClinicPatchIn"]["properties"]["triage_target_minutes"].to_string();
        assert!(patch.contains("#/components/schemas/TargetsIn"), "{patch}");
        assert!(schemas["EntryOut"]["properties"]["recalled_at"].is_object());
    }

    #[test]
    fn the_documented_actions_are_the_ones_routed() {
        let doc = document();
        let names = |schema: &str| -> Vec<String> {
            doc["components"]["schemas"][schema]["enum"]
                .as_array()
                .expect("an enum")
                .iter()
                .map(|v| v.as_str().expect("a name").to_owned())
                .collect()
        };
        let moves = names("StatusMove");
        assert_eq!(
            moves,
            [
                "confirm", "check-in", "start", "complete", "cancel", "no-show"
            ]
        );
        assert!(moves.iter().all(|m| path_action::<StatusMove>(m).is_some()));
        let entry_moves = names("EntryAction");
        assert_eq!(
            entry_moves,
            ["start", "finish", "leave", "recall", "retriage"]
        );
        assert!(
            entry_moves
                .iter()
                .all(|m| path_action::<EntryAction>(m).is_some())
        );
        assert_eq!(path_action::<StatusMove>("reschedule"), None);
        assert_eq!(path_action::<EntryAction>("check_in"), None);
    }

    #[actix_web::test]
    async fn the_document_is_served_as_json() {
        let app = actix_test::init_service(App::new().configure(crate::routes)).await;
        let res = actix_test::call_service(
            &app,
            actix_test::TestRequest::get()
                .uri(DOCUMENT_PATH)
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).expect("a type"),
            "application/json"
        );
        let body = to_bytes(res.into_body()).await.expect("a body");
        assert_eq!(body, document_json().as_bytes());
    }
}
