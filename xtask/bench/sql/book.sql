-- The `POST /appointments` of `mixed`: the booking of book-cancel.sql alone (see there for
-- what it writes and why), without the cancel: like the HTTP scenario's bookings, these stay.
\set pa random(1, :patients)
\set pr random(1, :practitioners)
WITH slot AS (
  SELECT timestamptz '2100-01-01 00:00:00+00' + nextval('bench_floor.slot') * interval '30 minutes' AS starts_at
), a AS (
  INSERT INTO appointments (id, clinic_id, patient_id, practitioner_id, starts_at, ends_at,
                            urgency, reason, status, overbooked, version, created_at, updated_at)
  SELECT bench_floor.uuid7(), :clinic,
         (SELECT id FROM bench_floor.patients WHERE n = :pa),
         (SELECT id FROM bench_floor.practitioners WHERE n = :pr),
         slot.starts_at, slot.starts_at + interval '30 minutes',
         'routine', 'benchmark', 'booked', false, 1, now(), now()
  FROM slot
  RETURNING id, clinic_id, patient_id, practitioner_id, starts_at, ends_at, status
), messages AS (
  INSERT INTO outbox_messages (id, clinic_id, kind, appointment_id, payload, status, attempts,
                               next_attempt_at, created_at)
  SELECT m.id, a.clinic_id, m.kind, a.id,
         json_build_object('id', m.id, 'event', m.kind, 'clinic_id', a.clinic_id,
                           'appointment_id', a.id, 'patient_id', a.patient_id,
                           'practitioner_id', a.practitioner_id, 'starts_at', a.starts_at,
                           'ends_at', a.ends_at, 'status', a.status, 'remind_at', m.remind_at)::text,
         'pending', 0, coalesce(m.remind_at, now()), now()
  FROM a CROSS JOIN LATERAL (
    SELECT bench_floor.uuid7() AS id, 'booking.confirmed' AS kind, NULL::timestamptz AS remind_at
    UNION ALL
    SELECT bench_floor.uuid7(), 'reminder.due', a.starts_at - r.minutes * interval '1 minute'
    FROM bench_floor.reminders r
  ) m
), audit AS (
  INSERT INTO audit_events (id, clinic_id, actor_id, actor_role, action, resource_type,
                            resource_id, patient_id, at, request_id, outcome)
  SELECT bench_floor.uuid7(), a.clinic_id, :actor, :role, 'create', 'appointment', a.id,
         a.patient_id, now(), gen_random_uuid(), 'success'
  FROM a
)
SELECT id AS appointment FROM a;
