//! Refresh tokens: opaque, stored only as a hash, rotated on every use, in families.
//!
//! A family starts at login; each refresh marks the presented token rotated and issues
//! its child. Presenting a token that was already rotated means it was copied: the whole
//! family is revoked, so the thief and the legitimate session both lose it.

use chrono::{DateTime, Utc};

use crate::{ClinicId, RefreshTokenId, TokenFamilyId, UserId};

/// One refresh token as stored. Its `Debug` leaves out the hash, which is the lookup key.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Identity.
    pub id: RefreshTokenId,
    /// The login session it belongs to.
    pub family_id: TokenFamilyId,
    /// Whose.
    pub user_id: UserId,
    /// Their clinic.
    pub clinic_id: ClinicId,
    /// SHA-256 of the token, hex; the token itself is never stored.
    pub token_hash: String,
    /// When issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged for its successor.
    pub rotated_at: Option<DateTime<Utc>>,
    /// When its family was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("id", &self.id)
            .field("family_id", &self.family_id)
            .field("user_id", &self.user_id)
            .field("clinic_id", &self.clinic_id)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .field("rotated_at", &self.rotated_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// What presenting a refresh token at `now` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshVerdict {
    /// Valid: rotate it and issue the next one.
    Rotate,
    /// Already rotated: a replay, so revoke the whole family.
    Reuse,
    /// Revoked or expired: refuse.
    Dead,
}

impl RefreshToken {
    /// Judges a presented token.
    pub fn verdict(&self, now: DateTime<Utc>) -> RefreshVerdict {
        if self.revoked_at.is_some() || now >= self.expires_at {
            RefreshVerdict::Dead
        } else if self.rotated_at.is_some() {
            RefreshVerdict::Reuse
        } else {
            RefreshVerdict::Rotate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn token() -> RefreshToken {
        RefreshToken {
            id: RefreshTokenId::from_uuid(uuid::Uuid::nil()),
            family_id: TokenFamilyId::from_uuid(uuid::Uuid::nil()),
            user_id: UserId::from_uuid(uuid::Uuid::nil()),
            clinic_id: ClinicId::from_uuid(uuid::Uuid::nil()),
            token_hash: String::new(),
            issued_at: DateTime::<Utc>::UNIX_EPOCH,
            expires_at: DateTime::<Utc>::UNIX_EPOCH + Duration::days(14),
            rotated_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn debug_leaves_out_the_token_hash() {
        let t = RefreshToken {
            token_hash: "9f86d081884c7d659a2feaa0c55ad015".into(),
            ..token()
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("9f86d081"), "{shown}");
        assert!(shown.contains("expires_at"), "{shown}");
    }

    #[test]
    fn a_fresh_token_rotates_a_rotated_one_is_reuse_and_expired_or_revoked_ones_are_dead() {
        let now = DateTime::<Utc>::UNIX_EPOCH + Duration::days(1);
        let mut t = token();
        assert_eq!(t.verdict(now), RefreshVerdict::Rotate);
        t.rotated_at = Some(now);
        assert_eq!(t.verdict(now), RefreshVerdict::Reuse);
        t.revoked_at = Some(now);
        assert_eq!(t.verdict(now), RefreshVerdict::Dead);
        assert_eq!(
            token().verdict(now + Duration::days(14)),
            RefreshVerdict::Dead
        );
    }
}
