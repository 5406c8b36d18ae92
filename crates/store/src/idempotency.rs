//! [`IdempotencyRepo`] on the `idempotency_keys` table.
//!
//! A claim is `INSERT … ON CONFLICT DO NOTHING` on the primary key (clinic, user, key). On
//! PostgreSQL that insert waits while another transaction holds an uncommitted row with the
//! same key, then either inserts (the other rolled back) or does nothing (it committed, and
//! its answer is read next); on SQLite the `BEGIN IMMEDIATE` write transaction keeps the
//! other writer out altogether. An expired row is taken over by a conditional update, so
//! of two requests reusing an expired key only one makes the write.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clinicflow_domain::{Claimed, KeyClaim, StoredAnswer};
use clinicflow_ports::{IdempotencyRepo, RepoError, Tx};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TryInsertResult};

use crate::Store;
use crate::entity::{idempotency_key, instant};
use crate::error::{invalid_row, repo_error};
use crate::transaction::db;

/// The row's filter: one user's key in one clinic.
fn this_key(claim: &KeyClaim) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(idempotency_key::Column::ClinicId.eq(claim.clinic_id.as_uuid()))
        .add(idempotency_key::Column::UserId.eq(claim.user_id.as_uuid()))
        .add(idempotency_key::Column::Key.eq(claim.key.as_str()))
}

/// Headers are stored one per line as `name: value`; header values cannot hold a line break.
fn encode_headers(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\n"))
        .collect()
}

fn decode_headers(text: &str) -> Option<Vec<(String, String)>> {
    text.lines()
        .map(|line| {
            line.split_once(": ")
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// What a stored row means for a request with `claim`.
fn verdict(row: idempotency_key::Model, claim: &KeyClaim) -> Result<Claimed, RepoError> {
    if row.fingerprint != claim.fingerprint {
        return Ok(Claimed::Mismatch);
    }
    let invalid = |reason| invalid_row("idempotency_keys", &row.key, reason);
    // The answer is written in the claiming transaction, so a committed row always has one.
    let (Some(status), Some(headers), Some(body)) = (row.status, &row.headers, &row.body) else {
        return Err(invalid("a committed key without its answer"));
    };
    let status = u16::try_from(status).map_err(|_| invalid("status out of range"))?;
    let headers = decode_headers(headers).ok_or_else(|| invalid("malformed headers"))?;
    Ok(Claimed::Replay(StoredAnswer {
        status,
        headers,
        body: body.clone(),
    }))
}

#[async_trait]
impl IdempotencyRepo for Store {
    async fn claim(&self, tx: &mut Tx, claim: &KeyClaim) -> Result<Claimed, RepoError> {
        let row = idempotency_key::ActiveModel {
            clinic_id: Set(claim.clinic_id.as_uuid()),
            user_id: Set(claim.user_id.as_uuid()),
            key: Set(claim.key.as_str().to_owned()),
            fingerprint: Set(claim.fingerprint.clone()),
            status: Set(None),
            headers: Set(None),
            body: Set(None),
            created_at: Set(instant(claim.created_at)),
            expires_at: Set(instant(claim.expires_at)),
        };
        let inserted = idempotency_key::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec_without_returning(db(tx))
            .await
            .map_err(repo_error)?;
        if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
            return Ok(Claimed::Fresh);
        }
        let taken_over = idempotency_key::Entity::update_many()
            .col_expr(
                idempotency_key::Column::Fingerprint,
                Expr::value(claim.fingerprint.clone()),
            )
            .col_expr(idempotency_key::Column::Status, Expr::value(None::<i32>))
            .col_expr(
                idempotency_key::Column::Headers,
                Expr::value(None::<String>),
            )
            .col_expr(idempotency_key::Column::Body, Expr::value(None::<String>))
            .col_expr(
                idempotency_key::Column::CreatedAt,
                Expr::value(instant(claim.created_at)),
            )
            .col_expr(
                idempotency_key::Column::ExpiresAt,
                Expr::value(instant(claim.expires_at)),
            )
            .filter(this_key(claim))
            .filter(idempotency_key::Column::ExpiresAt.lte(instant(claim.created_at)))
            .exec(db(tx))
            .await
            .map_err(repo_error)?;
        if taken_over.rows_affected > 0 {
            return Ok(Claimed::Fresh);
        }
        let row = idempotency_key::Entity::find()
            .filter(this_key(claim))
            .one(db(tx))
            .await
            .map_err(repo_error)?
            // Purged between the two statements: the next attempt claims it afresh.
            .ok_or_else(|| RepoError::Retry("idempotency key purged during its claim".into()))?;
        verdict(row, claim)
    }

    async fn answer(
        &self,
        tx: &mut Tx,
        claim: &KeyClaim,
        answer: &StoredAnswer,
    ) -> Result<(), RepoError> {
        let updated = idempotency_key::Entity::update_many()
            .col_expr(
                idempotency_key::Column::Status,
                Expr::value(i32::from(answer.status)),
            )
            .col_expr(
                idempotency_key::Column::Headers,
                Expr::value(encode_headers(&answer.headers)),
            )
            .col_expr(
                idempotency_key::Column::Body,
                Expr::value(answer.body.clone()),
            )
            .filter(this_key(claim))
            .filter(idempotency_key::Column::Fingerprint.eq(claim.fingerprint.clone()))
            .exec(db(tx))
            .await
            .map_err(repo_error)?;
        if updated.rows_affected == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    async fn purge_expired(&self, tx: &mut Tx, now: DateTime<Utc>) -> Result<u64, RepoError> {
        let purged = idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::ExpiresAt.lte(instant(now)))
            .exec(db(tx))
            .await
            .map_err(repo_error)?;
        Ok(purged.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::{decode_headers, encode_headers};

    #[test]
    fn headers_read_back_as_written() {
        let headers = vec![
            ("location".to_owned(), "/api/v1/appointments/1".to_owned()),
            ("etag".to_owned(), "\"1\"".to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        assert_eq!(decode_headers(&encode_headers(&headers)), Some(headers));
        assert_eq!(decode_headers(""), Some(vec![]));
        assert_eq!(decode_headers("no separator\n"), None);
    }
}
