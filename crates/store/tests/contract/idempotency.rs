use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::{Claimed, ClinicId, IdempotencyKey, KeyClaim, StoredAnswer, UserId};
use clinicflow_ports::{Database, IdempotencyRepo, TxMode};
use clinicflow_store::Store;
use clinicflow_store::testing::await_lock_waiters;

use crate::support::{Ctx, created};

fn claim(
    clinic: ClinicId,
    user: UserId,
    key: &str,
    fingerprint: &str,
    at: DateTime<Utc>,
) -> KeyClaim {
    KeyClaim {
        clinic_id: clinic,
        user_id: user,
        key: IdempotencyKey::parse(key).unwrap(),
        fingerprint: fingerprint.to_owned(),
        created_at: at,
        expires_at: at + Duration::hours(24),
    }
}

fn answer(body: &str) -> StoredAnswer {
    StoredAnswer {
        status: 201,
        headers: vec![
            ("location".to_owned(), "/api/v1/patients/1".to_owned()),
            ("etag".to_owned(), "\"1\"".to_owned()),
        ],
        body: body.to_owned(),
    }
}

/// Claims `c` in its own unit of work and, when fresh, answers `body` and commits.
async fn claim_and_answer(store: &Store, c: &KeyClaim, body: &str) -> Claimed {
    let mut tx = store.begin(TxMode::Write).await.unwrap();
    let claimed = store.claim(&mut tx, c).await.unwrap();
    if claimed == Claimed::Fresh {
        store.answer(&mut tx, c, &answer(body)).await.unwrap();
        tx.commit().await.unwrap();
    }
    claimed
}

pub async fn a_key_is_claimed_once_and_its_answer_given_to_retries(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.user(clinic, "ada@example.org").await;
    let grace = ctx.user(clinic, "grace@example.org").await;
    let first = claim(clinic, ada.id, "key-1", "fp-1", created());
    assert_eq!(
        claim_and_answer(&ctx.store, &first, "{\"n\":1}").await,
        Claimed::Fresh
    );

    let retry = claim(
        clinic,
        ada.id,
        "key-1",
        "fp-1",
        created() + Duration::hours(1),
    );
    assert_eq!(
        claim_and_answer(&ctx.store, &retry, "{\"n\":2}").await,
        Claimed::Replay(answer("{\"n\":1}")),
        "a retry gets the first answer, headers and all"
    );
    let other_request = claim(
        clinic,
        ada.id,
        "key-1",
        "fp-2",
        created() + Duration::hours(1),
    );
    assert_eq!(
        claim_and_answer(&ctx.store, &other_request, "{}").await,
        Claimed::Mismatch
    );
    // Keys belong to their user: another user's equal key is another key.
    let graces = claim(clinic, grace.id, "key-1", "fp-2", created());
    assert_eq!(
        claim_and_answer(&ctx.store, &graces, "{}").await,
        Claimed::Fresh
    );
}

pub async fn a_claim_rolled_back_leaves_the_key_free(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.user(clinic, "ada@example.org").await;
    let c = claim(clinic, ada.id, "key-1", "fp-1", created());
    let mut tx = ctx.write().await;
    assert_eq!(ctx.store.claim(&mut tx, &c).await.unwrap(), Claimed::Fresh);
    // The write failed (a booking conflict, say): nothing of it, the key included, remains.
    drop(tx);
    let again = claim(clinic, ada.id, "key-1", "fp-2", created());
    assert_eq!(
        claim_and_answer(&ctx.store, &again, "{}").await,
        Claimed::Fresh
    );
}

pub async fn an_expired_key_is_claimed_afresh_and_purged(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.user(clinic, "ada@example.org").await;
    let old = claim(clinic, ada.id, "old", "fp-1", created());
    let kept = claim(
        clinic,
        ada.id,
        "kept",
        "fp-1",
        created() + Duration::hours(12),
    );
    assert_eq!(
        claim_and_answer(&ctx.store, &old, "{\"n\":1}").await,
        Claimed::Fresh
    );
    assert_eq!(
        claim_and_answer(&ctx.store, &kept, "{\"n\":1}").await,
        Claimed::Fresh
    );

    // A day later the key may name a new request.
    let day_later = created() + Duration::hours(24);
    let reused = claim(clinic, ada.id, "old", "fp-2", day_later);
    assert_eq!(
        claim_and_answer(&ctx.store, &reused, "{\"n\":2}").await,
        Claimed::Fresh
    );
    let retry = claim(clinic, ada.id, "old", "fp-2", day_later);
    assert_eq!(
        claim_and_answer(&ctx.store, &retry, "{}").await,
        Claimed::Replay(answer("{\"n\":2}"))
    );

    // `old` now expires two days after `created()`, `kept` 36 hours after.
    let mut tx = ctx.write().await;
    let purged = ctx
        .store
        .purge_expired(&mut tx, created() + Duration::hours(36))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(purged, 1);
    let kept_again = claim(
        clinic,
        ada.id,
        "kept",
        "fp-2",
        created() + Duration::hours(36),
    );
    assert_eq!(
        claim_and_answer(&ctx.store, &kept_again, "{}").await,
        Claimed::Fresh
    );
    let old_again = claim(
        clinic,
        ada.id,
        "old",
        "fp-3",
        created() + Duration::hours(36),
    );
    assert_eq!(
        claim_and_answer(&ctx.store, &old_again, "{}").await,
        Claimed::Mismatch
    );
}

pub async fn concurrent_claims_of_one_key_make_one_write(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.user(clinic, "ada@example.org").await;
    let c = claim(clinic, ada.id, "shared", "fp-1", created());
    let store = Arc::new(ctx.store.clone());
    let mut first = store.begin(TxMode::Write).await.unwrap();
    assert_eq!(store.claim(&mut first, &c).await.unwrap(), Claimed::Fresh);
    let others = (0..9)
        .map(|_| {
            let (store, c) = (Arc::clone(&store), c.clone());
            tokio::spawn(async move {
                let mut tx = store.begin(TxMode::Write).await.unwrap();
                let claimed = store.claim(&mut tx, &c).await.unwrap();
                tx.commit().await.unwrap();
                claimed
            })
        })
        .collect::<Vec<_>>();
    // On PostgreSQL the others reach the key while the first holds it open, and wait for
    // it; SQLite's single writer keeps them out until the first commits.
    await_lock_waiters(&ctx.db.url, 9, std::time::Duration::from_secs(10)).await;
    store
        .answer(&mut first, &c, &answer("first"))
        .await
        .unwrap();
    first.commit().await.unwrap();

    for outcome in futures::future::join_all(others).await {
        match outcome.unwrap() {
            Claimed::Replay(a) => assert_eq!(a.body, answer("first").body),
            other => panic!("every other claim is given the first one's answer: {other:?}"),
        }
    }
}
