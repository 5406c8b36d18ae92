//! Staff users and their roles.

use std::fmt;
use std::str::FromStr;

use crate::{ClinicId, Email, InvalidValue, PractitionerId, UserId};

/// What a staff member is allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages the clinic and its users.
    Admin,
    /// Treats patients.
    Practitioner,
    /// Books and registers patients at the front desk.
    Receptionist,
    /// Triages and assists.
    Nurse,
}

impl Role {
    /// The stable wire and storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Practitioner => "practitioner",
            Role::Receptionist => "receptionist",
            Role::Nurse => "nurse",
        }
    }

    /// Whether this role may book outside availability or in the past (overbooking).
    pub fn may_overbook(&self) -> bool {
        matches!(self, Role::Admin | Role::Practitioner)
    }
}

impl FromStr for Role {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "practitioner" => Ok(Role::Practitioner),
            "receptionist" => Ok(Role::Receptionist),
            "nurse" => Ok(Role::Nurse),
            _ => Err(InvalidValue::new(
                "must be one of admin, practitioner, receptionist, nurse",
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A staff user of one clinic.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Identity.
    pub id: UserId,
    /// Owning clinic.
    pub clinic_id: ClinicId,
    /// Login e-mail, unique per clinic.
    pub email: Email,
    /// argon2id PHC string; never logged.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// The practitioner this user is, if any.
    pub practitioner_id: Option<PractitionerId>,
    /// Disabled users cannot log in.
    pub active: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for r in [
            Role::Admin,
            Role::Practitioner,
            Role::Receptionist,
            Role::Nurse,
        ] {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}

/// The authenticated staff member on whose behalf a use case runs; every query is scoped by its clinic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// Who.
    pub user_id: UserId,
    /// Their clinic: the tenant every read and write is confined to.
    pub clinic_id: ClinicId,
    /// What they may do.
    pub role: Role,
}
