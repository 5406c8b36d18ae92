//! Access tokens (HS256 JWT) and the bearer extractor that scopes each request to a clinic.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::{Actor, ClinicId, PractitionerId, Role, UserId};
use clinicflow_services::Session;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::body::Json;
use crate::limits::spend;
use crate::openapi::problems;
use crate::telemetry::RequestId;
use crate::{ApiError, AppState};

/// The window of the general per-user and per-IP API throttles.
pub const HOUR: Duration = Duration::from_secs(3600);

/// Issuer written into and required from every token.
const ISSUER: &str = "clinicflow";
/// Audience written into and required from every token.
const AUDIENCE: &str = "clinicflow-api";
/// Clock skew tolerated when checking expiry.
const LEEWAY_SECS: u64 = 30;

/// How tokens are made: secret and lifetime.
#[derive(Clone)]
pub struct TokenConfig {
    /// HMAC secret (at least 32 bytes outside development).
    pub secret: Vec<u8>,
    /// Lifetime of an access token.
    pub access_ttl: Duration,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("secret", &"[redacted]")
            .field("access_ttl", &self.access_ttl)
            .finish()
    }
}

/// Issues and verifies access tokens; the algorithm is pinned to HS256.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    /// Tokens that verified, with what they said, so the next request bearing the same token
    /// skips the signature check and both JSON parses (most of what authentication cost).
    /// Sound because verification is a pure function of the token and the clock: a token
    /// names no state that could be revoked, and expiry is checked again on every hit.
    verified: moka::sync::Cache<Box<str>, (Actor, DateTime<Utc>)>,
}

/// Most verified tokens remembered; more live clients only cost some of them a full check.
const VERIFIED_TOKENS: u64 = 10_000;

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens")
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    cid: Uuid,
    role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid: Option<Uuid>,
    iat: i64,
    exp: i64,
    iss: String,
    aud: String,
    jti: Uuid,
}

impl Tokens {
    /// Builds the issuer/verifier from its configuration.
    pub fn new(config: &TokenConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(&config.secret),
            decoding: DecodingKey::from_secret(&config.secret),
            validation,
            ttl: config.access_ttl,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_TOKENS)
                // The longest any token can still be accepted; expiry is checked on each hit.
                .time_to_live(config.access_ttl + Duration::from_secs(LEEWAY_SECS))
                .build(),
        }
    }

    /// A signed access token for `actor`, and its lifetime in seconds.
    pub fn issue(&self, actor: &Actor) -> Result<(String, u64), ApiError> {
        let now = Utc::now().timestamp();
        let ttl = self.ttl.as_secs();
        let claims = Claims {
            sub: actor.user_id.as_uuid(),
            cid: actor.clinic_id.as_uuid(),
            role: actor.role.as_str().to_owned(),
            pid: actor.practitioner_id.map(|p| p.as_uuid()),
            iat: now,
            exp: now + i64::try_from(ttl).unwrap_or(i64::MAX / 2),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            jti: Uuid::now_v7(),
        };
        let token =
            encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| {
                ApiError::Service(clinicflow_services::ServiceError::Unexpected(e.into()))
            })?;
        Ok((token, ttl))
    }

    /// The actor a token speaks for, if it is genuine, unexpired and ours.
    pub fn verify(&self, token: &str) -> Result<Actor, ApiError> {
        self.verify_until(token).map(|(actor, _)| actor)
    }

    /// As [`Tokens::verify`], with the instant the token expires (a live stream ends there).
    pub fn verify_until(&self, token: &str) -> Result<(Actor, DateTime<Utc>), ApiError> {
        self.verify_at(token, Utc::now())
    }

    /// As [`Tokens::verify_until`], as of `now`.
    fn verify_at(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Actor, DateTime<Utc>), ApiError> {
        if let Some((actor, expires_at)) = self.verified.get(token) {
            // The same test jsonwebtoken makes: expired once `exp` is more than the leeway ago.
            let leeway = chrono::Duration::seconds(LEEWAY_SECS as i64);
            if now - leeway > expires_at {
                self.verified.invalidate(token);
                return Err(ApiError::Unauthenticated(
                    "the access token is invalid or expired",
                ));
            }
            return Ok((actor, expires_at));
        }
        let verified = self.check(token)?;
        self.verified.insert(token.into(), verified);
        Ok(verified)
    }

    /// The full check: signature, algorithm, issuer, audience, expiry, claims.
    fn check(&self, token: &str) -> Result<(Actor, DateTime<Utc>), ApiError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| ApiError::Unauthenticated("the access token is invalid or expired"))?;
        let expires_at = DateTime::<Utc>::from_timestamp(data.claims.exp, 0).ok_or(
            ApiError::Unauthenticated("the access token is invalid or expired"),
        )?;
        let role: Role = data
            .claims
            .role
            .parse()
            .map_err(|_| ApiError::Unauthenticated("the access token is invalid or expired"))?;
        let actor = Actor {
            user_id: UserId::from_uuid(data.claims.sub),
            clinic_id: ClinicId::from_uuid(data.claims.cid),
            role,
            practitioner_id: data.claims.pid.map(PractitionerId::from_uuid),
            request_id: None,
        };
        Ok((actor, expires_at))
    }
}

