use chrono::Duration;
use clinicflow_domain::{ClinicId, PageRequest, Role};
use clinicflow_ports::{RepoError, UserRepo};
use uuid::Uuid;

use crate::support::{Ctx, created, email, user};

pub async fn a_user_reads_back_by_id_and_by_email(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let mut doctor = user(clinic, "house@example.org");
    doctor.role = Role::Practitioner;
    doctor.practitioner_id = Some(house.id);
    let desk = user(clinic, "desk@example.org");
    let mut tx = ctx.write().await;
    UserRepo::insert(&ctx.store, &mut tx, &doctor)
        .await
        .unwrap();
    UserRepo::insert(&ctx.store, &mut tx, &desk).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    assert_eq!(
        UserRepo::get(&ctx.store, &mut tx, clinic, doctor.id)
            .await
            .unwrap(),
        Some(doctor.clone())
    );
    assert_eq!(
        ctx.store
            .find_by_email(&mut tx, &email("house@example.org"))
            .await
            .unwrap(),
        vec![doctor]
    );
    assert_eq!(
        ctx.store
            .find_by_email(&mut tx, &email("nobody@example.org"))
            .await
            .unwrap(),
        vec![]
    );
}

pub async fn a_duplicate_email_in_one_clinic_is_rejected(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let first = user(a, "ada@example.org");
    let mut tx = ctx.write().await;
    UserRepo::insert(&ctx.store, &mut tx, &first).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.write().await;
    let err = UserRepo::insert(&ctx.store, &mut tx, &user(a, "ada@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Duplicate("email")), "{err:?}");
    drop(tx);

    let other_clinic = user(b, "ada@example.org");
    let mut tx = ctx.write().await;
    UserRepo::insert(&ctx.store, &mut tx, &other_clinic)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    let mut found = ctx
        .store
        .find_by_email(&mut tx, &email("ada@example.org"))
        .await
        .unwrap();
    found.sort_by_key(|u| u.id);
    assert_eq!(found, vec![first, other_clinic]);
}

pub async fn a_user_linked_to_another_clinics_practitioner_is_not_found(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let elsewhere = ctx.practitioner(b, "Gregory", "House").await;
    let mut linked = user(a, "house@example.org");
    linked.practitioner_id = Some(elsewhere.id);
    let mut tx = ctx.write().await;
    let err = UserRepo::insert(&ctx.store, &mut tx, &linked)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
}

pub async fn the_lockout_fields_read_back_as_written(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let mut locked = user(clinic, "locked@example.org");
    locked.failed_logins = 3;
    // Nanoseconds are cut to the microsecond on write, like every stored instant.
    locked.locked_until = Some(created() + Duration::nanoseconds(15 * 60 * 1_000_000_000 + 789));
    let mut tx = ctx.write().await;
    UserRepo::insert(&ctx.store, &mut tx, &locked)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    let stored = UserRepo::get(&ctx.store, &mut tx, clinic, locked.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.failed_logins, 3);
    assert_eq!(
        stored.locked_until,
        Some(created() + Duration::minutes(15)),
        "whole microseconds"
    );
    assert!(stored.is_locked(created()));
}

pub async fn a_user_update_writes_every_field_but_identity_and_email(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let elsewhere = ctx.practitioner(other, "James", "Wilson").await;
    let before = ctx.user(clinic, "house@example.org").await;

    let mut changed = before.clone();
    changed.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3".into();
    changed.role = Role::Practitioner;
    changed.practitioner_id = Some(house.id);
    changed.active = false;
    changed.failed_logins = 4;
    changed.locked_until = Some(created() + Duration::minutes(15));
    let mut with_other_email = changed.clone();
    with_other_email.email = email("someone.else@example.org");
    let mut tx = ctx.write().await;
    UserRepo::update(&ctx.store, &mut tx, &with_other_email)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    assert_eq!(
        UserRepo::get(&ctx.store, &mut tx, clinic, before.id)
            .await
            .unwrap(),
        Some(changed.clone()),
        "every field is written except the e-mail"
    );
    drop(tx);

    // And back: a successful login clears the counter and the lock.
    let mut unlocked = changed.clone();
    unlocked.failed_logins = 0;
    unlocked.locked_until = None;
    unlocked.practitioner_id = None;
    let mut tx = ctx.write().await;
    UserRepo::update(&ctx.store, &mut tx, &unlocked)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = ctx.read().await;
    assert_eq!(
        UserRepo::get(&ctx.store, &mut tx, clinic, before.id)
            .await
            .unwrap(),
        Some(unlocked.clone())
    );
    drop(tx);

    let mut tx = ctx.write().await;
    let unknown = user(clinic, "nobody@example.org");
    let err = UserRepo::update(&ctx.store, &mut tx, &unknown)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    let mut hijacked = unlocked.clone();
    hijacked.clinic_id = other;
    hijacked.active = true;
    let err = UserRepo::update(&ctx.store, &mut tx, &hijacked)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    drop(tx);

    let mut tx = ctx.write().await;
    let mut linked = unlocked.clone();
    linked.practitioner_id = Some(elsewhere.id);
    let err = UserRepo::update(&ctx.store, &mut tx, &linked)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    drop(tx);

    let mut tx = ctx.read().await;
    assert_eq!(
        UserRepo::get(&ctx.store, &mut tx, clinic, before.id)
            .await
            .unwrap(),
        Some(unlocked),
        "failed updates change nothing"
    );
}

pub async fn the_user_list_is_ordered_by_email_and_paged(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    for address in [
        "grace@example.org",
        "ada@example.org",
        "alan@example.org",
        "barbara@example.org",
        "annie@example.org",
    ] {
        ctx.user(a, address).await;
    }
    let elsewhere = ctx.user(b, "aaron@example.org").await;

    let mut tx = ctx.read().await;
    let mut seen = Vec::new();
    for page in 1..=3 {
        let request = PageRequest::parse(Some(page), Some(2)).unwrap();
        let got = UserRepo::list(&ctx.store, &mut tx, a, request)
            .await
            .unwrap();
        assert_eq!((got.total, got.request), (5, request));
        assert_eq!(got.items.len(), if page < 3 { 2 } else { 1 });
        assert!(got.items.iter().all(|u| u.clinic_id == a));
        seen.extend(got.items.into_iter().map(|u| u.email.as_ref().to_owned()));
    }
    assert_eq!(
        seen,
        [
            "ada@example.org",
            "alan@example.org",
            "annie@example.org",
            "barbara@example.org",
            "grace@example.org",
        ]
    );
    let other = UserRepo::list(&ctx.store, &mut tx, b, PageRequest::default())
        .await
        .unwrap();
    assert_eq!((other.total, other.items), (1, vec![elsewhere]));
    let none = UserRepo::list(
        &ctx.store,
        &mut tx,
        ClinicId::from_uuid(Uuid::now_v7()),
        PageRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!((none.total, none.items.len()), (0, 0));
}
