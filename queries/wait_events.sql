-- Wait events per fingerprint: what the statements of each fingerprint were
-- waiting on, as pg_stat_activity names it, from the wait_events samples
-- (each backend 100 times a second while it runs a statement or waits on
-- something other than being idle; `CPU` when the sample found no wait
-- event). One sample is about 10 ms of one backend's time, so ~ms is an
-- estimate of the time spent; pct is its share of the fingerprint's
-- samples. Samples taken outside any statement (background processes,
-- waits between statements) are grouped under a NULL fingerprint.
--
--   dbflight sql TRACE -f queries/wait_events.sql
WITH samples AS (
    SELECT
        w.pid,
        w.query_seq,
        coalesce(w.wait_event_type || ':' || w.wait_event, 'CPU') AS wait_event
    FROM wait_events w
),
named AS (
    SELECT fingerprint(q.query) AS fingerprint, s.wait_event
    FROM samples s
    LEFT JOIN queries q ON q.pid = s.pid AND q.query_seq = s.query_seq
),
counted AS (
    SELECT fingerprint, wait_event, count(*) AS samples
    FROM named
    GROUP BY fingerprint, wait_event
)
SELECT
    fingerprint,
    wait_event,
    samples,
    samples * 10 AS approx_ms,
    round(100.0 * samples / sum(samples) OVER (PARTITION BY fingerprint), 1) AS pct
FROM counted
ORDER BY samples DESC, fingerprint NULLS LAST, wait_event
LIMIT 25;
