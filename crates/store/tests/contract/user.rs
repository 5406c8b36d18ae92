use std::sync::Arc;

use chrono::Duration;
use clinicflow_domain::{ClinicId, LockoutPolicy, PageRequest, Role, User};
use clinicflow_ports::{Database, RepoError, TxMode, UserRepo};
use clinicflow_store::Store;
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
    changed.version = 2;
    let mut with_other_email = changed.clone();
    with_other_email.email = email("someone.else@example.org");
    let mut tx = ctx.write().await;
    UserRepo::update(&ctx.store, &mut tx, &with_other_email, 1)
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

    // And back: an admin's unlock clears the counter and the lock.
    let mut unlocked = changed.clone();
    unlocked.unlock();
    unlocked.practitioner_id = None;
    unlocked.version = 3;
    let mut tx = ctx.write().await;
    UserRepo::update(&ctx.store, &mut tx, &unlocked, 2)
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
    let err = UserRepo::update(&ctx.store, &mut tx, &unknown, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    let mut hijacked = unlocked.clone();
    hijacked.clinic_id = other;
    hijacked.active = true;
    let err = UserRepo::update(&ctx.store, &mut tx, &hijacked, 3)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    drop(tx);

    let mut tx = ctx.write().await;
    let mut linked = unlocked.clone();
    linked.practitioner_id = Some(elsewhere.id);
    let err = UserRepo::update(&ctx.store, &mut tx, &linked, 3)
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

async fn stored(ctx: &Ctx, u: &User) -> User {
    let mut tx = ctx.read().await;
    UserRepo::get(&ctx.store, &mut tx, u.clinic_id, u.id)
        .await
        .unwrap()
        .unwrap()
}

/// One failed login in its own unit of work, as login counts it.
async fn fail_once(store: &Store, u: &User, policy: &LockoutPolicy) -> Option<User> {
    let mut tx = store.begin(TxMode::Write).await.unwrap();
    let after = store
        .record_failed_login(&mut tx, u.clinic_id, u.id, policy, created())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    after
}

pub async fn a_user_update_based_on_an_older_version_is_refused(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let desk = ctx.user(clinic, "desk@example.org").await;
    let mut nurse = desk.clone();
    nurse.role = Role::Nurse;
    nurse.version = 2;
    let mut tx = ctx.write().await;
    UserRepo::update(&ctx.store, &mut tx, &nurse, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // A writer that still holds version 1.
    let mut admin = desk.clone();
    admin.role = Role::Admin;
    admin.version = 2;
    let mut tx = ctx.write().await;
    let err = UserRepo::update(&ctx.store, &mut tx, &admin, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::StaleVersion), "{err:?}");
    drop(tx);
    assert_eq!(
        stored(&ctx, &desk).await,
        nurse,
        "the stale write changed nothing"
    );
}

pub async fn a_failed_login_and_a_deactivation_racing_lose_neither(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let desk = ctx.user(clinic, "desk@example.org").await;
    let policy = LockoutPolicy::default();

    // The login read the account (active) before the admin's deactivation committed; its
    // failure is counted afterwards. Written back whole, it would make the account active.
    let seen_by_login = stored(&ctx, &desk).await;
    let mut disabled = seen_by_login.clone();
    disabled.active = false;
    disabled.version += 1;
    let mut tx = ctx.write().await;
    UserRepo::update(&ctx.store, &mut tx, &disabled, seen_by_login.version)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    fail_once(&ctx.store, &seen_by_login, &policy).await;
    let after = stored(&ctx, &desk).await;
    assert_eq!(
        (after.active, after.failed_logins, after.version),
        (false, 1, 3),
        "the deactivation stays and the failure counts"
    );

    // The other way round: the admin read the account, a failed login was counted, then the
    // admin writes. The write names the version it read, so it is refused, not written over
    // the count; made again on a fresh read, both stay.
    let seen_by_admin = after;
    fail_once(&ctx.store, &seen_by_admin, &policy).await;
    let mut enabled = seen_by_admin.clone();
    enabled.active = true;
    enabled.version += 1;
    let mut tx = ctx.write().await;
    let err = UserRepo::update(&ctx.store, &mut tx, &enabled, seen_by_admin.version)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::StaleVersion), "{err:?}");
    drop(tx);
    let mut fresh = stored(&ctx, &desk).await;
    assert_eq!((fresh.active, fresh.failed_logins), (false, 2));
    fresh.active = true;
    let expected = fresh.version;
    fresh.version += 1;
    let mut tx = ctx.write().await;
    UserRepo::update(&ctx.store, &mut tx, &fresh, expected)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let last = stored(&ctx, &desk).await;
    assert_eq!((last.active, last.failed_logins), (true, 2));
}

