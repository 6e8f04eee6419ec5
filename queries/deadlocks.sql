-- Deadlocks: each deadlock PostgreSQL's deadlock check found (locks rows
-- with event = 'deadlock', written by the session that ran the check and
-- was cancelled to break it), what that session was waiting for and which
-- sessions held it. `dbflight locks TRACE` draws the whole cycle.
--
--   dbflight sql TRACE -f queries/deadlocks.sql
--
-- The joins are written small side first, and dbflight runs this file
-- with DataFusion's join reordering off: it cannot know how few rows the
-- event filters keep and would build its hash tables on queries. By
-- hand, put `SET datafusion.optimizer.join_reordering = false;` before it.
--
-- Everything starts from the deadlock rows, so a trace without any reads
-- the locks table only to find none: the small side of each join comes
-- first, and events are compared as they are stored (dictionaries).
WITH deadlock_rows AS (
    SELECT ts, CAST(ts AS BIGINT) AS t, pid, query_seq
    FROM locks
    WHERE event = 'deadlock'
),
wait_rows AS (
    SELECT
        CAST(ts AS BIGINT) AS t,
        pid,
        query_seq,
        lock_type,
        CAST(mode AS VARCHAR) AS mode,
        lock_object(lock_type, database_oid, relation_oid, field3, field4) AS object
    FROM locks
    WHERE event = 'wait_start'
),
found AS (
    SELECT d.ts, d.t, d.pid, d.query_seq, max(w.t) AS wait_t
    FROM deadlock_rows d
    LEFT JOIN wait_rows w ON w.pid = d.pid AND w.t <= d.t
    GROUP BY d.ts, d.t, d.pid, d.query_seq
),
waiting AS (
    SELECT f.ts, f.t, f.pid, coalesce(f.query_seq, w.query_seq) AS query_seq,
           w.object, w.mode, w.lock_type
    FROM found f
    LEFT JOIN wait_rows w ON w.pid = f.pid AND w.t = f.wait_t
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
            -- Only the rows these windows need: release_all (none
            -- without a deadlock), and rows on the objects waited for (of
            -- the waited lock types first, so that lock_object() names few rows).
            FROM (
                SELECT
                    CAST(l.ts AS BIGINT) AS t,
                    l.pid,
                    CAST(l.event AS VARCHAR) AS event,
                    CAST(l.mode AS VARCHAR) AS mode,
                    CAST(NULL AS VARCHAR) AS object,
                    CAST(l.result AS VARCHAR) AS result
                FROM (SELECT DISTINCT 1 AS any FROM waiting) AS w
                JOIN locks l ON w.any = 1
                WHERE l.event = 'release_all'
                UNION ALL
                SELECT * FROM (
                    SELECT
                        CAST(l.ts AS BIGINT) AS t,
                        l.pid,
                        CAST(l.event AS VARCHAR) AS event,
                        CAST(l.mode AS VARCHAR) AS mode,
                        lock_object(l.lock_type, l.database_oid, l.relation_oid, l.field3, l.field4) AS object,
                        CAST(l.result AS VARCHAR) AS result
                    FROM (SELECT DISTINCT lock_type FROM waiting WHERE object IS NOT NULL) AS w
                    JOIN locks l ON l.lock_type = w.lock_type
                    WHERE l.event <> 'release_all'
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
),
-- The waits with their statements, joined while they are few.
waiting_statements AS (
    SELECT w.ts, w.t, w.pid, w.object, w.mode, q."user", q.query
    FROM waiting w
    LEFT JOIN queries q ON q.pid = w.pid AND q.query_seq = w.query_seq
)
SELECT
    w.ts,
    w.pid,
    CAST(w."user" AS VARCHAR) AS "user",
    w.object AS waiting_for,
    w.mode AS wanted_mode,
    h.held_by,
    w.query
FROM waiting_statements w
LEFT JOIN holders h ON h.t = w.t AND h.pid = w.pid
ORDER BY w.ts, w.pid;
