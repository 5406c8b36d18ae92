use clinicflow_domain::{Role, User, UserId};
use clinicflow_ports::{RepoError, UserRepo};
use uuid::Uuid;

use crate::support::{Ctx, email};

fn user(clinic: clinicflow_domain::ClinicId, address: &str) -> User {
    User {
        id: UserId::from_uuid(Uuid::now_v7()),
        clinic_id: clinic,
        email: email(address),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        role: Role::Receptionist,
        practitioner_id: None,
        active: true,
    }
}

pub async fn a_user_reads_back_by_id_and_by_email(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let mut doctor = user(clinic, "house@example.org");
    doctor.role = Role::Practitioner;
    doctor.practitioner_id = Some(house.id);
    let desk = user(clinic, "desk@example.org");
    let mut tx = ctx.write().await;
    UserRepo::insert(&ctx.store, &mut tx, &doctor)
        .await
        .unwrap();
    UserRepo::insert(&ctx.store, &mut tx, &desk).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    assert_eq!(
        UserRepo::get(&ctx.store, &mut tx, clinic, doctor.id)
            .await
            .unwrap(),
        Some(doctor.clone())
    );
    assert_eq!(
        ctx.store
            .find_by_email(&mut tx, &email("house@example.org"))
            .await
            .unwrap(),
        vec![doctor]
    );
    assert_eq!(
        ctx.store
            .find_by_email(&mut tx, &email("nobody@example.org"))
            .await
            .unwrap(),
        vec![]
    );
}

pub async fn a_duplicate_email_in_one_clinic_is_rejected(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let first = user(a, "ada@example.org");
    let mut tx = ctx.write().await;
    UserRepo::insert(&ctx.store, &mut tx, &first).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.write().await;
    let err = UserRepo::insert(&ctx.store, &mut tx, &user(a, "ada@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Duplicate("email")), "{err:?}");
    drop(tx);

    let other_clinic = user(b, "ada@example.org");
    let mut tx = ctx.write().await;
    UserRepo::insert(&ctx.store, &mut tx, &other_clinic)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    let mut found = ctx
        .store
        .find_by_email(&mut tx, &email("ada@example.org"))
        .await
        .unwrap();
    found.sort_by_key(|u| u.id);
    assert_eq!(found, vec![first, other_clinic]);
}

pub async fn a_user_linked_to_another_clinics_practitioner_is_not_found(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let elsewhere = ctx.practitioner(b, "Gregory", "House").await;
    let mut linked = user(a, "house@example.org");
    linked.practitioner_id = Some(elsewhere.id);
    let mut tx = ctx.write().await;
    let err = UserRepo::insert(&ctx.store, &mut tx, &linked)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
}
