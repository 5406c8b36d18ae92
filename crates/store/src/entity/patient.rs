//! The `patients` table.

use sea_orm::entity::prelude::*;

/// A row of `patients`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "patients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub given_name: String,
    pub family_name: String,
    /// `normalize_name("family given")`, searched by prefix.
    pub name_key: String,
    /// `normalize_name("given family")`, searched by prefix.
    pub name_key_alt: String,
    pub birth_date: Date,
    pub sex: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub emergency_contact_name: Option<String>,
    pub emergency_contact_phone: Option<String>,
    pub insurance_payer: Option<String>,
    pub insurance_member_id: Option<String>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

/// Relations are expressed by explicit queries in the repositories, not through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl crate::query::Decode for Model {
    fn decode_pg(row: &sea_orm::sqlx::postgres::PgRow) -> Result<Self, sea_orm::sqlx::Error> {
        use sea_orm::sqlx::Row as _;
        // Named by the entity, so a renamed column cannot be read under its old name.
        Ok(Self {
            id: row.try_get(Column::Id.as_str())?,
            clinic_id: row.try_get(Column::ClinicId.as_str())?,
            given_name: row.try_get(Column::GivenName.as_str())?,
            family_name: row.try_get(Column::FamilyName.as_str())?,
            name_key: row.try_get(Column::NameKey.as_str())?,
            name_key_alt: row.try_get(Column::NameKeyAlt.as_str())?,
            birth_date: row.try_get(Column::BirthDate.as_str())?,
            sex: row.try_get(Column::Sex.as_str())?,
            phone: row.try_get(Column::Phone.as_str())?,
            email: row.try_get(Column::Email.as_str())?,
            emergency_contact_name: row.try_get(Column::EmergencyContactName.as_str())?,
            emergency_contact_phone: row.try_get(Column::EmergencyContactPhone.as_str())?,
            insurance_payer: row.try_get(Column::InsurancePayer.as_str())?,
            insurance_member_id: row.try_get(Column::InsuranceMemberId.as_str())?,
            version: row.try_get(Column::Version.as_str())?,
            created_at: row.try_get(Column::CreatedAt.as_str())?,
            updated_at: row.try_get(Column::UpdatedAt.as_str())?,
            deleted_at: row.try_get(Column::DeletedAt.as_str())?,
        })
    }
}
