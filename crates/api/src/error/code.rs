//! The catalogue of every stable `code` a problem answer carries: one row per code with its
//! HTTP status, title and the line docs/api.md gives it, so the answers and the documented
//! error table cannot drift apart (a test compares them cell by cell).

use actix_web::http::StatusCode;

/// Defines [`ErrorCode`] and its lookups from one table.
macro_rules! catalogue {
    ($($variant:ident => $code:literal, $status:ident, $title:literal, $doc:literal;)*) => {
        /// A stable snake_case error code (the `code` member of every problem answer).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum ErrorCode {
            $(
                #[doc = $doc]
                $variant,
            )*
        }

        impl ErrorCode {
            /// Every code, in the order of the error table of docs/api.md.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status every answer with this code has.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }

            /// The problem's `title`: a short summary of the kind of problem.
            pub fn title(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $title,)*
                }
            }

            /// When the code is answered: its line in the error table of docs/api.md.
            pub fn doc(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $doc,)*
                }
            }
        }
    };
}

catalogue! {
    MalformedJson => "malformed_json", BAD_REQUEST, "Malformed request",
        "the body is not valid JSON, is not an object where one is expected, or has an unknown or mistyped field";
    InvalidQuery => "invalid_query", BAD_REQUEST, "Malformed request",
        "a query parameter is unknown or cannot be read";
    InvalidPath => "invalid_path", BAD_REQUEST, "Malformed request",
        "a path segment (an id) cannot be read";
    InvalidHeader => "invalid_header", BAD_REQUEST, "Malformed request",
        "a header (`If-Match`, `If-None-Match`) cannot be read";
    MalformedBody => "malformed_body", BAD_REQUEST, "Malformed request",
        "a body where none is taken, or an optional body that cannot be read";
    InvalidIdempotencyKey => "invalid_idempotency_key", BAD_REQUEST, "Malformed request",
        "an empty, over-long or non-ASCII `Idempotency-Key`, or several";
    JsonTooDeep => "json_too_deep", BAD_REQUEST, "Malformed request",
        "JSON nested deeper than 16 levels";
    StringTooLong => "string_too_long", BAD_REQUEST, "Malformed request",
        "a JSON string over 10,000 characters";
    Unauthenticated => "unauthenticated", UNAUTHORIZED, "Unauthenticated",
        "a missing, invalid or expired access token";
    InvalidCredentials => "invalid_credentials", UNAUTHORIZED, "Invalid credentials",
        "a failed login (a wrong e-mail or password, or a locked account: the answer is the same)";
    Forbidden => "forbidden", FORBIDDEN, "Forbidden",
        "the role may not do this (see Roles)";
    NotFound => "not_found", NOT_FOUND, "Not found",
        "no such resource in the caller's clinic, or no such route";
    MethodNotAllowed => "method_not_allowed", METHOD_NOT_ALLOWED, "Method not allowed",
        "the path exists, but not for this method; `Allow` lists the methods it takes";
    BookingConflict => "booking_conflict", CONFLICT, "Booking conflict",
        "overlap: `conflict: {with, starts_at, ends_at}` (`with` is `practitioner` or `patient`), `practitioner_id`, `next_slots` (up to 3); no other detail of the other appointment is shown";
    OutsideAvailability => "outside_availability", CONFLICT, "Outside availability",
        "not in the schedule or in time off; `next_slots`";
    IllegalTransition => "illegal_transition", CONFLICT, "Illegal status transition",
        "a status move the state machine does not allow; `from`, `to`, `allowed`";
    NoShowTooEarly => "no_show_too_early", CONFLICT, "Too early for a no-show",
        "a no-show before the start and grace have passed; `allowed_from`";
    Duplicate => "duplicate", CONFLICT, "Already exists",
        "a unique value is taken";
    OutsideCheckInWindow => "outside_check_in_window", CONFLICT, "Outside the check-in window",
        "a check-in outside the clinic's check-in window; `opens_at`, `closes_at`";
    PractitionerInactive => "practitioner_inactive", CONFLICT, "Practitioner deactivated",
        "a booking, reschedule or walk-in for a deactivated practitioner";
    AlreadyInQueue => "already_in_queue", CONFLICT, "Already in the queue",
        "the patient already has an open queue entry";
    PreconditionFailed => "precondition_failed", PRECONDITION_FAILED, "Precondition failed",
        "`If-Match` is stale; `current_version`";
    PayloadTooLarge => "payload_too_large", PAYLOAD_TOO_LARGE, "Payload too large",
        "a body over 256 KiB";
    UnsupportedMediaType => "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "Unsupported media type",
        "the body is not JSON";
    ValidationFailed => "validation_failed", UNPROCESSABLE_ENTITY, "Validation failed",
        "`errors: {field: [messages]}`";
    BookingInPast => "booking_in_past", UNPROCESSABLE_ENTITY, "Booking in the past",
        "the appointment would start in the past";
    IdempotencyKeyReused => "idempotency_key_reused", UNPROCESSABLE_ENTITY, "Idempotency key reused",
        "the `Idempotency-Key` came before with a different request";
    WebhookTargetRefused => "webhook_target_refused", UNPROCESSABLE_ENTITY, "Webhook target refused",
        "a webhook URL with plain `http` in production, or pointing at a loopback, private, link-local or other internal address the operator did not allow; `detail` says which";
    RateLimited => "rate_limited", TOO_MANY_REQUESTS, "Too many requests",
        "a login or API limit; `Retry-After` in seconds";
    InternalError => "internal_error", INTERNAL_SERVER_ERROR, "Internal error",
        "a bug; logged with its cause chain, no internals in the answer";
    Unavailable => "unavailable", SERVICE_UNAVAILABLE, "Service unavailable",
        "the database is unreachable or overloaded; `Retry-After`";
    DatabaseTimeout => "database_timeout", SERVICE_UNAVAILABLE, "Database timeout",
        "a statement or a wait for a lock another request holds ran past its bound (docs/operations.md); `Retry-After`";
    ConcurrentUpdate => "concurrent_update", SERVICE_UNAVAILABLE, "Concurrent update",
        "the database aborted the request for a concurrent writer three times in a row; `Retry-After`";
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::ErrorCode;

    /// The rows `(status, code, when)` of the table under "## Errors" in docs/api.md.
    fn documented_rows() -> Vec<(u16, String, String)> {
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"))
                .expect("docs/api.md is readable");
        let table = docs
            .split("\n## Errors\n")
            .nth(1)
            .expect("docs/api.md has an Errors section");
        table
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2)
            .map(|line| {
                let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
                assert_eq!(cells.len(), 3, "a row of status, code and when: {line}");
                let status = cells[0].parse().expect("the status is a number");
                let code = cells[1].trim_matches('`').to_owned();
                (status, code, cells[2].to_owned())
            })
            .collect()
    }

    #[test]
    fn the_catalogue_and_the_error_table_of_the_docs_agree_row_by_row() {
        let documented = documented_rows();
        let catalogue: Vec<(u16, String, String)> = ErrorCode::ALL
            .iter()
            .map(|c| {
                (
                    c.status().as_u16(),
                    c.as_str().to_owned(),
                    c.doc().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            documented, catalogue,
            "docs/api.md's error table must list exactly the catalogue, in its order"
        );
    }

    #[test]
    fn codes_are_unique_snake_case_and_errors_only() {
        let mut seen = BTreeSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} is listed twice");
            assert!(
                text.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{text} is snake_case"
            );
            assert!(
                code.status().is_client_error() || code.status().is_server_error(),
                "{text} is an error status"
            );
        }
    }
}
