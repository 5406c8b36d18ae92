//! The dispatcher as it runs in production: several instances sharing one outbox, and a
//! server killed (SIGKILL) with messages claimed and in flight.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use clinicflow::Settings;
use clinicflow::dispatcher::{DispatchSettings, Dispatcher};
use clinicflow_domain::{AttemptOutcome, Endpoint, OutboxMessage, PageRequest, RetryPolicy};
use clinicflow_ports::Notifier;
use clinicflow_store::testing::{TestBackend, TestDatabase};
use secrecy::SecretString;

use crate::receiver::{Receiver, Reply};
use crate::webhook::{enqueue, hooked_clinic};

crate::on_both_backends!(a_server_killed_with_messages_in_flight_delivers_them_after_restart);

/// Counts what one instance delivered, then hands the batch to the real channels.
struct Counting<N> {
    inner: N,
    delivered: Arc<AtomicUsize>,
}

#[async_trait]
impl<N: Notifier> Notifier for Counting<N> {
    async fn deliver(
        &self,
        endpoint: &Endpoint,
        messages: &[OutboxMessage],
    ) -> Vec<AttemptOutcome> {
        self.delivered.fetch_add(messages.len(), Ordering::SeqCst);
        self.inner.deliver(endpoint, messages).await
    }
}

pub(crate) fn settings(db: &TestDatabase) -> Settings {
    let mut settings = Settings {
        database_url: SecretString::from(db.url.clone()),
        ..Settings::default()
    };
    // The test receivers listen on loopback.
    crate::helpers::allow_loopback_webhooks(&mut settings);
    settings
}

