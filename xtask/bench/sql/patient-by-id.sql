-- SQL floor of `patient-by-id` (GET /patients/{id}): the row, then its audit event, each
-- committed on its own (the read needs no transaction; the event must be durable before the
-- answer). The sampled id is looked up in a scalar subquery: one primary-key probe of a
-- 2,000-row table more than the server's query.
\set n random(1, :patients)
SELECT p.* FROM patients p
WHERE p.clinic_id = :clinic AND p.deleted_at IS NULL
  AND p.id = (SELECT id FROM bench_floor.patients WHERE n = :n);
INSERT INTO audit_events (id, clinic_id, actor_id, actor_role, action, resource_type, resource_id, patient_id, at, request_id, outcome)
SELECT bench_floor.uuid7(), :clinic, :actor, :role, 'read', 'patient', id, id, now(), gen_random_uuid(), 'success'
FROM bench_floor.patients WHERE n = :n;
