use chrono::Duration;
use clinicflow_domain::page::PatientKey;
use clinicflow_domain::patient::normalize_name;
use clinicflow_domain::{
    AppointmentStatus, ClinicId, EmergencyContact, Insurance, PageRequest, Patient, PatientId,
    PersonName, Phone, PractitionerId, Sex,
};
use clinicflow_ports::{PatientFilter, PatientRepo, PatientSearch, RepoError};
use clinicflow_store::{Backend, testing};
use uuid::Uuid;

use crate::support::{Ctx, appointment, at, created, email, patient};

fn names(patients: &[Patient]) -> Vec<String> {
    patients
        .iter()
        .map(|p| format!("{} {}", p.name.given(), p.name.family()))
        .collect()
}

async fn search(ctx: &Ctx, clinic: ClinicId, search: PatientSearch) -> Vec<String> {
    let mut tx = ctx.read().await;
    let filter = PatientFilter {
        search: Some(search),
        ..PatientFilter::default()
    };
    let page = PatientRepo::list(&ctx.store, &mut tx, clinic, &filter, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.total, page.items.len() as u64);
    names(&page.items)
}

pub async fn a_patient_reads_back_with_every_field(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let mut ada = patient(clinic, "Ada", "Lovelace");
    ada.sex = Sex::Other;
    ada.phone = Some(Phone::parse("+4915112345678").unwrap());
    ada.email = Some(email("ada@example.org"));
    ada.emergency_contact = Some(EmergencyContact::parse("Charles", "+4915100000000").unwrap());
    ada.insurance = Some(Insurance::parse("TK", "A123456789").unwrap());
    ada.updated_at = created() + Duration::minutes(1);
    let bare = patient(clinic, "Grace", "Hopper");
    // Stored before the field libraries checked them: read back by their shape, never a
    // broken row.
    let mut legacy = patient(clinic, "Jürgen", "Alt");
    legacy.phone = Some(Phone::from_stored("+491510000").unwrap());
    legacy.email = Some(clinicflow_domain::Email::from_stored("jürgen@example.org").unwrap());
    legacy.emergency_contact = Some(EmergencyContact::from_stored("Eva", "+491510001").unwrap());
    let mut tx = ctx.write().await;
    for p in [&ada, &bare, &legacy] {
        PatientRepo::insert(&ctx.store, &mut tx, p).await.unwrap();
    }
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    assert_eq!(
        PatientRepo::get(&ctx.store, &mut tx, clinic, ada.id)
            .await
            .unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        PatientRepo::get(&ctx.store, &mut tx, clinic, bare.id)
            .await
            .unwrap(),
        Some(bare.clone())
    );
    assert_eq!(
        PatientRepo::get(&ctx.store, &mut tx, clinic, legacy.id)
            .await
            .unwrap(),
        Some(legacy.clone())
    );
    // A list decodes its rows apart from a single read (by hand on PostgreSQL): every field,
    // set or NULL, comes back the same.
    let mut listed = PatientRepo::list_after(
        &ctx.store,
        &mut tx,
        clinic,
        &PatientFilter::default(),
        None,
        10,
    )
    .await
    .unwrap();
    listed.sort_by_key(|p| p.id.as_uuid());
    let mut stored = vec![ada, bare, legacy];
    stored.sort_by_key(|p| p.id.as_uuid());
    assert_eq!(listed, stored);
    let unknown = PatientId::from_uuid(Uuid::now_v7());
    assert_eq!(
        PatientRepo::get(&ctx.store, &mut tx, clinic, unknown)
            .await
            .unwrap(),
        None
    );
}

