//! `RedisRateLimiter` against a real Redis (`CLINICFLOW_TEST_REDIS_URL`), and its fallback
//! when Redis cannot be reached. Tests share one Redis: each counts under its own uuid keys.

mod common;

use std::sync::Arc;
use std::time::Duration;

use clinicflow_cache::RedisRateLimiter;
use clinicflow_ports::limit::RateLimiter;
use common::*;
use deadpool_redis::redis;
use tokio::net::TcpListener;
use uuid::Uuid;

const MINUTE: Duration = Duration::from_secs(60);

/// A limiter on the test Redis.
fn limiter(url: &str) -> RedisRateLimiter {
    RedisRateLimiter::connect(url)
        .expect("the test Redis URL is valid")
        .with_timeout(TEST_TIMEOUT)
}

/// A key no other test uses.
fn unique_key(name: &str) -> String {
    format!("test:{}:{name}", Uuid::now_v7())
}

#[tokio::test]
async fn hits_over_the_limit_are_refused_until_the_window_ends() {
    let Some(url) = redis_url() else { return };
    let limiter = limiter(&url);
    let key = unique_key("login:ip:1.2.3.4");
    let window = Duration::from_secs(10);
    for remaining in [2, 1, 0] {
        let decision = limiter.hit(&key, 3, window).await;
        assert!(decision.allowed);
        assert_eq!(decision.remaining, remaining);
        assert_eq!(decision.retry_after, Duration::ZERO);
    }
    let refused = limiter.hit(&key, 3, window).await;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert!(
        refused.retry_after >= Duration::from_secs(9) && refused.retry_after <= window,
        "retry_after {:?} should be the time left in a 10 s window",
        refused.retry_after
    );
    assert_eq!(limiter.redis_errors(), 0);
}

#[tokio::test]
async fn a_new_window_allows_again() {
    let Some(url) = redis_url() else { return };
    let limiter = limiter(&url);
    let key = unique_key("k");
    // Long enough that a loaded machine cannot pass it between two hits.
    let window = Duration::from_secs(1);
    assert!(limiter.hit(&key, 1, window).await.allowed);
    // The window began before this instant, so it has ended by this plus its length.
    let after_first = tokio::time::Instant::now();
    let refused = limiter.hit(&key, 1, window).await;
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after, Duration::from_secs(1), "rounded up");
    tokio::time::sleep_until(after_first + window + Duration::from_millis(100)).await;
    assert!(limiter.hit(&key, 1, window).await.allowed);
    assert_eq!(limiter.redis_errors(), 0);
}

#[tokio::test]
async fn counts_live_under_the_prefix_and_expire_with_the_window() {
    let Some(url) = redis_url() else { return };
    let limiter = limiter(&url);
    let key = unique_key("login:account:ada@example.org");
    limiter.hit(&key, 5, MINUTE).await;
    limiter.hit(&key, 5, MINUTE).await;
    let mut conn = redis_conn(&url).await;
    let stored = format!("clinicflow:rl:{key}");
    let count: i64 = redis::cmd("GET")
        .arg(&stored)
        .query_async(&mut conn)
        .await
        .expect("GET answers");
    let left_ms: i64 = redis::cmd("PTTL")
        .arg(&stored)
        .query_async(&mut conn)
        .await
        .expect("PTTL answers");
    assert_eq!(count, 2);
    assert!(left_ms > 0 && left_ms <= 60_000, "PTTL {left_ms}");
}

