//! Login, refresh-token rotation with reuse detection, logout and password changes.

use std::time::Duration as StdDuration;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::{
    Actor, Clinic, ClinicId, Email, LockoutPolicy, PractitionerId, RefreshToken, RefreshTokenId,
    RefreshVerdict, Role, TokenFamilyId, User, UserId,
};
use clinicflow_ports::{RepoError, TxMode, user_tag};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clinic::check_password;
use crate::{FieldErrors, Ports, ServiceError};

/// A valid argon2id hash of a random password, verified when no account matches so that
/// an unknown e-mail takes about as long to reject as a wrong password.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$TzLaGnuNzWcY/K8Eqm1YIQ$N/pEzhekuFiB3PgFHPku9Z66yuZURfWD6jCgM/M26wg";

/// Whether `user` may hold a session: an active staff account. The store never yields a user
/// with the `system` role, but a session for one would act as clinicflow itself, so it is
/// refused here too.
fn may_sign_in(user: &User) -> bool {
    user.active && user.role != Role::System
}

/// The login limits and token lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthPolicy {
    /// When failed logins lock an account.
    pub lockout: LockoutPolicy,
    /// Login attempts per client IP per minute.
    pub login_per_ip_per_minute: u32,
    /// Login attempts per account (e-mail) per minute.
    pub login_per_account_per_minute: u32,
    /// Lifetime of a refresh token.
    pub refresh_ttl: Duration,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            lockout: LockoutPolicy::default(),
            login_per_ip_per_minute: 10,
            login_per_account_per_minute: 5,
            refresh_ttl: Duration::days(14),
        }
    }
}

/// A logged-in user and a fresh refresh token (shown to the client once, stored only hashed).
#[derive(Clone)]
pub struct Session {
    /// Who.
    pub user: User,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// When it stops working.
    pub refresh_expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish_non_exhaustive()
    }
}

/// Checks credentials and manages sessions.
#[derive(Debug, Clone)]
pub struct AuthService {
    ports: Ports,
    policy: AuthPolicy,
}

/// SHA-256 of a token in hex: tokens are random 256-bit values, so a fast hash is enough.
fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const MINUTE: StdDuration = StdDuration::from_secs(60);

impl AuthService {
    /// Builds the service.
    pub fn new(ports: Ports, policy: AuthPolicy) -> Self {
        Self { ports, policy }
    }

    async fn limit(&self, key: &str, limit: u32) -> Result<(), ServiceError> {
        let decision = self.ports.limiter.hit(key, limit, MINUTE).await;
        if decision.allowed {
            Ok(())
        } else {
            Err(ServiceError::RateLimited {
                retry_after_secs: decision.retry_after.as_secs().max(1),
            })
        }
    }

