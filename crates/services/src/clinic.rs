//! Clinics: creating a tenant with its first admin, and reading its settings.

use std::sync::Arc;
use std::time::Duration;

use clinicflow_domain::{
    Actor, AuditAction, CheckInWindow, Clinic, ClinicId, ClinicName, Email, InvalidValue,
    Permission, QueueSettings, ReminderOffsets, ResourceType, Role, TimeZone, User, UserId,
    WebhookEndpoint, WebhookPolicy, WebhookSecret, WebhookUrl,
};
use clinicflow_ports::{Derived, Tx, TxMode};
use uuid::Uuid;

use crate::audit::{self, Access};
use crate::{FieldErrors, Ports, ServiceError};

/// Shortest password accepted for a staff account.
pub const MIN_PASSWORD_LEN: usize = 10;

/// How long a clinic's settings may be served from the cache; they change rarely.
const CLINIC_TTL: Duration = Duration::from_secs(60);

/// A new clinic and its first administrator.
#[derive(Clone)]
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

opaque_debug!(NewClinic);

/// A change to a clinic's settings: absent fields stay as they are. The time zone is not
/// here on purpose: schedules are kept in local time, and moving them to another zone is a
/// migration, not a setting.
#[derive(Debug, Clone, Default)]
pub struct ClinicPatch {
    /// Display name.
    pub name: Option<String>,
    /// Minutes after start before an appointment may be marked a no-show.
    pub no_show_grace_minutes: Option<u32>,
    /// Minutes after start a checked-in appointment keeps its place in the queue.
    pub checkin_grace_minutes: Option<u32>,
    /// Target waits per triage category, most urgent first, all five at once.
    pub triage_target_minutes: Option<[i64; 5]>,
    /// Minutes before start each reminder goes out (empty: no reminders).
    pub reminder_offsets_minutes: Option<Vec<u32>>,
    /// Minutes before start from which patients may check in.
    pub check_in_opens_minutes_before: Option<u32>,
    /// Minutes after start until which patients may check in; `Some(None)` follows the
    /// no-show grace again.
    pub check_in_closes_minutes_after: Option<Option<u32>>,
}

/// The longest grace period a clinic may set, in minutes.
const MAX_GRACE_MINUTES: u32 = 240;

fn grace_minutes(minutes: u32) -> Result<u32, InvalidValue> {
    if minutes > MAX_GRACE_MINUTES {
        return Err(InvalidValue::new(format!(
            "must be at most {MAX_GRACE_MINUTES} minutes"
        )));
    }
    Ok(minutes)
}

/// The cache key of a clinic's settings.
fn clinic_key(id: ClinicId) -> String {
    format!("clinic:{id}")
}

/// The tag every cached value derived from a clinic's settings carries.
fn clinic_tag(id: ClinicId) -> String {
    format!("clinic:{id}")
}

