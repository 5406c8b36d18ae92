//! `/api/v1/users`: staff accounts, managed by admins.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::{User, UserId};
use clinicflow_services::{NewUser, UserChanges};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::body::Json;
use crate::openapi::problems;
use crate::page::{PageOut, PageParams, double_option, fresh_version, if_match, versioned};
use crate::{ApiError, AppState, Authenticated};

/// Registers the user routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/users/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(update)),
    )
    .service(web::resource("/users/{id}/unlock").route(web::post().to(unlock)));
}

/// `POST /users` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserIn {
    /// Their e-mail, unique in the clinic.
    #[schema(format = Email)]
    email: String,
    /// 10 characters or more.
    #[schema(format = Password, min_length = 10)]
    password: String,
    /// `admin`, `practitioner`, `receptionist` or `nurse`.
    #[schema(example = "receptionist")]
    role: String,
    /// The practitioner this user is (for the `practitioner` role).
    practitioner_id: Option<String>,
}

opaque_debug!(UserIn);

/// `PATCH /users/{id}` body: absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// A new role.
    role: Option<String>,
    /// `false` disables the account and revokes its sessions.
    active: Option<bool>,
    /// The practitioner this user is; `null` unlinks.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    practitioner_id: Option<Option<String>>,
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    /// The user's id.
    id: String,
    /// Their e-mail.
    email: String,
    /// `admin`, `practitioner`, `receptionist` or `nurse`.
    role: &'static str,
    /// The practitioner this user is, if any.
    practitioner_id: Option<String>,
    /// Whether the account may log in.
    active: bool,
    /// Whether the account is locked after wrong passwords.
    locked: bool,
    /// Until when logins are refused after repeated wrong passwords; `null` when never
    /// locked or unlocked since. A time in the past is a lock that has run out.
    locked_until: Option<DateTime<Utc>>,
    /// Wrong passwords since the last successful login or lock.
    failed_logins: u32,
    /// The version, also the `ETag` of `GET /users/{id}`; every change raises it, a failed
    /// login included.
    version: i32,
}

impl UserOut {
    /// The account as shown, `locked` by the user service's judgement of now.
    fn shown(state: &AppState, u: User) -> Self {
        let locked = state.services.users.is_locked(&u);
        Self {
            id: u.id.to_string(),
            email: u.email.to_string(),
            role: u.role.as_str(),
            practitioner_id: u.practitioner_id.map(|p| p.to_string()),
            active: u.active,
            locked,
            locked_until: u.locked_until,
            failed_logins: u.failed_logins,
            version: u.version,
        }
    }
}

/// Creates a staff account (admins).
#[utoipa::path(
    post,
    path = "/api/v1/users",
    operation_id = "create_user",
    tag = "user",
    request_body = UserIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created, with its `Location`", body = UserOut),
        problems::Common,
        problems::Forbidden,
        problems::Conflict,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: Json<UserIn>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let input = NewUser {
        email: b.email,
        password: b.password,
        role: b.role,
        practitioner_id: b.practitioner_id,
    };
    let user = state.services.users.create(&auth.0, input).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/users/{}", user.id)))
        .json(UserOut::shown(&state, user)))
}

/// The clinic's staff accounts by e-mail (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users",
    operation_id = "list_users",
    tag = "user",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users", body = PageOut<UserOut>),
        problems::Common,
        problems::Forbidden,
        problems::Invalid,
    )
)]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    paging: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .services
        .users
        .list(&auth.0, paging.request()?)
        .await?;
    Ok(HttpResponse::Ok().json(PageOut::new(&req, page, |u| UserOut::shown(&state, u))))
}

/// One staff account, with its lockout state (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    operation_id = "get_user",
    tag = "user",
    params(
        ("id" = Uuid, Path, description = "The user's id"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "An `ETag` held; answered with 304 when current"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
        (status = 304, description = "Not modified: the `If-None-Match` ETag is current"),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
    )
)]
async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .services
        .users
        .get(&auth.0, UserId::from_uuid(*id))
        .await?;
    let version = user.version;
    Ok(versioned(&req, version, &UserOut::shown(&state, user)))
}

/// Changes a user's role, state or practitioner (admins, who cannot disable or demote themselves).
#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    operation_id = "update_user",
    tag = "user",
    params(
        ("id" = Uuid, Path, description = "The user's id"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` read; a stale one is a 412"),
    ),
    request_body = UserPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed user", body = UserOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::PreconditionFailed,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: Json<UserPatch>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let changes = UserChanges {
        role: b.role,
        active: b.active,
        practitioner_id: b.practitioner_id,
    };
    let user = state
        .services
        .users
        .update(&auth.0, UserId::from_uuid(*id), changes, if_match(&req)?)
        .await?;
    let version = user.version;
    Ok(fresh_version(version, &UserOut::shown(&state, user)))
}

/// Lifts a lockout after repeated wrong passwords (admins): the user can log in again at once.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/unlock",
    operation_id = "unlock_user",
    tag = "user",
    params(
        ("id" = Uuid, Path, description = "The user's id"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` read; a stale one is a 412"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user, unlocked", body = UserOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::PreconditionFailed,
    )
)]
async fn unlock(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .services
        .users
        .unlock(&auth.0, UserId::from_uuid(*id), if_match(&req)?)
        .await?;
    let version = user.version;
    Ok(fresh_version(version, &UserOut::shown(&state, user)))
}
