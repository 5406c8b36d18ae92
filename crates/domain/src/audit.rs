//! The audit log: who read or changed which patient data, when, in which request.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{AuditEventId, ClinicId, InvalidValue, PatientId, Role, UserId};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// One record was read.
    Read,
    /// A list or search was read.
    List,
    /// A record was created.
    Create,
    /// A record was changed (including status moves).
    Update,
    /// A record was soft-deleted.
    Delete,
    /// An appointment was created outside the booking rules (`overbook: true`).
    Overbook,
    /// A status move was made outside a clinic rule (`override: true`: a check-in outside
    /// the check-in window).
    Override,
}

/// What kind of record it was done to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    /// A patient.
    Patient,
    /// An appointment.
    Appointment,
    /// A queue entry.
    QueueEntry,
    /// An encounter (visit record).
    Encounter,
    /// The clinic's own settings (reminders, webhook).
    Clinic,
}

/// Whether it was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused for lack of permission.
    Denied,
}

macro_rules! wire_enum {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// Every wire name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The stable wire and storage name.
            pub fn as_str(&self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
        }

        impl FromStr for $ty {
            type Err = InvalidValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)*
                    _ => Err(InvalidValue::new(concat!("must be one of: ", $($name, " "),*))),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(AuditAction {
    Read => "read",
    List => "list",
    Create => "create",
    Update => "update",
    Delete => "delete",
    Overbook => "overbook",
    Override => "override",
});
wire_enum!(ResourceType {
    Patient => "patient",
    Appointment => "appointment",
    QueueEntry => "queue_entry",
    Encounter => "encounter",
    Clinic => "clinic",
});
wire_enum!(Outcome { Success => "success", Denied => "denied" });

/// One append-only entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Identity (UUIDv7, so ids sort by time).
    pub id: AuditEventId,
    /// The clinic.
    pub clinic_id: ClinicId,
    /// Who.
    pub actor_id: UserId,
    /// Their role at the time.
    pub actor_role: Role,
    /// What.
    pub action: AuditAction,
    /// On what kind of record.
    pub resource_type: ResourceType,
    /// On which record, when one (a list has none).
    pub resource_id: Option<Uuid>,
    /// Whose data, when known.
    pub patient_id: Option<PatientId>,
    /// When.
    pub at: DateTime<Utc>,
    /// In which HTTP request.
    pub request_id: Option<Uuid>,
    /// Allowed or refused.
    pub outcome: Outcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in [
            AuditAction::Read,
            AuditAction::List,
            AuditAction::Create,
            AuditAction::Update,
            AuditAction::Delete,
            AuditAction::Overbook,
            AuditAction::Override,
        ] {
            assert_eq!(a.as_str().parse::<AuditAction>(), Ok(a));
        }
        assert_eq!(
            "appointment".parse::<ResourceType>(),
            Ok(ResourceType::Appointment)
        );
        assert!("denied".parse::<Outcome>().is_ok());
        assert!("maybe".parse::<Outcome>().is_err());
    }
}