/// Waits until `done` holds, checking every 50 ms, or fails after `limit`.
pub(crate) async fn eventually<F: std::future::Future<Output = bool>>(
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_share_a_thousand_messages_and_send_none_twice() {
    let Some(db) = TestDatabase::new(TestBackend::Postgres).await else {
        return;
    };
    // Two wirings, two connection pools: as far as the database can tell, two servers.
    let first = clinicflow::connect(&settings(&db)).await.expect("first");
    let second = clinicflow::connect(&settings(&db)).await.expect("second");
    let receiver = Receiver::start().await;
    // A little latency, so that the instances' requests overlap in time.
    receiver.otherwise(Reply {
        status: 200,
        delay: Duration::from_millis(5),
    });
    let (clinic, admin, _) = hooked_clinic(&first, &receiver).await;
    let ids = enqueue(&first, clinic, 1000, Utc::now()).await;

    let dispatch = DispatchSettings {
        poll_interval: Duration::from_millis(20),
        claim_limit: 40,
        batch_size: 10,
        lease: chrono::Duration::seconds(120),
        retry: RetryPolicy::default(),
    };
    let counts = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let workers: Vec<Dispatcher> = [&first, &second]
        .into_iter()
        .zip(&counts)
        .map(|(wiring, count)| {
            let notifier = Counting {
                inner: wiring.channels.clone(),
                delivered: count.clone(),
            };
            Dispatcher::start(
                wiring.services.outbox.clone(),
                Arc::new(notifier),
                wiring.channels.log.clone(),
                dispatch,
                Arc::default(),
            )
        })
        .collect();
    eventually(Duration::from_secs(90), "the outbox drains", || async {
        first.services.outbox.depth().await.expect("depth") == 0
    })
    .await;
    for worker in workers {
        worker.stop().await;
    }

    let seen = receiver.seen();
    let mut received: Vec<String> = seen.iter().flat_map(|d| d.ids.clone()).collect();
    assert_eq!(received.len(), 1000, "no message was sent twice");
    received.sort();
    received.dedup();
    assert_eq!(received.len(), 1000, "every message was sent");
    assert_eq!(
        receiver.overlaps(),
        0,
        "never one message in two requests at once"
    );
    let [a, b] = counts.map(|c| c.load(Ordering::SeqCst));
    assert_eq!(a + b, 1000);
    assert!(a > 0 && b > 0, "both instances delivered: {a} and {b}");
    let delivered = first
        .services
        .outbox
        .list(&admin, Some("delivered"), PageRequest::first(1))
        .await
        .expect("list");
    assert_eq!(delivered.total, ids.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_postgres_deliver_a_thousand_messages_once_each() {
    let Some(db) = TestDatabase::new(TestBackend::Postgres).await else {
        return;
    };
    let wiring = clinicflow::connect(&settings(&db)).await.expect("wiring");
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply {
        status: 200,
        delay: Duration::from_millis(5),
    });
    let (clinic, admin, _) = hooked_clinic(&wiring, &receiver).await;
    let ids = enqueue(&wiring, clinic, 1000, Utc::now()).await;
    let mut servers = [server(&db), server(&db)];
    eventually(Duration::from_secs(90), "the outbox drains", || async {
        wiring.services.outbox.depth().await.expect("depth") == 0
    })
    .await;
    for s in &mut servers {
        s.kill().expect("stopped");
        s.wait().expect("reaped");
    }
    let mut received: Vec<String> = receiver.seen().iter().flat_map(|d| d.ids.clone()).collect();
    assert_eq!(received.len(), 1000, "no message was sent twice");
    received.sort();
    received.dedup();
    assert_eq!(received.len(), 1000, "every message was sent");
    assert_eq!(receiver.overlaps(), 0);
    let delivered = wiring
        .services
        .outbox
        .list(&admin, Some("delivered"), PageRequest::first(1))
        .await
        .expect("list");
    assert_eq!(delivered.total, ids.len() as u64);
}

/// The real server binary, on `db`, sending to webhooks with short timeouts and lease.
fn server(db: &TestDatabase) -> Child {
    server_on(db, "127.0.0.1:0", &[])
}

/// The real server binary on `db`, listening on `bind`, with `env` set on top.
pub(crate) fn server_on(db: &TestDatabase, bind: &str, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_clinicflow"))
        .arg("serve")
        .env_remove("REDIS_URL")
        .env("DATABASE_URL", &db.url)
        .env("CLINICFLOW_BIND", bind)
        .env("CLINICFLOW_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
        .envs(env.iter().copied())
        .env("CLINICFLOW_PROFILE", "development")
        .env("CLINICFLOW_OUTBOX_POLL_INTERVAL_MS", "100")
        .env("CLINICFLOW_OUTBOX_WEBHOOK_CONNECT_TIMEOUT_SECS", "1")
        .env("CLINICFLOW_OUTBOX_WEBHOOK_TIMEOUT_SECS", "2")
        .env("CLINICFLOW_OUTBOX_LEASE_SECS", "4")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts")
}

async fn a_server_killed_with_messages_in_flight_delivers_them_after_restart(backend: TestBackend) {
    let Some(db) = TestDatabase::new(backend).await else {
        return;
    };
    let wiring = clinicflow::connect(&settings(&db)).await.expect("wiring");
    let receiver = Receiver::start().await;
    // The first server's requests hang (and would fail): it is killed while they are in flight.
    receiver.otherwise(Reply {
        status: 503,
        delay: Duration::from_secs(60),
    });
    let (clinic, admin, _) = hooked_clinic(&wiring, &receiver).await;
    let ids = enqueue(&wiring, clinic, 30, Utc::now()).await;

    let mut first = server(&db);
    eventually(
        Duration::from_secs(60),
        "the first server sends",
        || async { !receiver.seen().is_empty() },
    )
    .await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let claimed = wiring
        .services
        .outbox
        .list(&admin, Some("pending"), PageRequest::first(100))
        .await
        .expect("list");
    assert!(
        claimed.items.iter().any(|m| m.attempts == 1),
        "the killed server had claimed messages"
    );

    receiver.otherwise(Reply::status(200));
    let mut second = server(&db);
    eventually(
        Duration::from_secs(60),
        "the restarted server delivers all",
        || async {
            wiring
                .services
                .outbox
                .list(&admin, Some("delivered"), PageRequest::first(1))
                .await
                .expect("list")
                .total
                == ids.len() as u64
        },
    )
    .await;
    second.kill().expect("stopped");
    second.wait().expect("reaped");

    let accepted: Vec<String> = receiver
        .seen()
        .into_iter()
        .filter(|d| d.status == 200 && !d.ids.is_empty())
        .flat_map(|d| d.ids)
        .collect();
    for id in &ids {
        assert!(
            accepted.contains(&id.to_string()),
            "{id} reached the receiver after the restart"
        );
    }
    for status in ["pending", "dead"] {
        let left = wiring
            .services
            .outbox
            .list(&admin, Some(status), PageRequest::first(1))
            .await
            .expect("list");
        assert_eq!(left.total, 0, "no message left {status}");
    }
}
