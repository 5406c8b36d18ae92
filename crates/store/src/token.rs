//! [`RefreshTokenRepo`] on the `refresh_tokens` table.
//!
//! Rotation is a compare-and-set: `mark_rotated` writes only while the token is neither
//! rotated nor revoked, so of two refreshes racing with one token exactly one succeeds;
//! the other sees `StaleVersion`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clinicflow_domain::{ClinicId, RefreshToken, RefreshTokenId, TokenFamilyId, UserId};
use clinicflow_ports::{RefreshTokenRepo, RepoError, Tx};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::Store;
use crate::entity::{instant, refresh_token};
use crate::error::repo_error;
use crate::transaction::db;

fn to_domain(row: refresh_token::Model) -> RefreshToken {
    RefreshToken {
        id: RefreshTokenId::from_uuid(row.id),
        family_id: TokenFamilyId::from_uuid(row.family_id),
        user_id: UserId::from_uuid(row.user_id),
        clinic_id: ClinicId::from_uuid(row.clinic_id),
        token_hash: row.token_hash,
        issued_at: row.issued_at,
        expires_at: row.expires_at,
        rotated_at: row.rotated_at,
        revoked_at: row.revoked_at,
    }
}

/// `UPDATE refresh_tokens SET revoked_at = at WHERE <which> AND revoked_at IS NULL`.
async fn revoke(
    tx: &mut Tx,
    which: sea_orm::Condition,
    at: DateTime<Utc>,
) -> Result<u64, RepoError> {
    let revoked = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(instant(at)))
        .filter(which)
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db(tx))
        .await
        .map_err(repo_error)?;
    Ok(revoked.rows_affected)
}

#[async_trait]
impl RefreshTokenRepo for Store {
    async fn insert(&self, tx: &mut Tx, token: &RefreshToken) -> Result<(), RepoError> {
        let row = refresh_token::ActiveModel {
            id: Set(token.id.as_uuid()),
            family_id: Set(token.family_id.as_uuid()),
            user_id: Set(token.user_id.as_uuid()),
            clinic_id: Set(token.clinic_id.as_uuid()),
            token_hash: Set(token.token_hash.clone()),
            issued_at: Set(instant(token.issued_at)),
            expires_at: Set(instant(token.expires_at)),
            rotated_at: Set(token.rotated_at.map(instant)),
            revoked_at: Set(token.revoked_at.map(instant)),
        };
        refresh_token::Entity::insert(row)
            .exec_without_returning(db(tx))
            .await
            .map_err(repo_error)?;
        Ok(())
    }

    async fn find_by_hash(
        &self,
        tx: &mut Tx,
        token_hash: &str,
    ) -> Result<Option<RefreshToken>, RepoError> {
        Ok(refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(token_hash))
            .one(db(tx))
            .await
            .map_err(repo_error)?
            .map(to_domain))
    }

    /// Also `StaleVersion` for an unknown id: the caller has just read the token in the
    /// same transaction, so "not there" can only mean it lost a race too.
    async fn mark_rotated(
        &self,
        tx: &mut Tx,
        id: RefreshTokenId,
        at: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let rotated = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RotatedAt, Expr::value(instant(at)))
            .filter(refresh_token::Column::Id.eq(id.as_uuid()))
            .filter(refresh_token::Column::RotatedAt.is_null())
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(db(tx))
            .await
            .map_err(repo_error)?;
        if rotated.rows_affected == 0 {
            return Err(RepoError::StaleVersion);
        }
        Ok(())
    }

    async fn revoke_family(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        family: TokenFamilyId,
        at: DateTime<Utc>,
    ) -> Result<u64, RepoError> {
        let which = sea_orm::Condition::all()
            .add(refresh_token::Column::ClinicId.eq(clinic.as_uuid()))
            .add(refresh_token::Column::FamilyId.eq(family.as_uuid()));
        revoke(tx, which, at).await
    }

    async fn revoke_user(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<u64, RepoError> {
        let which = sea_orm::Condition::all()
            .add(refresh_token::Column::ClinicId.eq(clinic.as_uuid()))
            .add(refresh_token::Column::UserId.eq(user.as_uuid()));
        revoke(tx, which, at).await
    }
}
