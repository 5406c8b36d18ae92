-- SQL floor of `slots-30d` (GET /practitioners/{id}/slots for 30 days): what deriving the
-- free slots reads, once: the practitioner with its clinic's time zone and its schedule, the
-- weekly rules, the time off and extra hours in the window, and the active appointments in
-- it (their start bounded below by the longest appointment, 720 min, as the server's query).
-- No audit event: slots hold no patient data. The server serves repeated asks from a
-- cached slot list, so this is what a cache miss costs, and it may well beat it.
\set n random(1, :practitioners)
SELECT c.time_zone, p.slot_minutes, p.buffer_minutes, p.active, s.valid_from, s.valid_to
FROM practitioners p
JOIN clinics c ON c.id = p.clinic_id
LEFT JOIN schedules s ON s.clinic_id = p.clinic_id AND s.practitioner_id = p.id
WHERE p.clinic_id = :clinic AND p.id = (SELECT id FROM bench_floor.practitioners WHERE n = :n);
SELECT r.weekday, r.start_minute, r.end_minute, r.slot_minutes
FROM schedule_rules r
WHERE r.clinic_id = :clinic AND r.practitioner_id = (SELECT id FROM bench_floor.practitioners WHERE n = :n);
SELECT e.kind, e.starts_at, e.ends_at
FROM schedule_exceptions e
WHERE e.clinic_id = :clinic AND e.practitioner_id = (SELECT id FROM bench_floor.practitioners WHERE n = :n)
  AND e.starts_at < date_trunc('day', now()) + interval '31 days'
  AND e.ends_at > date_trunc('day', now()) - interval '1 day';
SELECT a.starts_at, a.ends_at
FROM appointments a
WHERE a.clinic_id = :clinic AND a.practitioner_id = (SELECT id FROM bench_floor.practitioners WHERE n = :n)
  AND a.deleted_at IS NULL AND a.status IN ('booked', 'confirmed', 'checked_in', 'in_progress')
  AND a.starts_at > date_trunc('day', now()) - interval '1 day' - interval '720 minutes'
  AND a.starts_at < date_trunc('day', now()) + interval '31 days';
