//! Patients: registration, reading, changes, soft deletion and search.

use clinicflow_domain::page::{Limit, PatientKey};
use clinicflow_domain::{
    Actor, AuditAction, BirthDate, Email, EmergencyContact, Insurance, InvalidValue, Page,
    PageRequest, Patient, PatientId, Permission, PersonName, Phone, ResourceType, Sex,
};
use clinicflow_ports::{AppointmentFilter, PatientFilter, PatientSearch, Tx, TxMode};
use uuid::Uuid;

use crate::audit::{self, Access, own_practitioner};
use crate::idempotency::{self, Answered, Once, Outcome};
use crate::{FieldErrors, Ports, ServiceError, input};

/// An emergency contact as sent by a client.
#[derive(Clone, PartialEq, Eq)]
pub struct ContactInput {
    /// Name.
    pub name: String,
    /// Phone number.
    pub phone: String,
}

/// Insurance as sent by a client.
#[derive(Clone, PartialEq, Eq)]
pub struct InsuranceInput {
    /// Payer.
    pub payer: String,
    /// Member id.
    pub member_id: String,
}

/// A patient to register, as sent by a client.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NewPatient {
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// female, male, other or unknown (default unknown).
    pub sex: Option<String>,
    /// E.164 phone.
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Emergency contact.
    pub emergency_contact: Option<ContactInput>,
    /// Insurance.
    pub insurance: Option<InsuranceInput>,
}

/// A partial change: `None` keeps a field, `Some(None)` clears an optional one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PatientChanges {
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Birth date.
    pub birth_date: Option<String>,
    /// Sex.
    pub sex: Option<String>,
    /// Phone.
    pub phone: Option<Option<String>>,
    /// E-mail.
    pub email: Option<Option<String>>,
    /// Emergency contact.
    pub emergency_contact: Option<Option<ContactInput>>,
    /// Insurance.
    pub insurance: Option<Option<InsuranceInput>>,
}

opaque_debug!(ContactInput, InsuranceInput, NewPatient, PatientChanges);

/// Registers, reads, changes and searches patients.
#[derive(Debug, Clone)]
pub struct PatientService {
    ports: Ports,
}

fn parse_contact(errors: &mut FieldErrors, c: &ContactInput) -> Option<EmergencyContact> {
    errors.check(
        "emergency_contact",
        EmergencyContact::parse(&c.name, &c.phone),
    )
}

fn parse_insurance(errors: &mut FieldErrors, i: &InsuranceInput) -> Option<Insurance> {
    errors.check("insurance", Insurance::parse(&i.payer, &i.member_id))
}

