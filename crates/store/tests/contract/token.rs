use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::{
    ClinicId, RefreshToken, RefreshTokenId, RefreshVerdict, TokenFamilyId, User, UserId,
};
use clinicflow_ports::{Database, RefreshTokenRepo, RepoError, TxMode};
use clinicflow_store::Store;
use uuid::Uuid;

use crate::support::{Ctx, created};

fn token(user: &User, family: TokenFamilyId, hash: &str) -> RefreshToken {
    RefreshToken {
        id: RefreshTokenId::from_uuid(Uuid::now_v7()),
        family_id: family,
        user_id: user.id,
        clinic_id: user.clinic_id,
        token_hash: hash.to_owned(),
        issued_at: created(),
        expires_at: created() + Duration::days(14),
        rotated_at: None,
        revoked_at: None,
    }
}

fn family() -> TokenFamilyId {
    TokenFamilyId::from_uuid(Uuid::now_v7())
}

async fn insert(ctx: &Ctx, tokens: &[&RefreshToken]) {
    let mut tx = ctx.write().await;
    for t in tokens {
        RefreshTokenRepo::insert(&ctx.store, &mut tx, t)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn find(ctx: &Ctx, hash: &str) -> Option<RefreshToken> {
    let mut tx = ctx.read().await;
    ctx.store.find_by_hash(&mut tx, hash).await.unwrap()
}

async fn rotate(ctx: &Ctx, id: RefreshTokenId, at: DateTime<Utc>) -> Result<(), RepoError> {
    let mut tx = ctx.write().await;
    ctx.store.mark_rotated(&mut tx, id, at).await?;
    tx.commit().await
}

pub async fn a_refresh_token_reads_back_by_hash_and_rotates_once(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.user(clinic, "ada@example.org").await;
    let login = family();
    let first = token(&ada, login, "hash-1");
    insert(&ctx, &[&first]).await;
    assert_eq!(find(&ctx, "hash-1").await, Some(first.clone()));
    assert_eq!(find(&ctx, "hash-2").await, None);

    // Nanoseconds are cut to the microsecond on write, like every stored instant.
    let now = created() + Duration::hours(1) + Duration::nanoseconds(1_789);
    rotate(&ctx, first.id, now).await.unwrap();
    let rotated = find(&ctx, "hash-1").await.unwrap();
    assert_eq!(
        rotated.rotated_at,
        Some(created() + Duration::hours(1) + Duration::microseconds(1))
    );
    assert_eq!(rotated.verdict(now), RefreshVerdict::Reuse);
    let err = rotate(&ctx, first.id, now).await.unwrap_err();
    assert!(matches!(err, RepoError::StaleVersion), "{err:?}");
    let err = rotate(&ctx, RefreshTokenId::from_uuid(Uuid::now_v7()), now)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RepoError::StaleVersion),
        "an unknown token cannot be rotated either: {err:?}"
    );

    // A revoked token cannot be rotated: the family is dead.
    let second = token(&ada, login, "hash-2");
    insert(&ctx, &[&second]).await;
    let mut tx = ctx.write().await;
    assert_eq!(
        ctx.store
            .revoke_family(&mut tx, ada.clinic_id, login, now)
            .await
            .unwrap(),
        2
    );
    tx.commit().await.unwrap();
    let err = rotate(&ctx, second.id, now).await.unwrap_err();
    assert!(matches!(err, RepoError::StaleVersion), "{err:?}");
    assert_eq!(
        find(&ctx, "hash-2").await.unwrap().verdict(now),
        RefreshVerdict::Dead
    );
    assert_eq!(
        find(&ctx, "hash-2").await.unwrap().rotated_at,
        None,
        "a failed rotation writes nothing"
    );
}

