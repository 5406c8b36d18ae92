use chrono::Duration;
use clinicflow_domain::{PageRequest, PersonName, Practitioner};
use clinicflow_ports::{PractitionerFilter, PractitionerRepo, RepoError};

use crate::support::{Ctx, created, practitioner};

async fn store(ctx: &Ctx, p: &Practitioner) {
    let mut tx = ctx.write().await;
    PractitionerRepo::insert(&ctx.store, &mut tx, p)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

pub async fn a_practitioner_reads_back_with_specialties(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = practitioner(
        clinic,
        "Gregory",
        "House",
        &["diagnostics", "nephrology"],
        Some("internal-medicine"),
    );
    store(&ctx, &house).await;
    let plain = practitioner(clinic, "James", "Wilson", &[], None);
    store(&ctx, &plain).await;

    let mut tx = ctx.read().await;
    assert_eq!(
        PractitionerRepo::get(&ctx.store, &mut tx, clinic, house.id)
            .await
            .unwrap(),
        Some(house)
    );
    assert_eq!(
        PractitionerRepo::get(&ctx.store, &mut tx, clinic, plain.id)
            .await
            .unwrap(),
        Some(plain)
    );
}

pub async fn a_practitioner_update_replaces_fields_and_specialties(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = practitioner(clinic, "Gregory", "House", &["diagnostics"], None);
    store(&ctx, &house).await;

    let mut changed = house.clone();
    changed.name = PersonName::parse("Greg", "House").unwrap();
    changed.specialties = vec!["infectious-disease".into(), "nephrology".into()];
    changed.department = Some("diagnostic-medicine".into());
    changed.slot_minutes = 20;
    changed.buffer_minutes = 5;
    changed.version = 2;
    changed.updated_at = created() + Duration::hours(2);
    let mut tx = ctx.write().await;
    PractitionerRepo::update(&ctx.store, &mut tx, &changed, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.write().await;
    assert_eq!(
        PractitionerRepo::get(&ctx.store, &mut tx, clinic, house.id)
            .await
            .unwrap(),
        Some(changed.clone())
    );
    let mut stale = house.clone();
    stale.version = 2;
    let err = PractitionerRepo::update(&ctx.store, &mut tx, &stale, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::StaleVersion), "{err:?}");
    drop(tx);

    let mut tx = ctx.write().await;
    let unknown = practitioner(clinic, "Lisa", "Cuddy", &[], None);
    let err = PractitionerRepo::update(&ctx.store, &mut tx, &unknown, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    drop(tx);

    let mut tx = ctx.read().await;
    assert_eq!(
        PractitionerRepo::get(&ctx.store, &mut tx, clinic, house.id)
            .await
            .unwrap(),
        Some(changed)
    );
}

pub async fn the_practitioner_list_filters_by_specialty_and_department(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    let house = practitioner(
        clinic,
        "Gregory",
        "House",
        &["diagnostics", "nephrology"],
        Some("internal"),
    );
    let wilson = practitioner(clinic, "James", "Wilson", &["oncology"], Some("internal"));
    let cameron = practitioner(
        clinic,
        "Allison",
        "Cameron",
        &["diagnostics", "immunology"],
        Some("emergency"),
    );
    // Deactivated: read back as such, and filtered by `active`.
    let cuddy = Practitioner {
        active: false,
        ..practitioner(clinic, "Lisa", "Cuddy", &[], None)
    };
    let elsewhere = practitioner(other, "John", "Dorian", &["diagnostics"], Some("internal"));
    for p in [&house, &wilson, &cameron, &cuddy, &elsewhere] {
        store(&ctx, p).await;
    }
    let filtered = |specialty: Option<&str>, department: Option<&str>, active: Option<bool>| {
        let filter = PractitionerFilter {
            specialty: specialty.map(str::to_owned),
            department: department.map(str::to_owned),
            active,
        };
        let ctx = &ctx;
        async move {
            let mut tx = ctx.read().await;
            let page = PractitionerRepo::list(
                &ctx.store,
                &mut tx,
                clinic,
                &filter,
                PageRequest::default(),
            )
            .await
            .unwrap();
            assert_eq!(page.total, page.items.len() as u64);
            page.items
        }
    };

    let list = |specialty, department| filtered(specialty, department, None);
    assert_eq!(
        list(None, None).await,
        vec![
            cameron.clone(),
            cuddy.clone(),
            house.clone(),
            wilson.clone()
        ]
    );
    assert_eq!(filtered(None, None, Some(false)).await, vec![cuddy]);
    assert_eq!(
        filtered(None, None, Some(true)).await,
        vec![cameron.clone(), house.clone(), wilson.clone()]
    );
    assert_eq!(
        list(Some("diagnostics"), None).await,
        vec![cameron.clone(), house.clone()]
    );
    assert_eq!(
        list(None, Some("internal")).await,
        vec![house.clone(), wilson]
    );
    assert_eq!(
        list(Some("diagnostics"), Some("internal")).await,
        vec![house]
    );
    assert_eq!(list(Some("surgery"), None).await, vec![]);

    let mut tx = ctx.read().await;
    let first = PageRequest::parse(Some(1), Some(1)).unwrap();
    let page = PractitionerRepo::list(
        &ctx.store,
        &mut tx,
        clinic,
        &PractitionerFilter::default(),
        first,
    )
    .await
    .unwrap();
    assert_eq!((page.total, page.items), (4, vec![cameron]));
}