pub async fn a_patient_update_checks_the_version(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;

    let mut changed = ada.clone();
    changed.name = PersonName::parse("Ada", "King").unwrap();
    changed.phone = Some(Phone::parse("+4915112345678").unwrap());
    changed.version = 2;
    changed.updated_at = created() + Duration::hours(1);
    let mut tx = ctx.write().await;
    PatientRepo::update(&ctx.store, &mut tx, &changed, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.write().await;
    assert_eq!(
        PatientRepo::get(&ctx.store, &mut tx, clinic, ada.id)
            .await
            .unwrap(),
        Some(changed.clone())
    );
    let mut stale = ada.clone();
    stale.version = 2;
    let err = PatientRepo::update(&ctx.store, &mut tx, &stale, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::StaleVersion), "{err:?}");
    drop(tx);

    let mut tx = ctx.write().await;
    let mut unknown = patient(clinic, "Nobody", "Known");
    unknown.version = 2;
    let err = PatientRepo::update(&ctx.store, &mut tx, &unknown, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    drop(tx);

    let mut tx = ctx.read().await;
    let stored = PatientRepo::get(&ctx.store, &mut tx, clinic, ada.id)
        .await
        .unwrap();
    assert_eq!(stored, Some(changed), "a failed update changes nothing");
}

pub async fn a_soft_deleted_patient_is_invisible(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;

    let mut deleted = ada.clone();
    deleted.version = 2;
    deleted.deleted_at = Some(created() + Duration::days(1));
    let mut tx = ctx.write().await;
    PatientRepo::update(&ctx.store, &mut tx, &deleted, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.write().await;
    assert_eq!(
        PatientRepo::get(&ctx.store, &mut tx, clinic, ada.id)
            .await
            .unwrap(),
        None
    );
    let page = PatientRepo::list(
        &ctx.store,
        &mut tx,
        clinic,
        &PatientFilter::default(),
        PageRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!((page.total, page.items), (1, vec![grace]));
    assert_eq!(
        search(&ctx, clinic, PatientSearch::NamePrefix("lovelace".into())).await,
        Vec::<String>::new()
    );
    let mut again = deleted.clone();
    again.version = 3;
    let err = PatientRepo::update(&ctx.store, &mut tx, &again, 2)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
}

pub async fn the_patient_list_is_ordered_and_paged(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    for (given, family) in [
        ("Grace", "Hopper"),
        ("Ada", "Lovelace"),
        ("Alan", "Turing"),
        ("Barbara", "Liskov"),
        ("Annie", "Easley"),
        ("Betty", "Holberton"),
        ("Frances", "Hopper"),
    ] {
        ctx.patient(clinic, given, family).await;
    }
    let mut tx = ctx.read().await;
    let mut seen = Vec::new();
    for page in 1..=3 {
        let request = PageRequest::parse(Some(page), Some(3)).unwrap();
        let got = PatientRepo::list(
            &ctx.store,
            &mut tx,
            clinic,
            &PatientFilter::default(),
            request,
        )
        .await
        .unwrap();
        assert_eq!(got.total, 7);
        assert_eq!(got.request, request);
        assert_eq!(got.items.len(), if page < 3 { 3 } else { 1 });
        assert_eq!(got.has_next(), page < 3);
        seen.extend(names(&got.items));
    }
    assert_eq!(
        seen,
        [
            "Annie Easley",
            "Betty Holberton",
            "Frances Hopper",
            "Grace Hopper",
            "Barbara Liskov",
            "Ada Lovelace",
            "Alan Turing",
        ]
    );
    let past_the_end = PageRequest::parse(Some(4), Some(3)).unwrap();
    let got = PatientRepo::list(
        &ctx.store,
        &mut tx,
        clinic,
        &PatientFilter::default(),
        past_the_end,
    )
    .await
    .unwrap();
    assert_eq!((got.total, got.items.len()), (7, 0));
}

pub async fn patients_are_found_by_name_prefix_in_either_order(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    ctx.patient(clinic, "Ada", "Lovelace").await;
    ctx.patient(clinic, "Adam", "Smith").await;
    ctx.patient(clinic, "Grace", "Hopper").await;
    ctx.patient(clinic, "Jürgen", "Müller").await;
    let by = |q: &str| PatientSearch::NamePrefix(q.to_owned());

    assert_eq!(search(&ctx, clinic, by("love")).await, ["Ada Lovelace"]);
    assert_eq!(
        search(&ctx, clinic, by("  LoVeLace   A ")).await,
        ["Ada Lovelace"]
    );
    assert_eq!(search(&ctx, clinic, by("ada l")).await, ["Ada Lovelace"]);
    assert_eq!(
        search(&ctx, clinic, by("ADA")).await,
        ["Ada Lovelace", "Adam Smith"]
    );
    assert_eq!(search(&ctx, clinic, by("smith adam")).await, ["Adam Smith"]);
    assert_eq!(search(&ctx, clinic, by("müll")).await, ["Jürgen Müller"]);
    assert_eq!(
        search(&ctx, clinic, by("JÜRGEN m")).await,
        ["Jürgen Müller"]
    );
    assert_eq!(
        search(&ctx, clinic, by("adamx")).await,
        Vec::<String>::new()
    );
    assert_eq!(search(&ctx, clinic, by("z")).await, Vec::<String>::new());
    assert_eq!(
        search(&ctx, clinic, by("ace")).await,
        Vec::<String>::new(),
        "a prefix, not a substring"
    );
}

pub async fn patients_are_found_by_exact_phone_and_email(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let mut ada = patient(clinic, "Ada", "Lovelace");
    ada.phone = Some(Phone::parse("+4915112345678").unwrap());
    ada.email = Some(email("ada@example.org"));
    let mut grace = patient(clinic, "Grace", "Hopper");
    grace.phone = Some(Phone::parse("+4915112345679").unwrap());
    let mut tx = ctx.write().await;
    PatientRepo::insert(&ctx.store, &mut tx, &ada)
        .await
        .unwrap();
    PatientRepo::insert(&ctx.store, &mut tx, &grace)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let phone = |raw: &str| PatientSearch::Phone(Phone::parse(raw).unwrap());
    assert_eq!(
        search(&ctx, clinic, phone("+49 151 1234 5678")).await,
        ["Ada Lovelace"]
    );
    assert_eq!(
        search(&ctx, clinic, phone("+4915112345679")).await,
        ["Grace Hopper"]
    );
    assert_eq!(
        search(&ctx, clinic, phone("+4915112345670")).await,
        Vec::<String>::new()
    );
    let by_email = |raw: &str| PatientSearch::Email(email(raw));
    assert_eq!(
        search(&ctx, clinic, by_email("ADA@example.org")).await,
        ["Ada Lovelace"]
    );
    assert_eq!(
        search(&ctx, clinic, by_email("grace@example.org")).await,
        Vec::<String>::new()
    );
}

async fn seen_by(
    ctx: &Ctx,
    clinic: ClinicId,
    practitioner: PractitionerId,
    search: Option<PatientSearch>,
) -> Vec<String> {
    let mut tx = ctx.read().await;
    let filter = PatientFilter {
        search,
        seen_by: Some(practitioner),
    };
    let page = PatientRepo::list(&ctx.store, &mut tx, clinic, &filter, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.total, page.items.len() as u64);
    names(&page.items)
}

pub async fn patients_seen_by_a_practitioner_are_listed_once_and_can_be_searched(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let adam = ctx.patient(clinic, "Adam", "Smith").await;
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;
    let annie = ctx.patient(clinic, "Annie", "Easley").await;
    ctx.patient(clinic, "Alan", "Turing").await;
    // Ada twice with House, once cancelled: listed once, whatever the status.
    ctx.appointment(appointment(&ada, &house, at(9, 0), 30))
        .await;
    let mut cancelled = appointment(&ada, &house, at(10, 0), 30);
    cancelled.status = AppointmentStatus::Cancelled;
    ctx.appointment(cancelled).await;
    ctx.appointment(appointment(&adam, &wilson, at(9, 0), 30))
        .await;
    ctx.appointment(appointment(&grace, &house, at(11, 0), 30))
        .await;
    ctx.appointment(appointment(&grace, &wilson, at(12, 0), 30))
        .await;
    // Soft-deleted rows are never read, so they do not count as having seen someone.
    let mut deleted = appointment(&annie, &house, at(13, 0), 30);
    deleted.deleted_at = Some(created());
    ctx.appointment(deleted).await;
    let ada_b = ctx.patient(other, "Ada", "Byron").await;
    let cuddy = ctx.practitioner(other, "Lisa", "Cuddy").await;
    ctx.appointment(appointment(&ada_b, &cuddy, at(9, 0), 30))
        .await;

    assert_eq!(
        seen_by(&ctx, clinic, house.id, None).await,
        ["Grace Hopper", "Ada Lovelace"]
    );
    assert_eq!(
        seen_by(&ctx, clinic, wilson.id, None).await,
        ["Grace Hopper", "Adam Smith"]
    );
    let ada_prefix = || Some(PatientSearch::NamePrefix("ada".into()));
    assert_eq!(
        seen_by(&ctx, clinic, house.id, ada_prefix()).await,
        ["Ada Lovelace"]
    );
    assert_eq!(
        seen_by(&ctx, clinic, wilson.id, ada_prefix()).await,
        ["Adam Smith"]
    );
    assert_eq!(
        search(&ctx, clinic, PatientSearch::NamePrefix("ada".into())).await,
        ["Ada Lovelace", "Adam Smith"],
        "without seen_by the search finds both"
    );
    assert_eq!(
        seen_by(&ctx, clinic, cuddy.id, None).await,
        Vec::<String>::new(),
        "another clinic's practitioner sees no one here"
    );
    assert_eq!(
        seen_by(&ctx, other, house.id, None).await,
        Vec::<String>::new(),
        "nor does this clinic's practitioner there"
    );
    assert_eq!(seen_by(&ctx, other, cuddy.id, None).await, ["Ada Byron"]);

    // Paging counts each patient once.
    let mut tx = ctx.read().await;
    let filter = PatientFilter {
        search: None,
        seen_by: Some(house.id),
    };
    let first = PageRequest::parse(Some(1), Some(1)).unwrap();
    let page = PatientRepo::list(&ctx.store, &mut tx, clinic, &filter, first)
        .await
        .unwrap();
    assert_eq!(
        (page.total, names(&page.items)),
        (2, vec!["Grace Hopper".into()])
    );
    assert!(page.has_next());
}

/// Every patient the page-number list shows, in its order: what a keyset walk must match.
async fn listed_in_order(ctx: &Ctx, clinic: ClinicId, filter: &PatientFilter) -> Vec<PatientId> {
    let mut tx = ctx.read().await;
    let page = PatientRepo::list(&ctx.store, &mut tx, clinic, filter, PageRequest::first(200))
        .await
        .unwrap();
    page.items.iter().map(|p| p.id).collect()
}

/// One keyset page of at most `limit` patients after `after`.
async fn after(
    ctx: &Ctx,
    clinic: ClinicId,
    filter: &PatientFilter,
    after: Option<&Patient>,
    limit: u32,
) -> Vec<Patient> {
    let mut tx = ctx.read().await;
    PatientRepo::list_after(
        &ctx.store,
        &mut tx,
        clinic,
        filter,
        after.map(PatientKey::of),
        limit,
    )
    .await
    .unwrap()
}

/// Walks the whole list `limit` patients at a time.
async fn walk(ctx: &Ctx, clinic: ClinicId, filter: &PatientFilter, limit: u32) -> Vec<PatientId> {
    let mut seen: Vec<Patient> = Vec::new();
    loop {
        let page = after(ctx, clinic, filter, seen.last(), limit).await;
        assert!(page.len() <= limit as usize);
        let done = page.len() < limit as usize;
        seen.extend(page);
        if done {
            return seen.iter().map(|p| p.id).collect();
        }
    }
}

pub async fn keyset_pages_of_patients_follow_the_list_order_exactly(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    for (given, family) in [
        ("Grace", "Hopper"),
        ("Ada", "Lovelace"),
        ("Ada", "Lovelace"),
        ("Ada", "Lovelace"),
        ("Alan", "Turing"),
        ("Frances", "Hopper"),
        ("Barbara", "Liskov"),
        ("Annie", "Easley"),
    ] {
        ctx.patient(clinic, given, family).await;
    }
    ctx.patient(other, "Ada", "Lovelace").await;
    let mut gone = ctx.patient(clinic, "Ada", "Lovelace").await;
    gone.deleted_at = Some(created());
    gone.version = 2;
    let mut tx = ctx.write().await;
    PatientRepo::update(&ctx.store, &mut tx, &gone, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let all = PatientFilter::default();
    let expected = listed_in_order(&ctx, clinic, &all).await;
    assert_eq!(expected.len(), 8);
    // Every page size puts page boundaries somewhere else, also between the equal names.
    for limit in 1..=9 {
        assert_eq!(
            walk(&ctx, clinic, &all, limit).await,
            expected,
            "limit {limit}"
        );
    }
    let lovelaces = PatientFilter {
        search: Some(PatientSearch::NamePrefix("lovelace".into())),
        ..PatientFilter::default()
    };
    let expected = listed_in_order(&ctx, clinic, &lovelaces).await;
    assert_eq!(expected.len(), 3);
    assert_eq!(walk(&ctx, clinic, &lovelaces, 2).await, expected);
}

pub async fn a_keyset_walk_is_stable_while_patients_are_inserted(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    for (given, family) in [
        ("Grace", "Hopper"),
        ("Ada", "Lovelace"),
        ("Alan", "Turing"),
        ("Barbara", "Liskov"),
        ("Annie", "Easley"),
    ] {
        ctx.patient(clinic, given, family).await;
    }
    let all = PatientFilter::default();
    let original = listed_in_order(&ctx, clinic, &all).await;
    let first = after(&ctx, clinic, &all, None, 2).await;
    let cursor = first.last().unwrap().clone();
    assert_eq!(cursor.name.family(), "Hopper");

    // Before the cursor: an earlier name, and the cursor's own name with a smaller id.
    let mut twin_before = patient(clinic, "Grace", "Hopper");
    twin_before.id = PatientId::from_uuid(Uuid::from_u128(1));
    let mut tx = ctx.write().await;
    PatientRepo::insert(&ctx.store, &mut tx, &twin_before)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    ctx.patient(clinic, "Aaron", "Aalto").await;
    // After it: the cursor's own name with a larger id, and a later name.
    let twin_after = ctx.patient(clinic, "Grace", "Hopper").await;
    let last = ctx.patient(clinic, "Zoe", "Zuse").await;

    let mut walked: Vec<PatientId> = first.iter().map(|p| p.id).collect();
    let mut at = cursor;
    loop {
        let page = after(&ctx, clinic, &all, Some(&at), 2).await;
        walked.extend(page.iter().map(|p| p.id));
        match page.last() {
            Some(p) if page.len() == 2 => at = p.clone(),
            _ => break,
        }
    }
    let mut expected = original.clone();
    expected.insert(2, twin_after.id);
    expected.push(last.id);
    assert_eq!(
        walked, expected,
        "each original once, later inserts in place, earlier ones not"
    );
}

pub async fn keyset_pages_of_a_name_search_match_either_key_once(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let mut seen_by_house = Vec::new();
    for (given, family) in [
        ("Ada", "Lovelace"),
        ("Ada", "Lovelace"),
        ("Adam", "Smith"),
        // Both keys start with "ada": listed once.
        ("Ada", "Adams"),
        ("Adalbert", "Adamczyk"),
        ("Grace", "Adair"),
        ("Grace", "Hopper"),
        ("ADA", "byron"),
        ("Alan", "Turing"),
    ] {
        let p = ctx.patient(clinic, given, family).await;
        if given != "Adam" {
            seen_by_house.push(p);
        }
    }
    for (i, p) in seen_by_house.iter().enumerate() {
        let hour = 8 + u32::try_from(i).unwrap();
        ctx.appointment(appointment(p, &house, at(hour, 0), 30))
            .await;
    }
    ctx.patient(other, "Ada", "Lovelace").await;
    let mut gone = ctx.patient(clinic, "Ada", "Adams").await;
    gone.deleted_at = Some(created());
    gone.version = 2;
    let mut tx = ctx.write().await;
    PatientRepo::update(&ctx.store, &mut tx, &gone, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let ada = PatientFilter {
        search: Some(PatientSearch::NamePrefix("ADA".into())),
        ..PatientFilter::default()
    };
    let expected = listed_in_order(&ctx, clinic, &ada).await;
    assert_eq!(expected.len(), 7, "every live Ada* or Ada* family, once");
    for limit in 1..=8 {
        assert_eq!(
            walk(&ctx, clinic, &ada, limit).await,
            expected,
            "limit {limit}"
        );
    }
    let first = after(&ctx, clinic, &ada, None, 3).await;
    assert_eq!(
        names(&first),
        ["ADA byron", "Ada Lovelace", "Ada Lovelace"],
        "in the order of the names as matched: \"ada byron\", \"ada lovelace\" …"
    );

    let ada_of_house = PatientFilter {
        seen_by: Some(house.id),
        ..ada.clone()
    };
    let expected = listed_in_order(&ctx, clinic, &ada_of_house).await;
    assert_eq!(expected.len(), 6, "Adam Smith was never seen by House");
    for limit in 1..=7 {
        assert_eq!(
            walk(&ctx, clinic, &ada_of_house, limit).await,
            expected,
            "limit {limit}"
        );
    }
}

/// The key `patient` matched a name search of `prefix` (already normalized) through: the
/// `family given` key if it starts with the prefix, else the `given family` key.
fn match_key(patient: &Patient, prefix: &str) -> String {
    let family_given = patient.name.normalized();
    if family_given.starts_with(prefix) {
        family_given
    } else {
        normalize_name(&format!(
            "{} {}",
            patient.name.given(),
            patient.name.family()
        ))
    }
}

/// `matches` in the order a name search of `prefix` lists them: by matched key, then id.
fn in_match_order(mut matches: Vec<Patient>, prefix: &str) -> Vec<PatientId> {
    matches.sort_by_key(|p| (match_key(p, prefix), p.id.as_uuid()));
    matches.iter().map(|p| p.id).collect()
}

/// Every patient the numbered pages of `filter` list, `size` at a time, in their order.
async fn paged(ctx: &Ctx, clinic: ClinicId, filter: &PatientFilter, size: u64) -> Vec<Patient> {
    let mut tx = ctx.read().await;
    let mut seen = Vec::new();
    for number in 1.. {
        let request = PageRequest::parse(Some(number), Some(size)).unwrap();
        let page = PatientRepo::list(&ctx.store, &mut tx, clinic, filter, request)
            .await
            .unwrap();
        let more = page.has_next();
        seen.extend(page.items);
        if !more {
            assert_eq!(page.total, seen.len() as u64);
            return seen;
        }
    }
    unreachable!()
}

pub async fn a_name_search_is_ordered_by_the_matched_name_then_the_id(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    let mut matches = Vec::new();
    for (given, family) in [
        ("John", "Smith"),
        ("Anna", "Johnson"),
        ("Jo", "Adams"),
        ("Bob", "Jo"),
        // Both keys match: listed under "jo jon", its `family given` key, not "jon jo".
        ("Jon", "Jo"),
        ("Jo", "Jo"),
        // "john smith" three times, twice as given name and once as family name: the ids
        // decide their order, whichever key matched.
        ("Smith", "John"),
        ("John", "Smith"),
    ] {
        matches.push(ctx.patient(clinic, given, family).await);
    }
    ctx.patient(clinic, "Ada", "Lovelace").await;
    ctx.patient(clinic, "Anna", "Ajo").await;
    ctx.patient(other, "Jo", "Adams").await;
    let mut gone = ctx.patient(clinic, "Jo", "Abbott").await;
    gone.deleted_at = Some(created());
    gone.version = 2;
    let mut tx = ctx.write().await;
    PatientRepo::update(&ctx.store, &mut tx, &gone, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let jo = PatientFilter {
        search: Some(PatientSearch::NamePrefix("JO".into())),
        ..PatientFilter::default()
    };
    let expected = in_match_order(matches, "jo");
    let listed = paged(&ctx, clinic, &jo, 2).await;
    assert_eq!(
        names(&listed),
        [
            "Jo Adams",
            "Bob Jo",
            "Jo Jo",
            "Jon Jo",
            "John Smith",
            "Smith John",
            "John Smith",
            "Anna Johnson",
        ],
        "alphabetical by the name as typed, both kinds of match interleaved"
    );
    assert_eq!(listed.iter().map(|p| p.id).collect::<Vec<_>>(), expected);
    for size in [1, 3, 8] {
        let ids: Vec<_> = paged(&ctx, clinic, &jo, size)
            .await
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids, expected, "numbered pages of {size}");
    }
    for limit in 1..=9 {
        assert_eq!(
            walk(&ctx, clinic, &jo, limit).await,
            expected,
            "keyset pages of {limit}"
        );
    }
    assert_eq!(
        names(&after(&ctx, clinic, &jo, None, 2).await),
        ["Jo Adams", "Bob Jo"]
    );
}

pub async fn a_keyset_walk_of_a_name_search_is_stable_while_patients_are_inserted(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let mut original = Vec::new();
    for (given, family) in [
        ("Jo", "Adams"),
        ("Bob", "Jo"),
        ("Jo", "Jo"),
        ("John", "Smith"),
        ("Anna", "Johnson"),
    ] {
        original.push(ctx.patient(clinic, given, family).await);
    }
    ctx.patient(clinic, "Ada", "Lovelace").await;
    let jo = PatientFilter {
        search: Some(PatientSearch::NamePrefix("jo".into())),
        ..PatientFilter::default()
    };
    let first = after(&ctx, clinic, &jo, None, 3).await;
    assert_eq!(names(&first), ["Jo Adams", "Bob Jo", "Jo Jo"]);
    let cursor = first.last().unwrap().clone();

    // Before the cursor: an earlier name of each kind of match, and the cursor's own name
    // with a smaller id.
    let mut before = vec![
        ctx.patient(clinic, "Jo", "Aaron").await,
        ctx.patient(clinic, "Abe", "Jo").await,
    ];
    let mut twin_before = patient(clinic, "Jo", "Jo");
    twin_before.id = PatientId::from_uuid(Uuid::from_u128(1));
    let mut tx = ctx.write().await;
    PatientRepo::insert(&ctx.store, &mut tx, &twin_before)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    before.push(twin_before);
    // After it: the cursor's own name with a larger id, and later names of each kind, one
    // under a name that an original matched by the other key.
    let mut later = Vec::new();
    for (given, family) in [
        ("Jo", "Jo"),
        ("Joe", "Zed"),
        ("Zed", "Joe"),
        ("Smith", "John"),
        ("Anna", "Jonas"),
    ] {
        later.push(ctx.patient(clinic, given, family).await);
    }

    let mut walked: Vec<PatientId> = first.iter().map(|p| p.id).collect();
    let mut at = cursor.clone();
    loop {
        let page = after(&ctx, clinic, &jo, Some(&at), 2).await;
        walked.extend(page.iter().map(|p| p.id));
        match page.last() {
            Some(p) if page.len() == 2 => at = p.clone(),
            _ => break,
        }
    }
    let position = |p: &Patient| (match_key(p, "jo"), p.id.as_uuid());
    let rest: Vec<Patient> = original
        .iter()
        .chain(&later)
        .filter(|p| position(p) > position(&cursor))
        .cloned()
        .collect();
    let mut expected: Vec<PatientId> = first.iter().map(|p| p.id).collect();
    expected.extend(in_match_order(rest, "jo"));
    assert_eq!(
        walked, expected,
        "each original once, later inserts in place, earlier ones not"
    );
    assert_eq!(walked.len(), original.len() + later.len());
    assert!(before.iter().all(|p| !walked.contains(&p.id)));
}

/// Given and family names of the bulk seed (`clinicflow seed --bulk`): 16 of each.
const SEED_GIVEN: [&str; 16] = [
    "Ada",
    "Alan",
    "Grace",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Katherine",
    "Linus",
    "Margaret",
    "Niklaus",
    "Radia",
    "Tim",
    "Sophie",
    "Emmy",
];
const SEED_FAMILY: [&str; 16] = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Backus",
    "Johnson",
    "Torvalds",
    "Hamilton",
    "Wirth",
    "Perlman",
    "Berners-Lee",
    "Wilson",
    "Noether",
];

/// Asserts that each search's page is chosen inside the two search-key indexes, each read
/// in order and only as far as the page needs, and that neither the whole table nor the
/// name-order index is walked and no sort of every match happens.
async fn assert_search_plans_stay_inside_the_key_indexes(
    ctx: &Ctx,
    clinic: ClinicId,
    practitioner: PractitionerId,
) {
    const LIMIT: u32 = 21;
    const KEY_INDEXES: [&str; 2] = [
        "patients_clinic_id_name_key_match_idx",
        "patients_clinic_id_name_key_alt_match_idx",
    ];
    // Deep inside the `joh` matches: a later page starts its ranges at the cursor.
    let cursor = PatientKey {
        name: PersonName::parse("John", "Torvalds").unwrap(),
        id: PatientId::from_uuid(Uuid::max()),
    };
    for (q, seen_by, after) in [
        ("lov", None, None),
        ("ada", None, None),
        ("joh", None, None),
        ("lovelace a", None, None),
        ("joh", None, Some(&cursor)),
        ("lov", Some(practitioner), None),
    ] {
        let filter = PatientFilter {
            search: Some(PatientSearch::NamePrefix(q.into())),
            seen_by,
        };
        let plan =
            testing::patient_keyset_page_plan(&ctx.store, clinic, &filter, after, LIMIT).await;
        let shown = plan.join("\n");
        // PostgreSQL may start a practitioner's search from their appointments (this one
        // has none); it then reads no search key at all, which is fine too.
        let keys_read = seen_by.is_none() || ctx.backend() == Backend::Sqlite;
        for index in KEY_INDEXES.into_iter().filter(|_| keys_read) {
            let read_inside = match ctx.backend() {
                // An index-only scan where the visibility map allows it (it does on the bulk
                // seed), else a bitmap scan of the key range: the matches either way.
                Backend::Postgres => format!(" {index}"),
                Backend::Sqlite => format!("USING COVERING INDEX {index} ("),
            };
            assert!(
                shown.contains(&read_inside),
                "{q:?}: the matches are read inside {index}:\n{shown}"
            );
        }
        if after.is_some() {
            // In the index's own range, not a filter over the entries before the cursor.
            let (ranges, bound) = match ctx.backend() {
                Backend::Postgres => (
                    ["ROW(name_key, id) >", "ROW(name_key_alt, id) >"],
                    "Index Cond:",
                ),
                Backend::Sqlite => (
                    ["(name_key,id)>(?,?)", "(name_key_alt,id)>(?,?)"],
                    "USING COVERING INDEX",
                ),
            };
            for range in ranges {
                assert!(
                    plan.iter()
                        .any(|line| line.contains(range) && line.contains(bound)),
                    "{q:?} after a cursor: each key range starts at the cursor:\n{shown}"
                );
            }
        }
        let whole_table = |line: &str| match ctx.backend() {
            Backend::Postgres => line.contains("Seq Scan on patients"),
            Backend::Sqlite => line.starts_with("SCAN patients") && !line.contains("INDEX"),
        };
        assert!(
            !plan.iter().any(|line| whole_table(line.trim_start())
                || line.contains("patients_clinic_id_name_idx")),
            "{q:?}: neither the table nor the name order is walked:\n{shown}"
        );
        match ctx.backend() {
            Backend::Sqlite => {
                // Each branch reads its key range in order: a sort beside a key index's
                // range (under the same parent) would be a sort of every match. The sorts
                // of the branches' pages and of the merged page sit higher up.
                let sorts_a_range = plan.iter().enumerate().any(|(at, line)| {
                    KEY_INDEXES.iter().any(|index| line.contains(index))
                        && plan[at + 1..]
                            .iter()
                            .take_while(|next| indent(next) >= indent(line))
                            .any(|next| {
                                indent(next) == indent(line) && next.contains("TEMP B-TREE")
                            })
                });
                assert!(
                    !sorts_a_range,
                    "{q:?}: no branch sorts its matches:\n{shown}"
                );
            }
            Backend::Postgres => {
                let run =
                    testing::patient_keyset_page_run(&ctx.store, clinic, &filter, after, LIMIT)
                        .await;
                let page = f64::from(LIMIT);
                for node in &run {
                    let in_key_index = node
                        .index
                        .as_deref()
                        .is_some_and(|index| KEY_INDEXES.contains(&index));
                    // A practitioner's filter drops entries of the range (or the planner
                    // starts from their appointments), so only the plain search is bounded
                    // by the page.
                    if seen_by.is_some() {
                        continue;
                    }
                    if in_key_index {
                        assert!(
                            node.rows <= page,
                            "{q:?}: {} reads at most a page, not every match: {node:?}\n{shown}",
                            node.kind
                        );
                    }
                    if node.kind == "Sort" {
                        assert!(
                            node.input <= 2.0 * page,
                            "{q:?}: only the two branches' pages are sorted: {node:?}\n{shown}"
                        );
                    }
                }
            }
        }
    }
}

/// How deep a plan line is nested.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

pub async fn a_name_search_page_is_chosen_inside_the_search_key_indexes(ctx: Ctx) {
    // A clinic the size where the plan matters, named as the bulk seed names its patients:
    // the planner's own choice, nothing forced.
    let clinic = ctx.clinic("A").await;
    let practitioner = ctx.practitioner(clinic, "Gregory", "House").await;
    let mut tx = ctx.write().await;
    for i in 0..20_000_usize {
        let given = SEED_GIVEN[(i * 7 + i / 16) % 16];
        let family = SEED_FAMILY[(i * 11 + i / 256) % 16];
        PatientRepo::insert(&ctx.store, &mut tx, &patient(clinic, given, family))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    if ctx.backend() == Backend::Sqlite {
        // clinicflow never runs ANALYZE on its SQLite file: the plan without statistics is
        // the one it runs.
        assert_search_plans_stay_inside_the_key_indexes(&ctx, clinic, practitioner.id).await;
    }
    // With statistics, as autovacuum keeps them on PostgreSQL (and as an operator's ANALYZE
    // leaves them on SQLite); the vacuum also marks the pages all-visible, as it would have.
    let analyze = match ctx.backend() {
        Backend::Postgres => "VACUUM ANALYZE patients",
        Backend::Sqlite => "ANALYZE",
    };
    testing::execute_raw(&ctx.store, analyze).await.unwrap();
    assert_search_plans_stay_inside_the_key_indexes(&ctx, clinic, practitioner.id).await;
}