pub async fn a_refresh_token_needs_a_unique_hash_and_a_user_of_its_clinic(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let ada = ctx.user(a, "ada@example.org").await;
    insert(&ctx, &[&token(&ada, family(), "hash-1")]).await;

    let mut tx = ctx.write().await;
    let err = RefreshTokenRepo::insert(&ctx.store, &mut tx, &token(&ada, family(), "hash-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Duplicate("token_hash")), "{err:?}");
    drop(tx);

    let mut foreign = token(&ada, family(), "hash-2");
    foreign.clinic_id = b;
    let mut unknown = token(&ada, family(), "hash-3");
    unknown.user_id = UserId::from_uuid(Uuid::now_v7());
    for t in [foreign, unknown] {
        let mut tx = ctx.write().await;
        let err = RefreshTokenRepo::insert(&ctx.store, &mut tx, &t)
            .await
            .unwrap_err();
        assert!(matches!(err, RepoError::NotFound), "{err:?}");
    }
    assert_eq!(find(&ctx, "hash-2").await, None);
}

pub async fn revoking_reaches_exactly_the_family_or_the_user(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let ada = ctx.user(a, "ada@example.org").await;
    let grace = ctx.user(a, "grace@example.org").await;
    let (laptop, phone, tablet) = (family(), family(), family());
    let laptop_1 = token(&ada, laptop, "ada-laptop-1");
    let laptop_2 = token(&ada, laptop, "ada-laptop-2");
    let phone_1 = token(&ada, phone, "ada-phone-1");
    let mut old = token(&ada, tablet, "ada-tablet-1");
    let long_ago = created() - Duration::days(30);
    old.revoked_at = Some(long_ago);
    let grace_1 = token(&grace, family(), "grace-1");
    insert(&ctx, &[&laptop_1, &laptop_2, &phone_1, &old, &grace_1]).await;
    let now = created() + Duration::hours(1);

    let mut tx = ctx.write().await;
    let elsewhere = clinicflow_domain::ClinicId::from_uuid(uuid::Uuid::now_v7());
    assert_eq!(
        ctx.store
            .revoke_family(&mut tx, elsewhere, laptop, now)
            .await
            .unwrap(),
        0,
        "another clinic cannot revoke this family"
    );
    assert_eq!(
        ctx.store
            .revoke_family(&mut tx, ada.clinic_id, laptop, now)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        ctx.store
            .revoke_family(&mut tx, ada.clinic_id, laptop, now)
            .await
            .unwrap(),
        0,
        "already revoked"
    );
    assert_eq!(
        ctx.store
            .revoke_family(&mut tx, ada.clinic_id, family(), now)
            .await
            .unwrap(),
        0
    );
    tx.commit().await.unwrap();
    assert_eq!(
        find(&ctx, "ada-laptop-1").await.unwrap().revoked_at,
        Some(now)
    );
    assert_eq!(
        find(&ctx, "ada-laptop-2").await.unwrap().revoked_at,
        Some(now)
    );
    assert_eq!(find(&ctx, "ada-phone-1").await.unwrap().revoked_at, None);

    let later = now + Duration::hours(1);
    let mut tx = ctx.write().await;
    assert_eq!(
        ctx.store
            .revoke_user(&mut tx, b, ada.id, later)
            .await
            .unwrap(),
        0,
        "another clinic reaches no one"
    );
    assert_eq!(
        ctx.store
            .revoke_user(&mut tx, a, ada.id, later)
            .await
            .unwrap(),
        1,
        "only the phone was still live"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        find(&ctx, "ada-phone-1").await.unwrap().revoked_at,
        Some(later)
    );
    assert_eq!(
        find(&ctx, "ada-laptop-1").await.unwrap().revoked_at,
        Some(now),
        "an earlier revocation keeps its time"
    );
    assert_eq!(
        find(&ctx, "ada-tablet-1").await.unwrap().revoked_at,
        Some(long_ago)
    );
    assert_eq!(
        find(&ctx, "grace-1").await.unwrap(),
        grace_1,
        "another user is untouched"
    );
}

/// One refresh as the services will run it: find, judge, rotate, commit.
async fn refresh(
    store: Arc<Store>,
    hash: &'static str,
    now: DateTime<Utc>,
) -> Result<bool, RepoError> {
    let mut tx = store.begin(TxMode::Write).await?;
    let Some(found) = store.find_by_hash(&mut tx, hash).await? else {
        return Ok(false);
    };
    if found.verdict(now) != RefreshVerdict::Rotate {
        return Ok(false);
    }
    match store.mark_rotated(&mut tx, found.id, now).await {
        Ok(()) => {}
        Err(RepoError::StaleVersion) => return Ok(false),
        Err(other) => return Err(other),
    }
    tx.commit().await?;
    Ok(true)
}

pub async fn concurrent_refreshes_with_one_token_rotate_it_once(ctx: Ctx) {
    let clinic: ClinicId = ctx.clinic("A").await;
    let ada = ctx.user(clinic, "ada@example.org").await;
    let shared = token(&ada, family(), "shared");
    insert(&ctx, &[&shared]).await;
    let now = created() + Duration::hours(1);
    let store = Arc::new(ctx.store.clone());
    let tasks = (0..10)
        .map(|_| tokio::spawn(refresh(Arc::clone(&store), "shared", now)))
        .collect::<Vec<_>>();
    let mut rotated = 0;
    for outcome in futures::future::join_all(tasks).await {
        if outcome.unwrap().unwrap() {
            rotated += 1;
        }
    }
    assert_eq!(rotated, 1, "exactly one refresh wins the race");
    assert_eq!(find(&ctx, "shared").await.unwrap().rotated_at, Some(now));
}
