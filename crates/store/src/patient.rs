//! [`PatientRepo`] on the `patients` table.

use async_trait::async_trait;
use clinicflow_domain::page::PatientKey;
use clinicflow_domain::patient::normalize_name;
use clinicflow_domain::{
    BirthDate, ClinicId, Email, EmergencyContact, Insurance, Page, PageRequest, Patient, PatientId,
    PersonName, Phone, PractitionerId,
};
use clinicflow_ports::{PatientFilter, PatientRepo, PatientSearch, RepoError, Tx};
use sea_orm::sea_query::{
    Alias, Asterisk, Expr, ExprTrait, JoinType, Order, Query, SelectStatement, SimpleExpr,
    UnionType,
};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QueryTrait,
};

use crate::Store;
use crate::entity::{appointment, instant, patient};
use crate::error::{invalid_row, repo_error};
use crate::page::{count_rows, keyset_query, page_rows};
use crate::query::all_decoded;
use crate::transaction::db;
use crate::version::update_versioned;

/// The smallest string greater than every string that starts with `prefix`, if any.
///
/// Stored keys compare byte-wise (SQLite's default, the `C` collation on PostgreSQL), and
/// UTF-8 bytes sort like code points, so `key >= prefix AND key < upper` is exactly
/// "starts with `prefix`", and unlike `LIKE` it uses a b-tree index on both databases.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            // Surrogates are not characters; the next one after U+D7FF is U+E000.
            next = 0xE000;
        }
        if let Some(next) = char::from_u32(next) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The search key for `given family` order, alongside the domain's `family given`.
fn name_key_alt(name: &PersonName) -> String {
    normalize_name(&format!("{} {}", name.given(), name.family()))
}

fn to_domain(row: patient::Model) -> Result<Patient, RepoError> {
    let invalid = |reason: String| invalid_row("patients", row.id, reason);
    let emergency_contact = match (&row.emergency_contact_name, &row.emergency_contact_phone) {
        (Some(name), Some(phone)) => {
            Some(EmergencyContact::from_stored(name, phone).map_err(|e| invalid(e.to_string()))?)
        }
        (None, None) => None,
        _ => return Err(invalid("half an emergency contact".into())),
    };
    let insurance = match (&row.insurance_payer, &row.insurance_member_id) {
        (Some(payer), Some(member)) => {
            Some(Insurance::parse(payer, member).map_err(|e| invalid(e.to_string()))?)
        }
        (None, None) => None,
        _ => return Err(invalid("half an insurance".into())),
    };
    Ok(Patient {
        id: PatientId::from_uuid(row.id),
        clinic_id: ClinicId::from_uuid(row.clinic_id),
        name: PersonName::parse(&row.given_name, &row.family_name)
            .map_err(|e| invalid(e.to_string()))?,
        birth_date: BirthDate::from_stored(row.birth_date),
        sex: row
            .sex
            .parse()
            .map_err(|e: clinicflow_domain::InvalidValue| invalid(e.to_string()))?,
        phone: row
            .phone
            .as_deref()
            .map(Phone::from_stored)
            .transpose()
            .map_err(|e| invalid(e.to_string()))?,
        email: row
            .email
            .as_deref()
            .map(Email::from_stored)
            .transpose()
            .map_err(|e| invalid(e.to_string()))?,
        emergency_contact,
        insurance,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
        deleted_at: row.deleted_at,
    })
}

/// Every column that a change may write; identity, tenant and creation time stay as they are.
fn changes(patient: &Patient) -> patient::ActiveModel {
    patient::ActiveModel {
        id: NotSet,
        clinic_id: NotSet,
        given_name: Set(patient.name.given().to_owned()),
        family_name: Set(patient.name.family().to_owned()),
        name_key: Set(patient.name.normalized()),
        name_key_alt: Set(name_key_alt(&patient.name)),
        birth_date: Set(patient.birth_date.date()),
        sex: Set(patient.sex.as_str().to_owned()),
        phone: Set(patient.phone.as_ref().map(|p| p.as_ref().to_owned())),
        email: Set(patient.email.as_ref().map(|e| e.as_ref().to_owned())),
        emergency_contact_name: Set(patient.emergency_contact.as_ref().map(|c| c.name.clone())),
        emergency_contact_phone: Set(patient
            .emergency_contact
            .as_ref()
            .map(|c| c.phone.as_ref().to_owned())),
        insurance_payer: Set(patient.insurance.as_ref().map(|i| i.payer.clone())),
        insurance_member_id: Set(patient.insurance.as_ref().map(|i| i.member_id.clone())),
        version: Set(patient.version),
        created_at: NotSet,
        updated_at: Set(instant(patient.updated_at)),
        deleted_at: Set(patient.deleted_at.map(instant)),
    }
}