impl PatientService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    async fn today(&self, actor: &Actor) -> Result<chrono::NaiveDate, ServiceError> {
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        Ok(clinic.local_date(self.ports.clock.now()))
    }

    /// Registers a patient in the actor's clinic.
    #[tracing::instrument(skip_all)]
    pub async fn create(&self, actor: &Actor, input: NewPatient) -> Result<Patient, ServiceError> {
        self.create_with(actor, input, None).await?.value()
    }

    /// Registers a patient at most once per idempotency key: a retry gets the first answer.
    #[tracing::instrument(skip_all)]
    pub async fn create_idempotent(
        &self,
        actor: &Actor,
        input: NewPatient,
        once: &Once<'_, Patient>,
    ) -> Result<Answered, ServiceError> {
        self.create_with(actor, input, Some(once)).await?.answered()
    }

    async fn create_with(
        &self,
        actor: &Actor,
        input: NewPatient,
        once: Option<&Once<'_, Patient>>,
    ) -> Result<Outcome<Patient>, ServiceError> {
        audit::require(
            &self.ports,
            actor,
            Permission::WritePatients,
            Access::kind(AuditAction::Create, ResourceType::Patient),
        )
        .await?;
        let today = self.today(actor).await?;
        let mut errors = FieldErrors::new();
        let name = PersonName::parse(&input.given_name, &input.family_name);
        let name = match name {
            Ok(n) => Some(n),
            Err(_) => {
                errors.check(
                    "given_name",
                    PersonName::parse(&input.given_name, "x").map(|_| ()),
                );
                errors.check(
                    "family_name",
                    PersonName::parse("x", &input.family_name).map(|_| ()),
                );
                None
            }
        };
        let birth_date = errors.check(
            "birth_date",
            input::date(&input.birth_date).and_then(|d| BirthDate::parse(d, today)),
        );
        let sex = errors.check(
            "sex",
            input.sex.as_deref().unwrap_or("unknown").parse::<Sex>(),
        );
        let phone = input
            .phone
            .as_deref()
            .and_then(|p| errors.check("phone", Phone::parse(p)));
        let email = input
            .email
            .as_deref()
            .and_then(|e| errors.check("email", Email::parse(e)));
        let emergency_contact = input
            .emergency_contact
            .as_ref()
            .and_then(|c| parse_contact(&mut errors, c));
        let insurance = input
            .insurance
            .as_ref()
            .and_then(|i| parse_insurance(&mut errors, i));
        errors.into_result()?;
        let (Some(name), Some(birth_date), Some(sex)) = (name, birth_date, sex) else {
            unreachable!("every required field parsed when no error was recorded")
        };
        let now = self.ports.clock.now();
        let patient = Patient {
            id: PatientId::from_uuid(Uuid::now_v7()),
            clinic_id: actor.clinic_id,
            name,
            birth_date,
            sex,
            phone,
            email,
            emergency_contact,
            insurance,
            version: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        if let Some(earlier) = idempotency::claim(&self.ports, &mut tx, actor, once).await? {
            // The stored answer is the patient's record, shown again: a disclosure like a read,
            // audited as one, and refused once the patient is gone.
            let id = PatientId::from_uuid(idempotency::replayed_id(once, &earlier)?);
            if self
                .ports
                .patients
                .get(&mut tx, actor.clinic_id, id)
                .await?
                .is_none()
            {
                return Err(ServiceError::NotFound("patient"));
            }
            audit::record(
                &self.ports,
                &mut tx,
                actor,
                Access::patient(AuditAction::Read, id),
            )
            .await?;
            tx.commit().await?;
            return Ok(earlier);
        }
        self.ports.patients.insert(&mut tx, &patient).await?;
        audit::record(
            &self.ports,
            &mut tx,
            actor,
            Access::patient(AuditAction::Create, patient.id),
        )
        .await?;
        let outcome = idempotency::finish(&self.ports, &mut tx, actor, once, patient).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// The patient, if the actor may see it: a practitioner sees only patients booked with them.
    async fn visible(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        id: PatientId,
    ) -> Result<Patient, ServiceError> {
        let patient = self
            .ports
            .patients
            .get(tx, actor.clinic_id, id)
            .await?
            .ok_or(ServiceError::NotFound("patient"))?;
        if let Some(own) = own_practitioner(actor) {
            let filter = AppointmentFilter {
                practitioner_id: Some(own),
                patient_id: Some(id),
                ..AppointmentFilter::default()
            };
            let one = PageRequest::first(1);
            if self
                .ports
                .appointments
                .list(tx, actor.clinic_id, &filter, one)
                .await?
                .total
                == 0
            {
                return Err(ServiceError::NotFound("patient"));
            }
        }
        Ok(patient)
    }

    /// One patient of the actor's clinic.
    pub async fn get(&self, actor: &Actor, id: PatientId) -> Result<Patient, ServiceError> {
        let access = Access::patient(AuditAction::Read, id);
        audit::require(&self.ports, actor, Permission::ReadPatients, access).await?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let patient = self.visible(&mut tx, actor, id).await?;
        tx.commit().await?;
        audit::disclose(&self.ports, actor, access).await?;
        Ok(patient)
    }

    /// Applies a partial change; `if_match` (a version) guards against lost updates.
    #[tracing::instrument(skip_all)]
    pub async fn update(
        &self,
        actor: &Actor,
        id: PatientId,
        changes: PatientChanges,
        if_match: Option<i32>,
    ) -> Result<Patient, ServiceError> {
        let access = Access::patient(AuditAction::Update, id);
        audit::require(&self.ports, actor, Permission::WritePatients, access).await?;
        let today = self.today(actor).await?;
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let mut patient = self.visible(&mut tx, actor, id).await?;
        crate::versioned::require_version(if_match, patient.version)?;
        let mut errors = FieldErrors::new();
        if changes.given_name.is_some() || changes.family_name.is_some() {
            let given = changes
                .given_name
                .as_deref()
                .unwrap_or(patient.name.given());
            let family = changes
                .family_name
                .as_deref()
                .unwrap_or(patient.name.family());
            if let Some(n) = errors.check("name", PersonName::parse(given, family)) {
                patient.name = n;
            }
        }
        if let Some(raw) = &changes.birth_date
            && let Some(d) = errors.check(
                "birth_date",
                input::date(raw).and_then(|d| BirthDate::parse(d, today)),
            )
        {
            patient.birth_date = d;
        }
        if let Some(raw) = &changes.sex
            && let Some(s) = errors.check("sex", raw.parse::<Sex>())
        {
            patient.sex = s;
        }
        if let Some(phone) = &changes.phone {
            patient.phone = phone
                .as_deref()
                .and_then(|p| errors.check("phone", Phone::parse(p)));
        }
        if let Some(email) = &changes.email {
            patient.email = email
                .as_deref()
                .and_then(|e| errors.check("email", Email::parse(e)));
        }
        if let Some(c) = &changes.emergency_contact {
            patient.emergency_contact = c.as_ref().and_then(|c| parse_contact(&mut errors, c));
        }
        if let Some(i) = &changes.insurance {
            patient.insurance = i.as_ref().and_then(|i| parse_insurance(&mut errors, i));
        }
        errors.into_result()?;
        let expected = patient.version;
        patient.version += 1;
        patient.updated_at = self.ports.clock.now();
        self.ports
            .patients
            .update(&mut tx, &patient, expected)
            .await?;
        audit::record(&self.ports, &mut tx, actor, access).await?;
        tx.commit().await?;
        Ok(patient)
    }

    /// Soft-deletes a patient: hidden from every read, kept for the record.
    #[tracing::instrument(skip_all)]
    pub async fn delete(&self, actor: &Actor, id: PatientId) -> Result<(), ServiceError> {
        let access = Access::patient(AuditAction::Delete, id);
        audit::require(&self.ports, actor, Permission::DeletePatients, access).await?;
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let mut patient = self
            .ports
            .patients
            .get(&mut tx, actor.clinic_id, id)
            .await?
            .ok_or(ServiceError::NotFound("patient"))?;
        let expected = patient.version;
        let now = self.ports.clock.now();
        patient.version += 1;
        patient.updated_at = now;
        patient.deleted_at = Some(now);
        self.ports
            .patients
            .update(&mut tx, &patient, expected)
            .await?;
        audit::record(&self.ports, &mut tx, actor, access).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One page of patients, optionally searched by name prefix, phone or e-mail.
    pub async fn list(
        &self,
        actor: &Actor,
        q: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Patient>, ServiceError> {
        let access = Access::list(ResourceType::Patient, None);
        audit::require(&self.ports, actor, Permission::ReadPatients, access).await?;
        let filter = list_filter(actor, q);
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let page = self
            .ports
            .patients
            .list(&mut tx, actor.clinic_id, &filter, page)
            .await?;
        tx.commit().await?;
        audit::disclose(&self.ports, actor, access).await?;
        Ok(page)
    }

    /// One keyset page of patients in list order, searched as [`PatientService::list`] does,
    /// after the position `cursor` names (from the start without one), and the cursor of the
    /// next page when there is one.
    pub async fn list_after(
        &self,
        actor: &Actor,
        q: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<Patient>, Option<String>), ServiceError> {
        let access = Access::list(ResourceType::Patient, None);
        audit::require(&self.ports, actor, Permission::ReadPatients, access).await?;
        let mut errors = FieldErrors::new();
        // An empty cursor (`?cursor=`) asks for the first page.
        let after = cursor
            .filter(|c| !c.trim().is_empty())
            .and_then(|c| errors.check("cursor", parse_cursor(c)));
        let limit = errors.check("limit", Limit::parse(limit));
        errors.into_result()?;
        let Some(limit) = limit else {
            unreachable!("the limit parsed when no error was recorded")
        };
        let filter = list_filter(actor, q);
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let mut patients = self
            .ports
            .patients
            .list_after(&mut tx, actor.clinic_id, &filter, after, limit.fetch())
            .await?;
        tx.commit().await?;
        audit::disclose(&self.ports, actor, access).await?;
        let next = if limit.cut(&mut patients) {
            patients.last().map(cursor_of)
        } else {
            None
        };
        Ok((patients, next))
    }
}

/// What a patient list shows the actor: a practitioner sees only patients booked with them.
fn list_filter(actor: &Actor, q: Option<&str>) -> PatientFilter {
    PatientFilter {
        search: q.and_then(search_for),
        seen_by: own_practitioner(actor),
    }
}

/// Names the cursors of the patient list, so no other list's cursor is taken for one.
const CURSOR_KIND: &str = "patients";

/// The cursor that continues the patient list after `patient`.
fn cursor_of(patient: &Patient) -> String {
    let key = PatientKey::of(patient);
    let id = key.id.to_string();
    input::cursor(CURSOR_KIND, &[key.name.family(), key.name.given(), &id])
}

/// The position a patient-list cursor names.
fn parse_cursor(raw: &str) -> Result<PatientKey, InvalidValue> {
    let [family, given, id] = input::cursor_parts(raw, CURSOR_KIND)?;
    // Stored names are valid names; anything else (a control character, say) is no cursor.
    let name = PersonName::parse(&given, &family).map_err(|_| input::not_a_cursor())?;
    let id = input::id(&id).map_err(|_| input::not_a_cursor())?;
    Ok(PatientKey {
        name,
        id: PatientId::from_uuid(id),
    })
}

/// Reads a search string as an e-mail, a phone number, or else a name prefix.
pub fn search_for(q: &str) -> Option<PatientSearch> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    if q.contains('@') {
        if let Ok(e) = Email::parse(q) {
            return Some(PatientSearch::Email(e));
        }
    } else if q.starts_with('+')
        && let Ok(p) = Phone::parse(q)
    {
        return Some(PatientSearch::Phone(p));
    }
    let prefix =
        clinicflow_domain::patient::normalize_name(&q.chars().take(100).collect::<String>());
    Some(PatientSearch::NamePrefix(prefix))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use chrono::{DateTime, NaiveDate, Utc};
    use clinicflow_domain::{ClinicId, PractitionerId, Role, UserId};

    use clinicflow_ports::RepoError;

    use super::*;
    use crate::mocks::Mocks;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    fn actor(role: Role) -> Actor {
        Actor {
            user_id: UserId::from_uuid(Uuid::from_u128(2)),
            clinic_id: ClinicId::from_uuid(Uuid::from_u128(1)),
            role,
            practitioner_id: None,
            request_id: None,
        }
    }

    fn patient(id: u128, given: &str, family: &str) -> Patient {
        Patient {
            id: PatientId::from_uuid(Uuid::from_u128(id)),
            clinic_id: ClinicId::from_uuid(Uuid::from_u128(1)),
            name: PersonName::parse(given, family).expect("valid"),
            birth_date: BirthDate::from_stored(
                NaiveDate::from_ymd_opt(1985, 12, 10).expect("valid"),
            ),
            sex: Sex::Unknown,
            phone: None,
            email: None,
            emergency_contact: None,
            insurance: None,
            version: 1,
            created_at: now(),
            updated_at: now(),
            deleted_at: None,
        }
    }

    /// Mocks whose audit log accepts every event.
    fn mocks() -> Mocks {
        let mut m = Mocks::new(now());
        m.audit.expect_append().returning(|_, _| Ok(()));
        m.audit.expect_record().returning(|_| Ok(()));
        m
    }

    #[tokio::test]
    async fn a_keyset_page_fetches_one_extra_row_and_continues_after_its_last_row() {
        let rows = vec![
            patient(10, "Ada", "Lovelace"),
            patient(11, "Ada", "Lovelace"),
            patient(12, "Alan", "Turing"),
        ];
        let mut m = mocks();
        let first = rows.clone();
        m.patients
            .expect_list_after()
            .times(1)
            .withf(|_, _, filter, after, limit| {
                filter.search == Some(PatientSearch::NamePrefix("a".into()))
                    && after.is_none()
                    && *limit == 3
            })
            .returning(move |_, _, _, _, _| Ok(first.clone()));
        let second = rows[1].clone();
        let rest = vec![rows[2].clone()];
        m.patients
            .expect_list_after()
            .times(1)
            .withf(move |_, _, _, after, limit| {
                *after == Some(PatientKey::of(&second)) && *limit == 3
            })
            .returning(move |_, _, _, _, _| Ok(rest.clone()));
        let (ports, commits) = m.ports();
        let service = PatientService::new(ports);
        let staff = actor(Role::Receptionist);

        let (page, next) = service
            .list_after(&staff, Some("A"), None, Some(2))
            .await
            .expect("first page");
        assert_eq!(page, rows[..2]);
        let next = next.expect("a row was left over, so another page follows");
        let (page, last) = service
            .list_after(&staff, Some("A"), Some(&next), Some(2))
            .await
            .expect("second page");
        assert_eq!((page, last), (vec![rows[2].clone()], None));
        assert_eq!(commits.load(Ordering::SeqCst), 2, "each read is audited");
    }

    #[test]
    fn a_patient_cursor_keeps_names_with_any_character() {
        let odd = patient(10, "Anne: Marie", "d'Arc 12:x");
        assert_eq!(parse_cursor(&cursor_of(&odd)), Ok(PatientKey::of(&odd)));
    }

    #[tokio::test]
    async fn a_bad_cursor_or_limit_names_the_parameter_and_reads_nothing() {
        let mut m = mocks();
        m.patients.expect_list_after().never();
        let (ports, commits) = m.ports();
        let service = PatientService::new(ports);
        let appointments_cursor = input::cursor("appointments", &["2026-12-01T08:00:00Z", "x"]);
        let nul = input::cursor(
            CURSOR_KIND,
            &["Love\0lace", "Ada", &Uuid::nil().to_string()],
        );
        for (cursor, limit, field) in [
            ("%%%", None, "cursor"),
            (nul.as_str(), None, "cursor"),
            (appointments_cursor.as_str(), None, "cursor"),
            (" ", Some(0), "limit"),
            ("", Some(500), "limit"),
        ] {
            let err = service
                .list_after(&actor(Role::Receptionist), None, Some(cursor), limit)
                .await
                .expect_err("invalid");
            let ServiceError::Validation(fields) = err else {
                panic!("expected validation, got {err:?}")
            };
            let names: Vec<&str> = fields.fields().keys().map(String::as_str).collect();
            assert_eq!(names, [field], "{cursor} {limit:?}");
        }
        assert_eq!(commits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_practitioner_pages_only_through_patients_booked_with_them() {
        let own = PractitionerId::from_uuid(Uuid::from_u128(3));
        let mut m = mocks();
        m.patients
            .expect_list_after()
            .times(1)
            .withf(move |_, _, filter, _, _| filter.seen_by == Some(own))
            .returning(|_, _, _, _, _| Ok(Vec::new()));
        let (ports, _) = m.ports();
        let mut practitioner = actor(Role::Practitioner);
        practitioner.practitioner_id = Some(own);
        PatientService::new(ports)
            .list_after(&practitioner, None, None, None)
            .await
            .expect("listed");
    }

    #[tokio::test]
    async fn a_keyset_list_is_audited_as_a_patient_list() {
        let mut m = Mocks::new(now());
        m.patients
            .expect_list_after()
            .returning(|_, _, _, _, _| Ok(Vec::new()));
        m.audit
            .expect_record()
            .times(1)
            .withf(|e| {
                e.action == AuditAction::List
                    && e.resource_type == ResourceType::Patient
                    && e.patient_id.is_none()
                    && e.outcome == clinicflow_domain::Outcome::Success
            })
            .returning(|_| Ok(()));
        let (ports, commits) = m.ports();
        PatientService::new(ports)
            .list_after(&actor(Role::Receptionist), None, None, None)
            .await
            .expect("listed");
        assert_eq!(commits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_read_is_answered_only_when_its_audit_event_is_durable() {
        let mut m = Mocks::new(now());
        let stored = patient(10, "Ada", "Lovelace");
        let id = stored.id;
        m.patients
            .expect_get()
            .returning(move |_, _, _| Ok(Some(stored.clone())));
        // The read's own unit of work never writes the event: only the audit log's write does.
        m.audit.expect_append().never();
        m.audit
            .expect_record()
            .times(1)
            .withf(move |e| {
                e.action == AuditAction::Read
                    && e.patient_id == Some(id)
                    && e.outcome == clinicflow_domain::Outcome::Success
            })
            .returning(|_| Err(RepoError::Unavailable("audit batch failed".into())));
        let (ports, _) = m.ports();
        let err = PatientService::new(ports)
            .get(&actor(Role::Receptionist), id)
            .await
            .expect_err("an unaudited read is not answered");
        assert!(matches!(err, ServiceError::Unavailable(_)), "got {err:?}");
    }

    #[test]
    fn search_strings_pick_their_kind() {
        assert!(matches!(
            search_for("ada@example.org"),
            Some(PatientSearch::Email(_))
        ));
        assert!(matches!(
            search_for("+49 151 12345678"),
            Some(PatientSearch::Phone(_))
        ));
        assert_eq!(
            search_for("  Love  Ad "),
            Some(PatientSearch::NamePrefix("love ad".into()))
        );
        assert_eq!(search_for("   "), None);
    }
}
