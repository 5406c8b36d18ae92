-- SQL floor of `practitioners` (GET /practitioners): the directory's first page of 50 in
-- name order, its total, and the page's specialties. The server answers from the tagged
-- cache and reads nothing per request once warm, so this is what a cache miss costs.
SELECT count(*) FROM practitioners WHERE clinic_id = :clinic;
SELECT p.* FROM practitioners p WHERE p.clinic_id = :clinic
ORDER BY p.family_name, p.given_name, p.id LIMIT 50;
SELECT s.practitioner_id, s.specialty FROM practitioner_specialties s
WHERE s.clinic_id = :clinic;
