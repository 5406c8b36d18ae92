//! `RedisEventBus` against a real Redis (`CLINICFLOW_TEST_REDIS_URL`), two buses standing for
//! two server instances, and its in-process delivery when Redis cannot be reached. Tests
//! share one Redis: each uses its own uuid topics.

mod common;

use std::time::Duration;

use clinicflow_cache::RedisEventBus;
use clinicflow_ports::{EventBus, EventStream};
use common::*;
use deadpool_redis::redis;
use futures::StreamExt;
use tokio::net::TcpListener;
use uuid::Uuid;

/// How long a test waits for an event that must come.
const WAIT: Duration = Duration::from_secs(5);

/// How long a test watches for an event that must not come.
const QUIET: Duration = Duration::from_millis(300);

/// A bus on the test Redis: one server instance.
fn bus(url: &str) -> RedisEventBus {
    RedisEventBus::connect(url)
        .expect("the test Redis URL is valid")
        .with_timeout(TEST_TIMEOUT)
}

/// A topic no other test uses.
fn unique_topic(name: &str) -> String {
    format!("test:{}:{name}", Uuid::now_v7())
}

/// Subscribes to `topic`, failing the test if that takes too long.
async fn subscribe(bus: &RedisEventBus, topic: &str) -> EventStream {
    tokio::time::timeout(WAIT, bus.subscribe(topic))
        .await
        .expect("subscribing is bounded in time")
}

/// Publishes on `topic`, failing the test if that takes too long.
async fn publish(bus: &RedisEventBus, topic: &str, payload: &str) {
    tokio::time::timeout(WAIT, bus.publish(topic, payload.as_bytes().to_vec()))
        .await
        .expect("publishing is bounded in time");
}

/// The next event of `stream` as text; fails the test if none comes in time.
async fn next(stream: &mut EventStream) -> String {
    let payload = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event comes in time")
        .expect("the stream stays open");
    String::from_utf8(payload).expect("test payloads are text")
}

/// Whether `stream` yields nothing for a moment.
async fn quiet(stream: &mut EventStream) -> bool {
    tokio::time::timeout(QUIET, stream.next()).await.is_err()
}

/// How many Redis subscriptions `topic`'s channel has.
async fn redis_subscriptions(conn: &mut redis::aio::MultiplexedConnection, topic: &str) -> i64 {
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("clinicflow:ev:{topic}"))
        .query_async(conn)
        .await
        .expect("PUBSUB NUMSUB answers");
    count
}

#[tokio::test]
async fn an_event_reaches_the_subscribers_of_every_instance_once() {
    let Some(url) = redis_url() else { return };
    let (first, second) = (bus(&url), bus(&url));
    let topic = unique_topic("queue");
    let mut on_first = subscribe(&first, &topic).await;
    let mut on_second = subscribe(&second, &topic).await;

    publish(&first, &topic, "one").await;
    assert_eq!(next(&mut on_second).await, "one");
    assert_eq!(next(&mut on_first).await, "one");

    // Redis keeps the order of messages, so had `one` come back to the first instance's
    // subscriber through Redis, it would come before `two`.
    publish(&second, &topic, "two").await;
    assert_eq!(next(&mut on_first).await, "two");
    assert_eq!(next(&mut on_second).await, "two");
    publish(&first, &topic, "three").await;
    assert_eq!(next(&mut on_second).await, "three");
    assert_eq!(next(&mut on_first).await, "three");
    assert!(quiet(&mut on_first).await, "each event comes once");
    assert!(quiet(&mut on_second).await, "each event comes once");
    assert_eq!(first.redis_errors() + second.redis_errors(), 0);
}

#[tokio::test]
async fn subscribers_get_only_their_topic() {
    let Some(url) = redis_url() else { return };
    let (first, second) = (bus(&url), bus(&url));
    let (mine, other) = (unique_topic("queue"), unique_topic("queue"));
    let mut on_mine = subscribe(&second, &mine).await;
    let mut on_other = subscribe(&second, &other).await;
    let mut mine_here = subscribe(&first, &mine).await;

    publish(&first, &other, "other").await;
    publish(&first, &mine, "mine").await;
    assert_eq!(next(&mut on_mine).await, "mine");
    assert_eq!(next(&mut mine_here).await, "mine");
    assert_eq!(next(&mut on_other).await, "other");
    assert!(quiet(&mut on_mine).await);
    assert!(quiet(&mut mine_here).await);
}

#[tokio::test]
async fn every_subscriber_of_an_instance_shares_one_redis_subscription() {
    let Some(url) = redis_url() else { return };
    let (first, second) = (bus(&url), bus(&url));
    let topic = unique_topic("queue");
    let mut conn = redis_conn(&url).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(subscribe(&first, &topic).await);
    }
    assert_eq!(redis_subscriptions(&mut conn, &topic).await, 1);
    let mut on_second = subscribe(&second, &topic).await;
    assert_eq!(redis_subscriptions(&mut conn, &topic).await, 2);

    publish(&second, &topic, "changed").await;
    for stream in &mut streams {
        assert_eq!(next(stream).await, "changed");
    }
    assert_eq!(next(&mut on_second).await, "changed");

    drop(streams);
    let unsubscribed = tokio::time::timeout(WAIT, async {
        while redis_subscriptions(&mut conn, &topic).await != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        unsubscribed.is_ok(),
        "an instance whose subscribers are gone leaves the channel"
    );
    publish(&first, &topic, "still").await;
    assert_eq!(next(&mut on_second).await, "still");
}