/// Rows of the clinic's patients that are not soft-deleted.
fn live_in(clinic: ClinicId) -> Condition {
    Condition::all()
        .add(patient::Column::ClinicId.eq(clinic.as_uuid()))
        .add(patient::Column::DeletedAt.is_null())
}

/// The clinic's patients that are not soft-deleted.
fn live(clinic: ClinicId) -> sea_orm::Select<patient::Entity> {
    patient::Entity::find().filter(live_in(clinic))
}

/// Patients with at least one live appointment, of any status, with `practitioner` in `clinic`.
///
/// A correlated `EXISTS`, so a patient seen many times is still listed once.
fn seen_by(clinic: ClinicId, practitioner: PractitionerId) -> SimpleExpr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(appointment::Entity)
            .and_where(appointment::Column::ClinicId.eq(clinic.as_uuid()))
            .and_where(appointment::Column::PractitionerId.eq(practitioner.as_uuid()))
            .and_where(appointment::Column::DeletedAt.is_null())
            .and_where(
                Expr::col((appointment::Entity, appointment::Column::PatientId))
                    .equals((patient::Entity, patient::Column::Id)),
            )
            .to_owned(),
    )
}

/// Rows whose search key `col` starts with `prefix` (already normalized): a key range.
fn starts_with(col: patient::Column, prefix: &str) -> Condition {
    let mut cond = Condition::all().add(col.gte(prefix));
    if let Some(upper) = prefix_upper_bound(prefix) {
        cond = cond.add(col.lt(upper));
    }
    cond
}

/// The rows `search` selects, as one condition. The lists answer a name prefix through
/// [`name_matches`] and [`name_page`] instead, which read the key indexes alone.
fn search_condition(search: &PatientSearch) -> Condition {
    match search {
        PatientSearch::NamePrefix(raw) => {
            let prefix = normalize_name(raw);
            Condition::any()
                .add(starts_with(patient::Column::NameKey, &prefix))
                .add(starts_with(patient::Column::NameKeyAlt, &prefix))
        }
        PatientSearch::Phone(phone) => {
            Condition::all().add(patient::Column::Phone.eq(phone.as_ref()))
        }
        PatientSearch::Email(email) => {
            Condition::all().add(patient::Column::Email.eq(email.as_ref()))
        }
    }
}

/// The clinic's live patients that `filter` selects, in no particular order.
fn filtered(clinic: ClinicId, filter: &PatientFilter) -> sea_orm::Select<patient::Entity> {
    let mut query = live(clinic);
    if let Some(search) = &filter.search {
        query = query.filter(search_condition(search));
    }
    if let Some(practitioner) = filter.seen_by {
        query = query.filter(seen_by(clinic, practitioner));
    }
    query
}

/// The key a name-prefix search orders by: each match's own matching key, aliased so both
/// branches of the search name it alike.
const MATCH_KEY: &str = "match_key";

/// One branch of a name-prefix search (`prefix` already normalized): the clinic's live
/// patients that the rest of `filter` selects and whose search key `key` starts with
/// `prefix`, as `(id, match_key)`. The `given family` branch leaves out what the `family
/// given` branch matches, so each patient matches through exactly one key. After `after`
/// (a match key and an id) when given, in `(key, id)` order.
///
/// Both key indexes are in `(key, id)` order and carry what a branch names (migration 16),
/// so a branch is one range of one index, read in order, without the table (an index-only
/// scan on PostgreSQL, a covering index on SQLite).
fn name_branch(
    clinic: ClinicId,
    filter: &PatientFilter,
    prefix: &str,
    key: patient::Column,
    after: Option<&(String, PatientId)>,
) -> SelectStatement {
    let mut cond = live_in(clinic);
    match after.filter(|(match_key, _)| match_key.as_str() >= prefix) {
        // A row value, not `key > k OR (key = k AND id > i)`: both databases read it as the
        // start of an index range, where the `OR` would be a filter. It replaces the prefix's
        // lower bound, which it passes (`k >= prefix`): given both, SQLite starts the range at
        // the prefix and steps over every entry before the cursor.
        Some((match_key, id)) => {
            cond = cond.add(
                Expr::tuple([Expr::col(key), Expr::col(patient::Column::Id)]).gt(Expr::tuple([
                    Expr::val(match_key.as_str()),
                    Expr::val(id.as_uuid()),
                ])),
            );
            if let Some(upper) = prefix_upper_bound(prefix) {
                cond = cond.add(key.lt(upper));
            }
        }
        // A cursor below the prefix (one from another search) leaves out nothing.
        None => cond = cond.add(starts_with(key, prefix)),
    }
    if matches!(key, patient::Column::NameKeyAlt) {
        cond = cond.add(starts_with(patient::Column::NameKey, prefix).not());
    }
    if let Some(practitioner) = filter.seen_by {
        cond = cond.add(seen_by(clinic, practitioner));
    }
    Query::select()
        .column(patient::Column::Id)
        .expr_as(Expr::col(key), Alias::new(MATCH_KEY))
        .from(patient::Entity)
        .cond_where(cond)
        .to_owned()
}

