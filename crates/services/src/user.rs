//! Staff users: admins create them, list them, change their role, disable them or lift a
//! lockout.

use clinicflow_domain::{
    Actor, Email, Page, PageRequest, Permission, PractitionerId, Role, User, UserId,
};
use clinicflow_ports::{Tx, TxMode};
use uuid::Uuid;

use crate::clinic::check_password;
use crate::{FieldErrors, Ports, ServiceError, input};

/// A user to create, as sent by a client.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    /// Login e-mail.
    pub email: String,
    /// Initial password.
    pub password: String,
    /// admin, practitioner, receptionist or nurse.
    pub role: String,
    /// The practitioner record this user is (for the practitioner role).
    pub practitioner_id: Option<String>,
}

opaque_debug!(NewUser);

/// A partial change: `None` keeps a field, `Some(None)` clears the practitioner link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    /// New role.
    pub role: Option<String>,
    /// Enable or disable logins.
    pub active: Option<bool>,
    /// New practitioner link.
    pub practitioner_id: Option<Option<String>>,
}

/// Manages staff users.
#[derive(Debug, Clone)]
pub struct UserService {
    ports: Ports,
}

impl UserService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    async fn practitioner_link(
        &self,
        actor: &Actor,
        errors: &mut FieldErrors,
        raw: Option<&str>,
    ) -> Result<Option<PractitionerId>, ServiceError> {
        let Some(id) = raw
            .and_then(|v| errors.check("practitioner_id", input::id(v)))
            .map(PractitionerId::from_uuid)
        else {
            return Ok(None);
        };
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        if self
            .ports
            .practitioners
            .get(&mut tx, actor.clinic_id, id)
            .await?
            .is_none()
        {
            errors.add("practitioner_id", "no such practitioner in this clinic");
        }
        Ok(Some(id))
    }

    /// Whether `user` is locked out now, by the service's clock: the lock's end is a rule of
    /// time, so no adapter reads a clock of its own to show it.
    pub fn is_locked(&self, user: &User) -> bool {
        user.is_locked(self.ports.clock.now())
    }

    /// Creates a user in the admin's clinic.
    #[tracing::instrument(skip_all)]
    pub async fn create(&self, actor: &Actor, input: NewUser) -> Result<User, ServiceError> {
        actor.require(Permission::ManageUsers)?;
        let mut errors = FieldErrors::new();
        let email = errors.check("email", Email::parse(&input.email));
        errors.check("password", check_password(&input.password));
        let role = errors.check("role", input.role.parse::<Role>());
        let practitioner_id = self
            .practitioner_link(actor, &mut errors, input.practitioner_id.as_deref())
            .await?;
        errors.into_result()?;
        let (Some(email), Some(role)) = (email, role) else {
            unreachable!("parsed when no error was recorded")
        };
        let password_hash = self
            .ports
            .hasher
            .hash(&input.password)
            .await
            .map_err(ServiceError::Unexpected)?;
        let user = User {
            id: UserId::from_uuid(Uuid::now_v7()),
            clinic_id: actor.clinic_id,
            email,
            password_hash,
            role,
            practitioner_id,
            active: true,
            failed_logins: 0,
            locked_until: None,
            version: 1,
        };
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        self.ports.users.insert(&mut tx, &user).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// One page of the clinic's users.
    pub async fn list(&self, actor: &Actor, page: PageRequest) -> Result<Page<User>, ServiceError> {
        actor.require(Permission::ManageUsers)?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        Ok(self
            .ports
            .users
            .list(&mut tx, actor.clinic_id, page)
            .await?)
    }

    /// Changes a user's role, practitioner link or whether they may log in; disabling ends
    /// their sessions and their live streams on every instance. `if_match` (a version) guards
    /// against lost updates.
    #[tracing::instrument(skip_all)]
    pub async fn update(
        &self,
        actor: &Actor,
        id: UserId,
        changes: UserChanges,
        if_match: Option<i32>,
    ) -> Result<User, ServiceError> {
        actor.require(Permission::ManageUsers)?;
        let mut errors = FieldErrors::new();
        let role = changes
            .role
            .as_deref()
            .and_then(|r| errors.check("role", r.parse::<Role>()));
        let link = match &changes.practitioner_id {
            Some(raw) => Some(
                self.practitioner_link(actor, &mut errors, raw.as_deref())
                    .await?,
            ),
            None => None,
        };
        if id == actor.user_id
            && (changes.active == Some(false) || role.is_some_and(|r| r != Role::Admin))
        {
            errors.add(
                "role",
                "admins cannot disable or demote themselves; ask another admin",
            );
        }
        errors.into_result()?;
        let now = self.ports.clock.now();
        let (user, mut tx) = self
            .change(actor, id, if_match, |user| {
                if let Some(role) = role {
                    user.role = role;
                }
                if let Some(link) = link {
                    user.practitioner_id = link;
                }
                if let Some(active) = changes.active {
                    user.active = active;
                }
            })
            .await?;
        if changes.active == Some(false) {
            self.ports
                .tokens
                .revoke_user(&mut tx, actor.clinic_id, id, now)
                .await?;
        }
        tx.commit().await?;
        if changes.active == Some(false) {
            crate::live::announce(&self.ports, id, crate::live::StreamEnd::Deactivated).await;
        }
        Ok(user)
    }

    /// One user of the admin's clinic, with its failed-login count and lock.
    pub async fn get(&self, actor: &Actor, id: UserId) -> Result<User, ServiceError> {
        actor.require(Permission::ManageUsers)?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        self.ports
            .users
            .get(&mut tx, actor.clinic_id, id)
            .await?
            .ok_or(ServiceError::NotFound("user"))
    }

    /// Lifts a lockout after repeated failed logins: the lock and the failure count go, so the
    /// user can log in again at once. A user who is not locked is answered as they are.
    #[tracing::instrument(skip_all)]
    pub async fn unlock(
        &self,
        actor: &Actor,
        id: UserId,
        if_match: Option<i32>,
    ) -> Result<User, ServiceError> {
        actor.require(Permission::ManageUsers)?;
        let (user, tx) = self.change(actor, id, if_match, User::unlock).await?;
        tx.commit().await?;
        tracing::info!(user_id = %id, "account unlocked by an admin");
        Ok(user)
    }

    /// Reads the user, applies `apply`, and writes it back versioned, in a write transaction
    /// left open for the caller to finish and commit.
    ///
    /// With `if_match`, a version other than the client's is a 412. Without, a write that
    /// lost to a concurrent one (a failed login counted between the read and the write) is
    /// made again on a fresh read: the change is partial, so applying it to the newer row
    /// loses nothing.
    async fn change(
        &self,
        actor: &Actor,
        id: UserId,
        if_match: Option<i32>,
        apply: impl Fn(&mut User),
    ) -> Result<(User, Tx), ServiceError> {
        crate::versioned::change(
            &self.ports,
            if_match,
            async |tx| {
                self.ports
                    .users
                    .get(tx, actor.clinic_id, id)
                    .await?
                    .ok_or(ServiceError::NotFound("user"))
            },
            apply,
            async |tx, user, expected| self.ports.users.update(tx, user, expected).await,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use clinicflow_domain::ClinicId;

    use super::*;
    use crate::mocks::Mocks;

    fn admin() -> Actor {
        Actor {
            user_id: UserId::from_uuid(Uuid::from_u128(2)),
            clinic_id: ClinicId::from_uuid(Uuid::from_u128(1)),
            role: Role::Admin,
            practitioner_id: None,
            request_id: None,
        }
    }

    /// Users whose store and hasher must not be reached.
    fn untouched() -> UserService {
        let mut m = Mocks::new(DateTime::<Utc>::UNIX_EPOCH);
        m.users.expect_insert().never();
        m.users.expect_get().never();
        m.users.expect_update().never();
        m.hasher.expect_hash().never();
        UserService::new(m.ports().0)
    }

    fn refused_role(err: ServiceError) -> bool {
        matches!(err, ServiceError::Validation(ref e) if e.fields().contains_key("role"))
    }

    #[tokio::test]
    async fn no_user_is_created_with_the_system_role() {
        let err = untouched()
            .create(
                &admin(),
                NewUser {
                    email: "robot@clinic.example".into(),
                    password: "long enough password".into(),
                    role: "system".into(),
                    practitioner_id: None,
                },
            )
            .await
            .expect_err("system is no staff role");
        assert!(refused_role(err));
    }

    #[tokio::test]
    async fn no_user_is_changed_to_the_system_role() {
        let err = untouched()
            .update(
                &admin(),
                UserId::from_uuid(Uuid::from_u128(5)),
                UserChanges {
                    role: Some("system".into()),
                    ..UserChanges::default()
                },
                None,
            )
            .await
            .expect_err("system is no staff role");
        assert!(refused_role(err));
    }
}
