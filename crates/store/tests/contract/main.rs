//! The repository contract suite: one set of test functions, run against SQLite and
//! PostgreSQL alike (`sqlite::…` and `postgres::…`), each on a fresh database.
//!
//! PostgreSQL tests need `CLINICFLOW_TEST_PG_URL` (an admin URL); without it they print
//! that they were skipped (`testing::record_skip`) and pass, unless `CLINICFLOW_REQUIRE_SERVICES=1`.

#![allow(clippy::unwrap_used)]

mod appointment;
mod audit;
mod clinic;
mod database;
mod encounter;
mod idempotency;
mod outbox;
mod patient;
mod practitioner;
mod queue;
mod schedule;
mod stats;
mod support;
mod tenancy;
mod time;
mod token;
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
                        return; // recorded as skipped by `testing`
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
    database::concurrent_write_units_keep_or_lose_only_their_own_writes,
    database::a_unit_dropped_inside_a_batch_leaves_the_others_whole,
    database::migrations_revert_and_apply_again,
    database::the_lifecycle_migration_keeps_one_open_entry_per_patient,
    database::every_appointment_index_leaves_out_deleted_rows,
    database::every_appointment_index_serves_a_read_the_store_issues,
    database::the_outbox_claim_reads_the_due_index_in_its_generic_plan,
    database::every_pooled_connection_carries_the_bounds,
    database::a_wait_for_a_booking_lock_another_holds_ends_as_a_timeout,
    database::a_wait_for_another_requests_idempotency_key_ends_as_a_timeout,
    database::a_statement_running_past_its_bound_ends_as_a_timeout,
    database::a_dead_connection_is_replaced_before_use_once_connections_are_distrusted,
    clinic::a_clinic_reads_back_by_id_and_by_name,
    clinic::settings_update_in_place_and_unknown_clinics_are_not_found,
    clinic::a_settings_update_based_on_an_older_version_is_refused,
    clinic::a_webhook_is_set_replaced_and_removed_per_clinic,
    user::a_user_reads_back_by_id_and_by_email,
    user::a_duplicate_email_in_one_clinic_is_rejected,
    user::a_user_linked_to_another_clinics_practitioner_is_not_found,
    user::the_lockout_fields_read_back_as_written,
    user::a_user_update_writes_every_field_but_identity_and_email,
    user::a_user_update_based_on_an_older_version_is_refused,
    user::a_failed_login_and_a_deactivation_racing_lose_neither,
    user::concurrent_failed_logins_lose_no_increment,
    user::a_deactivation_amid_concurrent_failed_logins_loses_nothing,
    user::failed_logins_lock_the_account_as_the_policy_says,
    user::the_user_list_is_ordered_by_email_and_paged,
    patient::a_patient_reads_back_with_every_field,
    patient::a_patient_update_checks_the_version,
    patient::a_soft_deleted_patient_is_invisible,
    patient::the_patient_list_is_ordered_and_paged,
    patient::patients_are_found_by_name_prefix_in_either_order,
    patient::patients_are_found_by_exact_phone_and_email,
    patient::patients_seen_by_a_practitioner_are_listed_once_and_can_be_searched,
    tenancy::another_clinic_can_neither_see_nor_change_rows,
    practitioner::a_practitioner_reads_back_with_specialties,
    practitioner::a_practitioner_update_replaces_fields_and_specialties,
    practitioner::the_practitioner_list_filters_by_specialty_and_department,
    schedule::putting_a_schedule_replaces_the_previous_one,
    schedule::a_schedule_for_an_unknown_practitioner_is_not_found,
    schedule::exceptions_overlapping_a_span_come_in_start_order,
    schedule::exceptions_are_listed_by_kind_and_removed_one_at_a_time,
    appointment::an_appointment_reads_back_and_updates_with_a_version_check,
    appointment::an_appointment_for_an_unknown_patient_is_not_found,
    appointment::the_appointment_list_filters_and_orders,
    appointment::active_queries_skip_cancelled_deleted_and_touching_appointments,
    appointment::the_longest_appointment_is_found_from_a_span_late_in_it,
    appointment::appointment_overlap_is_rejected,
    appointment::concurrent_bookings_leave_exactly_one_active,
    appointment::a_party_lock_holds_other_bookings_of_that_party_until_the_transaction_ends,
    appointment::the_party_lock_tells_whether_the_patient_is_on_file,
    appointment::a_booking_holds_both_party_locks_and_takes_the_practitioners_first,
    appointment::overdue_unattended_appointments_are_booked_or_confirmed_and_started_before_the_bound,
    appointment::concurrent_sweepers_take_each_overdue_appointment_once,
    appointment::a_no_show_audited_as_the_system_reads_back,
    audit::every_recorded_event_of_concurrent_reads_is_durable_when_answered,
    audit::a_failed_audit_batch_fails_every_caller_in_it,
    audit::audit_events_read_back_newest_first_and_filter,
    audit::audit_pages_follow_the_cursor_without_overlap,
    audit::the_audit_log_is_per_clinic,
    audit::audit_events_cannot_be_changed_or_removed,
    token::a_refresh_token_reads_back_by_hash_and_rotates_once,
    token::a_refresh_token_needs_a_unique_hash_and_a_user_of_its_clinic,
    token::revoking_reaches_exactly_the_family_or_the_user,
    token::concurrent_refreshes_with_one_token_rotate_it_once,
    idempotency::a_key_is_claimed_once_and_its_answer_given_to_retries,
    idempotency::a_claim_rolled_back_leaves_the_key_free,
    idempotency::an_expired_key_is_claimed_afresh_and_purged,
    idempotency::concurrent_claims_of_one_key_make_one_write,
    time::stored_instants_compare_in_time_order,
    clinic::queue_settings_read_back_and_default_for_clinics_stored_without_them,
    queue::a_queue_entry_reads_back_and_updates_every_field,
    queue::open_entries_come_in_serve_order,
    queue::open_and_next_respect_each_scope_rule,
    queue::the_next_waiting_entry_skips_called_and_served_ones,
    queue::concurrent_calls_take_each_waiting_entry_exactly_once,
    queue::one_appointment_has_at_most_one_open_entry,
    queue::a_patient_has_at_most_one_open_entry,
    queue::entries_arrived_within_a_span_filter_by_practitioner,
    queue::another_clinic_can_neither_see_nor_change_queue_entries,
    encounter::an_encounter_reads_back_and_updates_every_field,
    encounter::the_open_encounter_of_an_entry_is_the_one_not_ended,
    encounter::the_open_encounter_of_an_appointment_is_the_one_not_ended,
    encounter::a_patients_encounters_are_paged_newest_first,
    encounter::recently_ended_encounters_are_newest_first_and_filter_by_practitioner,
    encounter::another_clinic_can_neither_see_nor_change_encounters,
    outbox::an_outbox_message_reads_back_with_every_field,
    outbox::messages_enqueued_together_read_back_as_enqueued_one_by_one,
    outbox::due_pending_messages_are_claimed_oldest_due_first_up_to_the_limit,
    outbox::recording_writes_the_delivery_state,
    outbox::recording_all_writes_each_messages_delivery_state_in_one_call,
    outbox::cancelling_reaches_only_matching_pending_messages,
    outbox::the_outbox_list_filters_pages_and_is_per_clinic,
    outbox::pending_messages_are_counted_across_clinics,
    outbox::concurrent_dispatchers_claim_each_message_exactly_once,
    outbox::writes_in_one_unit_of_work_take_effect_in_call_order,
    outbox::a_refused_held_back_write_fails_the_whole_unit_of_work,
    patient::keyset_pages_of_patients_follow_the_list_order_exactly,
    patient::a_keyset_walk_is_stable_while_patients_are_inserted,
    patient::keyset_pages_of_a_name_search_match_either_key_once,
    patient::a_name_search_page_is_chosen_inside_the_search_key_indexes,
    patient::a_name_search_is_ordered_by_the_matched_name_then_the_id,
    patient::a_keyset_walk_of_a_name_search_is_stable_while_patients_are_inserted,
    appointment::keyset_pages_of_appointments_follow_start_then_id_exactly,
    appointment::a_listed_appointment_reads_back_every_field,
    appointment::a_keyset_walk_is_stable_while_appointments_are_inserted,
    appointment::appointments_are_read_many_at_once_within_one_clinic,
    stats::appointments_are_counted_per_practitioner_and_status_within_the_span,
    stats::writes_touch_the_tag_of_the_practitioner_whose_slots_they_change,
}
