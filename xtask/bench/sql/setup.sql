-- The SQL floors' setup, run once per bench run with psql after seeding and VACUUM ANALYZE.
-- Everything it makes lives in the schema `bench_floor`, which the server never reads, and
-- is dropped at the end of the run. The floors' pgbench scripts pick their random parameters
-- from these samples, as clinicflow-loadgen picks its own from what the API lists.
-- psql variable: admin_email, the user whose requests the HTTP scenarios send.

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench_floor CASCADE;
CREATE SCHEMA bench_floor;

-- A UUIDv7 (time-ordered, as the server's ids are), so inserts land at the right end of the
-- id indexes as the server's do: a random v4 id would make every insert touch a random page.
CREATE FUNCTION bench_floor.uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
      52, 1), 53, 1), 'hex')::uuid
$$;

-- Who acts: the seeded admin, as in the HTTP scenarios.
CREATE TABLE bench_floor.actor AS
  SELECT id, clinic_id, role FROM users WHERE email = :'admin_email';

-- 2,000 live patients spread over the whole list (the load generator's sample size).
CREATE TABLE bench_floor.patients AS
  SELECT row_number() OVER (ORDER BY random()) AS n, id
  FROM (SELECT p.id FROM patients p, bench_floor.actor a
        WHERE p.clinic_id = a.clinic_id AND p.deleted_at IS NULL
        ORDER BY random() LIMIT 2000) sample;
ALTER TABLE bench_floor.patients ADD PRIMARY KEY (n);

-- Three-letter prefixes of the sample's family and given names, normalized as the server
-- stores its search keys (`name_key` is "family given", `name_key_alt` "given family"), with
-- the smallest string above every string starting with each (the range the search reads).
CREATE TABLE bench_floor.prefixes AS
  SELECT row_number() OVER (ORDER BY prefix) AS n, prefix,
         left(prefix, length(prefix) - 1) || chr(ascii(right(prefix, 1)) + 1) AS upper
  FROM (SELECT DISTINCT left(key, 3) AS prefix
        FROM bench_floor.patients s
        JOIN patients p ON p.id = s.id,
        LATERAL (VALUES (p.name_key), (p.name_key_alt)) k(key)
        WHERE length(key) >= 3) prefixes;
ALTER TABLE bench_floor.prefixes ADD PRIMARY KEY (n);

-- The clinic's reminder offsets: a booking queues one reminder for each.
CREATE TABLE bench_floor.reminders AS
  SELECT trim(o)::int AS minutes
  FROM clinics c, bench_floor.actor a, unnest(string_to_array(c.reminder_offsets_minutes, ',')) o
  WHERE c.id = a.clinic_id AND trim(o) <> '';

-- The active practitioners.
CREATE TABLE bench_floor.practitioners AS
  SELECT row_number() OVER (ORDER BY p.id) AS n, p.id
  FROM practitioners p, bench_floor.actor a
  WHERE p.clinic_id = a.clinic_id AND p.active;
ALTER TABLE bench_floor.practitioners ADD PRIMARY KEY (n);

-- The days an appointment page may start on: the first appointment's day to 4 weeks ahead.
CREATE TABLE bench_floor.days AS
  SELECT row_number() OVER (ORDER BY day) AS n, day
  FROM generate_series(
         (SELECT date_trunc('day', min(starts_at)) FROM appointments),
         date_trunc('day', now()) + interval '28 days',
         interval '1 day') day;
ALTER TABLE bench_floor.days ADD PRIMARY KEY (n);

-- Bookings of the floors take consecutive 30-minute slots from 2100 on, one per booking: no
-- two ever overlap (for a practitioner or a patient), so the exclusion constraints are checked
-- on every insert and never fire, as in the HTTP scenario, which books free slots only.
CREATE SEQUENCE bench_floor.slot;

ANALYZE bench_floor.reminders, bench_floor.patients, bench_floor.prefixes, bench_floor.practitioners, bench_floor.days;

-- The `-D` variables of every pgbench floor, one `name=value` a line.
SELECT 'clinic=' || clinic_id FROM bench_floor.actor
UNION ALL SELECT 'actor=' || id FROM bench_floor.actor
UNION ALL SELECT 'role=' || role FROM bench_floor.actor
UNION ALL SELECT 'patients=' || count(*) FROM bench_floor.patients
UNION ALL SELECT 'prefixes=' || count(*) FROM bench_floor.prefixes
UNION ALL SELECT 'practitioners=' || count(*) FROM bench_floor.practitioners
UNION ALL SELECT 'days=' || count(*) FROM bench_floor.days;
