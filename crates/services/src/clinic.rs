//! Clinics: creating a tenant with its first admin, and reading its settings.

use std::time::Duration;

use clinicflow_domain::{
    Clinic, ClinicId, ClinicName, Email, QueueSettings, Role, TimeZone, User, UserId,
};
use clinicflow_ports::{Tx, TxMode};
use uuid::Uuid;

use crate::{FieldErrors, Ports, ServiceError};

/// Shortest password accepted for a staff account.
pub const MIN_PASSWORD_LEN: usize = 10;

/// How long a clinic's settings may be served from the cache; they change rarely.
const CLINIC_TTL: Duration = Duration::from_secs(60);

/// A new clinic and its first administrator.
#[derive(Debug, Clone)]
pub struct NewClinic {
    /// Display name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// The admin's e-mail.
    pub admin_email: String,
    /// The admin's password (never logged).
    pub admin_password: String,
}

/// Creates clinics and reads their settings.
#[derive(Debug, Clone)]
pub struct ClinicService {
    ports: Ports,
}

/// Checks a password against the minimum policy.
pub fn check_password(password: &str) -> Result<(), clinicflow_domain::InvalidValue> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(clinicflow_domain::InvalidValue::new(format!(
            "must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(clinicflow_domain::InvalidValue::new(
            "must be at most 1024 bytes",
        ));
    }
    Ok(())
}

impl ClinicService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    /// Creates a clinic and its admin in one unit of work.
    #[tracing::instrument(skip_all)]
    pub async fn create(&self, input: NewClinic) -> Result<(Clinic, User), ServiceError> {
        let mut errors = FieldErrors::new();
        let name = errors.check("name", ClinicName::parse(&input.name));
        let time_zone = errors.check("time_zone", TimeZone::parse(&input.time_zone));
        let email = errors.check("admin_email", Email::parse(&input.admin_email));
        errors.check("admin_password", check_password(&input.admin_password));
        errors.into_result()?;
        let (Some(name), Some(time_zone), Some(email)) = (name, time_zone, email) else {
            unreachable!("every field parsed when no error was recorded")
        };
        let password_hash = self
            .ports
            .hasher
            .hash(&input.admin_password)
            .await
            .map_err(ServiceError::Unexpected)?;
        let clinic = Clinic {
            id: ClinicId::from_uuid(Uuid::now_v7()),
            name,
            time_zone,
            no_show_grace_minutes: 15,
            queue: QueueSettings::default(),
        };
        let admin = User {
            id: UserId::from_uuid(Uuid::now_v7()),
            clinic_id: clinic.id,
            email,
            password_hash,
            role: Role::Admin,
            practitioner_id: None,
            active: true,
            failed_logins: 0,
            locked_until: None,
        };
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        self.ports.clinics.insert(&mut tx, &clinic).await?;
        self.ports.users.insert(&mut tx, &admin).await?;
        tx.commit().await?;
        Ok((clinic, admin))
    }

    /// The clinic with this exact name, if any.
    pub async fn find_by_name(&self, name: &str) -> Result<Option<Clinic>, ServiceError> {
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        Ok(self.ports.clinics.find_by_name(&mut tx, name).await?)
    }
}

/// Reads a clinic inside `tx`, through the cache: booking and slot queries need its zone on every call.
pub(crate) async fn clinic_settings(
    ports: &Ports,
    tx: &mut Tx,
    id: ClinicId,
) -> Result<Clinic, ServiceError> {
    let key = format!("clinic:{id}");
    if let Some(bytes) = ports.cache.get(&key).await
        && let Some(clinic) = decode_clinic(id, &bytes)
    {
        return Ok(clinic);
    }
    let clinic = ports
        .clinics
        .get(tx, id)
        .await?
        .ok_or(ServiceError::NotFound("clinic"))?;
    ports
        .cache
        .set(&key, encode_clinic(&clinic), CLINIC_TTL)
        .await;
    Ok(clinic)
}

fn encode_clinic(c: &Clinic) -> Vec<u8> {
    let targets: Vec<String> = c.queue.target_minutes.iter().map(u32::to_string).collect();
    format!(
        "{}\n{}\n{}\n{}\n{}",
        c.time_zone.name(),
        c.no_show_grace_minutes,
        targets.join(","),
        c.queue.checkin_grace_minutes,
        c.name.as_ref()
    )
    .into_bytes()
}

fn decode_clinic(id: ClinicId, bytes: &[u8]) -> Option<Clinic> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(5, '\n');
    let time_zone = TimeZone::parse(parts.next()?).ok()?;
    let no_show_grace_minutes = parts.next()?.parse().ok()?;
    let targets: Vec<u32> = parts
        .next()?
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let checkin_grace_minutes = parts.next()?.parse().ok()?;
    let name = ClinicName::parse(parts.next()?).ok()?;
    Some(Clinic {
        id,
        name,
        time_zone,
        no_show_grace_minutes,
        queue: QueueSettings {
            target_minutes: targets.try_into().ok()?,
            checkin_grace_minutes,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_clinics_decode_to_what_was_encoded() {
        let clinic = Clinic {
            id: ClinicId::from_uuid(Uuid::now_v7()),
            name: ClinicName::parse("Praxis Mitte").expect("valid"),
            time_zone: TimeZone::parse("Europe/Berlin").expect("valid"),
            no_show_grace_minutes: 15,
            queue: QueueSettings::default(),
        };
        let bytes = encode_clinic(&clinic);
        assert_eq!(decode_clinic(clinic.id, &bytes), Some(clinic.clone()));
        assert!(decode_clinic(clinic.id, b"Nowhere/Zone\n15\nX").is_none());
    }

    #[test]
    fn short_passwords_are_rejected() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough pass").is_ok());
    }
}