/// Creates clinics and reads their settings.
#[derive(Debug, Clone)]
pub struct ClinicService {
    ports: Ports,
    webhooks: std::sync::Arc<WebhookPolicy>,
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
        Self {
            ports,
            webhooks: std::sync::Arc::new(WebhookPolicy::default()),
        }
    }

    /// The same service, holding webhook URLs to `policy` (the default: https and public
    /// addresses only).
    pub fn with_webhook_policy(self, policy: WebhookPolicy) -> Self {
        Self {
            webhooks: std::sync::Arc::new(policy),
            ..self
        }
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
            reminders: ReminderOffsets::default(),
            check_in: CheckInWindow::default(),
            version: 1,
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
            version: 1,
        };
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        self.ports.clinics.insert(&mut tx, &clinic).await?;
        self.ports.users.insert(&mut tx, &admin).await?;
        tx.commit().await?;
        Ok((clinic, admin))
    }

    /// The actor's clinic and its settings.
    pub async fn settings(&self, actor: &Actor) -> Result<Clinic, ServiceError> {
        actor.require(Permission::ReadClinic)?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        clinic_settings(&self.ports, &mut tx, actor.clinic_id).await
    }

    /// Changes the settings a patch names; the rest stay. Admins only, audited.
    #[tracing::instrument(skip_all)]
    pub async fn update(
        &self,
        actor: &Actor,
        patch: ClinicPatch,
        if_match: Option<i32>,
    ) -> Result<Clinic, ServiceError> {
        let access = Access::kind(AuditAction::Update, ResourceType::Clinic);
        audit::require(&self.ports, actor, Permission::ManageClinic, access).await?;
        let mut errors = FieldErrors::new();
        let name = patch
            .name
            .as_deref()
            .and_then(|n| errors.check("name", ClinicName::parse(n)));
        let no_show_grace = patch
            .no_show_grace_minutes
            .and_then(|m| errors.check("no_show_grace_minutes", grace_minutes(m)));
        let checkin_grace = patch
            .checkin_grace_minutes
            .and_then(|m| errors.check("checkin_grace_minutes", grace_minutes(m)));
        let targets = patch
            .triage_target_minutes
            .and_then(|m| errors.check("triage_target_minutes", QueueSettings::parse_targets(m)));
        let reminders = patch
            .reminder_offsets_minutes
            .as_deref()
            .and_then(|m| errors.check("reminder_offsets_minutes", ReminderOffsets::parse(m)));
        let opens_before = patch.check_in_opens_minutes_before.and_then(|m| {
            errors.check(
                "check_in_opens_minutes_before",
                CheckInWindow::parse_minutes(m),
            )
        });
        let closes_after = match patch.check_in_closes_minutes_after {
            Some(Some(m)) => errors
                .check(
                    "check_in_closes_minutes_after",
                    CheckInWindow::parse_minutes(m),
                )
                .map(Some),
            other => other,
        };
        errors.into_result()?;
        let (clinic, mut tx) = crate::versioned::change(
            &self.ports,
            if_match,
            async |tx| {
                self.ports
                    .clinics
                    .get(tx, actor.clinic_id)
                    .await?
                    .ok_or(ServiceError::NotFound("clinic"))
            },
            |clinic| {
                if let Some(name) = &name {
                    clinic.name = name.clone();
                }
                if let Some(minutes) = no_show_grace {
                    clinic.no_show_grace_minutes = minutes;
                }
                if let Some(minutes) = checkin_grace {
                    clinic.queue.checkin_grace_minutes = minutes;
                }
                // Entries already waiting keep the deadlines they joined with: only new ones (and re-triages) use these.
                if let Some(targets) = targets {
                    clinic.queue.target_minutes = targets;
                }
                if let Some(reminders) = &reminders {
                    clinic.reminders = reminders.clone();
                }
                if let Some(minutes) = opens_before {
                    clinic.check_in.opens_minutes_before = minutes;
                }
                if let Some(minutes) = closes_after {
                    clinic.check_in.closes_minutes_after = minutes;
                }
            },
            async |tx, clinic, expected| self.ports.clinics.update(tx, clinic, expected).await,
        )
        .await?;
        let access = Access {
            resource_id: Some(clinic.id.as_uuid()),
            ..access
        };
        audit::record(&self.ports, &mut tx, actor, access).await?;
        tx.commit().await?;
        // After the commit, so that no instance caches the old settings under the new version.
        self.ports.cache.invalidate(&[clinic_tag(clinic.id)]).await;
        Ok(clinic)
    }

    /// The clinic's webhook, if it has one. Admins only.
    pub async fn webhook(&self, actor: &Actor) -> Result<WebhookEndpoint, ServiceError> {
        actor.require(Permission::ManageClinic)?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        self.ports
            .clinics
            .webhook(&mut tx, actor.clinic_id)
            .await?
            .ok_or(ServiceError::NotFound("webhook"))
    }

    /// Points the clinic's messages at `url`. The signing secret is kept, or made when the
    /// clinic has none or `rotate_secret` asks; a new secret comes back once, in the answer.
    #[tracing::instrument(skip_all)]
    pub async fn set_webhook(
        &self,
        actor: &Actor,
        url: &str,
        rotate_secret: bool,
    ) -> Result<(WebhookEndpoint, bool), ServiceError> {
        let access = Access::kind(AuditAction::Update, ResourceType::Clinic);
        audit::require(&self.ports, actor, Permission::ManageClinic, access).await?;
        let url = WebhookUrl::parse(url).map_err(|e| FieldErrors::single("url", e.0))?;
        self.webhooks
            .check_url(&url)
            .map_err(|e| ServiceError::WebhookTargetRefused(e.0))?;
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let current = self.ports.clinics.webhook(&mut tx, actor.clinic_id).await?;
        let (secret, new_secret) = match current {
            Some(current) if !rotate_secret => (current.secret, false),
            _ => (WebhookSecret::from_random(rand::random()), true),
        };
        let webhook = WebhookEndpoint { url, secret };
        let now = self.ports.clock.now();
        self.ports
            .clinics
            .set_webhook(&mut tx, actor.clinic_id, Some(webhook.clone()), now)
            .await?;
        let access = Access {
            resource_id: Some(actor.clinic_id.as_uuid()),
            ..access
        };
        audit::record(&self.ports, &mut tx, actor, access).await?;
        tx.commit().await?;
        Ok((webhook, new_secret))
    }

    /// Removes the clinic's webhook: its messages go to the log again.
    #[tracing::instrument(skip_all)]
    pub async fn remove_webhook(&self, actor: &Actor) -> Result<(), ServiceError> {
        let access = Access::kind(AuditAction::Delete, ResourceType::Clinic);
        audit::require(&self.ports, actor, Permission::ManageClinic, access).await?;
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        if self
            .ports
            .clinics
            .webhook(&mut tx, actor.clinic_id)
            .await?
            .is_none()
        {
            return Err(ServiceError::NotFound("webhook"));
        }
        let now = self.ports.clock.now();
        self.ports
            .clinics
            .set_webhook(&mut tx, actor.clinic_id, None, now)
            .await?;
        let access = Access {
            resource_id: Some(actor.clinic_id.as_uuid()),
            ..access
        };
        audit::record(&self.ports, &mut tx, actor, access).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The clinic with this exact name, if any.
    pub async fn find_by_name(&self, name: &str) -> Result<Option<Clinic>, ServiceError> {
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        Ok(self.ports.clinics.find_by_name(&mut tx, name).await?)
    }
}

