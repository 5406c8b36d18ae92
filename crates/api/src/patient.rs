//! `/api/v1/patients`: registration, reads, partial updates, soft deletion and search.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::{Patient, PatientId};
use clinicflow_services::patient::{ContactInput, InsuranceInput};
use clinicflow_services::{NewPatient, PatientChanges};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::body::Json;
use crate::openapi::problems;
use crate::page::{
    CursorPageOut, FieldsParams, ListParams, PageOut, Paging, created, double_option, if_match,
    versioned,
};
use crate::{ApiError, AppState, Authenticated, idempotency};

/// Registers the patient routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/patients")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/patients/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    );
}

/// An emergency contact.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactDto {
    /// Their name.
    name: String,
    /// Their phone, stored in E.164.
    phone: String,
}

/// Insurance details.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsuranceDto {
    /// The insurer.
    payer: String,
    /// The patient's number there.
    member_id: String,
}

impl From<ContactDto> for ContactInput {
    fn from(c: ContactDto) -> Self {
        Self {
            name: c.name,
            phone: c.phone,
        }
    }
}

impl From<InsuranceDto> for InsuranceInput {
    fn from(i: InsuranceDto) -> Self {
        Self {
            payer: i.payer,
            member_id: i.member_id,
        }
    }
}

/// `POST /patients` body.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientIn {
    /// Given name.
    given_name: String,
    /// Family name.
    family_name: String,
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    birth_date: String,
    /// `female`, `male`, `other` or `unknown` (default).
    sex: Option<String>,
    /// Spaces, dashes and parentheses are removed; stored in E.164.
    #[schema(example = "+49 30 1234567")]
    phone: Option<String>,
    /// Stored lower-cased.
    #[schema(format = Email)]
    email: Option<String>,
    /// Whom to call in an emergency.
    emergency_contact: Option<ContactDto>,
    /// Insurance details.
    insurance: Option<InsuranceDto>,
}

impl From<PatientIn> for NewPatient {
    fn from(p: PatientIn) -> Self {
        Self {
            given_name: p.given_name,
            family_name: p.family_name,
            birth_date: p.birth_date,
            sex: p.sex,
            phone: p.phone,
            email: p.email,
            emergency_contact: p.emergency_contact.map(Into::into),
            insurance: p.insurance.map(Into::into),
        }
    }
}

/// `PATCH /patients/{id}` body: absent fields stay, null clears optional ones.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientPatch {
    /// Given name.
    given_name: Option<String>,
    /// Family name.
    family_name: Option<String>,
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    birth_date: Option<String>,
    /// `female`, `male`, `other` or `unknown`.
    sex: Option<String>,
    /// A phone; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    phone: Option<Option<String>>,
    /// An e-mail; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = Email)]
    email: Option<Option<String>>,
    /// An emergency contact; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<ContactDto>)]
    emergency_contact: Option<Option<ContactDto>>,
    /// Insurance details; `null` clears them.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<InsuranceDto>)]
    insurance: Option<Option<InsuranceDto>>,
}

impl From<PatientPatch> for PatientChanges {
    fn from(p: PatientPatch) -> Self {
        Self {
            given_name: p.given_name,
            family_name: p.family_name,
            birth_date: p.birth_date,
            sex: p.sex,
            phone: p.phone,
            email: p.email,
            emergency_contact: p.emergency_contact.map(|c| c.map(Into::into)),
            insurance: p.insurance.map(|i| i.map(Into::into)),
        }
    }
}

/// A patient as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PatientOut {
    /// The patient's id.
    id: String,
    /// Given name.
    given_name: String,
    /// Family name.
    family_name: String,
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    birth_date: String,
    /// `female`, `male`, `other` or `unknown`.
    sex: &'static str,
    /// Phone in E.164.
    phone: Option<String>,
    /// E-mail, lower-cased.
    email: Option<String>,
    /// Whom to call in an emergency.
    emergency_contact: Option<ContactDto>,
    /// Insurance details.
    insurance: Option<InsuranceDto>,
    /// The version, also the `ETag`.
    version: i32,
    /// When registered.
    #[serde(serialize_with = "crate::page::instant")]
    created_at: DateTime<Utc>,
    /// When last changed.
    #[serde(serialize_with = "crate::page::instant")]
    updated_at: DateTime<Utc>,
}

/// What `GET /patients` answers: a numbered page, or a keyset page when `cursor` or `limit`
/// is given. With `?fields=`, each item has only the fields selected and `id`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PatientList {
    /// `?page=&page_size=`.
    Pages(PageOut<PatientOut>),
    /// `?cursor=&limit=`.
    Keyset(CursorPageOut<PatientOut>),
}

impl PatientOut {
    /// The field names a client may select with `?fields=`.
    pub const FIELDS: &[&str] = &[
        "id",
        "given_name",
        "family_name",
        "birth_date",
        "sex",
        "phone",
        "email",
        "emergency_contact",
        "insurance",
        "version",
        "created_at",
        "updated_at",
    ];
}

