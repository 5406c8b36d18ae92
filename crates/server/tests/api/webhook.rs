//! The webhook channel against a real receiver on loopback: signed batches, the retry
//! schedule under a clock the test moves, dead-lettering and timeouts. The dispatch rounds
//! are driven by the test, through the same service and channels the server's worker uses.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use clinicflow::{Settings, Wiring};
use clinicflow_domain::{
    Actor, ClinicId, DeliveryStatus, EventKind, OutboxMessage, OutboxMessageId, RetryPolicy, Role,
};
use clinicflow_ports::{Database, ManualClock, OutboxRepo, TxMode};
use clinicflow_services::NewClinic;
use clinicflow_store::testing::{TestBackend, TestDatabase};
use secrecy::SecretString;
use uuid::Uuid;

use crate::receiver::{Receiver, Reply};

crate::on_both_backends!(
    batches_are_signed_json_arrays_a_receiver_can_verify,
    a_receiver_failing_three_times_then_succeeding_sees_one_id_and_no_attempt_after_success,
    a_refusal_is_dead_at_once_and_repeated_failures_die_after_the_last_attempt,
    a_receiver_that_does_not_answer_in_time_is_tried_again,
);

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0)
        .single()
        .expect("valid")
}

/// The service, its channels and a clinic whose webhook points at a receiver.
struct Fixture {
    wiring: Wiring,
    clock: Arc<ManualClock>,
    clinic: ClinicId,
    admin: Actor,
    secret: String,
    receiver: Receiver,
    _db: TestDatabase,
}

impl Fixture {
    async fn new(backend: TestBackend, configure: impl FnOnce(&mut Settings)) -> Option<Self> {
        let db = TestDatabase::new(backend).await?;
        let mut settings = Settings {
            database_url: SecretString::from(db.url.clone()),
            ..Settings::default()
        };
        configure(&mut settings);
        let clock = Arc::new(ManualClock::new(start()));
        let wiring = clinicflow::connect_with_clock(&settings, clock.clone())
            .await
            .expect("connected");
        let receiver = Receiver::start().await;
        let (clinic, admin, secret) = hooked_clinic(&wiring, &receiver).await;
        Some(Self {
            secret,
            wiring,
            clock,
            clinic,
            admin,
            receiver,
            _db: db,
        })
    }

    /// Writes `n` messages due now, as a use case would.
    async fn enqueue(&self, clinic: ClinicId, n: usize) -> Vec<OutboxMessageId> {
        enqueue(&self.wiring, clinic, n, self.clock.now()).await
    }

    async fn message(&self, id: OutboxMessageId) -> OutboxMessage {
        let mut tx = self.wiring.store.begin(TxMode::Read).await.expect("tx");
        OutboxRepo::get(&self.wiring.store, &mut tx, self.clinic, id)
            .await
            .expect("read")
            .expect("stored")
    }

    async fn round(
        &self,
        policy: &RetryPolicy,
        batch: usize,
    ) -> clinicflow_services::DispatchReport {
        self.wiring
            .services
            .outbox
            .dispatch(&self.wiring.channels, policy, 100, batch)
            .await
            .expect("a round")
    }
}

use clinicflow_ports::Clock as _;

/// A new clinic whose webhook points at `receiver`: its id, its admin, and the signing secret.
pub async fn hooked_clinic(wiring: &Wiring, receiver: &Receiver) -> (ClinicId, Actor, String) {
    let (clinic, admin) = wiring
        .services
        .clinics
        .create(NewClinic {
            name: "Hook Clinic".into(),
            time_zone: "UTC".into(),
            admin_email: "admin@hooks.example".into(),
            admin_password: "admin password 123".into(),
        })
        .await
        .expect("clinic");
    let admin = Actor {
        user_id: admin.id,
        clinic_id: clinic.id,
        role: Role::Admin,
        practitioner_id: None,
        request_id: None,
    };
    let (webhook, new_secret) = wiring
        .services
        .clinics
        .set_webhook(&admin, &receiver.url, false)
        .await
        .expect("webhook set");
    assert!(new_secret, "the first webhook gets a new secret");
    (clinic.id, admin, webhook.secret.expose().to_owned())
}