/// An admin's deactivation as the service makes it: read, change, write naming the version
/// read, and again on a fresh read when a concurrent write came first.
async fn deactivate(store: &Store, u: &User) {
    loop {
        let mut tx = store.begin(TxMode::Write).await.unwrap();
        let mut current = UserRepo::get(store, &mut tx, u.clinic_id, u.id)
            .await
            .unwrap()
            .unwrap();
        current.active = false;
        let expected = current.version;
        current.version += 1;
        match UserRepo::update(store, &mut tx, &current, expected).await {
            Ok(()) => return tx.commit().await.unwrap(),
            Err(RepoError::StaleVersion) => continue,
            Err(e) => panic!("{e:?}"),
        }
    }
}

pub async fn a_deactivation_amid_concurrent_failed_logins_loses_nothing(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let desk = ctx.user(clinic, "desk@example.org").await;
    let policy = LockoutPolicy {
        max_failures: 100,
        ..LockoutPolicy::default()
    };
    let store = Arc::new(ctx.store.clone());
    let mut racers: Vec<_> = (0..6)
        .map(|_| {
            let (store, desk) = (Arc::clone(&store), desk.clone());
            tokio::spawn(async move {
                fail_once(&store, &desk, &policy).await;
            })
        })
        .collect();
    let (admin_store, admin_desk) = (Arc::clone(&store), desk.clone());
    racers.insert(
        3,
        tokio::spawn(async move { deactivate(&admin_store, &admin_desk).await }),
    );
    for racer in racers {
        racer.await.unwrap();
    }
    let after = stored(&ctx, &desk).await;
    assert_eq!(
        (after.active, after.failed_logins, after.version),
        (false, 6, 8),
        "the deactivation and every failure are there"
    );
}

pub async fn concurrent_failed_logins_lose_no_increment(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let desk = ctx.user(clinic, "desk@example.org").await;
    // A limit the test does not reach, so every failure shows in the counter.
    let policy = LockoutPolicy {
        max_failures: 100,
        ..LockoutPolicy::default()
    };
    let store = Arc::new(ctx.store.clone());
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let (store, desk) = (Arc::clone(&store), desk.clone());
            tokio::spawn(async move { fail_once(&store, &desk, &policy).await })
        })
        .collect();
    for attempt in attempts {
        attempt.await.unwrap();
    }
    let after = stored(&ctx, &desk).await;
    assert_eq!((after.failed_logins, after.version), (8, 9));
    assert_eq!(after.locked_until, None);
}

pub async fn failed_logins_lock_the_account_as_the_policy_says(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let desk = ctx.user(clinic, "desk@example.org").await;
    let policy = LockoutPolicy::default();
    let mut expected = desk.clone();
    for _ in 0..policy.max_failures {
        let (count, until) = policy.after_failure(&expected, created());
        expected.failed_logins = count;
        expected.locked_until = until;
        expected.version += 1;
        let after = fail_once(&ctx.store, &desk, &policy).await.unwrap();
        assert_eq!(after, expected);
    }
    assert!(expected.is_locked(created()), "the fifth failure locks");
    assert_eq!(expected.failed_logins, 0, "and starts the count again");

    // While locked, failures are not counted, and a success does not lift the lock.
    assert_eq!(
        fail_once(&ctx.store, &desk, &policy).await,
        Some(expected.clone())
    );
    let mut tx = ctx.write().await;
    ctx.store
        .clear_failed_logins(&mut tx, clinic, desk.id, created())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(stored(&ctx, &desk).await, expected);

    // Once the lock has run out, a success clears it.
    let later = created() + policy.lock_for;
    let mut tx = ctx.write().await;
    ctx.store
        .clear_failed_logins(&mut tx, clinic, desk.id, later)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let cleared = stored(&ctx, &desk).await;
    assert_eq!(
        (cleared.failed_logins, cleared.locked_until, cleared.version),
        (0, None, expected.version + 1)
    );

    // With nothing to clear, a success writes nothing, not even the version.
    let mut tx = ctx.write().await;
    ctx.store
        .clear_failed_logins(&mut tx, clinic, desk.id, later)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(stored(&ctx, &desk).await, cleared);
    let mut tx = ctx.write().await;
    let elsewhere = ClinicId::from_uuid(Uuid::now_v7());
    assert_eq!(
        ctx.store
            .record_failed_login(&mut tx, elsewhere, desk.id, &policy, later)
            .await
            .unwrap(),
        None,
        "another clinic's id finds nobody"
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
