//! Staff accounts as an admin manages them: the lockout after wrong passwords, seen and lifted.

use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp, id_of};
use crate::on_both_backends;

on_both_backends!(an_admin_sees_a_lockout_and_lifts_it);

const DESK: &str = "desk@clinic-a.example";

/// A receptionist created by the admin; returns their id.
async fn desk(app: &TestApp) -> String {
    id_of(
        app.post(
            "/api/v1/users",
            json!({"email": DESK, "password": ADMIN_PASSWORD, "role": "receptionist"}),
        )
        .await,
    )
    .await
}

async fn body(res: reqwest::Response) -> Value {
    res.json().await.expect("json")
}

async fn an_admin_sees_a_lockout_and_lifts_it(backend: TestBackend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.auth.login_per_account_per_minute = 1000;
    })
    .await
    else {
        return;
    };
    let id = desk(&app).await;
    let user = format!("/api/v1/users/{id}");
    let fresh = app.get(&user).await;
    assert_eq!(fresh.status(), StatusCode::OK);
    let fresh = body(fresh).await;
    assert_eq!(
        (
            &fresh["locked"],
            &fresh["locked_until"],
            &fresh["failed_logins"]
        ),
        (&json!(false), &Value::Null, &json!(0))
    );

    // Five wrong passwords lock the account (the setup's login counts against this address's
    // budget of ten a minute: eight attempts in all stay below it).
    let mut wrong = None;
    for _ in 0..5 {
        let res = app.login_answer(DESK, "not the password").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        wrong = Some(body(res).await);
    }
    let locked_out = app.login_answer(DESK, ADMIN_PASSWORD).await;
    assert_eq!(locked_out.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        Some(body(locked_out).await),
        wrong,
        "to the client a lockout looks like a wrong password"
    );

    // The admin sees it.
    let seen = app.get(&user).await;
    let etag = seen.headers()["etag"].to_str().expect("ascii").to_owned();
    let seen = body(seen).await;
    assert_eq!(seen["locked"], true, "{seen}");
    assert!(seen["locked_until"].is_string(), "{seen}");
    assert_eq!(etag, format!("\"{}\"", seen["version"]));
    assert!(
        seen["version"].as_i64() > fresh["version"].as_i64(),
        "each failure changed the account: {seen}"
    );

    // Only an admin may lift it, and only from the version they saw.
    let nurse = app.staff("nurse@clinic-a.example", "nurse", None).await;
    let refused = app
        .as_user(&nurse, app.client.post(app.url(&format!("{user}/unlock"))))
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let stale = app
        .client
        .post(app.url(&format!("{user}/unlock")))
        .bearer_auth(&app.token)
        .header("If-Match", format!("\"{}\"", fresh["version"]))
        .send()
        .await
        .expect("request");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);

    let unlocked = app
        .client
        .post(app.url(&format!("{user}/unlock")))
        .bearer_auth(&app.token)
        .header("If-Match", etag)
        .send()
        .await
        .expect("request");
    assert_eq!(unlocked.status(), StatusCode::OK);
    let unlocked = body(unlocked).await;
    assert_eq!(
        (
            &unlocked["locked"],
            &unlocked["locked_until"],
            &unlocked["failed_logins"]
        ),
        (&json!(false), &Value::Null, &json!(0)),
        "{unlocked}"
    );
    assert_eq!(
        app.login_answer(DESK, ADMIN_PASSWORD).await.status(),
        StatusCode::OK,
        "the user logs in at once"
    );
}