/// Writes `n` messages of `clinic` due at `now` in one unit of work, as a use case would.
pub async fn enqueue(
    wiring: &Wiring,
    clinic: ClinicId,
    n: usize,
    now: DateTime<Utc>,
) -> Vec<OutboxMessageId> {
    let mut tx = wiring.store.begin(TxMode::Write).await.expect("tx");
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = OutboxMessageId::from_uuid(Uuid::now_v7());
        let message = OutboxMessage {
            id,
            clinic_id: clinic,
            kind: EventKind::PatientCalled,
            appointment_id: None,
            payload: format!(r#"{{"id":"{id}","event":"queue.called","clinic_id":"{clinic}"}}"#),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            delivered_at: None,
            created_at: now,
        };
        OutboxRepo::enqueue(&wiring.store, &mut tx, &message)
            .await
            .expect("enqueued");
        ids.push(id);
    }
    tx.commit().await.expect("committed");
    ids
}

async fn batches_are_signed_json_arrays_a_receiver_can_verify(backend: TestBackend) {
    let Some(f) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let ids = f.enqueue(f.clinic, 5).await;
    // A clinic without a webhook: its messages go to the log, never to another clinic's receiver.
    let (other, _) = f
        .wiring
        .services
        .clinics
        .create(NewClinic {
            name: "Quiet Clinic".into(),
            time_zone: "UTC".into(),
            admin_email: "admin@quiet.example".into(),
            admin_password: "admin password 123".into(),
        })
        .await
        .expect("clinic");
    f.enqueue(other.id, 2).await;

    let report = f.round(&RetryPolicy::default(), 2).await;
    assert_eq!((report.claimed, report.delivered), (7, 7));

    let seen = f.receiver.seen();
    let mut sizes: Vec<usize> = seen.iter().map(|d| d.ids.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [1, 2, 2], "five messages in batches of at most two");
    let mut received: Vec<String> = seen.iter().flat_map(|d| d.ids.clone()).collect();
    received.sort();
    let mut sent: Vec<String> = ids.iter().map(ToString::to_string).collect();
    sent.sort();
    assert_eq!(received, sent, "each of the clinic's messages, once");
    for d in &seen {
        assert!(d.verifies_with(&f.secret), "the signature verifies");
        assert!(
            !d.verifies_with("whsec_not-the-secret"),
            "and only with the secret"
        );
        assert_eq!(d.timestamp, start().timestamp().to_string());
        let mut tampered = d.clone();
        tampered.body.push(b' ');
        assert!(!tampered.verifies_with(&f.secret), "a changed body fails");
        let mut replayed = d.clone();
        replayed.timestamp = (start().timestamp() + 600).to_string();
        assert!(
            !replayed.verifies_with(&f.secret),
            "a body cannot be re-sent under a fresh timestamp"
        );
        let body: serde_json::Value = serde_json::from_slice(&d.body).expect("JSON");
        assert!(body.is_array(), "a batch is a JSON array");
    }
    for id in ids {
        let m = f.message(id).await;
        assert_eq!((m.status, m.attempts), (DeliveryStatus::Delivered, 1));
        assert_eq!(m.delivered_at, Some(start()));
    }
}