#[tokio::test]
async fn a_message_from_another_publisher_is_delivered_whole() {
    let Some(url) = redis_url() else { return };
    let bus = bus(&url);
    let topic = unique_topic("queue");
    let mut stream = subscribe(&bus, &topic).await;
    let mut conn = redis_conn(&url).await;
    redis::cmd("PUBLISH")
        .arg(format!("clinicflow:ev:{topic}"))
        .arg("from redis-cli")
        .query_async::<()>(&mut conn)
        .await
        .expect("PUBLISH answers");
    assert_eq!(next(&mut stream).await, "from redis-cli");
}

#[tokio::test]
async fn a_bus_on_an_unreachable_redis_still_delivers_to_its_own_subscribers() {
    let bus = RedisEventBus::connect(&format!("redis://127.0.0.1:{}", closed_port()))
        .expect("a well-formed URL is accepted while Redis is down");
    let mut first = subscribe(&bus, "queue:1").await;
    let mut second = subscribe(&bus, "queue:1").await;
    let mut other = subscribe(&bus, "queue:2").await;

    publish(&bus, "queue:1", "one").await;
    publish(&bus, "queue:1", "two").await;
    for stream in [&mut first, &mut second] {
        assert_eq!(next(stream).await, "one");
        assert_eq!(next(stream).await, "two");
        assert!(quiet(stream).await, "each event comes once");
    }
    assert!(quiet(&mut other).await);
    assert!(bus.redis_errors() >= 1);

    // Past the pause after a failed publish, so Redis is tried (and fails) again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    publish(&bus, "queue:1", "three").await;
    assert_eq!(next(&mut first).await, "three");
    assert_eq!(next(&mut second).await, "three");
}

#[tokio::test]
async fn dropping_the_bus_ends_its_subscriptions() {
    let bus = RedisEventBus::connect(&format!("redis://127.0.0.1:{}", closed_port()))
        .expect("a well-formed URL is accepted while Redis is down");
    let mut stream = subscribe(&bus, "queue:1").await;
    drop(bus);
    let end = tokio::time::timeout(WAIT, stream.next()).await;
    assert_eq!(end, Ok(None), "the stream ends once the bus is gone");
}

#[tokio::test]
async fn a_redis_that_never_answers_does_not_hold_up_publishers_or_subscribers() {
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
    let bus = RedisEventBus::connect(&format!("redis://{addr}"))
        .expect("a well-formed URL is accepted")
        .with_timeout(Duration::from_millis(100));
    let mut stream = subscribe(&bus, "queue:1").await;
    publish(&bus, "queue:1", "changed").await;
    assert_eq!(next(&mut stream).await, "changed");
    assert_eq!(bus.redis_errors(), 1, "the publish timed out");
    silent.abort();
}

/// Publishes on `topic` from `publisher` until `stream` gets one of those events; fails the
/// test if none arrives within 15 s.
async fn publish_until_received(publisher: &RedisEventBus, topic: &str, stream: &mut EventStream) {
    let received = tokio::time::timeout(Duration::from_secs(15), async {
        for attempt in 0.. {
            let payload = format!("after restore {attempt}");
            publish(publisher, topic, &payload).await;
            if let Ok(event) = tokio::time::timeout(Duration::from_millis(200), stream.next()).await
            {
                let event = event.expect("the stream stays open");
                if event.starts_with(b"after restore") {
                    return;
                }
            }
        }
    })
    .await;
    assert!(received.is_ok(), "events flow again once Redis is back");
}

#[tokio::test]
async fn subscriptions_are_restored_when_the_connection_to_redis_returns() {
    let Some(url) = redis_url() else { return };
    let relay = Relay::start(redis_addr(&url).await).await;
    let direct = bus(&url);
    let relayed = RedisEventBus::connect(&url_through(&url, relay.addr))
        .expect("the relayed URL is valid")
        .with_timeout(Duration::from_millis(500));
    let topic = unique_topic("queue");
    let mut stream = subscribe(&relayed, &topic).await;
    publish(&direct, &topic, "before").await;
    assert_eq!(next(&mut stream).await, "before");
    assert_eq!(relayed.redis_errors(), 0);

    relay.cut();
    let noticed = tokio::time::timeout(WAIT, async {
        while relayed.redis_errors() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        noticed.is_ok(),
        "the lost subscription connection is noticed"
    );
    publish(&relayed, &topic, "local while cut").await;
    assert_eq!(next(&mut stream).await, "local while cut");
    let later_topic = unique_topic("queue");
    let mut later = subscribe(&relayed, &later_topic).await;

    relay.restore();
    publish_until_received(&direct, &topic, &mut stream).await;
    publish_until_received(&direct, &later_topic, &mut later).await;
    let mut on_direct = subscribe(&direct, &topic).await;
    publish_until_received(&relayed, &topic, &mut on_direct).await;
}

#[tokio::test(flavor = "current_thread")]
async fn failures_are_warned_about_once_without_the_payload() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let bus = RedisEventBus::connect(&format!("redis://127.0.0.1:{}", closed_port()))
        .expect("a well-formed URL is accepted while Redis is down");
    let mut stream = subscribe(&bus, "patient:ada-lovelace").await;
    publish(&bus, "patient:ada-lovelace", "s3cret payload").await;
    // Past the pause after a failure, so Redis is tried (and fails) again; the subscription
    // connection is retried meanwhile too.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    publish(&bus, "patient:ada-lovelace", "s3cret payload").await;
    assert_eq!(next(&mut stream).await, "s3cret payload");

    assert!(bus.redis_errors() >= 4, "{}", bus.redis_errors());
    let logs = captured.text();
    assert_eq!(
        logs.matches("Redis event publish failed").count(),
        1,
        "{logs}"
    );
    assert_eq!(
        logs.matches("Redis event subscription failed").count(),
        1,
        "{logs}"
    );
    assert!(!logs.contains("s3cret"), "{logs}");
    assert!(!logs.contains("ada-lovelace"), "{logs}");
}
