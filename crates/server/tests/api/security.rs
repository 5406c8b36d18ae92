//! Security through HTTP: token rotation and reuse detection, brute-force limits and
//! lockout, roles, the audit log, request hardening.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DurationRound, Utc};
use clinicflow_domain::{Permission, Role};
use clinicflow_ports::ManualClock;
use clinicflow_store::testing::TestBackend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp, future_day, id_of};

crate::on_both_backends!(
    a_replayed_refresh_token_revokes_the_whole_family,
    logout_and_password_change_end_sessions,
    brute_force_is_throttled_and_locks_the_account,
    the_account_limit_holds_across_addresses,
    a_flood_of_bad_tokens_is_throttled_per_ip,
    failed_refreshes_are_limited_per_ip_until_one_succeeds,
    each_user_is_throttled_on_their_own_budget,
    a_trusted_proxys_forwarded_client_gets_its_own_budget_and_others_cannot_choose_one,
    roles_limit_what_each_user_may_do,
    every_route_answers_403_exactly_to_the_roles_without_its_permission,
    practitioners_see_only_their_own_patients_and_appointments,
    every_patient_data_access_is_audited,
    oversized_deep_and_unknown_input_is_refused,
);

const ADMIN: &str = "admin@clinic-a.example";

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .expect("request")
}

async fn tokens_of(res: reqwest::Response) -> (String, String) {
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900, "the default access token lifetime");
    let refresh_secs = body["refresh_expires_in"].as_i64().expect("seconds");
    assert!(
        (14 * 24 * 3600 - 60..=14 * 24 * 3600).contains(&refresh_secs),
        "{refresh_secs}"
    );
    (
        body["access_token"].as_str().expect("access").to_owned(),
        body["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

async fn a_replayed_refresh_token_revokes_the_whole_family(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_, first) = tokens_of(app.login_answer(ADMIN, ADMIN_PASSWORD).await).await;
    // The legitimate client rotates: the old token stops working, a new pair comes back.
    let (access, second) = tokens_of(refresh(&app, &first).await).await;
    assert_ne!(first, second);
    assert_eq!(
        app.as_user(&access, app.client.get(app.url("/api/v1/me")))
            .await
            .status(),
        StatusCode::OK
    );
    // A thief replays the stolen first token: refused, and the whole family dies with it.
    assert_eq!(
        refresh(&app, &first).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&app, &second).await.status(),
        StatusCode::UNAUTHORIZED,
        "the legitimate session is revoked too"
    );
    // Another login is a new family and works.
    let (_, other) = tokens_of(app.login_answer(ADMIN, ADMIN_PASSWORD).await).await;
    assert_eq!(refresh(&app, &other).await.status(), StatusCode::OK);
    assert_eq!(
        refresh(&app, "not-a-token").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn logout_and_password_change_end_sessions(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_, a) = tokens_of(app.login_answer(ADMIN, ADMIN_PASSWORD).await).await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .json(&json!({"refresh_token": a}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(refresh(&app, &a).await.status(), StatusCode::UNAUTHORIZED);

    let (access, b) = tokens_of(app.login_answer(ADMIN, ADMIN_PASSWORD).await).await;
    let (_, c) = tokens_of(app.login_answer(ADMIN, ADMIN_PASSWORD).await).await;
    let wrong = app
        .as_user(
            &access,
            app.client
                .post(app.url("/api/v1/auth/change-password"))
                .json(&json!({"current_password": "not it at all", "new_password": "a brand new password"})),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let changed = app
        .as_user(
            &access,
            app.client
                .post(app.url("/api/v1/auth/change-password"))
                .json(&json!({"current_password": ADMIN_PASSWORD, "new_password": "a brand new password"})),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(changed.headers()["cache-control"], "no-store");
    assert_eq!(
        refresh(&app, &b).await.status(),
        StatusCode::UNAUTHORIZED,
        "every family of the user is revoked"
    );
    assert_eq!(refresh(&app, &c).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login_answer(ADMIN, ADMIN_PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_answer(ADMIN, "a brand new password")
            .await
            .status(),
        StatusCode::OK
    );
}

async fn brute_force_is_throttled_and_locks_the_account(backend: TestBackend) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let Some(app) = TestApp::spawn_with_clock(backend, clock.clone(), |s| {
        s.auth.lockout_secs = 900;
        s.auth.login_per_account_per_minute = 1000;
    })
    .await
    else {
        return;
    };
    let mut statuses = Vec::new();
    for _ in 0..50 {
        let res = app.login_answer(ADMIN, "wrong password!").await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = res.headers()["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!((1..=60).contains(&retry), "Retry-After {retry}");
            assert_eq!(
                res.json::<Value>().await.expect("json")["code"],
                "rate_limited"
            );
            statuses.push(429);
        } else {
            statuses.push(res.status().as_u16());
        }
    }
    // The per-IP limit is 10 a minute and the setup's own login was the first: nine attempts are
    // judged (and refused), every later one is throttled.
    let judged = statuses.iter().take_while(|s| **s == 401).count();
    assert_eq!(judged, 9, "{statuses:?}");
    assert!(statuses[judged..].iter().all(|s| *s == 429), "{statuses:?}");

    // From another address: the account is locked, so even the right password is a plain 401.
    let other_ip = second_address();
    let login = |password: &'static str| {
        other_ip
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": ADMIN, "password": password}))
            .send()
    };
    let locked = login(ADMIN_PASSWORD).await.expect("request");
    assert_eq!(locked.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        locked.json::<Value>().await.expect("json")["code"],
        "invalid_credentials"
    );
    clock.advance(chrono::Duration::seconds(899));
    assert_eq!(
        login(ADMIN_PASSWORD).await.expect("request").status(),
        StatusCode::UNAUTHORIZED,
        "the lock holds for its whole term"
    );
    clock.advance(chrono::Duration::seconds(2));
    assert_eq!(
        login(ADMIN_PASSWORD).await.expect("request").status(),
        StatusCode::OK,
        "the lock has expired"
    );
}

/// A client that connects from 127.0.0.2, a second source address on loopback.
fn second_address() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client")
}

/// Asserts `res` is a `429 rate_limited` problem with a `Retry-After` within `max_secs`.
async fn assert_throttled(res: reqwest::Response, max_secs: u64) {
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=max_secs).contains(&retry), "Retry-After {retry}");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "rate_limited"
    );
}

