-- SQL floor of `book-cancel` (POST /appointments, then POST /appointments/{id}/cancel; one
-- operation, as the load generator counts it): two write transactions of one statement each.
--
-- The booking inserts the appointment (checked by both exclusion constraints and the foreign
-- keys to patient and practitioner, which also prove they exist in the clinic), its outbox
-- rows (the confirmation and one reminder per clinic reminder offset: 3 with the default
-- 1440,120) and its audit event, atomically. It takes no advisory locks: the exclusion
-- constraints are the guarantee, and a deadlock between two of their checks is retried, not
-- a wrong answer. It reads no schedule: the availability check can be served from the
-- practitioner's cached schedule. Each booking takes the next 30-minute slot from 2100 on,
-- so bookings never overlap (the HTTP scenario books free slots only).
--
-- The cancel moves it to `cancelled` under its version, withdraws its pending reminders,
-- queues the cancellation event and writes its audit event, atomically. A booked appointment
-- is in no queue yet, so there is no queue entry to move.
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
SELECT id AS appointment FROM a
\gset
WITH c AS (
  UPDATE appointments
  SET status = 'cancelled', cancelled_by = :actor, cancel_reason = 'benchmark',
      version = version + 1, updated_at = now()
  WHERE clinic_id = :clinic AND id = :appointment AND version = 1 AND deleted_at IS NULL
    AND status IN ('booked', 'confirmed')
  RETURNING id, clinic_id, patient_id, practitioner_id, starts_at, ends_at, status
), withdrawn AS (
  UPDATE outbox_messages SET status = 'cancelled'
  WHERE clinic_id = :clinic AND appointment_id = :appointment AND kind = 'reminder.due'
    AND status = 'pending' AND EXISTS (SELECT FROM c)
), messages AS (
  INSERT INTO outbox_messages (id, clinic_id, kind, appointment_id, payload, status, attempts,
                               next_attempt_at, created_at)
  SELECT m.id, c.clinic_id, 'booking.cancelled', c.id,
         json_build_object('id', m.id, 'event', 'booking.cancelled', 'clinic_id', c.clinic_id,
                           'appointment_id', c.id, 'patient_id', c.patient_id,
                           'practitioner_id', c.practitioner_id, 'starts_at', c.starts_at,
                           'ends_at', c.ends_at, 'status', c.status)::text,
         'pending', 0, now(), now()
  FROM c CROSS JOIN LATERAL (SELECT bench_floor.uuid7() AS id) m
), audit AS (
  INSERT INTO audit_events (id, clinic_id, actor_id, actor_role, action, resource_type,
                            resource_id, patient_id, at, request_id, outcome)
  SELECT bench_floor.uuid7(), c.clinic_id, :actor, :role, 'update', 'appointment', c.id,
         c.patient_id, now(), gen_random_uuid(), 'success'
  FROM c
)
SELECT count(*) AS cancelled FROM c;
