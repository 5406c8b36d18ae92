//! Login: checking staff credentials.

use clinicflow_domain::{Actor, Clinic, ClinicId, Email, User};
use clinicflow_ports::TxMode;

use crate::{FieldErrors, Ports, ServiceError};

/// A valid argon2id hash of a random password, verified when no account matches so that
/// an unknown e-mail takes about as long to reject as a wrong password.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$TzLaGnuNzWcY/K8Eqm1YIQ$N/pEzhekuFiB3PgFHPku9Z66yuZURfWD6jCgM/M26wg";

/// Checks credentials and reads the logged-in user.
#[derive(Debug, Clone)]
pub struct AuthService {
    ports: Ports,
}

impl AuthService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    /// The active user whose e-mail and password match, in `clinic` when given.
    ///
    /// Every failure (unknown e-mail, wrong password, disabled account) is the same
    /// `InvalidCredentials`. An e-mail registered in several clinics with the same
    /// password needs `clinic` to choose.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        clinic: Option<ClinicId>,
    ) -> Result<User, ServiceError> {
        let Ok(email) = Email::parse(email) else {
            self.ports.hasher.verify(password, DUMMY_HASH).await;
            return Err(ServiceError::InvalidCredentials);
        };
        let candidates: Vec<User> = {
            let mut tx = self.ports.db.begin(TxMode::Read).await?;
            self.ports.users.find_by_email(&mut tx, &email).await?
        }
        .into_iter()
        .filter(|u| u.active && clinic.is_none_or(|c| u.clinic_id == c))
        .collect();
        if candidates.is_empty() {
            self.ports.hasher.verify(password, DUMMY_HASH).await;
            return Err(ServiceError::InvalidCredentials);
        }
        let mut matching = Vec::new();
        for user in candidates {
            if self
                .ports
                .hasher
                .verify(password, &user.password_hash)
                .await
            {
                matching.push(user);
            }
        }
        match matching.len() {
            0 => Err(ServiceError::InvalidCredentials),
            1 => Ok(matching.remove(0)),
            _ => Err(FieldErrors::single(
                "clinic_id",
                "this account exists in several clinics: say which one with clinic_id",
            )),
        }
    }

    /// The actor's own user record and clinic.
    pub async fn me(&self, actor: &Actor) -> Result<(User, Clinic), ServiceError> {
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let user = self
            .ports
            .users
            .get(&mut tx, actor.clinic_id, actor.user_id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        Ok((user, clinic))
    }
}
