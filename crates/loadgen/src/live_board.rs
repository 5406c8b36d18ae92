//! `live-board`: many live-board streams (`GET /api/v1/queue/stream`) on one server, one
//! queue change, and how long each stream took to show it.
//!
//! Each stream is a plain HTTP/1.1 connection read raw (reqwest would hold far more per
//! connection than the measurement needs); a board is recognised by its `event: queue` line,
//! which the server writes in one piece. All streams log in as one user: the server under
//! test must allow that many streams per user (`CLINICFLOW_HTTP_MAX_STREAMS_PER_USER`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, watch};

use crate::session::Session;

/// What the scenario is asked to do.
pub struct Plan {
    /// Streams to open.
    pub subscribers: usize,
    /// Connections being opened at once.
    pub connecting: usize,
    /// The server's process id, whose memory is read from `/proc`.
    pub server_pid: Option<u32>,
    /// How long to wait for the first boards, and then for the change.
    pub patience: Duration,
}

const BOARD: &[u8] = b"event: queue\n";

/// How one stream went.
enum Outcome {
    /// Refused (not 200) or failed before its first board.
    Refused,
    /// Its first board came, then the change after this long (`None`: never, within patience).
    Followed(Option<Duration>),
}

/// Runs the scenario and prints its `result` line.
pub async fn run(session: &Session, plan: Plan) -> Result<(), String> {
    let token = session.bearer().await?.ok_or("logged in without a token")?;
    let address = session
        .base
        .strip_prefix("http://")
        .ok_or("the base URL must be http://host:port")?
        .to_owned();
    let ready = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Notify::new());
    // The instant the change was sent; streams measure from it.
    let (changed_tx, changed) = watch::channel(None::<Instant>);
    let gate = Arc::new(Semaphore::new(plan.connecting.max(1)));
    let opened = Instant::now();
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..plan.subscribers {
        let (address, token, gate) = (address.clone(), token.clone(), gate.clone());
        let (ready, refused, progress) = (ready.clone(), refused.clone(), progress.clone());
        let mut changed = changed.clone();
        let patience = plan.patience;
        streams.spawn(async move {
            let permit = gate.acquire_owned().await.ok();
            let mut connection = match open(&address, &token).await {
                Ok(c) => c,
                Err(_) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    progress.notify_one();
                    return Outcome::Refused;
                }
            };
            let mut seen = connection.1;
            let first = read_boards(&mut connection.0, &mut seen, 1).await;
            drop(permit);
            if first.is_err() {
                refused.fetch_add(1, Ordering::Relaxed);
                progress.notify_one();
                return Outcome::Refused;
            }
            ready.fetch_add(1, Ordering::Relaxed);
            progress.notify_one();
            let second =
                tokio::time::timeout(patience * 2, read_boards(&mut connection.0, &mut seen, 1))
                    .await;
            let arrived = Instant::now();
            let sent = changed
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|t| *t);
            Outcome::Followed(match (second, sent) {
                (Ok(Ok(())), Some(sent)) => Some(arrived.saturating_duration_since(sent)),
                _ => None,
            })
        });
    }
    let deadline = Instant::now() + plan.patience;
    while ready.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed) < plan.subscribers
        && Instant::now() < deadline
    {
        let _ = tokio::time::timeout(Duration::from_millis(200), progress.notified()).await;
    }
    let ready_after = opened.elapsed();
    let ready_count = ready.load(Ordering::Relaxed);
    eprintln!(
        "live-board: {ready_count} of {} streams have their first board after {:.1} s ({} refused or failed)",
        plan.subscribers,
        ready_after.as_secs_f64(),
        refused.load(Ordering::Relaxed)
    );
    let (rss_before, _) = memory(plan.server_pid);
    let patients = crate::clinic::patients(session, 50).await?;
    let sent = Instant::now();
    changed_tx.send_replace(Some(sent));
    let change = walk_in(session, patients).await?;
    let answered = sent.elapsed();
    let mut latencies = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let (mut missed, mut refused_total) = (0_usize, 0_usize);
    while let Some(outcome) = streams.join_next().await {
        match outcome.map_err(|e| e.to_string())? {
            Outcome::Refused => refused_total += 1,
            Outcome::Followed(Some(latency)) => {
                latencies
                    .record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX))
                    .map_err(|e| e.to_string())?;
            }
            Outcome::Followed(None) => missed += 1,
        }
    }
    let (rss, hwm) = memory(plan.server_pid);
    let received = latencies.len();
    println!(
        "result scenario=live-board mode=live subscribers={} ready={ready_count} ready_s={:.2} \
         refused={refused_total} received={received} missed={missed} p50_us={} p99_us={} \
         max_us={} change_us={} change={change} rss_before_kb={} rss_kb={} hwm_kb={}",
        plan.subscribers,
        ready_after.as_secs_f64(),
        latencies.value_at_quantile(0.5),
        latencies.value_at_quantile(0.99),
        latencies.max(),
        answered.as_micros(),
        rss_before.unwrap_or(0),
        rss.unwrap_or(0),
        hwm.unwrap_or(0),
    );
    eprintln!(
        "live-board: {received} of {} streams got the change (p50 {:.1} ms, p99 {:.1} ms, last {:.1} ms), \
         {missed} did not, {refused_total} refused; server RSS {} MB (peak {} MB)",
        plan.subscribers,
        latencies.value_at_quantile(0.5) as f64 / 1000.0,
        latencies.value_at_quantile(0.99) as f64 / 1000.0,
        latencies.max() as f64 / 1000.0,
        rss.unwrap_or(0) / 1024,
        hwm.unwrap_or(0) / 1024,
    );
    Ok(())
}

