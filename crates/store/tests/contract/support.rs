//! Fixtures shared by the contract tests.

use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use clinicflow_domain::{
    Appointment, AppointmentId, AppointmentStatus, BirthDate, Clinic, ClinicId, ClinicName,
    DeadlineRule, Email, Encounter, EncounterId, Interval, Patient, PatientId, PersonName,
    Practitioner, PractitionerId, QueueEntry, QueueEntryId, QueueSettings, QueueStatus, Role, Sex,
    TimeZone, TriageCategory, Urgency, User, UserId,
};
use clinicflow_ports::{
    AppointmentRepo, ClinicRepo, Database, EncounterRepo, PatientRepo, PractitionerRepo, QueueRepo,
    Tx, TxMode, UserRepo,
};
use clinicflow_store::testing::{TestBackend, TestDatabase};
use clinicflow_store::{Backend, Store};
use uuid::Uuid;

/// One test's database and a store connected to it.
pub struct Ctx {
    pub store: Store,
    /// Kept so the database outlives the test.
    pub db: TestDatabase,
}

impl Ctx {
    /// A fresh database, or `None` when the backend's server is not configured.
    pub async fn new(backend: TestBackend) -> Option<Ctx> {
        let db = TestDatabase::new(backend).await?;
        let store = db.store().await;
        Some(Ctx { store, db })
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    pub async fn write(&self) -> Tx {
        self.store.begin(TxMode::Write).await.unwrap()
    }

    pub async fn read(&self) -> Tx {
        self.store.begin(TxMode::Read).await.unwrap()
    }

    /// Claims in turns as concurrent workers meet: `turn` is given a write unit of work and
    /// returns what it claimed and changed, nothing when none is left. On PostgreSQL every
    /// turn's unit of work stays open until a turn finds nothing, so each claim runs while
    /// the earlier ones still hold their row locks (a claim that waited for them would end in
    /// the lock bound, one that ignored them would take their rows again); SQLite admits one
    /// writer, so there each turn commits before the next begins. Returns every claim in turn
    /// order, after all committed.
    pub async fn claim_in_turns<T>(&self, mut turn: impl AsyncFnMut(&mut Tx) -> Vec<T>) -> Vec<T> {
        let mut held = Vec::new();
        let mut claimed = Vec::new();
        loop {
            let mut tx = self.write().await;
            let batch = turn(&mut tx).await;
            let done = batch.is_empty();
            claimed.extend(batch);
            if self.backend() == Backend::Postgres && !done {
                held.push(tx);
            } else {
                tx.commit().await.unwrap();
            }
            if done {
                break;
            }
        }
        for tx in held {
            tx.commit().await.unwrap();
        }
        claimed
    }

    /// Stores a clinic and returns its id.
    pub async fn clinic(&self, name: &str) -> ClinicId {
        let clinic = clinic(name);
        let mut tx = self.write().await;
        ClinicRepo::insert(&self.store, &mut tx, &clinic)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        clinic.id
    }

    /// Stores a patient and returns it.
    pub async fn patient(&self, clinic: ClinicId, given: &str, family: &str) -> Patient {
        let p = patient(clinic, given, family);
        let mut tx = self.write().await;
        PatientRepo::insert(&self.store, &mut tx, &p).await.unwrap();
        tx.commit().await.unwrap();
        p
    }

    /// Stores `n` patients of `clinic`: one for each open queue entry a test needs, since a
    /// patient has one open entry at most.
    pub async fn patients(&self, clinic: ClinicId, n: usize) -> Vec<Patient> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(self.patient(clinic, &format!("Queued{i}"), "Patient").await);
        }
        out
    }

    /// Stores a practitioner and returns it.
    pub async fn practitioner(&self, clinic: ClinicId, given: &str, family: &str) -> Practitioner {
        let p = practitioner(clinic, given, family, &[], None);
        let mut tx = self.write().await;
        PractitionerRepo::insert(&self.store, &mut tx, &p)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        p
    }

    /// Stores a receptionist and returns them.
    pub async fn user(&self, clinic: ClinicId, address: &str) -> User {
        let u = user(clinic, address);
        let mut tx = self.write().await;
        UserRepo::insert(&self.store, &mut tx, &u).await.unwrap();
        tx.commit().await.unwrap();
        u
    }

    /// Stores an appointment and returns it.
    pub async fn appointment(&self, a: Appointment) -> Appointment {
        let mut tx = self.write().await;
        AppointmentRepo::insert(&self.store, &mut tx, &a)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        a
    }

    /// Stores a queue entry and returns it.
    pub async fn queue_entry(&self, e: QueueEntry) -> QueueEntry {
        let mut tx = self.write().await;
        QueueRepo::insert(&self.store, &mut tx, &e).await.unwrap();
        tx.commit().await.unwrap();
        e
    }

    /// Stores an encounter and returns it.
    pub async fn encounter(&self, e: Encounter) -> Encounter {
        let mut tx = self.write().await;
        EncounterRepo::insert(&self.store, &mut tx, &e)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        e
    }
}

/// A clinic in Berlin.
pub fn clinic(name: &str) -> Clinic {
    Clinic {
        id: ClinicId::from_uuid(Uuid::now_v7()),
        name: ClinicName::parse(name).unwrap(),
        time_zone: TimeZone::parse("Europe/Berlin").unwrap(),
        no_show_grace_minutes: 15,
        queue: QueueSettings::default(),
        reminders: clinicflow_domain::ReminderOffsets::default(),
        check_in: clinicflow_domain::CheckInWindow::default(),
        version: 1,
    }
}

