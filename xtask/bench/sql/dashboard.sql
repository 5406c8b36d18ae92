-- SQL floor of `dashboard` (GET /dashboard/stats): what computing the day's figures reads:
-- the clinic-local day's appointments counted by practitioner and status, and the day's
-- queue entries (waiting, and the waits of those called). The server answers from the
-- warmer's cache and reads nothing per request, so this is what a cache miss costs; the
-- dashboard's own reference is the bare-handler ceiling.
SELECT a.practitioner_id, a.status, count(*)
FROM appointments a, clinics c
WHERE c.id = :clinic AND a.clinic_id = :clinic AND a.deleted_at IS NULL
  AND a.starts_at >= date_trunc('day', now() AT TIME ZONE c.time_zone) AT TIME ZONE c.time_zone
  AND a.starts_at < (date_trunc('day', now() AT TIME ZONE c.time_zone) + interval '1 day') AT TIME ZONE c.time_zone
GROUP BY a.practitioner_id, a.status;
SELECT q.status, q.practitioner_id, q.called_by, q.arrived_at, q.called_at
FROM queue_entries q, clinics c
WHERE c.id = :clinic AND q.clinic_id = :clinic
  AND q.arrived_at >= date_trunc('day', now() AT TIME ZONE c.time_zone) AT TIME ZONE c.time_zone
  AND q.arrived_at < (date_trunc('day', now() AT TIME ZONE c.time_zone) + interval '1 day') AT TIME ZONE c.time_zone;
