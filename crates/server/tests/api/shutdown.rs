//! Graceful shutdown of the real binary: on SIGTERM it stops accepting, lets a request in
//! flight finish and answer, ends its live streams with a last event, and exits cleanly.

use std::process::Command;
use std::time::{Duration, Instant};

use clinicflow_domain::{Actor, PatientId, Role};
use clinicflow_services::NewClinic;
use clinicflow_store::testing::{TestBackend, TestDatabase};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dispatch::{eventually, server_on, settings};

crate::on_both_backends!(
    sigterm_lets_a_request_in_flight_finish_and_refuses_new_ones,
    sigterm_ends_every_live_stream_at_once_and_exits_promptly,
);

/// A port nothing listens on yet.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port()
}

/// A clinic on `db`, the real binary serving it on a free port with `env`, and its admin
/// logged in.
struct Started {
    wiring: clinicflow::Wiring,
    clinic: clinicflow_domain::Clinic,
    admin: clinicflow_domain::User,
    server: std::process::Child,
    port: u16,
    base: String,
    client: reqwest::Client,
    token: String,
}

async fn start(db: &TestDatabase, name: &str, env: &[(&str, &str)]) -> Started {
    let wiring = clinicflow::connect(&settings(db)).await.expect("wiring");
    let admin_email = format!("admin@{name}.example");
    let (clinic, admin) = wiring
        .services
        .clinics
        .create(NewClinic {
            name: format!("{name} clinic"),
            time_zone: "UTC".into(),
            admin_email: admin_email.clone(),
            admin_password: "admin password 123".into(),
        })
        .await
        .expect("clinic");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = server_on(db, &format!("127.0.0.1:{port}"), env);
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(60), "the server answers", || async {
        client
            .get(format!("{base}/health/live"))
            .send()
            .await
            .is_ok()
    })
    .await;
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": admin_email, "password": "admin password 123"}))
        .send()
        .await
        .expect("login answers")
        .json()
        .await
        .expect("json");
    let token = login["access_token"].as_str().expect("a token").to_owned();
    Started {
        wiring,
        clinic,
        admin,
        server,
        port,
        base,
        client,
        token,
    }
}

async fn sigterm_lets_a_request_in_flight_finish_and_refuses_new_ones(backend: TestBackend) {
    let Some(db) = TestDatabase::new(backend).await else {
        return;
    };
    let Started {
        wiring,
        clinic,
        admin,
        mut server,
        port,
        token,
        ..
    } = start(
        &db,
        "shutdown",
        &[("CLINICFLOW_HTTP_SHUTDOWN_TIMEOUT_SECS", "20")],
    )
    .await;

    // A registration whose body is still arriving when the signal comes.
    let body = json!({"given_name": "Ada", "family_name": "Lovelace", "birth_date": "1985-12-10",
                      "phone": "+4915112345678"})
    .to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    let head = format!(
        "POST /api/v1/patients HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());

    // New connections are refused once the server stopped accepting.
    eventually(
        Duration::from_secs(10),
        "new connections are refused",
        || async { TcpStream::connect(("127.0.0.1", port)).await.is_err() },
    )
    .await;

    conn.write_all(rest.as_bytes())
        .await
        .expect("the rest is sent");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_string(&mut answer))
        .await
        .expect("answered before the shutdown timeout")
        .expect("read");
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the request in flight was served: {answer}"
    );
    let (_, json_body) = answer.split_once("\r\n\r\n").expect("a body");
    let created: Value = serde_json::from_str(json_body).expect("json");
    let id: uuid::Uuid = created["id"]
        .as_str()
        .expect("an id")
        .parse()
        .expect("uuid");

    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = server.try_wait().expect("waits") {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server exits after its last request"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "a clean exit: {exit:?}");

    // And what it acknowledged is stored.
    let actor = Actor {
        user_id: admin.id,
        clinic_id: clinic.id,
        role: Role::Admin,
        practitioner_id: None,
        request_id: None,
    };
    let stored = wiring
        .services
        .patients
        .get(&actor, PatientId::from_uuid(id))
        .await
        .expect("the acknowledged patient is stored");
    assert_eq!(stored.name.family(), "Lovelace");
}

/// Opens a live board with `token` and reads until its first board has arrived.
async fn open_stream(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> (
    futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    String,
) {
    use futures::StreamExt;
    let res = client
        .get(format!("{base}/api/v1/queue/stream"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let mut body = res.bytes_stream().map(|c| c.map(|b| b.to_vec())).boxed();
    let mut seen = String::new();
    while !seen.contains("event: queue\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(30), body.next())
            .await
            .expect("the first board arrives")
            .expect("the stream stays open")
            .expect("a chunk");
        seen.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    (body, seen)
}

async fn sigterm_ends_every_live_stream_at_once_and_exits_promptly(backend: TestBackend) {
    use futures::StreamExt;
    const STREAMS: usize = 100;
    let Some(db) = TestDatabase::new(backend).await else {
        return;
    };
    // The shutdown timeout is far above the bound checked: only ending the streams meets it.
    let Started {
        mut server,
        base,
        client,
        token,
        ..
    } = start(
        &db,
        "streams",
        &[
            ("CLINICFLOW_HTTP_SHUTDOWN_TIMEOUT_SECS", "30"),
            ("CLINICFLOW_HTTP_MAX_STREAMS_PER_USER", "200"),
        ],
    )
    .await;

    let opened =
        futures::future::join_all((0..STREAMS).map(|_| open_stream(&client, &base, &token))).await;
    // A stream whose client has already gone must not hold the shutdown either.
    drop(open_stream(&client, &base, &token).await);
    let readers = opened
        .into_iter()
        .map(|(mut body, mut seen)| {
            tokio::spawn(async move {
                // Until the server ends the stream; an error is a connection cut, not an end.
                while let Some(chunk) = body.next().await {
                    let Ok(chunk) = chunk else {
                        return (seen, false);
                    };
                    seen.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
                }
                (seen, true)
            })
        })
        .collect::<Vec<_>>();

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let signalled = Instant::now();
    let exit = loop {
        if let Some(exit) = server.try_wait().expect("waits") {
            break exit;
        }
        if signalled.elapsed() > Duration::from_secs(2) {
            let _ = server.kill();
            panic!("the server did not exit within 2 s of SIGTERM with {STREAMS} open streams");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "a clean exit: {exit:?}");

    for reader in readers {
        let (seen, ended) = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("the stream has ended")
            .expect("the reader");
        assert!(
            seen.ends_with("event: end\ndata: {\"reason\":\"shutdown\",\"reconnect\":true}\n\n"),
            "the last event tells the client to reconnect: {seen}"
        );
        assert!(ended, "the stream ended cleanly, not by a cut connection");
    }
}
