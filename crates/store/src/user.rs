//! [`UserRepo`] on the `users` table.

use async_trait::async_trait;
use chrono::Utc;
use clinicflow_domain::{ClinicId, Email, Page, PageRequest, PractitionerId, Role, User, UserId};
use clinicflow_ports::{RepoError, Tx, UserRepo};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};

use crate::Store;
use crate::entity::{instant, user};
use crate::error::{invalid_row, repo_error, to_i32};
use crate::page::page_rows;
use crate::query::update_one;
use crate::transaction::db;

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
        created_at: NotSet,
        updated_at: Set(instant(Utc::now())),
    })
}

fn of_clinic(clinic: ClinicId) -> sea_orm::Select<user::Entity> {
    user::Entity::find().filter(user::Column::ClinicId.eq(clinic.as_uuid()))
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

    async fn update(&self, tx: &mut Tx, user: &User) -> Result<(), RepoError> {
        update_one(
            tx,
            user::Entity::update_many()
                .set(changes(user)?)
                .filter(user::Column::Id.eq(user.id.as_uuid()))
                .filter(user::Column::ClinicId.eq(user.clinic_id.as_uuid())),
        )
        .await
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
