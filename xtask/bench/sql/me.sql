-- SQL floor of `me` (GET /me): the user's record and their clinic, by primary key. The server
-- answers from the tagged cache and reads nothing per request once warm, so this is what a
-- cache miss costs.
SELECT u.id, u.email, u.role, u.practitioner_id
FROM users u, bench_floor.actor a
WHERE u.id = a.id AND u.clinic_id = a.clinic_id;
SELECT c.id, c.name, c.time_zone FROM clinics c WHERE c.id = :clinic;
