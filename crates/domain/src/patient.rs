//! Patients and their personal data.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};

use crate::{ClinicId, Email, InvalidValue, PatientId, Phone};

/// Trims `raw` and checks it is non-empty, at most `max` characters and free of control characters.
pub(crate) fn clean_text(raw: &str, max: usize) -> Result<String, InvalidValue> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(InvalidValue::new("must not be blank"));
    }
    if s.chars().count() > max {
        return Err(InvalidValue::new(format!(
            "must be at most {max} characters"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(InvalidValue::new("must not contain control characters"));
    }
    Ok(s.to_owned())
}

/// A person's given and family name. Its `Debug` hides both.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonName {
    given: String,
    family: String,
}

impl PersonName {
    /// Parses both parts; each is trimmed and 1 to 100 characters long.
    pub fn parse(given: &str, family: &str) -> Result<Self, InvalidValue> {
        Ok(Self {
            given: clean_text(given, 100)?,
            family: clean_text(family, 100)?,
        })
    }

    /// The given name.
    pub fn given(&self) -> &str {
        &self.given
    }

    /// The family name.
    pub fn family(&self) -> &str {
        &self.family
    }

    /// Lower-case `family given`, the key that name search uses as a prefix index.
    pub fn normalized(&self) -> String {
        normalize_name(&format!("{} {}", self.family, self.given))
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PersonName").field(&crate::Redacted).finish()
    }
}

/// Lower-cases and collapses whitespace, so search input and stored keys compare alike.
pub fn normalize_name(raw: &str) -> String {
    raw.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A birth date: not in the future and not more than 150 years ago. Its `Debug` hides it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BirthDate(NaiveDate);

impl fmt::Debug for BirthDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BirthDate").field(&crate::Redacted).finish()
    }
}

impl BirthDate {
    /// Parses a birth date relative to `today`.
    pub fn parse(date: NaiveDate, today: NaiveDate) -> Result<Self, InvalidValue> {
        if date > today {
            return Err(InvalidValue::new("must not be in the future"));
        }
        if today.years_since(date).is_some_and(|y| y > 150) {
            return Err(InvalidValue::new("must be within the last 150 years"));
        }
        Ok(Self(date))
    }

    /// Rebuilds a stored birth date without the `today` check.
    pub fn from_stored(date: NaiveDate) -> Self {
        Self(date)
    }

    /// The date.
    pub fn date(&self) -> NaiveDate {
        self.0
    }
}

/// Administrative sex as recorded by the clinic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Other.
    Other,
    /// Not known or not stated.
    Unknown,
}

impl Sex {
    /// Every value.
    pub const ALL: [Sex; 4] = [Sex::Female, Sex::Male, Sex::Other, Sex::Unknown];

    /// The stable wire and storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Sex::Female => "female",
            Sex::Male => "male",
            Sex::Other => "other",
            Sex::Unknown => "unknown",
        }
    }
}

impl FromStr for Sex {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "female" => Ok(Sex::Female),
            "male" => Ok(Sex::Male),
            "other" => Ok(Sex::Other),
            "unknown" => Ok(Sex::Unknown),
            _ => Err(InvalidValue::new(
                "must be one of female, male, other, unknown",
            )),
        }
    }
}

impl fmt::Display for Sex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Someone to call in an emergency. Its `Debug` hides who.
#[derive(Clone, PartialEq, Eq)]
pub struct EmergencyContact {
    /// Their name.
    pub name: String,
    /// Their phone number.
    pub phone: Phone,
}

impl fmt::Debug for EmergencyContact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmergencyContact").finish_non_exhaustive()
    }
}

impl EmergencyContact {
    /// Parses an emergency contact.
    pub fn parse(name: &str, phone: &str) -> Result<Self, InvalidValue> {
        Ok(Self {
            name: clean_text(name, 200)?,
            phone: Phone::parse(phone)?,
        })
    }

    /// An emergency contact read back from storage (see [`Phone::from_stored`]).
    pub fn from_stored(name: &str, phone: &str) -> Result<Self, InvalidValue> {
        Ok(Self {
            name: clean_text(name, 200)?,
            phone: Phone::from_stored(phone)?,
        })
    }
}

/// Health insurance: payer and member id. Its `Debug` hides both.
#[derive(Clone, PartialEq, Eq)]
pub struct Insurance {
    /// The insurer.
    pub payer: String,
    /// The patient's id with that insurer.
    pub member_id: String,
}