async fn a_receiver_failing_three_times_then_succeeding_sees_one_id_and_no_attempt_after_success(
    backend: TestBackend,
) {
    let Some(f) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let policy = RetryPolicy {
        base: Duration::seconds(10),
        cap: Duration::minutes(10),
        max_attempts: 8,
    };
    f.receiver
        .script([Reply::status(500), Reply::status(503), Reply::status(429)]);
    let [id] = f.enqueue(f.clinic, 1).await[..] else {
        unreachable!("one message")
    };

    for attempt in 1..=3u32 {
        let report = f.round(&policy, 10).await;
        assert_eq!(
            (report.claimed, report.retried),
            (1, 1),
            "attempt {attempt}"
        );
        let m = f.message(id).await;
        assert_eq!((m.status, m.attempts), (DeliveryStatus::Pending, attempt));
        assert!(
            m.last_error
                .as_deref()
                .is_some_and(|e| e.contains("receiver answered"))
        );
        // Full jitter: anywhere from now up to base * 2^(attempt-1), below the cap.
        let delay = m.next_attempt_at - f.clock.now();
        let ceiling = policy.base * 2i32.pow(attempt - 1);
        assert!(
            delay >= Duration::zero() && delay <= ceiling,
            "attempt {attempt}: next try in {delay}, at most {ceiling}"
        );
        // Not due a moment before its time.
        if delay > Duration::zero() {
            f.clock.set(m.next_attempt_at - Duration::milliseconds(1));
            assert_eq!(f.round(&policy, 10).await.claimed, 0, "not yet due");
        }
        f.clock.set(m.next_attempt_at);
    }
    let report = f.round(&policy, 10).await;
    assert_eq!(report.delivered, 1, "the fourth attempt is accepted");

    // Much later, nothing is tried again.
    f.clock.advance(Duration::days(2));
    assert_eq!(f.round(&policy, 10).await.claimed, 0);
    let seen = f.receiver.seen();
    assert_eq!(
        seen.iter().map(|d| d.status).collect::<Vec<_>>(),
        [500, 503, 429, 200]
    );
    assert!(
        seen.iter().all(|d| d.ids == [id.to_string()]),
        "the same message id on every attempt"
    );
    let m = f.message(id).await;
    assert_eq!((m.status, m.attempts), (DeliveryStatus::Delivered, 4));
}

async fn a_refusal_is_dead_at_once_and_repeated_failures_die_after_the_last_attempt(
    backend: TestBackend,
) {
    let Some(f) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let policy = RetryPolicy {
        base: Duration::seconds(1),
        cap: Duration::seconds(1),
        max_attempts: 3,
    };
    f.receiver.script([Reply::status(410)]);
    let [refused] = f.enqueue(f.clinic, 1).await[..] else {
        unreachable!("one message")
    };
    let report = f.round(&policy, 10).await;
    assert_eq!(report.dead, 1, "a 410 is not tried again");
    let m = f.message(refused).await;
    assert_eq!((m.status, m.attempts), (DeliveryStatus::Dead, 1));
    assert_eq!(m.last_error.as_deref(), Some("receiver answered 410"));

    f.receiver.otherwise(Reply::status(502));
    let [failing] = f.enqueue(f.clinic, 1).await[..] else {
        unreachable!("one message")
    };
    for _ in 0..5 {
        f.round(&policy, 10).await;
        f.clock.advance(Duration::seconds(2));
    }
    let m = f.message(failing).await;
    assert_eq!(
        (m.status, m.attempts),
        (DeliveryStatus::Dead, 3),
        "dead after the third"
    );
    assert_eq!(m.last_error.as_deref(), Some("receiver answered 502"));
    assert_eq!(f.receiver.seen().len(), 1 + 3);

    // An admin sends it again once the receiver is fixed.
    f.receiver.otherwise(Reply::status(204));
    let retried = f
        .wiring
        .services
        .outbox
        .retry(&f.admin, failing)
        .await
        .expect("retried");
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert_eq!(f.round(&policy, 10).await.delivered, 1);
    assert_eq!(f.message(failing).await.status, DeliveryStatus::Delivered);
}

async fn a_receiver_that_does_not_answer_in_time_is_tried_again(backend: TestBackend) {
    let Some(f) = Fixture::new(backend, |s| {
        s.outbox.webhook_timeout_secs = 1;
        s.outbox.webhook_connect_timeout_secs = 1;
    })
    .await
    else {
        return;
    };
    f.receiver.script([Reply {
        status: 200,
        delay: StdDuration::from_secs(5),
    }]);
    let [id] = f.enqueue(f.clinic, 1).await[..] else {
        unreachable!("one message")
    };
    let report = f.round(&RetryPolicy::default(), 10).await;
    assert_eq!(report.retried, 1);
    let m = f.message(id).await;
    assert_eq!(m.status, DeliveryStatus::Pending);
    assert_eq!(m.last_error.as_deref(), Some("no answer within 1 s"));
}