/// Every patient a name-prefix search selects, as `(id, match_key)` in no order: what a
/// numbered search page counts.
fn name_matches(clinic: ClinicId, filter: &PatientFilter, prefix: &str) -> SelectStatement {
    // The branches never share a row, so `UNION ALL`: nothing to de-duplicate. SQLite does
    // not flatten an aggregate over a compound select, so the count reads the two ranges.
    name_branch(clinic, filter, prefix, patient::Column::NameKey, None)
        .union(
            UnionType::All,
            name_branch(clinic, filter, prefix, patient::Column::NameKeyAlt, None),
        )
        .to_owned()
}

/// The match key of the patient at `after` for a search of `prefix` (already normalized):
/// the `family given` key if it starts with the prefix, as the search's first branch
/// decides, else the `given family` key.
fn match_key(after: &PatientKey, prefix: &str) -> (String, PatientId) {
    let key = after.name.normalized();
    let key = if key.starts_with(prefix) {
        key
    } else {
        name_key_alt(&after.name)
    };
    (key, after.id)
}

/// One page of a name-prefix search (`prefix` already normalized), in `(match key, id)`
/// order: `limit` rows after skipping `offset`, after `after` when given.
///
/// Each branch reads its key index in order and stops after `offset + limit` entries; the
/// page is the first of those merged, joined to the table by id, so only the page's own rows
/// are read from it. SQLite takes no `ORDER BY` or `LIMIT` inside a compound select, hence
/// each branch in its own subquery. A join rather than `id IN (…)`: ordered by the page's
/// columns, the outer query has no index of its own to walk.
///
/// `UNION ALL` also with a practitioner's correlated `EXISTS` in the branches. In family-name
/// order it needed a `UNION`: SQLite pushed that order into the branches and walked the
/// name-order index through the whole clinic to get it without a sort. The order it pushes
/// now is each branch's own key order, which the branch's key range already gives.
fn name_page(
    clinic: ClinicId,
    filter: &PatientFilter,
    prefix: &str,
    after: Option<&PatientKey>,
    limit: u32,
    offset: u64,
) -> sea_orm::Select<patient::Entity> {
    let after = after.map(|after| match_key(after, prefix));
    let match_key = || Alias::new(MATCH_KEY);
    let first = |key: patient::Column, alias: &str| {
        let mut branch = name_branch(clinic, filter, prefix, key, after.as_ref());
        branch
            .order_by(key, Order::Asc)
            .order_by(patient::Column::Id, Order::Asc)
            .limit(offset + u64::from(limit));
        Query::select()
            .column(Asterisk)
            .from_subquery(branch, Alias::new(alias))
            .to_owned()
    };
    let mut chosen = Query::select();
    chosen
        .column(patient::Column::Id)
        .column(match_key())
        .from_subquery(
            first(patient::Column::NameKey, "by_key")
                .union(
                    UnionType::All,
                    first(patient::Column::NameKeyAlt, "by_alt_key"),
                )
                .to_owned(),
            Alias::new("matches"),
        )
        .order_by(match_key(), Order::Asc)
        .order_by(patient::Column::Id, Order::Asc)
        .limit(u64::from(limit));
    if offset > 0 {
        chosen.offset(offset);
    }
    let page = Alias::new("page");
    let mut rows = live(clinic);
    QueryTrait::query(&mut rows).join_subquery(
        JoinType::InnerJoin,
        chosen.to_owned(),
        page.clone(),
        Expr::col((page.clone(), patient::Column::Id))
            .equals((patient::Entity, patient::Column::Id)),
    );
    rows.order_by(Expr::col((page.clone(), match_key())), Order::Asc)
        .order_by(Expr::col((page, patient::Column::Id)), Order::Asc)
}