/// The authenticated staff member of a request; every route but login, refresh and health requires it.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Actor);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or(ApiError::Unauthenticated(
                    "authentication is not configured",
                ))?;
            // Verified by the guard already, unless the route is outside it.
            let verified = req.extensions().get::<Verified>().map(|v| v.0);
            let mut actor = match verified {
                Some(actor) => actor,
                None => authenticate(&req, state)?,
            };
            actor.request_id = req.extensions().get::<RequestId>().map(|r| r.0);
            let key = format!("api:user:{}", actor.user_id);
            spend(state, &key, state.limits.per_user_per_hour, HOUR).await?;
            Ok(Authenticated(actor))
        })
    }
}

/// The actor of a bearer token the guard has verified, kept in the request's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Verified(pub Actor);

/// The actor of the request's bearer token; an error when there is none or it does not verify.
pub(crate) fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Actor, ApiError> {
    authenticate_until(req, state).map(|(actor, _)| actor)
}

/// As [`authenticate`], with the instant the token expires.
pub(crate) fn authenticate_until(
    req: &HttpRequest,
    state: &AppState,
) -> Result<(Actor, DateTime<Utc>), ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthenticated(
            "an Authorization: Bearer token is required",
        ))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(ApiError::Unauthenticated(
            "the Authorization header must be `Bearer <token>`",
        ))?;
    state.tokens.verify_until(token)
}

/// The client's IP address: the connection's peer, or the client a trusted reverse proxy
/// forwarded for (see [`crate::proxy`]).
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    crate::proxy::client_ip(req)
}

opaque_debug!(LoginIn, TokenOut, RefreshIn, ChangePasswordIn);

/// Login request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    /// The staff member's e-mail.
    #[schema(example = "admin@clinic.example")]
    email: String,
    /// Their password.
    #[schema(format = Password)]
    password: String,
    /// Only needed when one e-mail and password exist in several clinics.
    clinic_id: Option<Uuid>,
}

/// A new pair of tokens.
#[derive(Serialize, ToSchema)]
pub struct TokenOut {
    /// A JWT (HS256) to send as `Authorization: Bearer <access_token>`.
    access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds the access token stays valid.
    expires_in: u64,
    /// An opaque token for `POST /auth/refresh`; each works once.
    refresh_token: String,
    /// Seconds the refresh token stays valid.
    refresh_expires_in: i64,
}

fn session_answer(state: &AppState, session: Session) -> Result<HttpResponse, ApiError> {
    let user = &session.user;
    let actor = Actor {
        user_id: user.id,
        clinic_id: user.clinic_id,
        role: user.role,
        practitioner_id: user.practitioner_id,
        request_id: None,
    };
    let (access_token, expires_in) = state.tokens.issue(&actor)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TokenOut {
            access_token,
            token_type: "Bearer",
            expires_in,
            refresh_token: session.refresh_token,
            refresh_expires_in: (session.refresh_expires_at - Utc::now())
                .num_seconds()
                .max(0),
        }))
}

/// `POST /api/v1/auth/login`: e-mail and password for an access and a refresh token.
///
/// Limited per client IP (10 a minute) and per account (5 a minute); five consecutive wrong
/// passwords lock the account for 15 minutes.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    operation_id = "login",
    tag = "auth",
    request_body = LoginIn,
    responses(
        (status = 200, description = "Logged in (`Cache-Control: no-store`)", body = TokenOut),
        problems::Public,
        problems::InvalidCredentials,
        problems::TooManyRequests,
        problems::JsonBody,
        problems::Invalid,
    )
)]
#[post("/auth/login")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<LoginIn>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let ip = client_ip(&req);
    let session = state
        .services
        .auth
        .login(
            &body.email,
            &body.password,
            body.clinic_id.map(ClinicId::from_uuid),
            ip.as_deref(),
        )
        .await?;
    session_answer(&state, session)
}

/// A refresh token sent back.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshIn {
    /// The refresh token of the last login or refresh.
    refresh_token: String,
}

