-- SQL floor of `first-free-slot` (GET /slots?from=<today>&to=<+30 days>&limit=1): what
-- finding the earliest free slot across every practitioner reads, once: the practitioners
-- with the clinic's time zone and their schedules, all weekly rules, the time off and extra
-- hours, and the active appointments of the next two days. The seed books 40 % of the next
-- four weeks' slots, so the earliest free slot lies within them; reading further is more than
-- the answer needs. No audit event: slots hold no patient data. The server serves repeated
-- asks from cached slot lists, so this is what a cache miss costs.
SELECT p.id, c.time_zone, p.slot_minutes, p.buffer_minutes, s.valid_from, s.valid_to
FROM practitioners p
JOIN clinics c ON c.id = p.clinic_id
LEFT JOIN schedules s ON s.clinic_id = p.clinic_id AND s.practitioner_id = p.id
WHERE p.clinic_id = :clinic AND p.active;
SELECT r.practitioner_id, r.weekday, r.start_minute, r.end_minute, r.slot_minutes
FROM schedule_rules r
WHERE r.clinic_id = :clinic;
SELECT e.practitioner_id, e.kind, e.starts_at, e.ends_at
FROM schedule_exceptions e
WHERE e.clinic_id = :clinic
  AND e.starts_at < date_trunc('day', now()) + interval '2 days'
  AND e.ends_at > date_trunc('day', now()) - interval '1 day';
SELECT a.practitioner_id, a.starts_at, a.ends_at
FROM appointments a
WHERE a.clinic_id = :clinic
  AND a.deleted_at IS NULL AND a.status IN ('booked', 'confirmed', 'checked_in', 'in_progress')
  AND a.starts_at > date_trunc('day', now()) - interval '1 day' - interval '720 minutes'
  AND a.starts_at < date_trunc('day', now()) + interval '2 days';