/// The clinic as cached, if it is.
pub(crate) async fn cached_clinic(ports: &Ports, id: ClinicId) -> Option<Clinic> {
    // A hit hands back the clinic decoded on an earlier hit of the same cached value.
    let derive = |bytes: &[u8]| -> Option<Derived> { Some(Arc::new(decode_clinic(id, bytes)?)) };
    let derived = ports.cache.get_derived(&clinic_key(id), &derive).await?;
    derived.downcast_ref::<Clinic>().cloned()
}

/// Reads a clinic inside `tx`, through the cache: booking and slot queries need its zone on every call.
pub(crate) async fn clinic_settings(
    ports: &Ports,
    tx: &mut Tx,
    id: ClinicId,
) -> Result<Clinic, ServiceError> {
    if let Some(clinic) = cached_clinic(ports, id).await {
        return Ok(clinic);
    }
    let key = clinic_key(id);
    let load = async {
        ports
            .clinics
            .get(tx, id)
            .await?
            .ok_or(ServiceError::NotFound("clinic"))
    };
    crate::cached::load_tagged(
        ports,
        &key,
        &[clinic_tag(id)],
        CLINIC_TTL,
        encode_clinic,
        load,
    )
    .await
}

fn encode_clinic(c: &Clinic) -> Vec<u8> {
    let targets: Vec<String> = c.queue.target_minutes.iter().map(u32::to_string).collect();
    let reminders: Vec<String> = c.reminders.minutes().iter().map(u32::to_string).collect();
    let closes = c
        .check_in
        .closes_minutes_after
        .map_or_else(|| "-".to_owned(), |m| m.to_string());
    // The version goes first, marked, so an entry of the format before it (which began with
    // the zone) decodes to nothing and is loaded again; the name goes last: it is the one
    // field that may hold any character.
    format!(
        "v{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        c.version,
        c.time_zone.name(),
        c.no_show_grace_minutes,
        targets.join(","),
        c.queue.checkin_grace_minutes,
        reminders.join(","),
        c.check_in.opens_minutes_before,
        closes,
        c.name.as_ref()
    )
    .into_bytes()
}