/// `POST /api/v1/auth/refresh`: rotates the refresh token; a replayed one ends its whole session.
///
/// Limited per client IP as logins are (10 attempts a minute), counted since the address's
/// last successful refresh.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    operation_id = "refresh_tokens",
    tag = "auth",
    request_body = RefreshIn,
    responses(
        (status = 200, description = "A new pair; the presented refresh token stops working", body = TokenOut),
        problems::Public,
        problems::InvalidCredentials,
        problems::TooManyRequests,
        problems::JsonBody,
    )
)]
#[post("/auth/refresh")]
pub async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<RefreshIn>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req);
    let session = state
        .services
        .auth
        .refresh(&body.refresh_token, ip.as_deref())
        .await?;
    session_answer(&state, session)
}

/// `POST /api/v1/auth/logout`: ends the session the refresh token belongs to.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    operation_id = "logout",
    tag = "auth",
    request_body = RefreshIn,
    responses(
        (status = 204, description = "The session (token family) has ended"),
        problems::Public,
        problems::JsonBody,
    )
)]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    body: Json<RefreshIn>,
) -> Result<HttpResponse, ApiError> {
    state.services.auth.logout(&body.refresh_token).await?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordIn {
    /// The password now.
    #[schema(format = Password)]
    current_password: String,
    /// The new one: 10 characters or more.
    #[schema(format = Password, min_length = 10)]
    new_password: String,
}

/// `POST /api/v1/auth/change-password`: ends every session of the user.
#[utoipa::path(
    post,
    path = "/api/v1/auth/change-password",
    operation_id = "change_password",
    tag = "auth",
    request_body = ChangePasswordIn,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed; every session of the user has ended"),
        problems::Common,
        problems::JsonBody,
        problems::Invalid,
    )
)]
#[post("/auth/change-password")]
pub async fn change_password(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: Json<ChangePasswordIn>,
) -> Result<HttpResponse, ApiError> {
    state
        .services
        .auth
        .change_password(&auth.0, &body.current_password, &body.new_password)
        .await?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// The logged-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeOut {
    /// The user's id.
    id: String,
    /// Their e-mail.
    email: String,
    /// `admin`, `practitioner`, `receptionist` or `nurse`.
    role: &'static str,
    /// The practitioner this user is, for practitioners.
    practitioner_id: Option<String>,
    /// Their clinic.
    clinic: ClinicOut,
}

/// The user's clinic.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MeClinicOut)]
pub struct ClinicOut {
    /// The clinic's id.
    id: String,
    /// Its name.
    name: String,
    /// Its IANA time zone, such as `Europe/Berlin`.
    time_zone: &'static str,
}

