-- SQL floor of `patient-search` (GET /patients?q=<prefix>&limit=20): the first keyset page
-- of live patients whose "family given" or "given family" search key starts with the prefix,
-- in the order of the key each matched, then id (one row more than the page, to know whether
-- another follows): each key's index range read in order up to a page, the second leaving
-- out what the first matched, the two merged; then the list's audit event.
\set n random(1, :prefixes)
SELECT p.* FROM patients p
JOIN (SELECT id, match_key FROM (
        SELECT * FROM (SELECT id, name_key AS match_key FROM patients
                       WHERE clinic_id = :clinic AND deleted_at IS NULL
                         AND name_key >= (SELECT prefix FROM bench_floor.prefixes WHERE n = :n)
                         AND name_key < (SELECT upper FROM bench_floor.prefixes WHERE n = :n)
                       ORDER BY name_key, id LIMIT 21) by_key
        UNION ALL
        SELECT * FROM (SELECT id, name_key_alt AS match_key FROM patients
                       WHERE clinic_id = :clinic AND deleted_at IS NULL
                         AND name_key_alt >= (SELECT prefix FROM bench_floor.prefixes WHERE n = :n)
                         AND name_key_alt < (SELECT upper FROM bench_floor.prefixes WHERE n = :n)
                         AND NOT (name_key >= (SELECT prefix FROM bench_floor.prefixes WHERE n = :n)
                                  AND name_key < (SELECT upper FROM bench_floor.prefixes WHERE n = :n))
                       ORDER BY name_key_alt, id LIMIT 21) by_alt_key) matches
      ORDER BY match_key, id LIMIT 21) page ON page.id = p.id
WHERE p.clinic_id = :clinic AND p.deleted_at IS NULL
ORDER BY page.match_key, page.id;
INSERT INTO audit_events (id, clinic_id, actor_id, actor_role, action, resource_type, resource_id, patient_id, at, request_id, outcome)
VALUES (bench_floor.uuid7(), :clinic, :actor, :role, 'list', 'patient', NULL, NULL, now(), gen_random_uuid(), 'success');
