//! The repository contract suite: one set of test functions, run against SQLite and
//! PostgreSQL alike (`sqlite::…` and `postgres::…`), each on a fresh database.
//!
//! PostgreSQL tests need `CLINICFLOW_TEST_PG_URL` (an admin URL); without it they print
//! that they were skipped and pass, unless `CLINICFLOW_REQUIRE_SERVICES=1`.

#![allow(clippy::unwrap_used)]

mod appointment;
mod clinic;
mod database;
mod patient;
mod practitioner;
mod schedule;
mod support;
mod tenancy;
mod time;
mod user;

/// Instantiates every listed `module::test` once per backend, as `sqlite::test` and `postgres::test`.
macro_rules! contract_tests {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let ctx = crate::support::Ctx::new(clinicflow_store::testing::TestBackend::Sqlite)
                        .await
                        .expect("SQLite needs no server");
                    crate::$module::$test(ctx).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(ctx) =
                        crate::support::Ctx::new(clinicflow_store::testing::TestBackend::Postgres).await
                    else {
                        println!(
                            "skipped: {} is not set",
                            clinicflow_store::testing::PG_URL_VAR
                        );
                        return;
                    };
                    crate::$module::$test(ctx).await;
                }
            )*
        }
    };
}

contract_tests! {
    database::begin_is_unavailable_when_no_connection_comes_in_time,
    database::a_dropped_transaction_rolls_back,
    database::migrations_revert_and_apply_again,
    clinic::a_clinic_reads_back_by_id_and_by_name,
    user::a_user_reads_back_by_id_and_by_email,
    user::a_duplicate_email_in_one_clinic_is_rejected,
    user::a_user_linked_to_another_clinics_practitioner_is_not_found,
    patient::a_patient_reads_back_with_every_field,
    patient::a_patient_update_checks_the_version,
    patient::a_soft_deleted_patient_is_invisible,
    patient::the_patient_list_is_ordered_and_paged,
    patient::patients_are_found_by_name_prefix_in_either_order,
    patient::patients_are_found_by_exact_phone_and_email,
    tenancy::another_clinic_can_neither_see_nor_change_rows,
    practitioner::a_practitioner_reads_back_with_specialties,
    practitioner::a_practitioner_update_replaces_fields_and_specialties,
    practitioner::the_practitioner_list_filters_by_specialty_and_department,
    schedule::putting_a_schedule_replaces_the_previous_one,
    schedule::a_schedule_for_an_unknown_practitioner_is_not_found,
    schedule::exceptions_overlapping_a_span_come_in_start_order,
    appointment::an_appointment_reads_back_and_updates_with_a_version_check,
    appointment::an_appointment_for_an_unknown_patient_is_not_found,
    appointment::the_appointment_list_filters_and_orders,
    appointment::active_queries_skip_cancelled_deleted_and_touching_appointments,
    appointment::appointment_overlap_is_rejected,
    appointment::concurrent_bookings_leave_exactly_one_active,
    time::stored_instants_compare_in_time_order,
}
