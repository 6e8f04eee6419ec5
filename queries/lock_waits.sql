-- Lock waits: who waited on whom, for what, how long. One row per wait
-- and session blocking it, longest waits first.
--
--   dbflight sql TRACE -f queries/lock_waits.sql
--
-- A wait is a wait_end row of the locks table (it began wait_ns before),
-- or a wait_start that never ended: its session was chosen as the victim
-- of a deadlock or cancelled (it ends at the session's release_all), or it
-- was still waiting when the recording ended. The session blocking it (the
-- holder) is any other pid that acquired a conflicting mode
-- (lock_modes_conflict) on the same object (lock_object) before the wait
-- began, and released it (release, or release_all at the end of its
-- transaction) after. A wait whose holder took the lock before the
-- recording began has a NULL holder. Times in milliseconds.
WITH lock_rows AS (
    SELECT
        CAST(ts AS BIGINT) AS t,
        pid,
        tid,
        query_seq,
        CAST(event AS VARCHAR) AS event,
        CAST(lock_type AS VARCHAR) AS lock_type,
        CAST(mode AS VARCHAR) AS mode,
        lock_object(lock_type, database_oid, relation_oid, field3, field4) AS object,
        CAST(result AS VARCHAR) AS result,
        wait_ns
    FROM locks
),
trace_end AS (
    SELECT greatest(
        coalesce((SELECT max(CAST(end_ts AS BIGINT)) FROM recorder_stats), 0),
        coalesce((SELECT max(t) FROM lock_rows), 0)
    ) AS t
),
ended AS (
    SELECT pid, tid, query_seq, lock_type, mode, object,
           t - coalesce(wait_ns, 0) AS start_t, t AS end_t, 'granted' AS outcome
    FROM lock_rows
    WHERE event = 'wait_end'
),
-- wait_starts that no wait_end of the same thread covers, with the first
-- release_all and deadlock report of their session after them.
unended AS (
    SELECT s.pid, s.tid, s.query_seq, s.lock_type, s.mode, s.object, s.t AS start_t,
           min(x.t) FILTER (WHERE x.event = 'release_all') AS release_t,
           min(x.t) FILTER (WHERE x.event = 'deadlock') AS deadlock_t
    FROM lock_rows s
    LEFT JOIN lock_rows x
        ON x.pid = s.pid AND x.t >= s.t AND x.event IN ('release_all', 'deadlock')
    WHERE s.event = 'wait_start'
      AND NOT EXISTS (
          SELECT 1 FROM ended e
          WHERE e.tid = s.tid AND e.start_t <= s.t AND e.end_t >= s.t
      )
    GROUP BY s.pid, s.tid, s.query_seq, s.lock_type, s.mode, s.object, s.t
),
waits AS (
    SELECT pid, tid, query_seq, lock_type, mode, object, start_t, end_t, outcome FROM ended
    UNION ALL
    SELECT pid, tid, query_seq, lock_type, mode, object, start_t,
           coalesce(release_t, (SELECT t FROM trace_end)) AS end_t,
           CASE
               WHEN deadlock_t IS NOT NULL AND (release_t IS NULL OR deadlock_t <= release_t)
                   THEN 'deadlock victim'
               WHEN release_t IS NOT NULL THEN 'cancelled'
               ELSE 'still waiting'
           END AS outcome
    FROM unended
),
-- Every granted lock with the first release of it (or of all the session's locks) after.
holds AS (
    SELECT a.pid, a.query_seq, a.mode, a.object, a.t AS acquired_t, min(r.t) AS released_t
    FROM lock_rows a
    LEFT JOIN lock_rows r
        ON r.pid = a.pid AND r.t >= a.t
       AND (r.event = 'release_all' OR (r.event = 'release' AND r.object = a.object AND r.mode = a.mode))
    WHERE a.event = 'acquire' AND a.result IS DISTINCT FROM 'not_available'
    GROUP BY a.pid, a.query_seq, a.mode, a.object, a.t
),
blocked AS (
    SELECT w.*, h.pid AS holder_pid, h.query_seq AS holder_seq, h.mode AS held_mode,
           row_number() OVER (
               PARTITION BY w.tid, w.start_t, h.pid ORDER BY h.acquired_t
           ) AS nth
    FROM waits w
    LEFT JOIN holds h
        ON h.object = w.object AND h.pid <> w.pid
       AND h.acquired_t <= w.start_t
       AND (h.released_t IS NULL OR h.released_t > w.start_t)
       AND lock_modes_conflict(h.mode, w.mode)
),
sessions AS (
    SELECT pid, max(CAST("user" AS VARCHAR)) AS "user" FROM processes GROUP BY pid
)
SELECT
    arrow_cast(b.start_t, 'Timestamp(Nanosecond, Some("UTC"))') AS wait_start,
    round((b.end_t - b.start_t) / 1e6, 3) AS wait_ms,
    b.outcome,
    b.pid AS waiter_pid,
    coalesce(CAST(wq."user" AS VARCHAR), ws."user") AS waiter_user,
    b.object,
    b.mode AS wanted_mode,
    b.holder_pid,
    coalesce(CAST(hq."user" AS VARCHAR), hs."user") AS holder_user,
    b.held_mode,
    wq.query AS waiter_query,
    hq.query AS holder_query
FROM blocked b
LEFT JOIN queries wq ON wq.pid = b.pid AND wq.query_seq = b.query_seq
LEFT JOIN queries hq ON hq.pid = b.holder_pid AND hq.query_seq = b.holder_seq
LEFT JOIN sessions ws ON ws.pid = b.pid
LEFT JOIN sessions hs ON hs.pid = b.holder_pid
WHERE b.nth = 1
ORDER BY wait_ms DESC, wait_start, waiter_pid, holder_pid;