#[tokio::test]
async fn two_instances_share_one_count() {
    let Some(url) = redis_url() else { return };
    let first = limiter(&url);
    let second = limiter(&url);
    let key = unique_key("login:ip:1.2.3.4");
    assert!(first.hit(&key, 3, MINUTE).await.allowed);
    assert!(second.hit(&key, 3, MINUTE).await.allowed);
    let third = first.hit(&key, 3, MINUTE).await;
    assert!(third.allowed);
    assert_eq!(third.remaining, 0);
    assert!(!second.hit(&key, 3, MINUTE).await.allowed);
    assert!(!first.hit(&key, 3, MINUTE).await.allowed);
    assert_eq!(first.redis_errors() + second.redis_errors(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_hits_with_limit_ten_allow_exactly_ten() {
    let Some(url) = redis_url() else { return };
    let instances = [Arc::new(limiter(&url)), Arc::new(limiter(&url))];
    let key = unique_key("k");
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let hits: Vec<_> = (0..50)
        .map(|i| {
            let limiter = Arc::clone(&instances[i % 2]);
            let barrier = Arc::clone(&barrier);
            let key = key.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                limiter.hit(&key, 10, MINUTE).await
            })
        })
        .collect();
    let mut allowed = 0;
    for hit in hits {
        if hit.await.expect("the hit task does not panic").allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10);
    assert_eq!(
        instances.iter().map(|l| l.redis_errors()).sum::<u64>(),
        0,
        "every hit was counted in Redis"
    );
}

#[tokio::test]
async fn reset_forgets_the_count_for_every_instance() {
    let Some(url) = redis_url() else { return };
    let first = limiter(&url);
    let second = limiter(&url);
    let key = unique_key("login:account:ada@example.org");
    assert!(first.hit(&key, 1, MINUTE).await.allowed);
    assert!(!first.hit(&key, 1, MINUTE).await.allowed);
    second.reset(&key).await;
    assert!(first.hit(&key, 1, MINUTE).await.allowed);
    assert_eq!(first.redis_errors() + second.redis_errors(), 0);
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_to_counting_in_process() {
    let limiter = RedisRateLimiter::connect(&format!("redis://127.0.0.1:{}", closed_port()))
        .expect("a well-formed URL is accepted while Redis is down");
    let key = "login:account:ada@example.org";
    for remaining in [2, 1, 0] {
        let decision = limiter.hit(key, 3, MINUTE).await;
        assert!(decision.allowed);
        assert_eq!(decision.remaining, remaining);
    }
    let refused = limiter.hit(key, 3, MINUTE).await;
    assert!(!refused.allowed);
    assert!(refused.retry_after >= Duration::from_secs(59) && refused.retry_after <= MINUTE);
    assert!(limiter.redis_errors() >= 1);
    limiter.reset(key).await;
    assert!(limiter.hit(key, 3, MINUTE).await.allowed);
}

#[tokio::test]
async fn the_limiter_returns_to_redis_when_redis_returns() {
    let Some(url) = redis_url() else { return };
    let relay = Relay::start(redis_addr(&url).await).await;
    let limiter = RedisRateLimiter::connect(&url_through(&url, relay.addr))
        .expect("the relayed URL is valid")
        .with_timeout(Duration::from_millis(500));
    let key = unique_key("login:ip:1.2.3.4");
    let stored = format!("clinicflow:rl:{key}");
    let mut conn = redis_conn(&url).await;
    let redis_count = async |conn: &mut redis::aio::MultiplexedConnection| -> Option<i64> {
        redis::cmd("GET")
            .arg(&stored)
            .query_async(conn)
            .await
            .expect("GET answers")
    };

    assert!(limiter.hit(&key, 100, MINUTE).await.allowed);
    assert_eq!(redis_count(&mut conn).await, Some(1));
    assert_eq!(limiter.redis_errors(), 0);

    relay.cut();
    for _ in 0..3 {
        assert!(limiter.hit(&key, 100, MINUTE).await.allowed);
    }
    assert!(limiter.redis_errors() >= 1, "the cut was noticed");
    assert_eq!(redis_count(&mut conn).await, Some(1), "counted in-process");

    relay.restore();
    let back = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            limiter.hit(&key, 100, MINUTE).await;
            if redis_count(&mut conn).await > Some(1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(back.is_ok(), "hits reach Redis again once it answers");
}

#[tokio::test]
async fn a_redis_that_never_answers_is_given_up_on_after_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port can be bound");
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // accepted, never answered
        }
    });
    let limiter = RedisRateLimiter::connect(&format!("redis://{addr}"))
        .expect("a well-formed URL is accepted")
        .with_timeout(Duration::from_millis(100));
    let decision = tokio::time::timeout(
        Duration::from_secs(10),
        limiter.hit("login:ip:1.2.3.4", 3, MINUTE),
    )
    .await
    .expect("the hit is answered despite the silent Redis");
    assert!(decision.allowed);
    assert_eq!(decision.remaining, 2);
    assert_eq!(limiter.redis_errors(), 1);
    silent.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn failures_are_warned_about_once_without_the_subject_of_the_key() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let limiter = RedisRateLimiter::connect(&format!("redis://127.0.0.1:{}", closed_port()))
        .expect("a well-formed URL is accepted while Redis is down");
    let key = "login:account:ada@example.org";
    limiter.hit(key, 5, MINUTE).await;
    // Past the pause after a failure, so Redis is tried (and fails) again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    limiter.hit(key, 5, MINUTE).await;
    limiter.reset(key).await;

    assert_eq!(limiter.redis_errors(), 2);
    let logs = captured.text();
    assert_eq!(
        logs.matches("Redis rate limiter failed").count(),
        1,
        "{logs}"
    );
    assert!(logs.contains("login:account"), "{logs}");
    assert!(!logs.contains("ada@example.org"), "{logs}");
    assert!(!logs.contains("ada"), "{logs}");
}