/// Opens a stream: the connection, and what was read past the response head.
async fn open(address: &str, token: &str) -> Result<(TcpStream, Vec<u8>), String> {
    let mut connection = TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET /api/v1/queue/stream HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    connection
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 2048];
    loop {
        let n = connection
            .read(&mut chunk)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before answering".into());
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n") {
            if !head.starts_with(b"HTTP/1.1 200") {
                return Err(String::from_utf8_lossy(&head[..end]).into_owned());
            }
            return Ok((connection, head.split_off(end + 4)));
        }
    }
}

/// Reads until `boards` more boards arrived; keeps only the tail a split board line needs.
async fn read_boards(
    connection: &mut TcpStream,
    seen: &mut Vec<u8>,
    boards: usize,
) -> Result<(), String> {
    let mut count = 0;
    let mut chunk = [0_u8; 4096];
    loop {
        while let Some(at) = find(seen, BOARD) {
            seen.drain(..at + BOARD.len());
            count += 1;
            if count == boards {
                return Ok(());
            }
        }
        let keep = seen.len().saturating_sub(BOARD.len());
        seen.drain(..keep);
        let n = connection
            .read(&mut chunk)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the stream ended".into());
        }
        seen.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The change: a walk-in of the first patient not already waiting; its HTTP status.
async fn walk_in(session: &Session, patients: Vec<String>) -> Result<u16, String> {
    for patient in patients {
        let res = session
            .request(reqwest::Method::POST, "/api/v1/queue/entries")
            .await?
            .json(&serde_json::json!({"patient_id": patient, "category": "standard"}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match res.status().as_u16() {
            201 => return Ok(201),
            // Already waiting: the next patient.
            409 => continue,
            other => return Err(format!("the walk-in answered {other}")),
        }
    }
    Err("all of the first 50 patients already wait".into())
}

/// The server's resident and peak resident memory in KiB (`VmRSS`, `VmHWM`).
fn memory(pid: Option<u32>) -> (Option<u64>, Option<u64>) {
    let Some(status) = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
    else {
        return (None, None);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    (field("VmRSS:"), field("VmHWM:"))
}