fn decode_clinic(id: ClinicId, bytes: &[u8]) -> Option<Clinic> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(9, '\n');
    let version = parts.next()?.strip_prefix('v')?.parse().ok()?;
    let time_zone = TimeZone::parse(parts.next()?).ok()?;
    let no_show_grace_minutes = parts.next()?.parse().ok()?;
    let targets: Vec<u32> = parts
        .next()?
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let checkin_grace_minutes = parts.next()?.parse().ok()?;
    let reminders: Vec<u32> = parts
        .next()?
        .split(',')
        .filter(|m| !m.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let reminders = ReminderOffsets::parse(&reminders).ok()?;
    let opens_minutes_before = parts.next()?.parse().ok()?;
    let closes_minutes_after = match parts.next()? {
        "-" => None,
        m => Some(m.parse().ok()?),
    };
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
        reminders,
        check_in: CheckInWindow {
            opens_minutes_before,
            closes_minutes_after,
        },
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_inputs_shows_no_password_or_personal_data() {
        let clinic = NewClinic {
            name: "Praxis".into(),
            time_zone: "UTC".into(),
            admin_email: "boss@praxis.example".into(),
            admin_password: "hunter2hunter2".into(),
        };
        let user = crate::NewUser {
            email: "nurse@praxis.example".into(),
            password: "swordfish-42".into(),
            ..crate::NewUser::default()
        };
        let patient = crate::NewPatient {
            given_name: "Augusta".into(),
            family_name: "Lovelace".into(),
            email: Some("ada@example.org".into()),
            ..crate::NewPatient::default()
        };
        let shown = format!("{clinic:?} {user:?} {patient:?}");
        for secret in [
            "hunter2",
            "boss@",
            "swordfish",
            "nurse@",
            "Augusta",
            "Lovelace",
            "ada@",
        ] {
            assert!(!shown.contains(secret), "`{secret}` shows in {shown}");
        }
        assert!(shown.contains("NewPatient"), "{shown}");
    }

    #[test]
    fn cached_clinics_decode_to_what_was_encoded() {
        let clinic = Clinic {
            id: ClinicId::from_uuid(Uuid::now_v7()),
            name: ClinicName::parse("Praxis Mitte").expect("valid"),
            time_zone: TimeZone::parse("Europe/Berlin").expect("valid"),
            no_show_grace_minutes: 15,
            queue: QueueSettings::default(),
            reminders: ReminderOffsets::default(),
            check_in: CheckInWindow::default(),
            version: 7,
        };
        let bytes = encode_clinic(&clinic);
        assert_eq!(decode_clinic(clinic.id, &bytes), Some(clinic.clone()));
        assert!(decode_clinic(clinic.id, b"Nowhere/Zone\n15\nX").is_none());
        // An entry cached before settings had a version is loaded again, not read as version 1.
        let unversioned = b"Europe/Berlin\n15\n0,10,60,120,240\n10\n1440\n60\n-\nPraxis Mitte";
        assert!(decode_clinic(clinic.id, unversioned).is_none());
        // Changed targets are cached as changed: the walk-ins that join next read them from here.
        let changed = Clinic {
            queue: QueueSettings {
                target_minutes: [0, 5, 30, 90, 180],
                checkin_grace_minutes: 7,
            },
            check_in: CheckInWindow {
                opens_minutes_before: 30,
                closes_minutes_after: Some(45),
            },
            ..clinic.clone()
        };
        assert_eq!(
            decode_clinic(changed.id, &encode_clinic(&changed)),
            Some(changed)
        );
    }

    #[test]
    fn short_passwords_are_rejected() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough pass").is_ok());
    }
}
