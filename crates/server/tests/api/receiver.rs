//! A webhook receiver for tests: a real HTTP server on loopback that answers from a script
//! and remembers every request.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// How long it waits before answering.
    pub delay: Duration,
}

impl Reply {
    /// Answers `status` at once.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
        }
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `clinicflow-timestamp`.
    pub timestamp: String,
    /// `clinicflow-signature`.
    pub signature: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// The `id` of every message in the body, in order.
    pub ids: Vec<String>,
    /// What the receiver answered.
    pub status: u16,
}

impl Delivery {
    /// Whether the signature is HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`, checked
    /// the way a receiver would (constant-time comparison through `verify_slice`).
    pub fn verifies_with(&self, secret: &str) -> bool {
        let Some(hex_sig) = self.signature.strip_prefix("v1=") else {
            return false;
        };
        let Ok(sig) = hex::decode(hex_sig) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(self.timestamp.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        mac.verify_slice(&sig).is_ok()
    }
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    otherwise: Mutex<Option<Reply>>,
    seen: Mutex<Vec<Delivery>>,
    in_flight: Mutex<HashMap<String, usize>>,
    overlaps: AtomicUsize,
}

/// A running receiver; it stops when dropped.
pub struct Receiver {
    /// Where to POST.
    pub url: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    /// Starts a receiver that answers 200 unless scripted otherwise.
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let shared = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::from(shared.clone()))
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::to(receive))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("listening")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hooks/clinicflow"),
            state,
            handle,
        }
    }

    /// The next requests get these answers, in order; then the default again.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().expect("script").extend(replies);
    }

    /// Every unscripted request gets `reply` (200 at once when never set).
    pub fn otherwise(&self, reply: Reply) {
        *self.state.otherwise.lock().expect("default") = Some(reply);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Delivery> {
        self.state.seen.lock().expect("seen").clone()
    }

    /// How often a message arrived while an earlier request with it was still unanswered.
    pub fn overlaps(&self) -> usize {
        self.state.overlaps.load(Ordering::SeqCst)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let ids: Vec<String> = serde_json::from_slice::<Vec<serde_json::Value>>(&body)
        .map(|items| {
            items
                .iter()
                .map(|m| m["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let reply = state
        .script
        .lock()
        .expect("script")
        .pop_front()
        .or(*state.otherwise.lock().expect("default"))
        .unwrap_or(Reply::status(200));
    let _in_flight = InFlight::enter(&state, &ids);
    state.seen.lock().expect("seen").push(Delivery {
        timestamp: header("clinicflow-timestamp"),
        signature: header("clinicflow-signature"),
        body: body.to_vec(),
        ids: ids.clone(),
        status: reply.status,
    });
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).expect("a status"))
        .finish()
}

/// Marks messages as being received until dropped, also when the sender hangs up early and
/// the handler is cancelled.
struct InFlight<'a> {
    state: &'a State,
    ids: Vec<String>,
}

impl<'a> InFlight<'a> {
    fn enter(state: &'a State, ids: &[String]) -> Self {
        let mut in_flight = state.in_flight.lock().expect("in flight");
        for id in ids {
            let count = in_flight.entry(id.clone()).or_default();
            if *count > 0 {
                state.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            *count += 1;
        }
        Self {
            state,
            ids: ids.to_vec(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.state.in_flight.lock().expect("in flight");
        for id in &self.ids {
            if let Some(count) = in_flight.get_mut(id) {
                *count -= 1;
            }
        }
    }
}
