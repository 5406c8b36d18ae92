//! The demo seed goes through the services and leaves a usable clinic.

use clinicflow::Settings;
use clinicflow::seed::{self, SeedOptions};
use clinicflow_store::testing::{TestBackend, TestDatabase};
use secrecy::SecretString;

/// The services over a fresh SQLite database, which lives as long as the first value.
async fn services() -> (TestDatabase, clinicflow_services::Services) {
    let db = TestDatabase::new(TestBackend::Sqlite)
        .await
        .expect("SQLite is always there");
    let settings = Settings {
        database_url: SecretString::from(db.url.clone()),
        ..Settings::default()
    };
    let services = clinicflow::connect(&settings)
        .await
        .expect("connects")
        .services;
    (db, services)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_seed_creates_a_clinic_once_with_a_queue_and_staff() {
    let (_db, services) = services().await;
    let options = SeedOptions {
        patients: 12,
        practitioners: 2,
        days_back: 2,
        days_ahead: 2,
    };
    let report = seed::seed(&services, options, chrono::Utc::now())
        .await
        .expect("seeded");
    assert!(!report.existed);
    assert_eq!(
        (report.practitioners, report.patients, report.walk_ins),
        (2, 12, 4)
    );
    assert!(report.appointments > 0);
    let again = seed::seed(&services, options, chrono::Utc::now())
        .await
        .expect("seeded");
    assert!(again.existed, "a second run creates nothing");

    let admin = services
        .auth
        .login(
            seed::DEMO_ADMIN_EMAIL,
            seed::DEMO_ADMIN_PASSWORD,
            None,
            None,
        )
        .await
        .expect("the demo admin logs in");
    for (email, _) in seed::DEMO_STAFF {
        services
            .auth
            .login(email, seed::DEMO_STAFF_PASSWORD, None, None)
            .await
            .expect("staff log in");
    }
    let actor = clinicflow_domain::Actor {
        user_id: admin.user.id,
        clinic_id: admin.user.clinic_id,
        role: admin.user.role,
        practitioner_id: None,
        request_id: None,
    };
    let board = services
        .queue
        .board(&actor, None, None)
        .await
        .expect("a board");
    assert_eq!(
        board.entries.len(),
        4,
        "only the walk-ins wait: past visits were recorded, not queued"
    );
}

/// A seed is slow enough for slots to begin while it runs: one planned as future when it
/// started, and in the past when its turn comes, is booked as a past one, not a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_that_begin_while_the_seed_runs_are_booked_as_past_ones() {
    let (_db, services) = services().await;
    let options = SeedOptions {
        patients: 12,
        practitioners: 2,
        days_back: 1,
        days_ahead: 1,
    };
    // As if the seed had started a week ago: every slot it takes for future has begun.
    let started = chrono::Utc::now() - chrono::Duration::days(7);
    let report = seed::seed(&services, options, started)
        .await
        .expect("seeded although its future slots have begun");
    assert!(report.appointments > 0);
}