/// 2026-12-01 at `h:m` UTC.
pub fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).single().unwrap()
}

/// A fixed creation time, on a whole microsecond so it reads back unchanged.
pub fn created() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 8, 30, 0)
        .single()
        .unwrap()
        + Duration::microseconds(123_456)
}

/// An active receptionist who has never failed to log in.
pub fn user(clinic: ClinicId, address: &str) -> User {
    User {
        id: UserId::from_uuid(Uuid::now_v7()),
        clinic_id: clinic,
        email: email(address),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        role: Role::Receptionist,
        practitioner_id: None,
        active: true,
        failed_logins: 0,
        locked_until: None,
        version: 1,
    }
}

/// A patient with only the required fields.
pub fn patient(clinic: ClinicId, given: &str, family: &str) -> Patient {
    Patient {
        id: PatientId::from_uuid(Uuid::now_v7()),
        clinic_id: clinic,
        name: PersonName::parse(given, family).unwrap(),
        birth_date: BirthDate::from_stored(NaiveDate::from_ymd_opt(1985, 12, 10).unwrap()),
        sex: Sex::Female,
        phone: None,
        email: None,
        emergency_contact: None,
        insurance: None,
        version: 1,
        created_at: created(),
        updated_at: created(),
        deleted_at: None,
    }
}

/// A practitioner with 30-minute slots.
pub fn practitioner(
    clinic: ClinicId,
    given: &str,
    family: &str,
    specialties: &[&str],
    department: Option<&str>,
) -> Practitioner {
    Practitioner {
        id: PractitionerId::from_uuid(Uuid::now_v7()),
        clinic_id: clinic,
        name: PersonName::parse(given, family).unwrap(),
        specialties: specialties.iter().map(|s| (*s).to_owned()).collect(),
        department: department.map(str::to_owned),
        slot_minutes: 30,
        buffer_minutes: 0,
        active: true,
        version: 1,
        created_at: created(),
        updated_at: created(),
    }
}

/// A booked appointment of `minutes` from `start`.
pub fn appointment(
    patient: &Patient,
    practitioner: &Practitioner,
    start: DateTime<Utc>,
    minutes: i64,
) -> Appointment {
    Appointment {
        id: AppointmentId::from_uuid(Uuid::now_v7()),
        clinic_id: patient.clinic_id,
        patient_id: patient.id,
        practitioner_id: practitioner.id,
        interval: Interval::starting_at(start, Duration::minutes(minutes)).unwrap(),
        urgency: Urgency::Routine,
        reason: Some("check-up".into()),
        status: AppointmentStatus::Booked,
        version: 1,
        rescheduled_from: None,
        rescheduled_to: None,
        cancelled_by: None,
        cancel_reason: None,
        overbooked: false,
        created_at: created(),
        updated_at: created(),
        deleted_at: None,
    }
}

/// A waiting walk-in of `category` who arrived at `arrived_at`, due at `deadline`, for
/// nobody in particular.
pub fn queue_entry(
    patient: &Patient,
    category: TriageCategory,
    arrived_at: DateTime<Utc>,
    deadline: DateTime<Utc>,
) -> QueueEntry {
    QueueEntry {
        id: QueueEntryId::from_uuid(Uuid::now_v7()),
        clinic_id: patient.clinic_id,
        patient_id: patient.id,
        practitioner_id: None,
        department: None,
        appointment_id: None,
        category,
        rule: DeadlineRule::WalkIn,
        arrived_at,
        deadline,
        status: QueueStatus::Waiting,
        note: None,
        called_by: None,
        called_at: None,
        started_at: None,
        finished_at: None,
        left_at: None,
        recalled_at: None,
        version: 1,
        updated_at: arrived_at,
    }
}

/// An open encounter of `patient` with `practitioner` that started at `started_at`.
pub fn encounter(
    patient: &Patient,
    practitioner: &Practitioner,
    started_at: DateTime<Utc>,
) -> Encounter {
    Encounter {
        id: EncounterId::from_uuid(Uuid::now_v7()),
        clinic_id: patient.clinic_id,
        patient_id: patient.id,
        practitioner_id: practitioner.id,
        appointment_id: None,
        queue_entry_id: None,
        started_at,
        ended_at: None,
        notes: None,
        version: 1,
        updated_at: started_at,
    }
}

/// An interval from `h1:m1` to `h2:m2` on the fixture day.
pub fn span(from: (u32, u32), to: (u32, u32)) -> Interval {
    Interval::new(at(from.0, from.1), at(to.0, to.1)).unwrap()
}

pub fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

/// The error of a write the store may hold back until the commit (`OutboxRepo::enqueue`,
/// `AuditRepo::append`): the write's own when it ran at once, otherwise the commit's.
///
/// # Panics
/// When neither the write nor the commit failed.
pub async fn refused(
    tx: Tx,
    write: Result<(), clinicflow_ports::RepoError>,
) -> clinicflow_ports::RepoError {
    match write {
        Err(e) => e,
        Ok(()) => tx
            .commit()
            .await
            .expect_err("the write or its commit is refused"),
    }
}