/// The list order: family name, given name, then the id, which makes it total.
fn in_list_order(query: sea_orm::Select<patient::Entity>) -> sea_orm::Select<patient::Entity> {
    query
        .order_by_asc(patient::Column::FamilyName)
        .order_by_asc(patient::Column::GivenName)
        .order_by_asc(patient::Column::Id)
}

/// The rows strictly after `key` in [`in_list_order`]: `(family, given, id) > key` written
/// out, so each comparison uses the column's own collation, as the `ORDER BY` does.
fn following(key: &PatientKey) -> Condition {
    let (family, given) = (key.name.family(), key.name.given());
    Condition::any()
        .add(patient::Column::FamilyName.gt(family))
        .add(
            Condition::all()
                .add(patient::Column::FamilyName.eq(family))
                .add(patient::Column::GivenName.gt(given)),
        )
        .add(
            Condition::all()
                .add(patient::Column::FamilyName.eq(family))
                .add(patient::Column::GivenName.eq(given))
                .add(patient::Column::Id.gt(key.id.as_uuid())),
        )
}

/// The statement of [`PatientRepo::list_after`]: up to `limit` of the clinic's live patients
/// that `filter` selects, after `after` when given, in list order, or in match order for a
/// name-prefix search ([`name_page`]).
pub(crate) fn keyset_page(
    clinic: ClinicId,
    filter: &PatientFilter,
    after: Option<&PatientKey>,
    limit: u32,
) -> sea_orm::Select<patient::Entity> {
    match &filter.search {
        Some(PatientSearch::NamePrefix(raw)) => {
            name_page(clinic, filter, &normalize_name(raw), after, limit, 0)
        }
        _ => keyset_query(
            filtered(clinic, filter),
            in_list_order,
            after.map(following),
            limit,
        ),
    }
}

#[async_trait]
impl PatientRepo for Store {
    async fn insert(&self, tx: &mut Tx, patient: &Patient) -> Result<(), RepoError> {
        let mut row = changes(patient);
        row.id = Set(patient.id.as_uuid());
        row.clinic_id = Set(patient.clinic_id.as_uuid());
        row.created_at = Set(instant(patient.created_at));
        patient::Entity::insert(row)
            .exec_without_returning(db(tx))
            .await
            .map_err(repo_error)?;
        Ok(())
    }

    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: PatientId,
    ) -> Result<Option<Patient>, RepoError> {
        live(clinic)
            .filter(patient::Column::Id.eq(id.as_uuid()))
            .one(db(tx))
            .await
            .map_err(repo_error)?
            .map(to_domain)
            .transpose()
    }

    async fn update(
        &self,
        tx: &mut Tx,
        patient: &Patient,
        expected_version: i32,
    ) -> Result<(), RepoError> {
        update_versioned::<patient::Entity>(
            tx,
            live_in(patient.clinic_id).add(patient::Column::Id.eq(patient.id.as_uuid())),
            patient::Column::Version,
            expected_version,
            changes(patient),
        )
        .await
    }

    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &PatientFilter,
        page: PageRequest,
    ) -> Result<Page<Patient>, RepoError> {
        let (rows, total) = match &filter.search {
            Some(PatientSearch::NamePrefix(raw)) => {
                let prefix = normalize_name(raw);
                let total = count_rows(db(tx), name_matches(clinic, filter, &prefix)).await?;
                let rows = name_page(clinic, filter, &prefix, None, page.size(), page.offset())
                    .all(db(tx))
                    .await
                    .map_err(repo_error)?;
                (rows, total)
            }
            _ => page_rows(db(tx), filtered(clinic, filter), in_list_order, page).await?,
        };
        let items = rows.into_iter().map(to_domain).collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            total,
            request: page,
        })
    }

    async fn list_after(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &PatientFilter,
        after: Option<PatientKey>,
        limit: u32,
    ) -> Result<Vec<Patient>, RepoError> {
        all_decoded(db(tx), keyset_page(clinic, filter, after.as_ref(), limit))
            .await?
            .into_iter()
            .map(to_domain)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn the_upper_bound_increments_the_last_character() {
        assert_eq!(prefix_upper_bound("lov").as_deref(), Some("low"));
        assert_eq!(
            prefix_upper_bound("lovelace a").as_deref(),
            Some("lovelace b")
        );
        assert_eq!(prefix_upper_bound("müller").as_deref(), Some("mülles"));
    }

    #[test]
    fn the_upper_bound_skips_surrogates_and_carries_past_the_last_character() {
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);
    }
}
