//! Practitioners: registration, reading, changes and listing.

use std::sync::Arc;

use clinicflow_domain::practitioner::{parse_buffer_minutes, parse_code, parse_slot_minutes};
use clinicflow_domain::{
    Actor, ClinicId, Page, PageRequest, Permission, PersonName, Practitioner, PractitionerId,
};
use clinicflow_ports::{Derived, PractitionerFilter, Tx, TxMode, practitioner_list_tag};
use uuid::Uuid;

use crate::{FieldErrors, Ports, ServiceError};

/// Slot length used when a new practitioner names none.
pub const DEFAULT_SLOT_MINUTES: u32 = 30;

/// A practitioner to register, as sent by a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewPractitioner {
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Specialty codes.
    pub specialties: Vec<String>,
    /// Department code.
    pub department: Option<String>,
    /// Default slot length (default 30).
    pub slot_minutes: Option<u32>,
    /// Buffer after each appointment (default 0).
    pub buffer_minutes: Option<u32>,
}

/// A partial change: `None` keeps a field, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PractitionerChanges {
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Specialty codes (replaces the list).
    pub specialties: Option<Vec<String>>,
    /// Department code.
    pub department: Option<Option<String>>,
    /// Default slot length.
    pub slot_minutes: Option<u32>,
    /// Buffer after each appointment.
    pub buffer_minutes: Option<u32>,
}

