//! [`UserRepo`] on the `users` table.

//!
//! Logins never write a user back as they read it: a failed login is one `UPDATE` that
//! increments the counter (and sets the lock when it reaches the limit) in SQL, and a
//! successful one clears them in one conditional `UPDATE`. Every other change is a versioned
//! update, so nothing written between a read and a write is undone.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clinicflow_domain::{
    ClinicId, Email, LockoutPolicy, Page, PageRequest, PractitionerId, Role, User, UserId,
};
use clinicflow_ports::{RepoError, Tx, UserRepo, user_tag};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder,
};

use crate::Store;
use crate::entity::{instant, user};
use crate::error::{invalid_row, repo_error, to_i32};
use crate::page::page_rows;
use crate::transaction::db;
use crate::version::update_versioned;

fn to_domain(row: user::Model) -> Result<User, RepoError> {
    let invalid = |reason: String| invalid_row("users", row.id, reason);
    Ok(User {
        id: UserId::from_uuid(row.id),
        clinic_id: ClinicId::from_uuid(row.clinic_id),
        email: Email::from_stored(&row.email).map_err(|e| invalid(e.to_string()))?,
        role: row
            .role
            .parse::<Role>()
            .map_err(|e| invalid(e.to_string()))?,
        practitioner_id: row.practitioner_id.map(PractitionerId::from_uuid),
        active: row.active,
        failed_logins: u32::try_from(row.failed_logins).map_err(|e| invalid(e.to_string()))?,
        locked_until: row.locked_until,
        password_hash: row.password_hash,
        version: row.version,
    })
}

/// Every column that a change may write; identity, tenant, e-mail and creation time stay
/// as they are, and `updated_at` is the time of the write.
fn changes(user: &User) -> Result<user::ActiveModel, RepoError> {
    Ok(user::ActiveModel {
        id: NotSet,
        clinic_id: NotSet,
        email: NotSet,
        password_hash: Set(user.password_hash.clone()),
        role: Set(user.role.as_str().to_owned()),
        practitioner_id: Set(user.practitioner_id.map(|p| p.as_uuid())),
        active: Set(user.active),
        failed_logins: Set(to_i32("failed_logins", user.failed_logins)?),
        locked_until: Set(user.locked_until.map(instant)),
        version: Set(user.version),
        created_at: NotSet,
        updated_at: Set(instant(Utc::now())),
    })
}

fn of_clinic(clinic: ClinicId) -> sea_orm::Select<user::Entity> {
    user::Entity::find().filter(user::Column::ClinicId.eq(clinic.as_uuid()))
}

/// The row of one user of one clinic.
fn this_user(clinic: ClinicId, id: UserId) -> Condition {
    Condition::all()
        .add(user::Column::ClinicId.eq(clinic.as_uuid()))
        .add(user::Column::Id.eq(id.as_uuid()))
}

/// Not locked at `now`: no lock, or one that has run out.
fn not_locked(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(user::Column::LockedUntil.is_null())
        .add(user::Column::LockedUntil.lte(instant(now)))
}

#[async_trait]
impl UserRepo for Store {
    async fn insert(&self, tx: &mut Tx, user: &User) -> Result<(), RepoError> {
        let mut row = changes(user)?;
        row.id = Set(user.id.as_uuid());
        row.clinic_id = Set(user.clinic_id.as_uuid());
        row.email = Set(user.email.as_ref().to_owned());
        row.created_at = row.updated_at.clone();
        user::Entity::insert(row)
            .exec_without_returning(db(tx))
            .await
            .map_err(repo_error)?;
        Ok(())
    }

    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: UserId,
    ) -> Result<Option<User>, RepoError> {
        of_clinic(clinic)
            .filter(user::Column::Id.eq(id.as_uuid()))
            .one(db(tx))
            .await
            .map_err(repo_error)?
            .map(to_domain)
            .transpose()
    }

    async fn find_by_email(&self, tx: &mut Tx, email: &Email) -> Result<Vec<User>, RepoError> {
        user::Entity::find()
            .filter(user::Column::Email.eq(email.as_ref()))
            .order_by_asc(user::Column::CreatedAt)
            .order_by_asc(user::Column::Id)
            .all(db(tx))
            .await
            .map_err(repo_error)?
            .into_iter()
            .map(to_domain)
            .collect()
    }

    async fn update(
        &self,
        tx: &mut Tx,
        user: &User,
        expected_version: i32,
    ) -> Result<(), RepoError> {
        // Login counters are written apart and show in no profile: only this write touches it.
        tx.touch(user_tag(user.id));
        update_versioned::<user::Entity>(
            tx,
            this_user(user.clinic_id, user.id),
            user::Column::Version,
            expected_version,
            changes(user)?,
        )
        .await
    }

    async fn record_failed_login(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: UserId,
        policy: &LockoutPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, RepoError> {
        let max = i64::from(policy.max_failures);
        // Both CASEs read the row as it was before this statement, on both databases.
        let reaches_limit = || Expr::col(user::Column::FailedLogins).add(1).gte(max);
        user::Entity::update_many()
            .col_expr(
                user::Column::FailedLogins,
                Expr::case(reaches_limit(), 0)
                    .finally(Expr::col(user::Column::FailedLogins).add(1))
                    .into(),
            )
            .col_expr(
                user::Column::LockedUntil,
                Expr::case(reaches_limit(), instant(now + policy.lock_for))
                    .finally(Expr::col(user::Column::LockedUntil))
                    .into(),
            )
            .col_expr(
                user::Column::Version,
                Expr::col(user::Column::Version).add(1),
            )
            .col_expr(user::Column::UpdatedAt, Expr::value(instant(Utc::now())))
            .filter(this_user(clinic, id))
            .filter(not_locked(now))
            .exec(db(tx))
            .await
            .map_err(repo_error)?;
        self.get(tx, clinic, id).await
    }

    async fn clear_failed_logins(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let something_to_clear = Condition::any()
            .add(user::Column::FailedLogins.ne(0))
            .add(user::Column::LockedUntil.is_not_null());
        user::Entity::update_many()
            .col_expr(user::Column::FailedLogins, Expr::value(0))
            .col_expr(
                user::Column::LockedUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(
                user::Column::Version,
                Expr::col(user::Column::Version).add(1),
            )
            .col_expr(user::Column::UpdatedAt, Expr::value(instant(Utc::now())))
            .filter(this_user(clinic, id))
            .filter(not_locked(now))
            .filter(something_to_clear)
            .exec(db(tx))
            .await
            .map_err(repo_error)?;
        Ok(())
    }

    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        page: PageRequest,
    ) -> Result<Page<User>, RepoError> {
        let txn = db(tx);
        let query = of_clinic(clinic);
        // E-mails are unique within a clinic, so this order is total.
        let (rows, total) =
            page_rows(txn, query, |q| q.order_by_asc(user::Column::Email), page).await?;
        let items = rows.into_iter().map(to_domain).collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            total,
            request: page,
        })
    }
}
