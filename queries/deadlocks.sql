-- Deadlocks: each deadlock PostgreSQL's deadlock check found (locks rows
-- with event = 'deadlock', written by the session that ran the check and
-- was cancelled to break it), what that session was waiting for and which
-- sessions held it. `dbflight locks TRACE` draws the whole cycle.
--
--   dbflight sql TRACE -f queries/deadlocks.sql
WITH lock_rows AS (
    SELECT
        ts,
        CAST(ts AS BIGINT) AS t,
        pid,
        query_seq,
        CAST(event AS VARCHAR) AS event,
        CAST(mode AS VARCHAR) AS mode,
        lock_object(lock_type, database_oid, relation_oid, field3, field4) AS object,
        CAST(result AS VARCHAR) AS result
    FROM locks
),
found AS (
    SELECT d.ts, d.t, d.pid, d.query_seq, max(w.t) AS wait_t
    FROM lock_rows d
    LEFT JOIN lock_rows w ON w.pid = d.pid AND w.event = 'wait_start' AND w.t <= d.t
    WHERE d.event = 'deadlock'
    GROUP BY d.ts, d.t, d.pid, d.query_seq
),
waiting AS (
    SELECT f.ts, f.t, f.pid, coalesce(f.query_seq, w.query_seq) AS query_seq,
           w.object, w.mode
    FROM found f
    LEFT JOIN lock_rows w ON w.pid = f.pid AND w.t = f.wait_t AND w.event = 'wait_start'
),
waiting_types AS (
    SELECT DISTINCT CAST(l.lock_type AS VARCHAR) AS lock_type
    FROM locks l
    JOIN found f ON l.pid = f.pid AND CAST(l.ts AS BIGINT) = f.wait_t
    WHERE CAST(l.event AS VARCHAR) = 'wait_start'
),
-- Locks on the objects waited for, held until their session's first
-- release of them or release_all after (windows per pid, not a range join).
holds AS (
    SELECT pid, mode, object, acquired_t, least(release_t, release_all_t) AS released_t,
           event, result
    FROM (
        SELECT
            pid, mode, object, t AS acquired_t, event, result,
            min(CASE WHEN event = 'release' THEN t END) OVER (
                PARTITION BY pid, object, mode ORDER BY t DESC
                RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
            ) AS release_t,
            release_all_t
        FROM (
            SELECT
                *,
                min(CASE WHEN event = 'release_all' THEN t END) OVER (
                    PARTITION BY pid ORDER BY t DESC
                    RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
                ) AS release_all_t
            -- Only the rows these windows need: release_all, and rows on
            -- the objects waited for (of the waited lock types first, so that
            -- lock_object() names few rows); none without a deadlock.
            FROM (
                SELECT * FROM lock_rows
                WHERE event = 'release_all' AND EXISTS (SELECT 1 FROM waiting)
                UNION ALL
                SELECT * FROM (
                    SELECT
                        l.ts,
                        CAST(l.ts AS BIGINT) AS t,
                        l.pid,
                        l.query_seq,
                        CAST(l.event AS VARCHAR) AS event,
                        CAST(l.mode AS VARCHAR) AS mode,
                        lock_object(l.lock_type, l.database_oid, l.relation_oid, l.field3, l.field4) AS object,
                        CAST(l.result AS VARCHAR) AS result
                    FROM locks l
                    JOIN waiting_types w ON w.lock_type = CAST(l.lock_type AS VARCHAR)
                    WHERE CAST(l.event AS VARCHAR) <> 'release_all'
                ) AS r
                WHERE r.object IN (SELECT wo.object FROM waiting wo)
            ) AS needed
        ) AS windowed
        WHERE windowed.object IN (SELECT wo.object FROM waiting wo)
    )
    WHERE event = 'acquire' AND result IS DISTINCT FROM 'not_available'
),
holders AS (
    SELECT w.t, w.pid,
           string_agg(DISTINCT CAST(h.pid AS VARCHAR), ', ') AS held_by
    FROM waiting w
    JOIN holds h
        ON h.object = w.object AND h.pid <> w.pid AND h.acquired_t <= w.t
       AND (h.released_t IS NULL OR h.released_t > w.t)
       AND lock_modes_conflict(h.mode, w.mode)
    GROUP BY w.t, w.pid
)
SELECT
    w.ts,
    w.pid,
    CAST(q."user" AS VARCHAR) AS "user",
    w.object AS waiting_for,
    w.mode AS wanted_mode,
    h.held_by,
    q.query
FROM waiting w
LEFT JOIN holders h ON h.t = w.t AND h.pid = w.pid
LEFT JOIN queries q ON q.pid = w.pid AND q.query_seq = w.query_seq
ORDER BY w.ts, w.pid;