impl fmt::Debug for Insurance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Insurance").finish_non_exhaustive()
    }
}

impl Insurance {
    /// Parses insurance details.
    pub fn parse(payer: &str, member_id: &str) -> Result<Self, InvalidValue> {
        Ok(Self {
            payer: clean_text(payer, 100)?,
            member_id: clean_text(member_id, 64)?,
        })
    }
}

/// A patient of one clinic. Its `Debug` shows ids, version and times only, so that a stray
/// `?patient` in a log line names nobody.
#[derive(Clone, PartialEq)]
pub struct Patient {
    /// Identity.
    pub id: PatientId,
    /// Owning clinic.
    pub clinic_id: ClinicId,
    /// Name.
    pub name: PersonName,
    /// Birth date.
    pub birth_date: BirthDate,
    /// Administrative sex.
    pub sex: Sex,
    /// Phone number, if known.
    pub phone: Option<Phone>,
    /// E-mail address, if known.
    pub email: Option<Email>,
    /// Emergency contact, if known.
    pub emergency_contact: Option<EmergencyContact>,
    /// Insurance, if known.
    pub insurance: Option<Insurance>,
    /// Optimistic-concurrency version, raised on every change.
    pub version: i32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Soft-deletion time; a deleted patient is invisible to the API.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for Patient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Patient")
            .field("id", &self.id)
            .field("clinic_id", &self.clinic_id)
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("deleted_at", &self.deleted_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    #[test]
    fn names_are_trimmed_and_blank_names_rejected() {
        let n = PersonName::parse("  Ada ", "Lovelace").expect("valid");
        assert_eq!((n.given(), n.family()), ("Ada", "Lovelace"));
        assert_eq!(n.normalized(), "lovelace ada");
        assert!(PersonName::parse(" ", "Lovelace").is_err());
        assert!(PersonName::parse("Ada", &"x".repeat(101)).is_err());
        assert!(PersonName::parse("Ada\u{0}", "Lovelace").is_err());
    }

    #[test]
    fn debug_names_ids_but_no_personal_data() {
        let patient = Patient {
            id: PatientId::from_uuid(uuid::Uuid::nil()),
            clinic_id: ClinicId::from_uuid(uuid::Uuid::nil()),
            name: PersonName::parse("Augusta", "Lovelace").expect("valid"),
            birth_date: BirthDate::from_stored(d(1815, 12, 10)),
            sex: Sex::Female,
            phone: Some(Phone::parse("+4915112345678").expect("valid")),
            email: Some(Email::parse("ada@example.org").expect("valid")),
            emergency_contact: Some(
                EmergencyContact::parse("Charles Babbage", "+4915100000000").expect("valid"),
            ),
            insurance: Some(Insurance::parse("Techniker", "A123456789").expect("valid")),
            version: 3,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            deleted_at: None,
        };
        let shown = format!("{patient:?} {patient:#?}");
        assert!(
            shown.contains("00000000-0000-0000-0000-000000000000"),
            "{shown}"
        );
        assert!(shown.contains("version: 3"), "{shown}");
        for secret in [
            "Augusta",
            "Lovelace",
            "1815",
            "Female",
            "4915112345678",
            "ada@example.org",
            "Charles",
            "4915100000000",
            "Techniker",
            "A123456789",
        ] {
            assert!(!shown.contains(secret), "`{secret}` shows in {shown}");
        }
        // Each part hides itself too, wherever it is printed on its own.
        let parts = format!(
            "{:?} {:?} {:?} {:?}",
            patient.name, patient.birth_date, patient.emergency_contact, patient.insurance
        );
        assert!(
            !parts.contains("Lovelace") && !parts.contains("1815"),
            "{parts}"
        );
        assert!(
            !parts.contains("Charles") && !parts.contains("A123456789"),
            "{parts}"
        );
    }

    #[test]
    fn birth_dates_in_the_future_are_rejected() {
        let today = d(2026, 11, 23);
        assert!(BirthDate::parse(d(2026, 11, 24), today).is_err());
        assert!(BirthDate::parse(d(1850, 1, 1), today).is_err());
        assert!(BirthDate::parse(d(1985, 12, 10), today).is_ok());
    }

    #[test]
    fn sex_round_trips() {
        for s in [Sex::Female, Sex::Male, Sex::Other, Sex::Unknown] {
            assert_eq!(s.as_str().parse::<Sex>(), Ok(s));
        }
        assert!("f".parse::<Sex>().is_err());
    }
}
