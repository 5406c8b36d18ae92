use clinicflow_domain::ClinicId;
use clinicflow_ports::ClinicRepo;
use uuid::Uuid;

use crate::support::{Ctx, clinic};

pub async fn a_clinic_reads_back_by_id_and_by_name(ctx: Ctx) {
    let stored = clinic("Praxis am Park");
    let mut tx = ctx.write().await;
    ClinicRepo::insert(&ctx.store, &mut tx, &stored)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    let by_id = ClinicRepo::get(&ctx.store, &mut tx, stored.id)
        .await
        .unwrap();
    assert_eq!(by_id.as_ref(), Some(&stored));
    let by_name = ctx
        .store
        .find_by_name(&mut tx, "Praxis am Park")
        .await
        .unwrap();
    assert_eq!(by_name, Some(stored));
    assert_eq!(
        ctx.store
            .find_by_name(&mut tx, "Praxis am See")
            .await
            .unwrap(),
        None
    );
    let unknown = ClinicId::from_uuid(Uuid::now_v7());
    assert_eq!(
        ClinicRepo::get(&ctx.store, &mut tx, unknown).await.unwrap(),
        None
    );
}