impl From<Patient> for PatientOut {
    fn from(p: Patient) -> Self {
        Self {
            id: p.id.to_string(),
            given_name: p.name.given().to_owned(),
            family_name: p.name.family().to_owned(),
            birth_date: p.birth_date.date().to_string(),
            sex: p.sex.as_str(),
            phone: p.phone.map(|v| v.to_string()),
            email: p.email.map(|v| v.to_string()),
            emergency_contact: p.emergency_contact.map(|c| ContactDto {
                name: c.name,
                phone: c.phone.to_string(),
            }),
            insurance: p.insurance.map(|i| InsuranceDto {
                payer: i.payer,
                member_id: i.member_id,
            }),
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Registers a patient.
#[utoipa::path(
    post,
    path = "/api/v1/patients",
    operation_id = "create_patient",
    tag = "patient",
    params(idempotency::KeyHeader),
    request_body = PatientIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered, with `Location` and `ETag`", body = PatientOut, headers(("Location" = String, description = "The patient's URL"), ("ETag" = String, description = "`\"<version>\"`"))),
        problems::Common,
        problems::Forbidden,
        problems::Conflict,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    body: Json<PatientIn>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let patients = &state.services.patients;
    let Some(keyed) = idempotency::key_of(&req, &body)? else {
        return Ok(created_patient(
            &patients.create(&auth.0, body.into()).await?,
        ));
    };
    let render = |p: &Patient| idempotency::stored(created_patient(p));
    let once = keyed.once(state.limits.idempotency_ttl_secs, &render);
    let answered = patients
        .create_idempotent(&auth.0, body.into(), &once)
        .await?;
    Ok(idempotency::respond(answered))
}

fn created_patient(patient: &Patient) -> HttpResponse {
    created(
        format!("/api/v1/patients/{}", patient.id),
        patient.version,
        &PatientOut::from(patient.clone()),
    )
}

/// A patient, with its version as `ETag` (a `fields` selection gets a weak body ETag instead).
#[utoipa::path(
    get,
    path = "/api/v1/patients/{id}",
    operation_id = "get_patient",
    tag = "patient",
    params(
        ("id" = Uuid, Path, description = "The patient's id"),
        FieldsParams,
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "An `ETag` held; answered with 304 when current"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The patient (only the selected fields with `fields`)", body = PatientOut, headers(("ETag" = String, description = "`\"<version>\"`, or a weak body tag with `fields`"))),
        (status = 304, description = "Not modified: the `If-None-Match` ETag is current"),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::Invalid,
    )
)]
async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    fields: web::Query<FieldsParams>,
) -> Result<HttpResponse, ApiError> {
    let fields = fields.select(PatientOut::FIELDS)?;
    let patient = state
        .services
        .patients
        .get(&auth.0, PatientId::from_uuid(*id))
        .await?;
    let version = patient.version;
    Ok(fields.read(&req, version, &PatientOut::from(patient)))
}

/// Changes any subset of a patient's fields; `null` clears an optional one.
#[utoipa::path(
    patch,
    path = "/api/v1/patients/{id}",
    operation_id = "update_patient",
    tag = "patient",
    params(
        ("id" = Uuid, Path, description = "The patient's id"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` read; a stale one is a 412"),
    ),
    request_body = PatientPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed patient", body = PatientOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
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
    body: Json<PatientPatch>,
) -> Result<HttpResponse, ApiError> {
    let patient = state
        .services
        .patients
        .update(
            &auth.0,
            PatientId::from_uuid(*id),
            body.into_inner().into(),
            if_match(&req)?,
        )
        .await?;
    let version = patient.version;
    Ok(versioned(&req, version, &PatientOut::from(patient)))
}

/// Soft-deletes a patient (admins): invisible everywhere afterwards.
#[utoipa::path(
    delete,
    path = "/api/v1/patients/{id}",
    operation_id = "delete_patient",
    tag = "patient",
    params(("id" = Uuid, Path, description = "The patient's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
    )
)]
async fn delete(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state
        .services
        .patients
        .delete(&auth.0, PatientId::from_uuid(*id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /patients` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// An e-mail (contains `@`), a phone (starts with `+`), or else a name prefix matched
    /// against "family given" and "given family", case-insensitively; a name search is
    /// ordered by the name as matched, then id.
    q: Option<String>,
}

/// Patients by family name, given name: page numbers or keyset paging.
#[utoipa::path(
    get,
    path = "/api/v1/patients",
    operation_id = "list_patients",
    tag = "patient",
    params(ListQuery, ListParams, FieldsParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of patients", body = PatientList),
        problems::Common,
        problems::Forbidden,
        problems::Invalid,
    )
)]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    query: web::Query<ListQuery>,
    paging: web::Query<ListParams>,
    fields: web::Query<FieldsParams>,
) -> Result<HttpResponse, ApiError> {
    let fields = fields.select(PatientOut::FIELDS)?;
    let show = |p: Patient| fields.apply(PatientOut::from(p));
    let patients = &state.services.patients;
    let q = query.q.as_deref();
    match paging.into_inner().paging()? {
        Paging::Pages(page) => {
            let page = patients.list(&auth.0, q, page).await?;
            Ok(HttpResponse::Ok().json(PageOut::new(&req, page, show)))
        }
        Paging::Keyset { cursor, limit } => {
            let (items, next) = patients
                .list_after(&auth.0, q, cursor.as_deref(), limit)
                .await?;
            Ok(HttpResponse::Ok().json(CursorPageOut::new(items, next, show)))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};
    use clinicflow_domain::{BirthDate, ClinicId, PersonName, Sex};

    use super::*;

    #[test]
    fn the_selectable_fields_are_exactly_the_fields_shown() {
        let now = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("a valid instant");
        let patient = Patient {
            id: PatientId::from_uuid(Uuid::nil()),
            clinic_id: ClinicId::from_uuid(Uuid::nil()),
            name: PersonName::parse("Ada", "Lovelace").expect("valid"),
            birth_date: BirthDate::from_stored(
                NaiveDate::from_ymd_opt(1985, 12, 10).expect("valid"),
            ),
            sex: Sex::Female,
            phone: None,
            email: None,
            emergency_contact: None,
            insurance: None,
            version: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let shown = serde_json::to_value(PatientOut::from(patient)).expect("serializes");
        let mut names: Vec<&str> = shown
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        let mut allowed = PatientOut::FIELDS.to_vec();
        allowed.sort_unstable();
        assert_eq!(names, allowed);
    }
}
