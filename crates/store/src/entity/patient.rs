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
        Ok(Self {
            id: row.try_get("id")?,
            clinic_id: row.try_get("clinic_id")?,
            given_name: row.try_get("given_name")?,
            family_name: row.try_get("family_name")?,
            name_key: row.try_get("name_key")?,
            name_key_alt: row.try_get("name_key_alt")?,
            birth_date: row.try_get("birth_date")?,
            sex: row.try_get("sex")?,
            phone: row.try_get("phone")?,
            email: row.try_get("email")?,
            emergency_contact_name: row.try_get("emergency_contact_name")?,
            emergency_contact_phone: row.try_get("emergency_contact_phone")?,
            insurance_payer: row.try_get("insurance_payer")?,
            insurance_member_id: row.try_get("insurance_member_id")?,
            version: row.try_get("version")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            deleted_at: row.try_get("deleted_at")?,
        })
    }
}
