//! Encounters: the record of a visit, opened when service starts and closed when it ends.

use chrono::{DateTime, Duration, Utc};

use crate::{
    AppointmentId, ClinicId, EncounterId, InvalidValue, PatientId, PractitionerId, QueueEntryId,
};

/// Longest clinical note accepted, in characters.
pub const MAX_NOTES_CHARS: usize = 20_000;

/// Checks a note: at most [`MAX_NOTES_CHARS`] characters; blank means none.
pub fn parse_notes(raw: Option<&str>) -> Result<Option<String>, InvalidValue> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) if s.chars().count() > MAX_NOTES_CHARS => Err(InvalidValue::new(format!(
            "must be at most {MAX_NOTES_CHARS} characters"
        ))),
        Some(s) => Ok(Some(s.to_owned())),
    }
}

/// A visit. Its `Debug` shows whether there are notes, not what they say.
#[derive(Clone, PartialEq, Eq)]
pub struct Encounter {
    /// Identity.
    pub id: EncounterId,
    /// Owning clinic.
    pub clinic_id: ClinicId,
    /// Who was seen.
    pub patient_id: PatientId,
    /// By whom.
    pub practitioner_id: PractitionerId,
    /// The appointment, if the visit was booked.
    pub appointment_id: Option<AppointmentId>,
    /// The queue entry it came from.
    pub queue_entry_id: Option<QueueEntryId>,
    /// When service started.
    pub started_at: DateTime<Utc>,
    /// When it ended, once it has.
    pub ended_at: Option<DateTime<Utc>>,
    /// Clinical notes (kept out of logs).
    pub notes: Option<String>,
    /// Optimistic-concurrency version.
    pub version: i32,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Encounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encounter")
            .field("id", &self.id)
            .field("clinic_id", &self.clinic_id)
            .field("patient_id", &self.patient_id)
            .field("practitioner_id", &self.practitioner_id)
            .field("appointment_id", &self.appointment_id)
            .field("queue_entry_id", &self.queue_entry_id)
            .field("started_at", &self.started_at)
            .field("ended_at", &self.ended_at)
            .field("notes", &crate::redacted(&self.notes))
            .field("version", &self.version)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

impl Encounter {
    /// How long service took, once ended.
    pub fn service_time(&self) -> Option<Duration> {
        self.ended_at.map(|end| end - self.started_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_notes() {
        let nil = uuid::Uuid::nil();
        let encounter = Encounter {
            id: EncounterId::from_uuid(nil),
            clinic_id: ClinicId::from_uuid(nil),
            patient_id: PatientId::from_uuid(nil),
            practitioner_id: PractitionerId::from_uuid(nil),
            appointment_id: None,
            queue_entry_id: None,
            started_at: DateTime::<Utc>::UNIX_EPOCH,
            ended_at: None,
            notes: Some("suspected pneumonia".into()),
            version: 1,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let shown = format!("{encounter:?}");
        assert!(!shown.contains("pneumonia"), "{shown}");
        assert!(shown.contains("notes: Some(<redacted>)"), "{shown}");
    }

    #[test]
    fn notes_are_bounded_and_blank_is_none() {
        assert_eq!(parse_notes(Some("  ")), Ok(None));
        assert_eq!(parse_notes(Some(" fever ")), Ok(Some("fever".into())));
        assert!(parse_notes(Some(&"x".repeat(MAX_NOTES_CHARS + 1))).is_err());
    }
}
