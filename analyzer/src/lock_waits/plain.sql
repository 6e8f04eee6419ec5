-- The derived table lock_waits in plain SQL: one row per wait and session
-- blocking it. The analyzer computes the table natively (lock_waits/mod.rs)
-- and its tests compare the two on every recorded trace; this is what it
-- means. By hand:
--
--   dbflight sql TRACE -e "SET datafusion.optimizer.join_reordering = false" -f plain.sql
--
-- The joins are written small side first: with join reordering on,
-- DataFusion cannot know how few rows the event filters keep and would
-- build its hash tables on the big side.
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
--
-- A trace recorded with locks=waits has no acquisitions: its wait_end rows
-- say how the wait ended (result granted, error or cancelled), and
-- lock_blockers has the sessions the recorder saw blocking each wait when
-- it began (same pid and ts as its wait_start): those are its holders.
--
-- Only the rows the waits need are read past their event: the waits
-- themselves, release_all and deadlock reports, and the rows on the
-- objects waited for (of the waited lock types first, so that
-- lock_object() names a small part of a big trace's rows). Events are
-- compared as stored (dictionaries), and the small side of a join comes first.
WITH wait_rows AS (
    SELECT
        CAST(ts AS BIGINT) AS t,
        pid,
        tid,
        query_seq,
        CAST(event AS VARCHAR) AS event,
        CAST(lock_type AS VARCHAR) AS lock_type,
        CAST(mode AS VARCHAR) AS mode,
        lock_object(lock_type, database_oid, relation_oid, field3, field4) AS object,
        wait_ns,
        CAST(result AS VARCHAR) AS result
    FROM locks
    WHERE event = 'wait_start' OR event = 'wait_end'
),
trace_end AS (
    SELECT greatest(
        coalesce((SELECT max(CAST(end_ts AS BIGINT)) FROM recorder_stats), 0),
        coalesce(CAST((SELECT max(ts) FROM locks) AS BIGINT), 0)
    ) AS t
),
-- A wait_end of locks=waits says how the wait ended: an error is a
-- deadlock's victim when a deadlock report of its session falls in the
-- wait, else (like `cancelled`) a wait given up.
ended AS (
    SELECT e.pid, e.tid, e.query_seq, e.lock_type, e.mode, e.object, e.start_t, e.end_t,
           CASE
               WHEN e.result = 'error' AND max(d.t) IS NOT NULL THEN 'deadlock victim'
               WHEN e.result = 'error' OR e.result = 'cancelled' THEN 'cancelled'
               ELSE 'granted'
           END AS outcome
    FROM (
        SELECT pid, tid, query_seq, lock_type, mode, object, result,
               t - coalesce(wait_ns, 0) AS start_t, t AS end_t
        FROM wait_rows
        WHERE event = 'wait_end'
    ) AS e
    LEFT JOIN (SELECT pid, CAST(ts AS BIGINT) AS t FROM locks WHERE event = 'deadlock') AS d
        ON d.pid = e.pid AND d.t >= e.start_t AND d.t <= e.end_t
    GROUP BY e.pid, e.tid, e.query_seq, e.lock_type, e.mode, e.object, e.result, e.start_t, e.end_t
),
-- wait_starts that no wait_end of the same thread covers: the session gave
-- up (its release_all ends the wait) or was still waiting at the end.
starts AS (
    SELECT s.pid, s.tid, s.query_seq, s.lock_type, s.mode, s.object, s.t
    FROM wait_rows s
    WHERE s.event = 'wait_start'
      AND NOT EXISTS (
          SELECT 1 FROM ended e
          WHERE e.tid = s.tid AND e.start_t <= s.t AND e.end_t >= s.t
      )
),
-- Each with its session's next release_all and deadlock report at or after
-- it: a running min in descending time per pid (a sort, not a range join),
-- over those rows of the pids of these waits only.
unended AS (
    SELECT pid, tid, query_seq, lock_type, mode, object, t AS start_t, release_all_t, deadlock_t
    FROM (
        SELECT
            *,
            min(CASE WHEN kind = 1 THEN t END) OVER following AS release_all_t,
            min(CASE WHEN kind = 2 THEN t END) OVER following AS deadlock_t
        FROM (
            SELECT pid, tid, query_seq, lock_type, mode, object, t, 0 AS kind FROM starts
            UNION ALL
            SELECT l.pid, NULL, NULL, NULL, NULL, NULL, CAST(l.ts AS BIGINT),
                   CASE WHEN l.event = 'release_all' THEN 1 ELSE 2 END
            FROM (SELECT DISTINCT pid FROM starts) AS p
            JOIN locks l ON l.pid = p.pid
            WHERE l.event = 'release_all' OR l.event = 'deadlock'
        ) AS marked
        -- (t DESC, and at one instant the reports before the waits: the
        -- rows at or after each wait, as a running frame in one pass.)
        WINDOW following AS (PARTITION BY pid ORDER BY t DESC, kind DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ) AS ahead
    WHERE kind = 0
),
waits AS (
    SELECT pid, tid, query_seq, lock_type, mode, object, start_t, end_t, outcome FROM ended
    UNION ALL
    SELECT pid, tid, query_seq, lock_type, mode, object, start_t,
           coalesce(release_all_t, (SELECT t FROM trace_end)) AS end_t,
           CASE
               WHEN deadlock_t IS NOT NULL AND (release_all_t IS NULL OR deadlock_t <= release_all_t)
                   THEN 'deadlock victim'
               WHEN release_all_t IS NOT NULL THEN 'cancelled'
               ELSE 'still waiting'
           END AS outcome
    FROM unended
),
-- Every granted lock on an object someone waited for, until the first
-- release of it (same object and mode) or of all its session's locks.
on_waited AS (
    SELECT *
    FROM (
        SELECT
            CAST(l.ts AS BIGINT) AS t,
            l.pid,
            l.query_seq,
            CAST(l.event AS VARCHAR) AS event,
            CAST(l.mode AS VARCHAR) AS mode,
            lock_object(l.lock_type, l.database_oid, l.relation_oid, l.field3, l.field4) AS object,
            CAST(l.result AS VARCHAR) AS result,
            0 AS kind
        -- Two rows name one object only if their lock types are equal.
        FROM (SELECT DISTINCT lock_type FROM locks WHERE event = 'wait_start' OR event = 'wait_end') AS w
        JOIN locks l ON l.lock_type = w.lock_type
        -- Only acquires (the holds) and releases (their ends) count below.
        WHERE l.event = 'acquire' OR l.event = 'release'
    ) AS r
    WHERE r.object IN (SELECT object FROM wait_rows)
),
holds AS (
    SELECT pid, query_seq, mode, object, acquired_t,
           least(release_t, release_all_t) AS released_t, event, result
    FROM (
        SELECT
            pid, query_seq, mode, object, t AS acquired_t, release_all_t, event, result,
            min(CASE WHEN event = 'release' THEN t END) OVER (
                PARTITION BY pid, object, mode ORDER BY t DESC, event = 'release' DESC
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
            ) AS release_t
        FROM (
            SELECT
                *,
                min(CASE WHEN kind = 1 THEN t END) OVER (
                    PARTITION BY pid ORDER BY t DESC, kind DESC
                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
                ) AS release_all_t
            FROM (
                SELECT * FROM on_waited
                UNION ALL
                SELECT CAST(ts AS BIGINT), pid, NULL, NULL, NULL, NULL, NULL, 1
                FROM locks
                WHERE event = 'release_all'
            ) AS marked
        ) AS ahead
        WHERE kind = 0
    )
    WHERE event = 'acquire' AND result IS DISTINCT FROM 'not_available'
),
recorded AS (
    SELECT pid, CAST(ts AS BIGINT) AS start_t, blocker_pid, blocker_query_seq,
           CAST(blocker_mode AS VARCHAR) AS blocker_mode
    FROM lock_blockers
),
blocked AS (
    -- The blockers the recorder saw (locks=waits) ...
    SELECT w.*, r.blocker_pid AS holder_pid, r.blocker_query_seq AS holder_seq,
           r.blocker_mode AS held_mode, CAST(NULL AS BIGINT) AS held_t, 1 AS nth
    FROM waits w
    JOIN recorded r ON r.pid = w.pid AND r.start_t = w.start_t
    UNION ALL
    -- ... else the holds the acquisitions tell of.
    SELECT w.*, h.pid AS holder_pid, h.query_seq AS holder_seq, h.mode AS held_mode,
           h.acquired_t AS held_t,
           row_number() OVER (
               PARTITION BY w.tid, w.start_t, h.pid ORDER BY h.acquired_t
           ) AS nth
    FROM (
        SELECT * FROM waits w
        WHERE NOT EXISTS (
            SELECT 1 FROM recorded r WHERE r.pid = w.pid AND r.start_t = w.start_t
        )
    ) AS w
    LEFT JOIN holds h
        ON h.object = w.object AND h.pid <> w.pid
       AND h.acquired_t <= w.start_t
       AND (h.released_t IS NULL OR h.released_t > w.start_t)
       AND lock_modes_conflict(h.mode, w.mode)
)
SELECT
    arrow_cast(start_t, 'Timestamp(Nanosecond, Some("UTC"))') AS wait_start,
    arrow_cast(end_t, 'Timestamp(Nanosecond, Some("UTC"))') AS wait_end,
    end_t - start_t AS wait_ns,
    outcome,
    pid,
    tid,
    query_seq,
    lock_type,
    object,
    mode,
    holder_pid,
    holder_seq AS holder_query_seq,
    held_mode,
    arrow_cast(held_t, 'Timestamp(Nanosecond, Some("UTC"))') AS held_since
FROM blocked
WHERE nth = 1
ORDER BY wait_ns DESC, wait_start, pid, holder_pid;