    /// Logs in: the active, unlocked user whose e-mail and password match, with a new token family.
    ///
    /// Every failure (unknown e-mail, wrong password, disabled or locked account) is the same
    /// `InvalidCredentials` after a password verification of the same cost. Attempts are limited
    /// per client IP and per e-mail; consecutive failures lock the account.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        clinic: Option<ClinicId>,
        client_ip: Option<&str>,
    ) -> Result<Session, ServiceError> {
        if let Some(ip) = client_ip {
            self.limit(
                &format!("login:ip:{ip}"),
                self.policy.login_per_ip_per_minute,
            )
            .await?;
        }
        let parsed = Email::parse(email);
        let account_key = format!("login:account:{}", token_hash(&email.trim().to_lowercase()));
        self.limit(&account_key, self.policy.login_per_account_per_minute)
            .await?;
        let Ok(email) = parsed else {
            self.ports.hasher.verify(password, DUMMY_HASH).await;
            return Err(ServiceError::InvalidCredentials);
        };
        let now = self.ports.clock.now();
        let candidates: Vec<User> = {
            let mut tx = self.ports.db.begin(TxMode::Read).await?;
            self.ports.users.find_by_email(&mut tx, &email).await?
        }
        .into_iter()
        .filter(|u| may_sign_in(u) && clinic.is_none_or(|c| u.clinic_id == c))
        .collect();
        if candidates.is_empty() {
            self.ports.hasher.verify(password, DUMMY_HASH).await;
            return Err(ServiceError::InvalidCredentials);
        }
        let mut matching = Vec::new();
        for user in candidates {
            let good = self
                .ports
                .hasher
                .verify(password, &user.password_hash)
                .await;
            if user.is_locked(now) {
                continue;
            }
            // No read-modify-write of the user: each outcome is one conditional statement, so
            // a concurrent deactivation, role or password change is never written over, and
            // concurrent failures each count.
            let mut tx = self.ports.db.begin(TxMode::Write).await?;
            if good {
                if user.failed_logins != 0 || user.locked_until.is_some() {
                    self.ports
                        .users
                        .clear_failed_logins(&mut tx, user.clinic_id, user.id, now)
                        .await?;
                }
                // Read again after the write: what was deactivated or locked since the
                // candidates were read does not log in.
                let current = self
                    .ports
                    .users
                    .get(&mut tx, user.clinic_id, user.id)
                    .await?;
                if let Some(current) = current.filter(|u| may_sign_in(u) && !u.is_locked(now)) {
                    matching.push(current);
                }
            } else {
                let after = self
                    .ports
                    .users
                    .record_failed_login(
                        &mut tx,
                        user.clinic_id,
                        user.id,
                        &self.policy.lockout,
                        now,
                    )
                    .await?;
                if after.is_some_and(|u| u.is_locked(now)) {
                    tracing::warn!(user_id = %user.id, "account locked after repeated failed logins");
                }
            }
            tx.commit().await?;
        }
        let user = match matching.len() {
            0 => return Err(ServiceError::InvalidCredentials),
            1 => matching.remove(0),
            _ => {
                return Err(FieldErrors::single(
                    "clinic_id",
                    "this account exists in several clinics: say which one with clinic_id",
                ));
            }
        };
        self.ports.limiter.reset(&account_key).await;
        self.start_session(user, TokenFamilyId::from_uuid(Uuid::now_v7()))
            .await
    }

    async fn start_session(
        &self,
        user: User,
        family: TokenFamilyId,
    ) -> Result<Session, ServiceError> {
        let now = self.ports.clock.now();
        let token =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let stored = RefreshToken {
            id: RefreshTokenId::from_uuid(Uuid::now_v7()),
            family_id: family,
            user_id: user.id,
            clinic_id: user.clinic_id,
            token_hash: token_hash(&token),
            issued_at: now,
            expires_at: now + self.policy.refresh_ttl,
            rotated_at: None,
            revoked_at: None,
        };
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        self.ports.tokens.insert(&mut tx, &stored).await?;
        tx.commit().await?;
        Ok(Session {
            user,
            refresh_token: token,
            refresh_expires_at: stored.expires_at,
        })
    }

    /// Exchanges a refresh token for a new session of the same family. A token that was
    /// already exchanged revokes its whole family: whoever replays it, thief or owner, ends
    /// the session for both.
    ///
    /// Attempts are limited per client IP like logins (and share their setting): a front desk
    /// behind one NAT address refreshes all day, so refresh is outside the anonymous
    /// throttle, and without a limit of its own it would answer guesses, each a write
    /// transaction, without end. Attempts count before the lookup, so a spent budget costs
    /// the database nothing; a success forgives the address, as a login forgives the account,
    /// so what adds up is the failures since the last success.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(
        &self,
        token: &str,
        client_ip: Option<&str>,
    ) -> Result<Session, ServiceError> {
        let key = client_ip.map(|ip| format!("refresh:ip:{ip}"));
        if let Some(key) = &key {
            self.limit(key, self.policy.login_per_ip_per_minute).await?;
        }
        let session = self.rotate(token).await?;
        if let Some(key) = &key {
            self.ports.limiter.reset(key).await;
        }
        Ok(session)
    }

    async fn rotate(&self, token: &str) -> Result<Session, ServiceError> {
        let now = self.ports.clock.now();
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let Some(stored) = self
            .ports
            .tokens
            .find_by_hash(&mut tx, &token_hash(token))
            .await?
        else {
            return Err(ServiceError::InvalidCredentials);
        };
        let verdict = match stored.verdict(now) {
            RefreshVerdict::Rotate => match self
                .ports
                .tokens
                .mark_rotated(&mut tx, stored.id, now)
                .await
            {
                Ok(()) => RefreshVerdict::Rotate,
                // Another request rotated it first: this one is a replay.
                Err(RepoError::StaleVersion) => RefreshVerdict::Reuse,
                Err(e) => return Err(e.into()),
            },
            other => other,
        };
        match verdict {
            RefreshVerdict::Rotate => {}
            RefreshVerdict::Reuse => {
                let revoked = self
                    .ports
                    .tokens
                    .revoke_family(&mut tx, stored.clinic_id, stored.family_id, now)
                    .await?;
                tx.commit().await?;
                tracing::warn!(user_id = %stored.user_id, revoked, "refresh token reused: token family revoked");
                return Err(ServiceError::InvalidCredentials);
            }
            RefreshVerdict::Dead => return Err(ServiceError::InvalidCredentials),
        }
        let user = self
            .ports
            .users
            .get(&mut tx, stored.clinic_id, stored.user_id)
            .await?;
        let Some(user) = user.filter(may_sign_in) else {
            self.ports
                .tokens
                .revoke_family(&mut tx, stored.clinic_id, stored.family_id, now)
                .await?;
            tx.commit().await?;
            return Err(ServiceError::InvalidCredentials);
        };
        tx.commit().await?;
        self.start_session(user, stored.family_id).await
    }

    /// Ends the session a refresh token belongs to, and the user's live streams on every
    /// instance; an unknown token is already ended.
    pub async fn logout(&self, token: &str) -> Result<(), ServiceError> {
        let now = self.ports.clock.now();
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let stored = self
            .ports
            .tokens
            .find_by_hash(&mut tx, &token_hash(token))
            .await?;
        if let Some(stored) = &stored {
            self.ports
                .tokens
                .revoke_family(&mut tx, stored.clinic_id, stored.family_id, now)
                .await?;
        }
        tx.commit().await?;
        if let Some(stored) = stored {
            crate::live::announce(
                &self.ports,
                stored.user_id,
                crate::live::StreamEnd::LoggedOut,
            )
            .await;
        }
        Ok(())
    }

    /// Changes the actor's password after checking the current one, and ends every session of the user.
    #[tracing::instrument(skip_all)]
    pub async fn change_password(
        &self,
        actor: &Actor,
        current: &str,
        new: &str,
    ) -> Result<(), ServiceError> {
        check_password(new).map_err(|e| FieldErrors::single("new_password", e.0))?;
        let user = {
            let mut tx = self.ports.db.begin(TxMode::Read).await?;
            self.ports
                .users
                .get(&mut tx, actor.clinic_id, actor.user_id)
                .await?
                .ok_or(ServiceError::NotFound("user"))?
        };
        if !self.ports.hasher.verify(current, &user.password_hash).await {
            return Err(FieldErrors::single(
                "current_password",
                "is not the current password",
            ));
        }
        let new_hash = self
            .ports
            .hasher
            .hash(new)
            .await
            .map_err(ServiceError::Unexpected)?;
        let now = self.ports.clock.now();
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        // Read again, after the slow hashing: only the password is written, onto the row as it
        // is now (a failed login or a role change since stays), and only if the password that
        // was checked is still the current one.
        let mut fresh = self
            .ports
            .users
            .get(&mut tx, actor.clinic_id, actor.user_id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        if fresh.password_hash != user.password_hash {
            return Err(ServiceError::PreconditionFailed {
                current: Some(fresh.version),
            });
        }
        fresh.password_hash = new_hash;
        let expected = fresh.version;
        fresh.version += 1;
        self.ports.users.update(&mut tx, &fresh, expected).await?;
        self.ports
            .tokens
            .revoke_user(&mut tx, actor.clinic_id, actor.user_id, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The actor's own profile and clinic: from the cache when both are there, so the call
    /// every page of a client makes first opens no transaction.
    pub async fn me(&self, actor: &Actor) -> Result<(Profile, Clinic), ServiceError> {
        let key = profile_key(actor);
        let cached = self
            .ports
            .cache
            .get(&key)
            .await
            .and_then(|b| decode_profile(actor.user_id, &b));
        if let Some(profile) = &cached
            && let Some(clinic) = crate::clinic::cached_clinic(&self.ports, actor.clinic_id).await
        {
            return Ok((profile.clone(), clinic));
        }
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let profile = match cached {
            Some(profile) => profile,
            None => {
                let load = async {
                    self.ports
                        .users
                        .get(&mut tx, actor.clinic_id, actor.user_id)
                        .await?
                        .map(|u| Profile::of(&u))
                        .ok_or(ServiceError::NotFound("user"))
                };
                let tags = [user_tag(actor.user_id)];
                crate::cached::load_tagged(
                    &self.ports,
                    &key,
                    &tags,
                    PROFILE_TTL,
                    encode_profile,
                    load,
                )
                .await?
            }
        };
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        Ok((profile, clinic))
    }
}

/// How long a cached profile lives; every change of the user makes it stale at once.
const PROFILE_TTL: StdDuration = StdDuration::from_secs(60);

/// Who a user is, as `/me` shows them: what their record says, never their credentials or
/// login counters, so that the cache holds nothing a login checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The user's id.
    pub id: UserId,
    /// Their login e-mail.
    pub email: Email,
    /// Their role.
    pub role: Role,
    /// The practitioner they are, if any.
    pub practitioner_id: Option<PractitionerId>,
}

impl Profile {
    fn of(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            role: user.role,
            practitioner_id: user.practitioner_id,
        }
    }
}

