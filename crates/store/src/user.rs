//! [`UserRepo`] on the `users` table.

use async_trait::async_trait;
use chrono::Utc;
use clinicflow_domain::{ClinicId, Email, PractitionerId, Role, User, UserId};
use clinicflow_ports::{RepoError, Tx, UserRepo};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::Store;
use crate::entity::{instant, user};
use crate::error::{invalid_row, repo_error};
use crate::transaction::db;

fn to_domain(row: user::Model) -> Result<User, RepoError> {
    let invalid = |reason: String| invalid_row("users", row.id, reason);
    Ok(User {
        id: UserId::from_uuid(row.id),
        clinic_id: ClinicId::from_uuid(row.clinic_id),
        email: Email::parse(&row.email).map_err(|e| invalid(e.to_string()))?,
        role: row
            .role
            .parse::<Role>()
            .map_err(|e| invalid(e.to_string()))?,
        practitioner_id: row.practitioner_id.map(PractitionerId::from_uuid),
        active: row.active,
        password_hash: row.password_hash,
    })
}

#[async_trait]
impl UserRepo for Store {
    async fn insert(&self, tx: &mut Tx, user: &User) -> Result<(), RepoError> {
        let now = instant(Utc::now());
        let row = user::ActiveModel {
            id: Set(user.id.as_uuid()),
            clinic_id: Set(user.clinic_id.as_uuid()),
            email: Set(user.email.as_ref().to_owned()),
            password_hash: Set(user.password_hash.clone()),
            role: Set(user.role.as_str().to_owned()),
            practitioner_id: Set(user.practitioner_id.map(|p| p.as_uuid())),
            active: Set(user.active),
            failed_logins: Set(0),
            locked_until: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
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
        user::Entity::find()
            .filter(user::Column::Id.eq(id.as_uuid()))
            .filter(user::Column::ClinicId.eq(clinic.as_uuid()))
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
}
