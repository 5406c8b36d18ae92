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
    a_webhook_aimed_inside_is_refused_when_set_and_nothing_is_stored,
    production_refuses_plain_http_webhooks_except_to_allowed_hosts,
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
        crate::helpers::allow_loopback_webhooks(&mut settings);
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

// Where webhooks may point: refused when set, and refused again after resolution at delivery.

async fn a_webhook_aimed_inside_is_refused_when_set_and_nothing_is_stored(backend: TestBackend) {
    let Some(app) = crate::helpers::TestApp::spawn(backend).await else {
        return;
    };
    for url in [
        "http://127.0.0.1:9/hook",
        "http://2130706433/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[fd00::1]/hook",
        "http://localhost:8080/hook",
    ] {
        let res = app
            .put("/api/v1/clinic/webhook", serde_json::json!({ "url": url }))
            .await;
        assert_eq!(
            res.status(),
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            "{url}"
        );
        let problem: serde_json::Value = res.json().await.expect("a problem");
        assert_eq!(
            problem["code"], "webhook_target_refused",
            "{url}: {problem}"
        );
        assert_eq!(
            app.get("/api/v1/clinic/webhook").await.status(),
            reqwest::StatusCode::NOT_FOUND,
            "{url} was not stored"
        );
    }
    // A public name passes when set (its addresses are checked at delivery); plain http is
    // fine in development.
    let res = app
        .put(
            "/api/v1/clinic/webhook",
            serde_json::json!({"url": "http://hooks.example/clinicflow"}),
        )
        .await;
    assert_eq!(res.status(), reqwest::StatusCode::OK);
}

async fn production_refuses_plain_http_webhooks_except_to_allowed_hosts(backend: TestBackend) {
    let Some(app) = crate::helpers::TestApp::spawn_with(backend, |s| {
        s.profile = clinicflow::config::Profile::Production;
        s.metrics.token = Some(SecretString::from("a metrics token of at least 32 bytes"));
        s.webhook.allowed_hosts = vec!["relay.internal".into()];
    })
    .await
    else {
        return;
    };
    let put =
        |url: &'static str| app.put("/api/v1/clinic/webhook", serde_json::json!({ "url": url }));
    let res = put("http://hooks.example/clinicflow").await;
    assert_eq!(res.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let problem: serde_json::Value = res.json().await.expect("a problem");
    assert_eq!(problem["code"], "webhook_target_refused", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("https")),
        "{problem}"
    );
    assert_eq!(put("https://hooks.example/clinicflow").await.status(), 200);
    // The operator's relay on the internal network may speak plain http.
    assert_eq!(put("http://relay.internal:8080/hook").await.status(), 200);
}

/// A notifier under `policy` (development: plain http allowed) with short timeouts.
fn notifier(allow: &[&str]) -> clinicflow::webhook::WebhookNotifier {
    let allow: Vec<String> = allow.iter().map(|a| (*a).to_owned()).collect();
    clinicflow::webhook::WebhookNotifier::new(
        Arc::new(ManualClock::new(start())),
        clinicflow::webhook::WebhookTimeouts {
            connect: StdDuration::from_secs(2),
            request: StdDuration::from_secs(5),
        },
        clinicflow_domain::WebhookPolicy::new(false, &allow).expect("a valid allow-list"),
    )
    .expect("a client")
}

fn endpoint(url: &str) -> clinicflow_domain::WebhookEndpoint {
    clinicflow_domain::WebhookEndpoint {
        url: clinicflow_domain::WebhookUrl::parse(url).expect("a URL"),
        secret: clinicflow_domain::WebhookSecret::from_random([7; 32]),
    }
}

fn message() -> OutboxMessage {
    let now = start();
    OutboxMessage {
        id: OutboxMessageId::from_uuid(Uuid::now_v7()),
        clinic_id: ClinicId::from_uuid(Uuid::now_v7()),
        kind: EventKind::BookingConfirmed,
        appointment_id: None,
        payload: "{}".into(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        delivered_at: None,
        created_at: now,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_to_loopback_is_refused_at_delivery_and_never_called() {
    let receiver = Receiver::start().await;
    let port = receiver.url.rsplit_once(':').expect("a port").1;
    // `localhost` stands for any name whose DNS answer turned internal after it was set.
    let url = format!("http://localhost:{port}");
    let outcome = notifier(&[]).post(&endpoint(&url), &[message()]).await;
    let clinicflow_domain::AttemptOutcome::Refused(why) = &outcome else {
        panic!("refused, not {outcome:?}");
    };
    assert!(why.contains("loopback"), "{why}");
    // A written address is refused before any connection too, whatever was stored earlier.
    let outcome = notifier(&[])
        .post(&endpoint(&receiver.url), &[message()])
        .await;
    assert!(
        matches!(outcome, clinicflow_domain::AttemptOutcome::Refused(_)),
        "{outcome:?}"
    );
    assert!(receiver.seen().is_empty(), "the receiver was never called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_allow_list_lets_deliveries_reach_an_internal_receiver() {
    let receiver = Receiver::start().await;
    let port = receiver.url.rsplit_once(':').expect("a port").1;
    let by_name = format!("http://localhost:{port}");
    // By network: every address `localhost` resolves to is allowed.
    let outcome = notifier(&["127.0.0.0/8", "::1"])
        .post(&endpoint(&by_name), &[message()])
        .await;
    assert_eq!(outcome, clinicflow_domain::AttemptOutcome::Delivered);
    // By name: whatever it resolves to.
    let outcome = notifier(&["localhost"])
        .post(&endpoint(&by_name), &[message()])
        .await;
    assert_eq!(outcome, clinicflow_domain::AttemptOutcome::Delivered);
    // By address, written in the URL.
    let outcome = notifier(&["127.0.0.1"])
        .post(&endpoint(&receiver.url), &[message()])
        .await;
    assert_eq!(outcome, clinicflow_domain::AttemptOutcome::Delivered);
    assert_eq!(receiver.seen().len(), 3);
}
