-- The `GET /patients?limit=50` of `mixed`: the first keyset page of live patients in list
-- order (one row more than the page), then the list's audit event.
SELECT p.* FROM patients p
WHERE p.clinic_id = :clinic AND p.deleted_at IS NULL
ORDER BY p.family_name, p.given_name, p.id
LIMIT 51;
INSERT INTO audit_events (id, clinic_id, actor_id, actor_role, action, resource_type, resource_id, patient_id, at, request_id, outcome)
VALUES (bench_floor.uuid7(), :clinic, :actor, :role, 'list', 'patient', NULL, NULL, now(), gen_random_uuid(), 'success');