/// The key names the clinic, so a user id of another clinic can never hit.
fn profile_key(actor: &Actor) -> String {
    format!("profile:{}:{}", actor.clinic_id, actor.user_id)
}

/// A profile as the cache keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct CachedProfile {
    email: String,
    role: String,
    practitioner_id: Option<Uuid>,
}

fn encode_profile(p: &Profile) -> Vec<u8> {
    serde_json::to_vec(&CachedProfile {
        email: p.email.to_string(),
        role: p.role.as_str().to_owned(),
        practitioner_id: p.practitioner_id.map(|id| id.as_uuid()),
    })
    .unwrap_or_default()
}

/// Parsed again as the domain parses input: an entry that does not parse is a miss.
fn decode_profile(id: UserId, bytes: &[u8]) -> Option<Profile> {
    let c: CachedProfile = serde_json::from_slice(bytes).ok()?;
    Some(Profile {
        id,
        email: Email::parse(&c.email).ok()?,
        role: Role::parse_recorded(&c.role).ok()?,
        practitioner_id: c.practitioner_id.map(PractitionerId::from_uuid),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use clinicflow_domain::{Role, UserId};
    use clinicflow_ports::{
        MockPasswordHasher, MockRateLimiter, MockRefreshTokenRepo, MockUserRepo, RateDecision,
    };

    use crate::mocks::Mocks;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000)
    }

    fn user(failed_logins: u32, locked_until: Option<DateTime<Utc>>) -> User {
        User {
            id: UserId::from_uuid(Uuid::from_u128(5)),
            clinic_id: ClinicId::from_uuid(Uuid::from_u128(1)),
            email: Email::parse("desk@clinic.example").expect("valid"),
            password_hash: "$argon2id$stored".into(),
            role: Role::Receptionist,
            practitioner_id: None,
            active: true,
            failed_logins,
            locked_until,
            version: 7,
        }
    }

    fn allowing() -> MockRateLimiter {
        let mut limiter = MockRateLimiter::new();
        limiter.expect_hit().returning(|_, limit, _| RateDecision {
            allowed: true,
            remaining: limit,
            retry_after: StdDuration::ZERO,
        });
        limiter.expect_reset().return_const(());
        limiter
    }

    fn service(
        users: MockUserRepo,
        tokens: MockRefreshTokenRepo,
        hasher: MockPasswordHasher,
        limiter: MockRateLimiter,
    ) -> (AuthService, Arc<AtomicUsize>) {
        let mut mocks = Mocks::new(now());
        mocks.users = users;
        mocks.tokens = tokens;
        mocks.hasher = hasher;
        mocks.limiter = limiter;
        let (ports, commits) = mocks.ports();
        (AuthService::new(ports, AuthPolicy::default()), commits)
    }

    #[test]
    fn token_hashes_are_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn a_wrong_password_is_counted_in_one_statement_and_never_writes_the_user_back() {
        let mut users = MockUserRepo::new();
        users
            .expect_find_by_email()
            .returning(|_, _| Ok(vec![user(4, None)]));
        // The fifth failure locks; the store does the counting, so no read-modify-write can
        // undo a concurrent deactivation or lose a concurrent failure.
        users
            .expect_record_failed_login()
            .times(1)
            .withf(|_, clinic, id, policy, at| {
                (*clinic, *id) == (user(0, None).clinic_id, user(0, None).id)
                    && *policy == LockoutPolicy::default()
                    && *at == now()
            })
            .returning(|_, _, _, _, _| Ok(Some(user(0, Some(now() + Duration::minutes(15))))));
        users.expect_update().never();
        users.expect_get().never();
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_verify().times(1).return_const(false);
        let (auth, commits) = service(users, MockRefreshTokenRepo::new(), hasher, allowing());
        let err = auth
            .login("desk@clinic.example", "guess", None, Some("10.0.0.1"))
            .await
            .expect_err("wrong");
        assert!(matches!(err, ServiceError::InvalidCredentials));
        assert_eq!(commits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_right_password_clears_earlier_failures_without_writing_the_user_back() {
        let mut users = MockUserRepo::new();
        users
            .expect_find_by_email()
            .returning(|_, _| Ok(vec![user(2, None)]));
        users
            .expect_clear_failed_logins()
            .times(1)
            .withf(|_, _, _, at| *at == now())
            .returning(|_, _, _, _| Ok(()));
        users
            .expect_get()
            .times(1)
            .returning(|_, _, _| Ok(Some(user(0, None))));
        users.expect_update().never();
        users.expect_record_failed_login().never();
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_verify().times(1).return_const(true);
        let mut tokens = MockRefreshTokenRepo::new();
        tokens.expect_insert().times(1).returning(|_, _| Ok(()));
        let (auth, _) = service(users, tokens, hasher, allowing());
        let session = auth
            .login("desk@clinic.example", "right", None, None)
            .await
            .expect("logged in");
        assert_eq!(session.user.failed_logins, 0);
    }

    #[tokio::test]
    async fn an_account_deactivated_while_its_password_was_checked_gets_no_session() {
        let mut users = MockUserRepo::new();
        users
            .expect_find_by_email()
            .returning(|_, _| Ok(vec![user(0, None)]));
        users.expect_clear_failed_logins().never();
        // An admin's deactivation committed between the candidates' read and the check.
        users.expect_get().times(1).returning(|_, _, _| {
            let mut disabled = user(0, None);
            disabled.active = false;
            Ok(Some(disabled))
        });
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_verify().times(1).return_const(true);
        let mut tokens = MockRefreshTokenRepo::new();
        tokens.expect_insert().never();
        let (auth, _) = service(users, tokens, hasher, allowing());
        let err = auth
            .login("desk@clinic.example", "right", None, None)
            .await
            .expect_err("disabled meanwhile");
        assert!(matches!(err, ServiceError::InvalidCredentials), "{err:?}");
    }

    #[tokio::test]
    async fn a_locked_account_refuses_even_the_right_password_and_changes_nothing() {
        let mut users = MockUserRepo::new();
        let locked = user(0, Some(now() + Duration::minutes(3)));
        users
            .expect_find_by_email()
            .returning(move |_, _| Ok(vec![locked.clone()]));
        users.expect_update().never();
        let mut hasher = MockPasswordHasher::new();
        // The password is still verified, so a locked account costs as much time as any other.
        hasher.expect_verify().times(1).return_const(true);
        let mut tokens = MockRefreshTokenRepo::new();
        tokens.expect_insert().never();
        let (auth, _) = service(users, tokens, hasher, allowing());
        let err = auth
            .login("desk@clinic.example", "right", None, None)
            .await
            .expect_err("locked");
        assert!(matches!(err, ServiceError::InvalidCredentials));
    }

    #[tokio::test]
    async fn an_unknown_account_costs_a_dummy_verification() {
        let mut users = MockUserRepo::new();
        users
            .expect_find_by_email()
            .returning(|_, _| Ok(Vec::new()));
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_verify()
            .times(1)
            .withf(|_, hash| hash == DUMMY_HASH)
            .return_const(false);
        let (auth, _) = service(users, MockRefreshTokenRepo::new(), hasher, allowing());
        let err = auth
            .login("nobody@clinic.example", "x", None, None)
            .await
            .expect_err("unknown");
        assert!(matches!(err, ServiceError::InvalidCredentials));
    }

    #[tokio::test]
    async fn an_account_holding_the_system_role_never_logs_in() {
        let mut users = MockUserRepo::new();
        users.expect_find_by_email().returning(|_, _| {
            let mut system = user(0, None);
            system.role = Role::System;
            Ok(vec![system])
        });
        users.expect_update().never();
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_verify()
            .times(1)
            .withf(|_, hash| hash == DUMMY_HASH)
            .return_const(true);
        let mut tokens = MockRefreshTokenRepo::new();
        tokens.expect_insert().never();
        let (auth, commits) = service(users, tokens, hasher, allowing());
        let err = auth
            .login("desk@clinic.example", "right", None, None)
            .await
            .expect_err("no session for the system role");
        assert!(matches!(err, ServiceError::InvalidCredentials), "{err:?}");
        assert_eq!(commits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn logins_over_the_ip_limit_are_refused_before_any_password_is_checked() {
        let mut limiter = MockRateLimiter::new();
        limiter
            .expect_hit()
            .times(1)
            .withf(|key, limit, _| key == "login:ip:10.0.0.1" && *limit == 10)
            .returning(|_, _, _| RateDecision {
                allowed: false,
                remaining: 0,
                retry_after: StdDuration::from_secs(42),
            });
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_verify().never();
        let (auth, _) = service(
            MockUserRepo::new(),
            MockRefreshTokenRepo::new(),
            hasher,
            limiter,
        );
        let err = auth
            .login("desk@clinic.example", "x", None, Some("10.0.0.1"))
            .await
            .expect_err("throttled");
        assert!(
            matches!(
                err,
                ServiceError::RateLimited {
                    retry_after_secs: 42
                }
            ),
            "got {err:?}"
        );
    }

    fn stored(rotated: bool) -> RefreshToken {
        RefreshToken {
            id: RefreshTokenId::from_uuid(Uuid::from_u128(7)),
            family_id: TokenFamilyId::from_uuid(Uuid::from_u128(8)),
            user_id: user(0, None).id,
            clinic_id: user(0, None).clinic_id,
            token_hash: token_hash("presented"),
            issued_at: now() - Duration::hours(1),
            expires_at: now() + Duration::days(13),
            rotated_at: rotated.then(|| now() - Duration::minutes(30)),
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn a_replayed_refresh_token_revokes_its_family() {
        let mut tokens = MockRefreshTokenRepo::new();
        tokens
            .expect_find_by_hash()
            .withf(|_, h| h == token_hash("presented"))
            .returning(|_, _| Ok(Some(stored(true))));
        tokens.expect_mark_rotated().never();
        tokens
            .expect_revoke_family()
            .times(1)
            .withf(|_, clinic, family, _| {
                *clinic == stored(true).clinic_id && *family == stored(true).family_id
            })
            .returning(|_, _, _, _| Ok(3));
        tokens.expect_insert().never();
        let (auth, commits) = service(
            MockUserRepo::new(),
            tokens,
            MockPasswordHasher::new(),
            allowing(),
        );
        let err = auth.refresh("presented", None).await.expect_err("replay");
        assert!(matches!(err, ServiceError::InvalidCredentials));
        assert_eq!(
            commits.load(Ordering::SeqCst),
            1,
            "the revocation is committed"
        );
    }

    #[tokio::test]
    async fn a_fresh_refresh_token_rotates_into_a_child_of_the_same_family() {
        let mut tokens = MockRefreshTokenRepo::new();
        tokens
            .expect_find_by_hash()
            .returning(|_, _| Ok(Some(stored(false))));
        tokens
            .expect_mark_rotated()
            .times(1)
            .returning(|_, _, _| Ok(()));
        tokens
            .expect_insert()
            .times(1)
            .withf(|_, t| {
                t.family_id == stored(false).family_id && t.token_hash != token_hash("presented")
            })
            .returning(|_, _| Ok(()));
        let mut users = MockUserRepo::new();
        users
            .expect_get()
            .returning(|_, _, _| Ok(Some(user(0, None))));
        let (auth, _) = service(users, tokens, MockPasswordHasher::new(), allowing());
        let session = auth.refresh("presented", None).await.expect("rotated");
        assert_ne!(session.refresh_token, "presented");
        assert_eq!(session.refresh_expires_at, now() + Duration::days(14));
    }
}