async fn the_account_limit_holds_across_addresses(backend: TestBackend) {
    // Default limits: 5 attempts a minute per account, 10 per address.
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let target = "admin@clinic-b.example";
    let other_ip = second_address();
    let login = |client: &reqwest::Client, email: &str, password: &str| {
        client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    // Five wrong passwords spread over two addresses, neither near its own limit.
    for client in [&app.client, &other_ip, &app.client, &other_ip, &app.client] {
        let res = login(client, target, "wrong password!")
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    for client in [&other_ip, &app.client] {
        assert_throttled(
            login(client, target, ADMIN_PASSWORD)
                .await
                .expect("request"),
            60,
        )
        .await;
    }
    // The addresses themselves are not throttled: another account is judged from both.
    let res = login(&app.client, ADMIN, "wrong password!")
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = login(&other_ip, ADMIN, ADMIN_PASSWORD)
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
}

async fn a_flood_of_bad_tokens_is_throttled_per_ip(backend: TestBackend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.http.per_ip_per_hour = 5).await else {
        return;
    };
    // The two logins are anonymous requests: two of the five.
    let (access, refresh_token) = tokens_of(app.login_answer(ADMIN, ADMIN_PASSWORD).await).await;
    // Issued by us, with one character of its signature changed.
    let tampered = {
        let (signed, signature) = access.rsplit_once('.').expect("a JWT");
        let first = if signature.starts_with('A') { 'B' } else { 'A' };
        format!("{signed}.{first}{}", &signature[1..])
    };
    let me = |authorization: &str| {
        app.client
            .get(app.url("/api/v1/me"))
            .header("authorization", authorization)
            .send()
    };
    let bad = [
        "Bearer junk".to_owned(),
        format!("Bearer {tampered}"),
        "Basic YWRtaW46YWRtaW4=".to_owned(),
    ];
    for authorization in &bad {
        let res = me(authorization).await.expect("request");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{authorization}");
    }
    for authorization in &bad {
        assert_throttled(me(authorization).await.expect("request"), 3600).await;
    }
    assert_throttled(
        app.client
            .get(app.url("/api/v1/me"))
            .send()
            .await
            .expect("request"),
        3600,
    )
    .await;
    // A valid token is counted against its user only, and refresh keeps working.
    for _ in 0..3 {
        let res = app
            .as_user(&access, app.client.get(app.url("/api/v1/me")))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    tokens_of(refresh(&app, &refresh_token).await).await;
}

async fn failed_refreshes_are_limited_per_ip_until_one_succeeds(backend: TestBackend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.auth.login_per_ip_per_minute = 3).await
    else {
        return;
    };
    let (_, mut token) = tokens_of(app.login_answer(ADMIN, ADMIN_PASSWORD).await).await;
    for _ in 0..3 {
        assert_eq!(
            refresh(&app, "a guessed token").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_throttled(refresh(&app, "a guessed token").await, 60).await;
    // Once the budget is spent nothing is looked up, so a genuine token answers the same.
    assert_throttled(refresh(&app, &token).await, 60).await;

    // From another address: two guesses, then a success, which forgives the address, so two
    // more guesses are judged although five attempts exceed the limit of three.
    let other_ip = second_address();
    let refresh_from = |token: String| {
        other_ip
            .post(app.url("/api/v1/auth/refresh"))
            .json(&json!({"refresh_token": token}))
            .send()
    };
    for _ in 0..2 {
        let res = refresh_from("a guessed token".into())
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    (_, token) = tokens_of(refresh_from(token).await.expect("request")).await;
    for _ in 0..2 {
        let res = refresh_from("a guessed token".into())
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    tokens_of(refresh_from(token).await.expect("request")).await;
}

async fn each_user_is_throttled_on_their_own_budget(backend: TestBackend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.http.per_user_per_hour = 2).await else {
        return;
    };
    // Creating the user is the admin's first request.
    let desk = app
        .staff("desk@clinic-a.example", "receptionist", None)
        .await;
    assert_eq!(app.get("/api/v1/me").await.status(), StatusCode::OK);
    assert_throttled(app.get("/api/v1/me").await, 3600).await;
    for _ in 0..2 {
        let res = app
            .as_user(&desk, app.client.get(app.url("/api/v1/me")))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "another user's budget");
    }
    assert_throttled(
        app.as_user(&desk, app.client.get(app.url("/api/v1/me")))
            .await,
        3600,
    )
    .await;
}

async fn roles_limit_what_each_user_may_do(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let practitioner = app.practitioner().await;
    let patient = app.patient(1).await;
    let nurse = app.staff("nurse@clinic-a.example", "nurse", None).await;
    let desk = app
        .staff("desk@clinic-a.example", "receptionist", None)
        .await;
    let day = future_day();
    let booking = json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": format!("{day}T09:00:00Z")});

    let res = app
        .as_user(
            &nurse,
            app.client
                .post(app.url("/api/v1/appointments"))
                .json(&booking),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "nurses do not book");
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "forbidden"
    );
    let res = app
        .as_user(
            &desk,
            app.client
                .post(app.url("/api/v1/appointments"))
                .json(&booking),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "receptionists book");
    assert_eq!(
        app.as_user(
            &nurse,
            app.client
                .get(app.url(&format!("/api/v1/patients/{patient}")))
        )
        .await
        .status(),
        StatusCode::OK
    );
    for (token, path) in [
        (&desk, "/api/v1/users"),
        (&nurse, "/api/v1/users"),
        (&desk, "/api/v1/audit-events"),
    ] {
        assert_eq!(
            app.as_user(token, app.client.get(app.url(path)))
                .await
                .status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let res = app
        .as_user(
            &desk,
            app.client
                .delete(app.url(&format!("/api/v1/patients/{patient}"))),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "only admins delete patients"
    );
    let res = app
        .as_user(
            &desk,
            app.client
                .put(app.url(&format!("/api/v1/practitioners/{practitioner}/schedule")))
                .json(&json!({"rules": []})),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "receptionists do not set schedules"
    );

    // Admins manage users: listing shows them, disabling ends their logins.
    let users: Value = app.get("/api/v1/users").await.json().await.expect("json");
    assert_eq!(users["count"], 3);
    let desk_id = users["results"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["role"] == "receptionist")
        .expect("desk")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/users/{desk_id}")))
        .bearer_auth(&app.token)
        .json(&json!({"active": false}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.login_answer("desk@clinic-a.example", ADMIN_PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/users/{desk_id}")))
        .bearer_auth(&app.token)
        .json(&json!({"role": "root"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// One representative request of a route, and the permissions its use case checks.
struct Probe {
    method: Method,
    /// The route's path template, as the OpenAPI document names it.
    route: &'static str,
    path: String,
    body: Option<Value>,
    /// All of them are needed (an overbooking needs both booking and overbooking).
    needs: &'static [Permission],
}

fn probe(
    method: Method,
    route: &'static str,
    path: impl Into<String>,
    body: Option<Value>,
    needs: &'static [Permission],
) -> Probe {
    Probe {
        method,
        route,
        path: path.into(),
        body,
        needs,
    }
}

/// Routes that check no permission: public ones, and those any signed-in user may call for
/// themselves. Every other operation of the OpenAPI document must have a probe below.
const WITHOUT_PERMISSION: [(&str, &str); 12] = [
    ("GET", "/"),
    ("GET", clinicflow_api::docs::REDOC_SCRIPT_PATH),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/change-password"),
    ("GET", "/api/v1/me"),
];

/// Every string of every `enum` inside `schema` (a plain enum, or a `oneOf` of documented ones).
fn enum_values(schema: &Value, out: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("enum", Value::Array(values)) => {
                        out.extend(values.iter().filter_map(|v| v.as_str().map(str::to_owned)));
                    }
                    _ => enum_values(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| enum_values(v, out)),
        _ => {}
    }
}

/// Books as the admin and returns the appointment's id.
async fn booked(
    app: &TestApp,
    patient: &str,
    practitioner: &str,
    starts_at: &str,
    overbook: bool,
) -> String {
    let res = app
        .post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner, "starts_at": starts_at, "overbook": overbook}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "booked at {starts_at}");
    id_of(res).await
}

/// Adds a walk-in for `practitioner` as the admin and calls it; returns the entry's id.
async fn called_walk_in(app: &TestApp, patient: &str, practitioner: &str) -> String {
    let entry = id_of(
        app.post(
            "/api/v1/queue/entries",
            json!({"patient_id": patient, "practitioner_id": practitioner, "category": "standard"}),
        )
        .await,
    )
    .await;
    let called: Value = app
        .post(
            "/api/v1/queue/call-next",
            json!({"practitioner_id": practitioner}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        called["entry"]["id"],
        entry.as_str(),
        "the only waiting entry"
    );
    entry
}

/// The role x route matrix: every route that checks a permission is sent, as every staff role,
/// one representative request, and answers `403 forbidden` exactly to the roles that
/// `Role::allows` denies one of the route's permissions. The expectation comes from the domain's
/// table and the explicit route -> permission list below, so changing either the table or the
/// check of a route fails this test; so does a route of the OpenAPI document without a probe.
async fn every_route_answers_403_exactly_to_the_roles_without_its_permission(backend: TestBackend) {
    // No sweeper: the no-show probe needs its past appointment still booked.
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.sweeper.interval_secs = 0;
        crate::helpers::allow_loopback_webhooks(s);
    })
    .await
    else {
        return;
    };
    let doc = app.practitioner().await;
    // The practitioner user's own patient: every appointment below is with `doc`.
    let mine = app.patient(1).await;
    let spare = app.patient(2).await;
    let day = future_day();
    let next_day = (chrono::Utc::now().date_naive() + chrono::Duration::days(31)).to_string();
    let at = |time: &str| format!("{day}T{time}:00Z");
    let read = booked(&app, &mine, &doc, &at("08:00"), false).await;
    let moved = booked(&app, &mine, &doc, &at("08:30"), false).await;
    let cancelled = booked(&app, &mine, &doc, &at("09:00"), false).await;
    let rescheduled = booked(&app, &mine, &doc, &at("09:30"), false).await;
    let past = (chrono::Utc::now() - chrono::Duration::minutes(60))
        .duration_trunc(chrono::Duration::minutes(1))
        .expect("whole minute");
    let missed = booked(&app, &mine, &doc, &past.to_rfc3339(), true).await;
    // A visit in progress, so there is an encounter (of `doc`, with `mine`).
    let visit = called_walk_in(&app, &mine, &doc).await;
    let started = app
        .post(&format!("/api/v1/queue/entries/{visit}/start"), json!({}))
        .await;
    assert_eq!(started.status(), StatusCode::OK);
    let visits: Value = app
        .get(&format!("/api/v1/patients/{mine}/encounters"))
        .await
        .json()
        .await
        .expect("json");
    let encounter = visits["results"][0]["id"]
        .as_str()
        .expect("an encounter")
        .to_owned();
    // Finished, so `mine` waits nowhere and their appointment can be checked in below: a
    // patient has one open queue entry at most.
    let finished = app
        .post(&format!("/api/v1/queue/entries/{visit}/finish"), json!({}))
        .await;
    assert_eq!(finished.status(), StatusCode::OK);
    let walk_in = app.patient(5).await;
    let served = called_walk_in(&app, &app.patient(3).await, &doc).await;
    let exception = async |kind: &str, time: &str| {
        let res = app
            .post(
                &format!("/api/v1/practitioners/{doc}/{kind}"),
                json!({"starts_at": format!("{next_day}T{time}:00:00Z"), "ends_at": format!("{next_day}T{time}:30:00Z")}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "{kind}");
        id_of(res).await
    };
    let time_off = exception("time-off", "20").await;
    let extra_hours = exception("extra-hours", "21").await;
    let recalled = called_walk_in(&app, &app.patient(4).await, &doc).await;
    let pending: Value = app
        .get("/api/v1/outbox?status=pending")
        .await
        .json()
        .await
        .expect("json");
    let reminder = pending["results"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["event"] == "reminder.due" && m["appointment_id"] == read.as_str())
        .expect("a pending reminder of an appointment that stays booked")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let staff = [
        (Role::Admin, app.token.clone()),
        (
            Role::Practitioner,
            app.staff("house@clinic-a.example", "practitioner", Some(&doc))
                .await,
        ),
        (
            Role::Receptionist,
            app.staff("desk@clinic-a.example", "receptionist", None)
                .await,
        ),
        (
            Role::Nurse,
            app.staff("nurse@clinic-a.example", "nurse", None).await,
        ),
    ];
    let users: Value = app.get("/api/v1/users").await.json().await.expect("json");
    let nurse_id = users["results"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["role"] == "nurse")
        .expect("the nurse")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let schedule: Vec<Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "08:00", "end": "12:00"}))
        .collect();

    use Method as M;
    use Permission as P;
    let empty = || Some(json!({}));
    let probes = [
        probe(
            M::GET,
            "/api/v1/clinic",
            "/api/v1/clinic",
            None,
            &[P::ReadClinic],
        ),
        probe(
            M::PATCH,
            "/api/v1/clinic",
            "/api/v1/clinic",
            Some(json!({"name": "Test Clinic"})),
            &[P::ManageClinic],
        ),
        probe(
            M::PUT,
            "/api/v1/clinic/webhook",
            "/api/v1/clinic/webhook",
            Some(json!({"url": "http://127.0.0.1:9/clinicflow"})),
            &[P::ManageClinic],
        ),
        probe(
            M::GET,
            "/api/v1/clinic/webhook",
            "/api/v1/clinic/webhook",
            None,
            &[P::ManageClinic],
        ),
        probe(
            M::DELETE,
            "/api/v1/clinic/webhook",
            "/api/v1/clinic/webhook",
            None,
            &[P::ManageClinic],
        ),
        probe(
            M::GET,
            "/api/v1/dashboard/stats",
            "/api/v1/dashboard/stats",
            None,
            &[P::ReadAppointments],
        ),
        probe(
            M::GET,
            "/api/v1/users",
            "/api/v1/users",
            None,
            &[P::ManageUsers],
        ),
        probe(
            M::POST,
            "/api/v1/users",
            "/api/v1/users",
            Some(
                json!({"email": "new@clinic-a.example", "password": ADMIN_PASSWORD, "role": "nurse"}),
            ),
            &[P::ManageUsers],
        ),
        probe(
            M::PATCH,
            "/api/v1/users/{id}",
            format!("/api/v1/users/{nurse_id}"),
            Some(json!({"active": true})),
            &[P::ManageUsers],
        ),
        probe(
            M::GET,
            "/api/v1/users/{id}",
            format!("/api/v1/users/{nurse_id}"),
            None,
            &[P::ManageUsers],
        ),
        probe(
            M::POST,
            "/api/v1/users/{id}/unlock",
            format!("/api/v1/users/{nurse_id}/unlock"),
            None,
            &[P::ManageUsers],
        ),
        probe(
            M::GET,
            "/api/v1/audit-events",
            "/api/v1/audit-events",
            None,
            &[P::ReadAudit],
        ),
        probe(
            M::GET,
            "/api/v1/outbox",
            "/api/v1/outbox",
            None,
            &[P::ManageClinic],
        ),
        probe(
            M::POST,
            "/api/v1/outbox/{id}/retry",
            format!("/api/v1/outbox/{reminder}/retry"),
            empty(),
            &[P::ManageClinic],
        ),
        probe(
            M::GET,
            "/api/v1/patients",
            "/api/v1/patients",
            None,
            &[P::ReadPatients],
        ),
        probe(
            M::POST,
            "/api/v1/patients",
            "/api/v1/patients",
            Some(json!({"given_name": "Walk", "family_name": "In", "birth_date": "1990-05-05"})),
            &[P::WritePatients],
        ),
        probe(
            M::GET,
            "/api/v1/patients/{id}",
            format!("/api/v1/patients/{mine}"),
            None,
            &[P::ReadPatients],
        ),
        probe(
            M::PATCH,
            "/api/v1/patients/{id}",
            format!("/api/v1/patients/{mine}"),
            Some(json!({"family_name": "Tester"})),
            &[P::WritePatients],
        ),
        probe(
            M::DELETE,
            "/api/v1/patients/{id}",
            format!("/api/v1/patients/{spare}"),
            None,
            &[P::DeletePatients],
        ),
        probe(
            M::GET,
            "/api/v1/patients/{id}/encounters",
            format!("/api/v1/patients/{mine}/encounters"),
            None,
            &[P::ReadPatients],
        ),
        probe(
            M::POST,
            "/api/v1/practitioners",
            "/api/v1/practitioners",
            Some(
                json!({"given_name": "James", "family_name": "Wilson", "specialties": ["oncology"]}),
            ),
            &[P::WritePractitioners],
        ),
        probe(
            M::GET,
            "/api/v1/practitioners",
            "/api/v1/practitioners",
            None,
            &[P::ReadPractitioners],
        ),
        probe(
            M::GET,
            "/api/v1/practitioners/{id}",
            format!("/api/v1/practitioners/{doc}"),
            None,
            &[P::ReadPractitioners],
        ),
        probe(
            M::PATCH,
            "/api/v1/practitioners/{id}",
            format!("/api/v1/practitioners/{doc}"),
            Some(json!({"slot_minutes": 30})),
            &[P::WritePractitioners],
        ),
        probe(
            M::GET,
            "/api/v1/practitioners/{id}/schedule",
            format!("/api/v1/practitioners/{doc}/schedule"),
            None,
            &[P::ReadPractitioners],
        ),
        probe(
            M::PUT,
            "/api/v1/practitioners/{id}/schedule",
            format!("/api/v1/practitioners/{doc}/schedule"),
            Some(json!({"rules": schedule, "valid_from": "2020-01-01"})),
            &[P::WriteSchedules],
        ),
        probe(
            M::POST,
            "/api/v1/practitioners/{id}/time-off",
            format!("/api/v1/practitioners/{doc}/time-off"),
            Some(
                json!({"starts_at": format!("{next_day}T08:00:00Z"), "ends_at": format!("{next_day}T09:00:00Z")}),
            ),
            &[P::WriteSchedules],
        ),
        probe(
            M::GET,
            "/api/v1/practitioners/{id}/time-off",
            format!("/api/v1/practitioners/{doc}/time-off"),
            None,
            &[P::ReadPractitioners],
        ),
        probe(
            M::DELETE,
            "/api/v1/practitioners/{id}/time-off/{exception_id}",
            format!("/api/v1/practitioners/{doc}/time-off/{time_off}"),
            None,
            &[P::WriteSchedules],
        ),
        probe(
            M::POST,
            "/api/v1/practitioners/{id}/extra-hours",
            format!("/api/v1/practitioners/{doc}/extra-hours"),
            Some(
                json!({"starts_at": format!("{next_day}T18:00:00Z"), "ends_at": format!("{next_day}T19:00:00Z")}),
            ),
            &[P::WriteSchedules],
        ),
        probe(
            M::GET,
            "/api/v1/practitioners/{id}/extra-hours",
            format!("/api/v1/practitioners/{doc}/extra-hours"),
            None,
            &[P::ReadPractitioners],
        ),
        probe(
            M::DELETE,
            "/api/v1/practitioners/{id}/extra-hours/{exception_id}",
            format!("/api/v1/practitioners/{doc}/extra-hours/{extra_hours}"),
            None,
            &[P::WriteSchedules],
        ),
        probe(
            M::GET,
            "/api/v1/practitioners/{id}/slots",
            format!("/api/v1/practitioners/{doc}/slots?from={day}&to={next_day}"),
            None,
            &[P::ReadPractitioners],
        ),
        probe(
            M::GET,
            "/api/v1/slots",
            format!("/api/v1/slots?from={day}&to={next_day}"),
            None,
            &[P::ReadPractitioners],
        ),
        probe(
            M::POST,
            "/api/v1/appointments",
            "/api/v1/appointments",
            Some(json!({"patient_id": mine, "practitioner_id": doc, "starts_at": at("11:00")})),
            &[P::BookAppointments],
        ),
        probe(
            M::POST,
            "/api/v1/appointments",
            "/api/v1/appointments",
            Some(
                json!({"patient_id": mine, "practitioner_id": doc, "starts_at": at("13:00"), "overbook": true}),
            ),
            &[P::BookAppointments, P::Overbook],
        ),
        probe(
            M::GET,
            "/api/v1/appointments",
            "/api/v1/appointments",
            None,
            &[P::ReadAppointments],
        ),
        probe(
            M::GET,
            "/api/v1/appointments/{id}",
            format!("/api/v1/appointments/{read}"),
            None,
            &[P::ReadAppointments],
        ),
        probe(
            M::POST,
            "/api/v1/appointments/{id}/{action}",
            format!("/api/v1/appointments/{moved}/confirm"),
            empty(),
            &[P::RunAppointments],
        ),
        // Days ahead, so outside the check-in window: checking in takes the override.
        probe(
            M::POST,
            "/api/v1/appointments/{id}/{action}",
            format!("/api/v1/appointments/{moved}/check-in"),
            Some(json!({"override": true})),
            &[P::RunAppointments, P::OverrideCheckIn],
        ),
        probe(
            M::POST,
            "/api/v1/appointments/{id}/{action}",
            format!("/api/v1/appointments/{moved}/start"),
            empty(),
            &[P::RunAppointments],
        ),
        probe(
            M::POST,
            "/api/v1/appointments/{id}/{action}",
            format!("/api/v1/appointments/{moved}/complete"),
            empty(),
            &[P::RunAppointments],
        ),
        probe(
            M::POST,
            "/api/v1/appointments/{id}/{action}",
            format!("/api/v1/appointments/{cancelled}/cancel"),
            Some(json!({"reason": "the patient called"})),
            &[P::BookAppointments],
        ),
        probe(
            M::POST,
            "/api/v1/appointments/{id}/{action}",
            format!("/api/v1/appointments/{missed}/no-show"),
            empty(),
            &[P::RunAppointments],
        ),
        probe(
            M::POST,
            "/api/v1/appointments/{id}/reschedule",
            format!("/api/v1/appointments/{rescheduled}/reschedule"),
            Some(json!({"starts_at": at("10:30")})),
            &[P::BookAppointments],
        ),
        probe(
            M::GET,
            "/api/v1/queue",
            "/api/v1/queue",
            None,
            &[P::ReadQueue],
        ),
        probe(
            M::GET,
            "/api/v1/queue/stream",
            "/api/v1/queue/stream",
            None,
            &[P::ReadQueue],
        ),
        probe(
            M::GET,
            "/api/v1/queue/stats",
            "/api/v1/queue/stats",
            None,
            &[P::ReadQueue],
        ),
        probe(
            M::POST,
            "/api/v1/queue/entries",
            "/api/v1/queue/entries",
            Some(json!({"patient_id": walk_in, "category": "standard"})),
            &[P::ManageQueue],
        ),
        probe(
            M::POST,
            "/api/v1/queue/call-next",
            "/api/v1/queue/call-next",
            Some(json!({"practitioner_id": doc})),
            &[P::ServePatients],
        ),
        probe(
            M::POST,
            "/api/v1/queue/entries/{id}/{action}",
            format!("/api/v1/queue/entries/{served}/start"),
            empty(),
            &[P::ServePatients],
        ),
        probe(
            M::POST,
            "/api/v1/queue/entries/{id}/{action}",
            format!("/api/v1/queue/entries/{served}/finish"),
            empty(),
            &[P::ServePatients],
        ),
        probe(
            M::POST,
            "/api/v1/queue/entries/{id}/{action}",
            format!("/api/v1/queue/entries/{recalled}/recall"),
            empty(),
            &[P::ManageQueue],
        ),
        probe(
            M::POST,
            "/api/v1/queue/entries/{id}/{action}",
            format!("/api/v1/queue/entries/{recalled}/retriage"),
            Some(json!({"category": "urgent"})),
            &[P::ManageQueue],
        ),
        probe(
            M::POST,
            "/api/v1/queue/entries/{id}/{action}",
            format!("/api/v1/queue/entries/{recalled}/leave"),
            empty(),
            &[P::ManageQueue],
        ),
        probe(
            M::GET,
            "/api/v1/encounters/{id}",
            format!("/api/v1/encounters/{encounter}"),
            None,
            &[P::ReadPatients],
        ),
        probe(
            M::PATCH,
            "/api/v1/encounters/{id}",
            format!("/api/v1/encounters/{encounter}"),
            Some(json!({"notes": "seen; fluids"})),
            &[P::ServePatients],
        ),
        // Last: a deactivated `doc` would take none of the bookings above.
        probe(
            M::POST,
            "/api/v1/practitioners/{id}/deactivate",
            format!("/api/v1/practitioners/{doc}/deactivate"),
            None,
            &[P::WritePractitioners],
        ),
        probe(
            M::POST,
            "/api/v1/practitioners/{id}/reactivate",
            format!("/api/v1/practitioners/{doc}/reactivate"),
            None,
            &[P::WritePractitioners],
        ),
    ];

    // Every operation of the API description that checks a permission has a probe, every probe
    // names a documented operation, and the action routes are probed with every action.
    let doc_json: Value =
        serde_json::from_str(clinicflow_api::openapi::document_json()).expect("the document");
    let documented: BTreeSet<(String, String)> = doc_json["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .map(|method| (method.to_uppercase(), path.clone()))
        })
        .filter(|(m, p)| !WITHOUT_PERMISSION.contains(&(m.as_str(), p.as_str())))
        .collect();
    let probed: BTreeSet<(String, String)> = probes
        .iter()
        .map(|p| (p.method.as_str().to_owned(), p.route.to_owned()))
        .collect();
    assert_eq!(
        documented, probed,
        "every documented route that checks a permission is probed, and nothing else"
    );
    for (route, schema) in [
        ("/api/v1/appointments/{id}/{action}", "StatusMove"),
        ("/api/v1/queue/entries/{id}/{action}", "EntryAction"),
    ] {
        let mut actions = BTreeSet::new();
        enum_values(&doc_json["components"]["schemas"][schema], &mut actions);
        assert!(!actions.is_empty(), "{schema} lists its actions");
        let probed: BTreeSet<String> = probes
            .iter()
            .filter(|p| p.route == route)
            .map(|p| p.path.rsplit('/').next().expect("an action").to_owned())
            .collect();
        assert_eq!(actions, probed, "{route}");
    }

    // The admin goes first on every route, so its answer must be a success: that shows each
    // request is a real one. Later roles may find the resource moved on (409) or gone (404),
    // which still means they were let through, because every use case checks the permission
    // before it reads anything. Practitioners also have row rules (only their own patients,
    // appointments, encounters, schedule and calls, else 404 or 403): every probe uses `doc`'s
    // own resources, so a refusal of the practitioner here is the role table's, not a row rule's.
    let mut failures = Vec::new();
    for p in &probes {
        for (role, token) in &staff {
            let mut req = app.client.request(p.method.clone(), app.url(&p.path));
            if let Some(body) = &p.body {
                req = req.json(body);
            }
            let res = app.as_user(token, req).await;
            let status = res.status();
            let allowed = p.needs.iter().all(|n| role.allows(*n));
            let what = format!(
                "{} {} as {role} (needs {:?}, allowed: {allowed})",
                p.method, p.path, p.needs
            );
            if status.is_success() {
                // Not read: the live board is an endless stream.
                if !allowed {
                    failures.push(format!("{what}: expected 403, got {status}"));
                }
                continue;
            }
            let content_type = res.headers().get("content-type").cloned();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            if !allowed {
                let problem = content_type.is_some_and(|v| v == "application/problem+json");
                if status != StatusCode::FORBIDDEN || !problem || body["code"] != "forbidden" {
                    failures.push(format!(
                        "{what}: expected 403 forbidden, got {status} {body}"
                    ));
                }
            } else if *role == Role::Admin {
                failures.push(format!(
                    "{what}: the admin's request should succeed, got {status} {body}"
                ));
            } else {
                // Answers of the use case after its permission check. Anything else is a
                // refusal (403) or an answer from before the use case (400, 401, 429, 5xx, an
                // unknown route), which would prove nothing about the permission.
                let reached = matches!(
                    status,
                    StatusCode::NOT_FOUND
                        | StatusCode::CONFLICT
                        | StatusCode::PRECONDITION_FAILED
                        | StatusCode::UNPROCESSABLE_ENTITY
                ) && body["detail"] != "no such route";
                if !reached {
                    failures.push(format!(
                        "{what}: expected anything but 403, got {status} {body}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

async fn practitioners_see_only_their_own_patients_and_appointments(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (house, wilson) = (app.practitioner().await, app.practitioner().await);
    let (mine, theirs) = (app.patient(1).await, app.patient(2).await);
    let day = future_day();
    let own_appointment = id_of(
        app.post("/api/v1/appointments", json!({"patient_id": mine, "practitioner_id": house, "starts_at": format!("{day}T09:00:00Z")}))
            .await,
    )
    .await;
    let other_appointment = id_of(
        app.post("/api/v1/appointments", json!({"patient_id": theirs, "practitioner_id": wilson, "starts_at": format!("{day}T09:00:00Z")}))
            .await,
    )
    .await;
    let doctor = app
        .staff("house@clinic-a.example", "practitioner", Some(&house))
        .await;
    let get = |path: String| app.as_user(&doctor, app.client.get(app.url(&path)));
    let patients: Value = get("/api/v1/patients".into())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(patients["count"], 1);
    assert_eq!(patients["results"][0]["id"], mine.as_str());
    assert_eq!(
        get(format!("/api/v1/patients/{mine}")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get(format!("/api/v1/patients/{theirs}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(format!("/api/v1/appointments/{own_appointment}"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get(format!("/api/v1/appointments/{other_appointment}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let list: Value = get("/api/v1/appointments".into())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["count"], 1);
    let res = app
        .as_user(&doctor, app.client.post(app.url(&format!("/api/v1/practitioners/{wilson}/time-off"))).json(&json!({"starts_at": format!("{day}T00:00:00Z"), "ends_at": format!("{day}T23:00:00Z")})))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "only their own schedule"
    );
    let res = app
        .as_user(&doctor, app.client.post(app.url(&format!("/api/v1/practitioners/{house}/time-off"))).json(&json!({"starts_at": format!("{day}T12:00:00Z"), "ends_at": format!("{day}T13:00:00Z")})))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

async fn every_patient_data_access_is_audited(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let patient = app.patient(1).await;
    let read = app.get(&format!("/api/v1/patients/{patient}")).await;
    let request_id = read.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    app.get("/api/v1/patients?q=tester").await;
    let desk = app
        .staff("desk@clinic-a.example", "receptionist", None)
        .await;
    let denied = app
        .as_user(
            &desk,
            app.client
                .delete(app.url(&format!("/api/v1/patients/{patient}"))),
        )
        .await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    let log: Value = app
        .get(&format!("/api/v1/audit-events?patient_id={patient}"))
        .await
        .json()
        .await
        .expect("json");
    let events = log["results"].as_array().expect("events");
    let summary: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().expect("action"),
                e["outcome"].as_str().expect("outcome"),
            )
        })
        .collect();
    // Newest first: the refused delete, the read, the creation.
    assert_eq!(
        summary,
        [
            ("delete", "denied"),
            ("read", "success"),
            ("create", "success")
        ]
    );
    assert_eq!(
        events[1]["request_id"],
        request_id.as_str(),
        "the read carries its request id"
    );
    assert_eq!(events[1]["actor_role"], "admin");

    // Keyset pages do not overlap and end with no cursor.
    let first: Value = app
        .get("/api/v1/audit-events?limit=2")
        .await
        .json()
        .await
        .expect("json");
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second: Value = app
        .get(&format!("/api/v1/audit-events?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .expect("json");
    let ids = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|e| e["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert!(ids(&first).iter().all(|id| !ids(&second).contains(id)));
    let all: Value = app
        .get("/api/v1/audit-events?limit=200")
        .await
        .json()
        .await
        .expect("json");
    assert!(all["next_cursor"].is_null());
    // Append-only: there is no route that changes the log.
    let res = app
        .client
        .delete(app.url("/api/v1/audit-events"))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("request");
    assert!(
        res.status() == StatusCode::NOT_FOUND || res.status() == StatusCode::METHOD_NOT_ALLOWED
    );
}

async fn oversized_deep_and_unknown_input_is_refused(backend: TestBackend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.http.cors_origins = vec!["https://desk.example".into()]
    })
    .await
    else {
        return;
    };
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let res = app
        .client
        .post(app.url("/api/v1/patients"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "json_too_deep"
    );
    let long =
        json!({"given_name": "x".repeat(20_000), "family_name": "Y", "birth_date": "1980-01-01"});
    let res = app.post("/api/v1/patients", long).await;
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "string_too_long"
    );
    let res = app.get("/api/v1/me").await;
    for header in [
        "x-content-type-options",
        "referrer-policy",
        "x-frame-options",
    ] {
        assert!(res.headers().contains_key(header), "{header}");
    }
    let allowed = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth(&app.token)
        .header("origin", "https://desk.example")
        .send()
        .await
        .expect("request");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://desk.example"
    );
    let other = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth(&app.token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("request");
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    let patients: Value = app
        .get("/api/v1/patients")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(patients["count"], 0, "nothing was written");
}

async fn a_trusted_proxys_forwarded_client_gets_its_own_budget_and_others_cannot_choose_one(
    backend: TestBackend,
) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.auth.login_per_ip_per_minute = 2;
        s.http.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await
    else {
        return;
    };
    let attempt = std::sync::atomic::AtomicUsize::new(0);
    // A failed login with a fresh e-mail each time, so only the per-address limit counts.
    let login = |client: &reqwest::Client, header: (&'static str, &'static str)| {
        let n = attempt.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        client
            .post(app.url("/api/v1/auth/login"))
            .header(header.0, header.1)
            .json(&json!({"email": format!("nobody{n}@clinic.example"), "password": "wrong password"}))
            .send()
    };
    let proxy = &app.client;
    let xff = |v: &'static str| ("x-forwarded-for", v);
    for _ in 0..2 {
        let res = login(proxy, xff("203.0.113.7")).await.expect("request");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_throttled(login(proxy, xff("203.0.113.7")).await.expect("request"), 60).await;
    // Another client behind the same proxy has a budget of its own.
    let res = login(proxy, xff("203.0.113.8")).await.expect("request");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // What the client wrote left of the proxy's hop changes nothing.
    let res = login(proxy, xff("198.51.100.1, 203.0.113.7"))
        .await
        .expect("request");
    assert_throttled(res, 60).await;
    // RFC 7239 `Forwarded` when there is no X-Forwarded-For.
    let res = login(proxy, ("forwarded", "for=\"203.0.113.7:4711\";proto=https"))
        .await
        .expect("request");
    assert_throttled(res, 60).await;
    let res = login(proxy, ("forwarded", "for=203.0.113.10"))
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A peer that is not a trusted proxy is counted by its own address, whatever it forwards.
    let direct = second_address();
    for forwarded in ["203.0.113.20", "203.0.113.21"] {
        let res = login(&direct, xff(forwarded)).await.expect("request");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_throttled(
        login(&direct, xff("203.0.113.22")).await.expect("request"),
        60,
    )
    .await;
}
