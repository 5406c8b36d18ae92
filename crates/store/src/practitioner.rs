//! [`PractitionerRepo`] on `practitioners` and `practitioner_specialties`.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use clinicflow_domain::{ClinicId, Page, PageRequest, PersonName, Practitioner, PractitionerId};
use clinicflow_ports::{
    PractitionerFilter, PractitionerRepo, RepoError, Tx, practitioner_list_tag, practitioner_tag,
};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, JoinType, Order, Query, SelectStatement};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QueryTrait,
};
use uuid::Uuid;

use crate::Store;
use crate::entity::{instant, practitioner, practitioner_specialty};
use crate::error::{invalid_row, repo_error, to_i32};
use crate::page::page_rows;
use crate::transaction::db;
use crate::version::update_versioned;

fn to_domain(
    row: practitioner::Model,
    specialties: Vec<String>,
) -> Result<Practitioner, RepoError> {
    let invalid = |reason: String| invalid_row("practitioners", row.id, reason);
    Ok(Practitioner {
        id: PractitionerId::from_uuid(row.id),
        clinic_id: ClinicId::from_uuid(row.clinic_id),
        name: PersonName::parse(&row.given_name, &row.family_name)
            .map_err(|e| invalid(e.to_string()))?,
        specialties,
        department: row.department,
        slot_minutes: u32::try_from(row.slot_minutes).map_err(|e| invalid(e.to_string()))?,
        buffer_minutes: u32::try_from(row.buffer_minutes).map_err(|e| invalid(e.to_string()))?,
        active: row.active,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Every column that a change may write; identity, tenant and creation time stay as they are.
fn changes(p: &Practitioner) -> Result<practitioner::ActiveModel, RepoError> {
    Ok(practitioner::ActiveModel {
        id: NotSet,
        clinic_id: NotSet,
        given_name: Set(p.name.given().to_owned()),
        family_name: Set(p.name.family().to_owned()),
        department: Set(p.department.clone()),
        slot_minutes: Set(to_i32("slot_minutes", p.slot_minutes)?),
        buffer_minutes: Set(to_i32("buffer_minutes", p.buffer_minutes)?),
        active: Set(p.active),
        version: Set(p.version),
        created_at: NotSet,
        updated_at: Set(instant(p.updated_at)),
    })
}

/// Stores the practitioner's specialties, each once.
async fn insert_specialties(
    txn: &crate::transaction::Conn,
    p: &Practitioner,
) -> Result<(), RepoError> {
    let unique: BTreeSet<&String> = p.specialties.iter().collect();
    let rows = unique
        .into_iter()
        .map(|specialty| practitioner_specialty::ActiveModel {
            practitioner_id: Set(p.id.as_uuid()),
            specialty: Set(specialty.clone()),
            clinic_id: Set(p.clinic_id.as_uuid()),
        })
        .collect::<Vec<_>>();
    if rows.is_empty() {
        return Ok(());
    }
    practitioner_specialty::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await
        .map_err(repo_error)?;
    Ok(())
}

/// The specialties of the given practitioners, each list sorted.
async fn specialties_of(
    txn: &crate::transaction::Conn,
    clinic: ClinicId,
    ids: Vec<Uuid>,
) -> Result<HashMap<Uuid, Vec<String>>, RepoError> {
    let mut by_practitioner: HashMap<Uuid, Vec<String>> = HashMap::new();
    if ids.is_empty() {
        return Ok(by_practitioner);
    }
    let rows = practitioner_specialty::Entity::find()
        .filter(practitioner_specialty::Column::ClinicId.eq(clinic.as_uuid()))
        .filter(practitioner_specialty::Column::PractitionerId.is_in(ids))
        .order_by_asc(practitioner_specialty::Column::PractitionerId)
        .order_by_asc(practitioner_specialty::Column::Specialty)
        .all(txn)
        .await
        .map_err(repo_error)?;
    for row in rows {
        by_practitioner
            .entry(row.practitioner_id)
            .or_default()
            .push(row.specialty);
    }
    Ok(by_practitioner)
}

/// Reads rows back with their specialties.
async fn with_specialties(
    txn: &crate::transaction::Conn,
    clinic: ClinicId,
    rows: Vec<practitioner::Model>,
) -> Result<Vec<Practitioner>, RepoError> {
    let mut specialties = specialties_of(txn, clinic, rows.iter().map(|r| r.id).collect()).await?;
    rows.into_iter()
        .map(|row| {
            let own = specialties.remove(&row.id).unwrap_or_default();
            to_domain(row, own)
        })
        .collect()
}

/// The column [`with_each_specialty`] adds.
const SPECIALTY: &str = "specialty";

/// `rows` joined to their specialties: one row per specialty in order, with the specialty as
/// [`SPECIALTY`], or one row with none.
fn with_each_specialty(rows: sea_orm::Select<practitioner::Entity>) -> SelectStatement {
    let mut query = rows.into_query();
    query
        .join(
            JoinType::LeftJoin,
            practitioner_specialty::Entity,
            Condition::all()
                .add(
                    Expr::col((
                        practitioner_specialty::Entity,
                        practitioner_specialty::Column::PractitionerId,
                    ))
                    .equals((practitioner::Entity, practitioner::Column::Id)),
                )
                .add(
                    Expr::col((
                        practitioner_specialty::Entity,
                        practitioner_specialty::Column::ClinicId,
                    ))
                    .equals((practitioner::Entity, practitioner::Column::ClinicId)),
                ),
        )
        .expr_as(
            Expr::col((
                practitioner_specialty::Entity,
                practitioner_specialty::Column::Specialty,
            )),
            Alias::new(SPECIALTY),
        )
        .order_by(
            (
                practitioner_specialty::Entity,
                practitioner_specialty::Column::Specialty,
            ),
            Order::Asc,
        );
    query
}

fn of_clinic(clinic: ClinicId) -> sea_orm::Select<practitioner::Entity> {
    practitioner::Entity::find().filter(practitioner::Column::ClinicId.eq(clinic.as_uuid()))
}

#[async_trait]
impl PractitionerRepo for Store {
    async fn insert(&self, tx: &mut Tx, practitioner: &Practitioner) -> Result<(), RepoError> {
        tx.touch(practitioner_list_tag(practitioner.clinic_id));
        let txn = db(tx);
        let mut row = changes(practitioner)?;
        row.id = Set(practitioner.id.as_uuid());
        row.clinic_id = Set(practitioner.clinic_id.as_uuid());
        row.created_at = Set(instant(practitioner.created_at));
        practitioner::Entity::insert(row)
            .exec_without_returning(txn)
            .await
            .map_err(repo_error)?;
        insert_specialties(txn, practitioner).await
    }

    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: PractitionerId,
    ) -> Result<Option<Practitioner>, RepoError> {
        // One statement, not the row and then its specialties: a booking reads its
        // practitioner inside its write transaction, where each round trip holds the locks.
        let txn = db(tx);
        let query = with_each_specialty(
            of_clinic(clinic).filter(practitioner::Column::Id.eq(id.as_uuid())),
        );
        let rows = txn
            .query_all_raw(txn.get_database_backend().build(&query))
            .await
            .map_err(repo_error)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let row = practitioner::Model::from_query_result(first, "").map_err(repo_error)?;
        let mut specialties = Vec::with_capacity(rows.len());
        for joined in &rows {
            if let Some(specialty) = joined
                .try_get::<Option<String>>("", SPECIALTY)
                .map_err(repo_error)?
            {
                specialties.push(specialty);
            }
        }
        to_domain(row, specialties).map(Some)
    }

    async fn update(
        &self,
        tx: &mut Tx,
        practitioner: &Practitioner,
        expected_version: i32,
    ) -> Result<(), RepoError> {
        tx.touch(practitioner_tag(practitioner.id));
        tx.touch(practitioner_list_tag(practitioner.clinic_id));
        let id = practitioner.id.as_uuid();
        let clinic = practitioner.clinic_id.as_uuid();
        update_versioned::<practitioner::Entity>(
            tx,
            Condition::all()
                .add(practitioner::Column::ClinicId.eq(clinic))
                .add(practitioner::Column::Id.eq(id)),
            practitioner::Column::Version,
            expected_version,
            changes(practitioner)?,
        )
        .await?;
        let txn = db(tx);
        practitioner_specialty::Entity::delete_many()
            .filter(practitioner_specialty::Column::ClinicId.eq(clinic))
            .filter(practitioner_specialty::Column::PractitionerId.eq(id))
            .exec(txn)
            .await
            .map_err(repo_error)?;
        insert_specialties(txn, practitioner).await
    }

    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &PractitionerFilter,
        page: PageRequest,
    ) -> Result<Page<Practitioner>, RepoError> {
        let txn = db(tx);
        let mut query = of_clinic(clinic);
        if let Some(specialty) = &filter.specialty {
            query = query.filter(
                practitioner::Column::Id.in_subquery(
                    Query::select()
                        .column(practitioner_specialty::Column::PractitionerId)
                        .from(practitioner_specialty::Entity)
                        .and_where(practitioner_specialty::Column::ClinicId.eq(clinic.as_uuid()))
                        .and_where(practitioner_specialty::Column::Specialty.eq(specialty))
                        .to_owned(),
                ),
            );
        }
        if let Some(department) = &filter.department {
            query = query.filter(practitioner::Column::Department.eq(department));
        }
        if let Some(active) = filter.active {
            query = query.filter(practitioner::Column::Active.eq(active));
        }
        let order = |q: sea_orm::Select<practitioner::Entity>| {
            q.order_by_asc(practitioner::Column::FamilyName)
                .order_by_asc(practitioner::Column::GivenName)
                .order_by_asc(practitioner::Column::Id)
        };
        let (rows, total) = page_rows(txn, query, order, page).await?;
        Ok(Page {
            items: with_specialties(txn, clinic, rows).await?,
            total,
            request: page,
        })
    }
}
