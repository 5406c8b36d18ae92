//! `/api/v1/users`: staff accounts, managed by admins.

use actix_web::{HttpRequest, HttpResponse, web};
use clinicflow_domain::{User, UserId};
use clinicflow_services::{NewUser, UserChanges};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::page::{PageOut, PageParams, double_option};
use crate::{ApiError, AppState, Authenticated};

/// Registers the user routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(web::resource("/users/{id}").route(web::patch().to(update)));
}

/// `POST /users` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserIn {
    email: String,
    password: String,
    role: String,
    practitioner_id: Option<String>,
}

/// `PATCH /users/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    role: Option<String>,
    active: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    practitioner_id: Option<Option<String>>,
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize)]
pub struct UserOut {
    id: String,
    email: String,
    role: &'static str,
    practitioner_id: Option<String>,
    active: bool,
    locked: bool,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.to_string(),
            role: u.role.as_str(),
            practitioner_id: u.practitioner_id.map(|p| p.to_string()),
            active: u.active,
            locked: u.is_locked(chrono::Utc::now()),
        }
    }
}

async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: web::Json<UserIn>,
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
        .json(UserOut::from(user)))
}

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
    Ok(HttpResponse::Ok().json(PageOut::new(&req, page, UserOut::from)))
}

async fn update(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<UserPatch>,
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
        .update(&auth.0, UserId::from_uuid(*id), changes)
        .await?;
    Ok(HttpResponse::Ok().json(UserOut::from(user)))
}
