-- SQL floor of `patient-search` (GET /patients?q=<prefix>&limit=20): the first keyset page
-- of live patients whose "family given" or "given family" search key starts with the prefix,
-- in list order (one row more than the page, to know whether another follows), then the
-- list's audit event.
\set n random(1, :prefixes)
SELECT p.* FROM patients p
WHERE p.clinic_id = :clinic AND p.deleted_at IS NULL
  AND ((p.name_key >= (SELECT prefix FROM bench_floor.prefixes WHERE n = :n)
        AND p.name_key < (SELECT upper FROM bench_floor.prefixes WHERE n = :n))
    OR (p.name_key_alt >= (SELECT prefix FROM bench_floor.prefixes WHERE n = :n)
        AND p.name_key_alt < (SELECT upper FROM bench_floor.prefixes WHERE n = :n)))
ORDER BY p.family_name, p.given_name, p.id
LIMIT 21;
INSERT INTO audit_events (id, clinic_id, actor_id, actor_role, action, resource_type, resource_id, patient_id, at, request_id, outcome)
VALUES (bench_floor.uuid7(), :clinic, :actor, :role, 'list', 'patient', NULL, NULL, now(), gen_random_uuid(), 'success');