/// `GET /api/v1/me`: who the token speaks for.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user and their clinic", body = MeOut),
        problems::Common,
    )
)]
#[get("/me")]
pub async fn me(state: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    let (user, clinic) = state.services.auth.me(&auth.0).await?;
    Ok(HttpResponse::Ok().json(MeOut {
        id: user.id.to_string(),
        email: user.email.to_string(),
        role: user.role.as_str(),
        practitioner_id: user.practitioner_id.map(|p| p.to_string()),
        clinic: ClinicOut {
            id: clinic.id.to_string(),
            name: clinic.name.as_ref().to_owned(),
            time_zone: clinic.time_zone.name(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_credential_bodies_shows_no_secret() {
        let login_in: LoginIn = serde_json::from_value(serde_json::json!({
            "email": "admin@clinic.example", "password": "correct horse battery"
        }))
        .expect("a login body");
        let refresh_in: RefreshIn =
            serde_json::from_value(serde_json::json!({"refresh_token": "rt_secret_4711"}))
                .expect("a refresh body");
        let change: ChangePasswordIn = serde_json::from_value(serde_json::json!({
            "current_password": "old password 1", "new_password": "new password 2"
        }))
        .expect("a change body");
        let shown = format!("{login_in:?} {refresh_in:?} {change:?}");
        for secret in [
            "correct horse",
            "admin@",
            "rt_secret",
            "old password",
            "new password",
        ] {
            assert!(!shown.contains(secret), "`{secret}` shows in {shown}");
        }
        assert!(shown.contains("LoginIn"), "{shown}");
    }

    fn tokens(secret: &[u8]) -> Tokens {
        Tokens::new(&TokenConfig {
            secret: secret.to_vec(),
            access_ttl: Duration::from_secs(900),
        })
    }

    fn actor() -> Actor {
        Actor {
            user_id: UserId::from_uuid(Uuid::now_v7()),
            clinic_id: ClinicId::from_uuid(Uuid::now_v7()),
            role: Role::Receptionist,
            practitioner_id: None,
            request_id: None,
        }
    }

    #[test]
    fn a_token_round_trips_to_its_actor() {
        let t = tokens(b"0123456789abcdef0123456789abcdef");
        let a = actor();
        let (token, ttl) = t.issue(&a).expect("issued");
        assert_eq!(ttl, 900);
        assert_eq!(t.verify(&token).expect("valid"), a);
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_expires() {
        let t = tokens(SECRET);
        let a = actor();
        let (token, _) = t.issue(&a).expect("issued");
        let (verified, expires_at) = t.verify_at(&token, Utc::now()).expect("valid");
        assert_eq!(verified, a);
        assert_eq!(
            t.verified.get(token.as_str()).map(|v| v.0),
            Some(a),
            "remembered"
        );
        let leeway = chrono::Duration::seconds(LEEWAY_SECS as i64);
        assert!(
            t.verify_at(&token, expires_at + leeway).is_ok(),
            "within the leeway"
        );
        assert!(
            t.verify_at(&token, expires_at + leeway + chrono::Duration::seconds(1))
                .is_err()
        );
    }

    #[test]
    fn only_a_token_that_verifies_is_remembered() {
        let (token, _) = tokens(b"another secret of thirty-two bytes!")
            .issue(&actor())
            .expect("issued");
        let t = tokens(SECRET);
        assert!(t.verify(&token).is_err());
        assert!(t.verify(&token).is_err(), "and again");
        assert_eq!(t.verified.get(token.as_str()), None);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let (token, _) = tokens(b"another secret of thirty-two bytes!")
            .issue(&actor())
            .expect("issued");
        assert!(
            tokens(b"0123456789abcdef0123456789abcdef")
                .verify(&token)
                .is_err()
        );
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// The claims `issue` would write for a fresh actor, as JSON so that a test can change or
    /// drop any one of them.
    fn claims(exp_offset_secs: i64) -> serde_json::Value {
        let now = Utc::now().timestamp();
        serde_json::json!({
            "sub": Uuid::now_v7(),
            "cid": Uuid::now_v7(),
            "role": "receptionist",
            "iat": now,
            "exp": now + exp_offset_secs,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "jti": Uuid::now_v7(),
        })
    }

    fn forge(algorithm: Algorithm, claims: &serde_json::Value) -> String {
        encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("signed")
    }

    #[test]
    fn a_forged_token_with_every_claim_right_is_accepted() {
        // The control for the refusals below: each changes exactly one thing from this token.
        let verified = tokens(SECRET)
            .verify(&forge(Algorithm::HS256, &claims(900)))
            .expect("valid");
        assert_eq!(verified.role, Role::Receptionist);
    }

    #[test]
    fn a_token_of_another_issuer_is_refused() {
        let mut c = claims(900);
        c["iss"] = "someone-else".into();
        assert!(tokens(SECRET).verify(&forge(Algorithm::HS256, &c)).is_err());
    }

    #[test]
    fn a_token_for_another_audience_is_refused() {
        let mut c = claims(900);
        c["aud"] = "another-api".into();
        assert!(tokens(SECRET).verify(&forge(Algorithm::HS256, &c)).is_err());
    }

    #[test]
    fn a_token_expired_beyond_the_leeway_is_refused() {
        let expired = -(LEEWAY_SECS as i64) - 5;
        assert!(
            tokens(SECRET)
                .verify(&forge(Algorithm::HS256, &claims(expired)))
                .is_err()
        );
    }

    #[test]
    fn a_token_expired_within_the_leeway_is_accepted() {
        // A clock behind the server's by less than the leeway must not log staff out early.
        let just_expired = -(LEEWAY_SECS as i64) + 10;
        assert!(
            tokens(SECRET)
                .verify(&forge(Algorithm::HS256, &claims(just_expired)))
                .is_ok()
        );
    }

    #[test]
    fn a_token_signed_with_another_hmac_algorithm_is_refused() {
        // Same secret, valid claims: only the pinned algorithm may change the answer.
        for algorithm in [Algorithm::HS384, Algorithm::HS512] {
            assert!(
                tokens(SECRET)
                    .verify(&forge(algorithm, &claims(900)))
                    .is_err(),
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn a_token_without_expiry_is_refused() {
        let mut c = claims(900);
        c.as_object_mut().expect("an object").remove("exp");
        assert!(tokens(SECRET).verify(&forge(Algorithm::HS256, &c)).is_err());
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        // header {"alg":"none","typ":"JWT"}; algorithm switching must never be accepted.
        let t = tokens(b"0123456789abcdef0123456789abcdef");
        let (token, _) = t.issue(&actor()).expect("issued");
        let payload = token.split('.').nth(1).expect("three parts");
        let forged = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(t.verify(&forged).is_err());
    }
}
