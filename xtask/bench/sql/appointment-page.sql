-- SQL floor of `appointment-page` (GET /appointments?from=<day>&limit=50): the first keyset
-- page of live appointments from a random day on, in time order (one row more than the
-- page), then the list's audit event.
\set n random(1, :days)
SELECT a.* FROM appointments a
WHERE a.clinic_id = :clinic AND a.deleted_at IS NULL
  AND a.starts_at >= (SELECT day FROM bench_floor.days WHERE n = :n)
ORDER BY a.starts_at, a.id
LIMIT 51;
INSERT INTO audit_events (id, clinic_id, actor_id, actor_role, action, resource_type, resource_id, patient_id, at, request_id, outcome)
VALUES (bench_floor.uuid7(), :clinic, :actor, :role, 'list', 'appointment', NULL, NULL, now(), gen_random_uuid(), 'success');
