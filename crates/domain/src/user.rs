//! Staff users and their roles.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

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
    /// clinicflow's own workers (the no-show sweeper); no user account can hold it.
    System,
}

impl Role {
    /// The roles a user account can hold (every role but `System`).
    pub const STAFF: [Role; 4] = [
        Role::Admin,
        Role::Practitioner,
        Role::Receptionist,
        Role::Nurse,
    ];

    /// The stable wire and storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Practitioner => "practitioner",
            Role::Receptionist => "receptionist",
            Role::Nurse => "nurse",
            Role::System => "system",
        }
    }

    /// Parses a role as the audit log records it, where clinicflow's own `system` role
    /// appears too; every other source of roles goes through [`FromStr`], which refuses it.
    pub fn parse_recorded(s: &str) -> Result<Self, InvalidValue> {
        match s {
            "system" => Ok(Role::System),
            staff => staff.parse(),
        }
    }
}

/// Parses a staff role: `system` is refused, so no request, token or user row can carry it.
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

/// A staff user of one clinic. Its `Debug` leaves out the e-mail and the password hash.
#[derive(Clone, PartialEq)]
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
    /// Consecutive failed logins since the last success or lock.
    pub failed_logins: u32,
    /// Until when logins are refused after too many failures.
    pub locked_until: Option<DateTime<Utc>>,
    /// Optimistic-concurrency version: every stored change of the row raises it, a failed
    /// login included, so a write based on an older read is refused instead of undoing it.
    pub version: i32,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("clinic_id", &self.clinic_id)
            .field("role", &self.role)
            .field("practitioner_id", &self.practitioner_id)
            .field("active", &self.active)
            .field("failed_logins", &self.failed_logins)
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}

impl User {
    /// Whether logins are refused at `now` because of repeated failures.
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// Lifts a lockout (an admin's unlock): the lock goes, and the failures that led to it
    /// are forgotten, so the next wrong password does not lock the account again at once.
    pub fn unlock(&mut self) {
        self.failed_logins = 0;
        self.locked_until = None;
    }
}

/// When repeated failed logins lock an account, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the account.
    pub max_failures: u32,
    /// How long the lock lasts.
    pub lock_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lock_for: Duration::minutes(15),
        }
    }
}

impl LockoutPolicy {
    /// The counter and lock after one more failed login at `now`: the failure that reaches
    /// the limit locks the account and starts the count again.
    pub fn after_failure(&self, user: &User, now: DateTime<Utc>) -> (u32, Option<DateTime<Utc>>) {
        let failures = user.failed_logins.saturating_add(1);
        if failures >= self.max_failures {
            (0, Some(now + self.lock_for))
        } else {
            (failures, user.locked_until.filter(|until| now < *until))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_leaves_out_the_password_hash_and_the_email() {
        let user = User {
            email: Email::parse("grace@clinic.example").expect("valid"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            ..user(2, None)
        };
        let shown = format!("{user:?} {user:#?}");
        assert!(
            !shown.contains("argon2id") && !shown.contains("aGFzaA"),
            "{shown}"
        );
        assert!(!shown.contains("grace"), "{shown}");
        assert!(
            shown.contains("failed_logins: 2") && shown.contains("Receptionist"),
            "{shown}"
        );
    }

    fn user(failed_logins: u32, locked_until: Option<DateTime<Utc>>) -> User {
        User {
            id: UserId::from_uuid(uuid::Uuid::nil()),
            clinic_id: ClinicId::from_uuid(uuid::Uuid::nil()),
            email: Email::parse("a@example.org").expect("valid"),
            password_hash: String::new(),
            role: Role::Receptionist,
            practitioner_id: None,
            active: true,
            failed_logins,
            locked_until,
            version: 1,
        }
    }

    #[test]
    fn an_unlock_clears_the_lock_and_the_count() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let mut locked = user(3, Some(now + Duration::minutes(5)));
        assert!(locked.is_locked(now));
        locked.unlock();
        assert!(!locked.is_locked(now));
        assert_eq!((locked.failed_logins, locked.locked_until), (0, None));
    }

    #[test]
    fn the_fifth_failure_locks_for_fifteen_minutes() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let policy = LockoutPolicy::default();
        assert_eq!(policy.after_failure(&user(3, None), now), (4, None));
        let (count, until) = policy.after_failure(&user(4, None), now);
        assert_eq!((count, until), (0, Some(now + Duration::minutes(15))));
        let locked = user(0, until);
        assert!(locked.is_locked(now + Duration::minutes(14)));
        assert!(!locked.is_locked(now + Duration::minutes(15)));
    }

    #[test]
    fn roles_round_trip() {
        for r in [
            Role::Admin,
            Role::Practitioner,
            Role::Receptionist,
            Role::Nurse,
        ] {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(Role::parse_recorded(r.as_str()), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
        assert!(Role::parse_recorded("root").is_err());
    }

    #[test]
    fn the_system_role_is_read_back_from_the_audit_log_but_never_parsed_as_a_staff_role() {
        assert_eq!(Role::System.as_str(), "system");
        assert_eq!(Role::parse_recorded("system"), Ok(Role::System));
        assert!("system".parse::<Role>().is_err());
    }

    #[test]
    fn the_system_actor_is_nobody_of_its_clinic_outside_any_request() {
        let clinic = ClinicId::from_uuid(uuid::Uuid::from_u128(7));
        let actor = Actor::system(clinic);
        assert_eq!(
            (actor.user_id, actor.clinic_id, actor.role),
            (UserId::from_uuid(uuid::Uuid::nil()), clinic, Role::System)
        );
        assert_eq!((actor.practitioner_id, actor.request_id), (None, None));
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
    /// The practitioner this user is, if any: practitioners see their own schedule and patients.
    pub practitioner_id: Option<PractitionerId>,
    /// The HTTP request this runs in, for the audit log.
    pub request_id: Option<uuid::Uuid>,
}

impl Actor {
    /// clinicflow itself, acting in `clinic` (the no-show sweeper): the nil user id marks it in
    /// the audit log, where `actor_id` has no foreign key, so no user row is needed.
    pub fn system(clinic: ClinicId) -> Self {
        Self {
            user_id: UserId::from_uuid(uuid::Uuid::nil()),
            clinic_id: clinic,
            role: Role::System,
            practitioner_id: None,
            request_id: None,
        }
    }

    /// `Ok` when the actor's role grants `permission`.
    pub fn require(&self, permission: crate::Permission) -> Result<(), crate::permission::Denied> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(crate::permission::Denied {
                role: self.role,
                permission,
            })
        }
    }
}