fn parse_specialties(errors: &mut FieldErrors, raw: &[String]) -> Vec<String> {
    if raw.len() > 20 {
        errors.add("specialties", "at most 20 specialties");
        return Vec::new();
    }
    let mut out: Vec<String> = raw
        .iter()
        .filter_map(|s| errors.check("specialties", parse_code(s)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Registers, reads, changes and lists practitioners.
#[derive(Debug, Clone)]
pub struct PractitionerService {
    ports: Ports,
}

impl PractitionerService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    /// Registers a practitioner in the actor's clinic.
    #[tracing::instrument(skip_all)]
    pub async fn create(
        &self,
        actor: &Actor,
        input: NewPractitioner,
    ) -> Result<Practitioner, ServiceError> {
        actor.require(Permission::WritePractitioners)?;
        let mut errors = FieldErrors::new();
        let name = errors.check(
            "name",
            PersonName::parse(&input.given_name, &input.family_name),
        );
        let specialties = parse_specialties(&mut errors, &input.specialties);
        let department = input
            .department
            .as_deref()
            .and_then(|d| errors.check("department", parse_code(d)));
        let slot_minutes = errors.check(
            "slot_minutes",
            parse_slot_minutes(input.slot_minutes.unwrap_or(DEFAULT_SLOT_MINUTES)),
        );
        let buffer_minutes = errors.check(
            "buffer_minutes",
            parse_buffer_minutes(input.buffer_minutes.unwrap_or(0)),
        );
        errors.into_result()?;
        let (Some(name), Some(slot_minutes), Some(buffer_minutes)) =
            (name, slot_minutes, buffer_minutes)
        else {
            unreachable!("every required field parsed when no error was recorded")
        };
        let now = self.ports.clock.now();
        let practitioner = Practitioner {
            id: PractitionerId::from_uuid(Uuid::now_v7()),
            clinic_id: actor.clinic_id,
            name,
            specialties,
            department,
            slot_minutes,
            buffer_minutes,
            active: true,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        self.ports
            .practitioners
            .insert(&mut tx, &practitioner)
            .await?;
        tx.commit().await?;
        Ok(practitioner)
    }

    /// One practitioner of the actor's clinic.
    pub async fn get(
        &self,
        actor: &Actor,
        id: PractitionerId,
    ) -> Result<Practitioner, ServiceError> {
        actor.require(Permission::ReadPractitioners)?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        cached_practitioner(&self.ports, &mut tx, actor.clinic_id, id).await
    }

    /// Applies a partial change; `if_match` (a version) guards against lost updates.
    #[tracing::instrument(skip_all)]
    pub async fn update(
        &self,
        actor: &Actor,
        id: PractitionerId,
        changes: PractitionerChanges,
        if_match: Option<i32>,
    ) -> Result<Practitioner, ServiceError> {
        actor.require(Permission::WritePractitioners)?;
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let mut p = self
            .ports
            .practitioners
            .get(&mut tx, actor.clinic_id, id)
            .await?
            .ok_or(ServiceError::NotFound("practitioner"))?;
        crate::versioned::require_version(if_match, p.version)?;
        let mut errors = FieldErrors::new();
        if changes.given_name.is_some() || changes.family_name.is_some() {
            let given = changes.given_name.as_deref().unwrap_or(p.name.given());
            let family = changes.family_name.as_deref().unwrap_or(p.name.family());
            if let Some(n) = errors.check("name", PersonName::parse(given, family)) {
                p.name = n;
            }
        }
        if let Some(s) = &changes.specialties {
            p.specialties = parse_specialties(&mut errors, s);
        }
        if let Some(d) = &changes.department {
            p.department = d
                .as_deref()
                .and_then(|d| errors.check("department", parse_code(d)));
        }
        if let Some(m) = changes.slot_minutes
            && let Some(m) = errors.check("slot_minutes", parse_slot_minutes(m))
        {
            p.slot_minutes = m;
        }
        if let Some(m) = changes.buffer_minutes
            && let Some(m) = errors.check("buffer_minutes", parse_buffer_minutes(m))
        {
            p.buffer_minutes = m;
        }
        errors.into_result()?;
        let expected = p.version;
        p.version += 1;
        p.updated_at = self.ports.clock.now();
        self.ports
            .practitioners
            .update(&mut tx, &p, expected)
            .await?;
        tx.commit().await?;
        Ok(p)
    }

    /// Deactivates (`active: false`) or reactivates a practitioner. A deactivated one takes
    /// no new bookings and offers no slots; their appointments stay as they are, to be
    /// attended, cancelled or rescheduled. `if_match` (a version) guards against lost updates.
    #[tracing::instrument(skip_all)]
    pub async fn set_active(
        &self,
        actor: &Actor,
        id: PractitionerId,
        active: bool,
        if_match: Option<i32>,
    ) -> Result<Practitioner, ServiceError> {
        actor.require(Permission::WritePractitioners)?;
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let mut p = self
            .ports
            .practitioners
            .get(&mut tx, actor.clinic_id, id)
            .await?
            .ok_or(ServiceError::NotFound("practitioner"))?;
        crate::versioned::require_version(if_match, p.version)?;
        if p.active == active {
            // Already so: nothing to write, and the cached slots stay valid.
            return Ok(p);
        }
        let expected = p.version;
        p.active = active;
        p.version += 1;
        p.updated_at = self.ports.clock.now();
        // The update touches the practitioner's tag, so their cached slots and record are
        // invalidated once this commits (`services::invalidate`).
        self.ports
            .practitioners
            .update(&mut tx, &p, expected)
            .await?;
        tx.commit().await?;
        Ok(p)
    }

    /// One page of practitioners, optionally by specialty, department or whether active.
    pub async fn list(
        &self,
        actor: &Actor,
        specialty: Option<&str>,
        department: Option<&str>,
        active: Option<bool>,
        page: PageRequest,
    ) -> Result<Page<Practitioner>, ServiceError> {
        actor.require(Permission::ReadPractitioners)?;
        let mut errors = FieldErrors::new();
        let filter = PractitionerFilter {
            specialty: specialty.and_then(|s| errors.check("specialty", parse_code(s))),
            department: department.and_then(|d| errors.check("department", parse_code(d))),
            active,
        };
        errors.into_result()?;
        directory_page(&self.ports, actor.clinic_id, &filter, page).await
    }
}

/// One page of a clinic's practitioner directory through the cache; a hit hands back the
/// page decoded on an earlier hit of the same cached value, so it is neither parsed nor read.
pub(crate) async fn directory_page(
    ports: &Ports,
    clinic: ClinicId,
    filter: &PractitionerFilter,
    page: PageRequest,
) -> Result<Page<Practitioner>, ServiceError> {
    // The key names the clinic and every filter; Debug quotes them, so none runs into the next.
    let key = format!(
        "directory:{}:{:?}:{:?}:{:?}:{}:{}",
        clinic,
        filter.specialty,
        filter.department,
        filter.active,
        page.page(),
        page.size()
    );
    let derive =
        |bytes: &[u8]| -> Option<Derived> { Some(Arc::new(decode_page(clinic, page, bytes)?)) };
    if let Some(derived) = ports.cache.get_derived(&key, &derive).await
        && let Some(cached) = derived.downcast_ref::<Page<Practitioner>>()
    {
        return Ok(cached.clone());
    }
    let mut tx = ports.db.begin(TxMode::Read).await?;
    let load = async {
        Ok(ports
            .practitioners
            .list(&mut tx, clinic, filter, page)
            .await?)
    };
    let tags = [practitioner_list_tag(clinic)];
    crate::cached::load_tagged(ports, &key, &tags, DIRECTORY_TTL, encode_page, load).await
}

/// How long a practitioner read stays cached; every change of theirs makes it stale at once.
const PRACTITIONER_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// A practitioner as the cache keeps it: the row's fields, parsed again when read back.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    given: String,
    family: String,
    specialties: Vec<String>,
    department: Option<String>,
    slot_minutes: u32,
    buffer_minutes: u32,
    active: bool,
    version: i32,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<&Practitioner> for Cached {
    fn from(p: &Practitioner) -> Self {
        Self {
            given: p.name.given().to_owned(),
            family: p.name.family().to_owned(),
            specialties: p.specialties.clone(),
            department: p.department.clone(),
            slot_minutes: p.slot_minutes,
            buffer_minutes: p.buffer_minutes,
            active: p.active,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

impl Cached {
    /// Parsed again as the domain parses input: an entry that does not parse is a miss.
    fn practitioner(self, clinic: ClinicId, id: PractitionerId) -> Option<Practitioner> {
        Some(Practitioner {
            id,
            clinic_id: clinic,
            name: PersonName::parse(&self.given, &self.family).ok()?,
            specialties: self.specialties,
            department: self.department,
            slot_minutes: self.slot_minutes,
            buffer_minutes: self.buffer_minutes,
            active: self.active,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn encode(p: &Practitioner) -> Vec<u8> {
    serde_json::to_vec(&Cached::from(p)).unwrap_or_default()
}

fn decode(clinic: ClinicId, id: PractitionerId, bytes: &[u8]) -> Option<Practitioner> {
    serde_json::from_slice::<Cached>(bytes)
        .ok()?
        .practitioner(clinic, id)
}

/// A page of the directory as the cache keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct CachedPage {
    total: u64,
    items: Vec<(Uuid, Cached)>,
}

fn encode_page(page: &Page<Practitioner>) -> Vec<u8> {
    serde_json::to_vec(&CachedPage {
        total: page.total,
        items: page
            .items
            .iter()
            .map(|p| (p.id.as_uuid(), Cached::from(p)))
            .collect(),
    })
    .unwrap_or_default()
}

fn decode_page(clinic: ClinicId, request: PageRequest, bytes: &[u8]) -> Option<Page<Practitioner>> {
    let c: CachedPage = serde_json::from_slice(bytes).ok()?;
    let items = c
        .items
        .into_iter()
        .map(|(id, p)| p.practitioner(clinic, PractitionerId::from_uuid(id)))
        .collect::<Option<Vec<_>>>()?;
    Some(Page {
        items,
        total: c.total,
        request,
    })
}

/// How long a cached directory page lives; every practitioner write makes it stale at once.
const DIRECTORY_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The cache key of a practitioner of `clinic`: naming the clinic, another clinic's id is a
/// miss and then a 404 from the database, never a cached hit.
fn practitioner_key(clinic: ClinicId, id: PractitionerId) -> String {
    format!("practitioner:{clinic}:{id}")
}

/// A practitioner of `clinic` if the cache holds them; a hit hands back the record decoded
/// on an earlier hit of the same cached value.
pub(crate) async fn practitioner_from_cache(
    ports: &Ports,
    clinic: ClinicId,
    id: PractitionerId,
) -> Option<Practitioner> {
    let derive = |bytes: &[u8]| -> Option<Derived> { Some(Arc::new(decode(clinic, id, bytes)?)) };
    let derived = ports
        .cache
        .get_derived(&practitioner_key(clinic, id), &derive)
        .await?;
    derived.downcast_ref::<Practitioner>().cloned()
}

/// Reads a practitioner of `clinic` through the cache: for reads, and for a booking, which
/// takes no lock that a change of the practitioner would wait for, so the row read in its
/// transaction would be no fresher than the cache a committed change has invalidated. Writes
/// to the practitioner read the row in their own transaction.
pub(crate) async fn cached_practitioner(
    ports: &Ports,
    tx: &mut Tx,
    clinic: ClinicId,
    id: PractitionerId,
) -> Result<Practitioner, ServiceError> {
    if let Some(p) = practitioner_from_cache(ports, clinic, id).await {
        return Ok(p);
    }
    let key = practitioner_key(clinic, id);
    let load = async {
        ports
            .practitioners
            .get(tx, clinic, id)
            .await?
            .ok_or(ServiceError::NotFound("practitioner"))
    };
    // The record changes only with writes of practitioners, which touch the clinic's list
    // tag; `practitioner_tag` would go stale with every booking of theirs as well.
    let tags = [practitioner_list_tag(clinic)];
    crate::cached::load_tagged(ports, &key, &tags, PRACTITIONER_TTL, encode, load).await
}

#[cfg(test)]
mod cache_tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn a_cached_practitioner_decodes_to_what_was_encoded() {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 1, 8, 0, 0)
            .single()
            .expect("valid")
            + chrono::Duration::microseconds(123_456);
        let p = Practitioner {
            id: PractitionerId::from_uuid(Uuid::now_v7()),
            clinic_id: ClinicId::from_uuid(Uuid::now_v7()),
            name: PersonName::parse("Gregory", "House").expect("valid"),
            specialties: vec!["diagnostics".into(), "nephrology".into()],
            department: Some("internal-medicine".into()),
            slot_minutes: 20,
            buffer_minutes: 5,
            active: false,
            version: 3,
            created_at: at,
            updated_at: at + chrono::Duration::days(1),
        };
        assert_eq!(decode(p.clinic_id, p.id, &encode(&p)), Some(p.clone()));
        assert_eq!(decode(p.clinic_id, p.id, b"not json"), None);
    }
}
