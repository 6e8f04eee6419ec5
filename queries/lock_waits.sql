-- Lock waits: who waited on whom, for what, how long. One row per wait
-- and session blocking it, longest waits first.
--
--   dbflight sql TRACE -f queries/lock_waits.sql
--
-- The waits and their holders come from the derived table lock_waits
-- (`SHOW COLUMNS FROM lock_waits`; what it means in plain SQL over the
-- locks table is analyzer/src/lock_waits/plain.sql). In short: a wait is
-- a wait_end row of the locks table (it began wait_ns before), or a
-- wait_start that never ended: its session was chosen as the victim of a
-- deadlock or cancelled (it ends at the session's release_all), or it was
-- still waiting when the recording ended. The session blocking it (the
-- holder) is any other pid that acquired a conflicting mode
-- (lock_modes_conflict) on the same object (lock_object) before the wait
-- began, and released it (release, or release_all at the end of its
-- transaction) after. A wait whose holder took the lock before the
-- recording began has a NULL holder. Times in milliseconds.
--
-- This file adds who the sessions were and what they ran. The joins are
-- written small side first, and dbflight runs this file with DataFusion's
-- join reordering off: it would build its hash tables on queries. By
-- hand, put `SET datafusion.optimizer.join_reordering = false;` before it.
WITH sessions AS (
    SELECT pid, max(CAST("user" AS VARCHAR)) AS "user" FROM processes GROUP BY pid
),
-- Each wait twice, for its own statement and for the holder's: the texts
-- are then read in one pass over queries, not one per side (DataFusion
-- inlines a CTE at each use), and put back on one row by the GROUP BY.
sides AS (
    SELECT wait_start, wait_ns, outcome, pid, tid, query_seq, object, mode,
           holder_pid, holder_query_seq, held_mode, 0 AS side, pid AS side_pid, query_seq AS side_seq
    FROM lock_waits
    UNION ALL
    SELECT wait_start, wait_ns, outcome, pid, tid, query_seq, object, mode,
           holder_pid, holder_query_seq, held_mode, 1 AS side, holder_pid AS side_pid, holder_query_seq AS side_seq
    FROM lock_waits
    WHERE holder_pid IS NOT NULL
),
texts AS (
    SELECT s.*, CAST(q."user" AS VARCHAR) AS q_user, q.query AS q_text
    FROM sides s
    LEFT JOIN queries q ON q.pid = s.side_pid AND q.query_seq = s.side_seq
),
w AS (
    SELECT wait_start, wait_ns, outcome, pid, tid, query_seq, object, mode,
           holder_pid, holder_query_seq, held_mode,
           max(q_user) FILTER (WHERE side = 0) AS waiter_q_user,
           max(q_text) FILTER (WHERE side = 0) AS waiter_query,
           max(q_user) FILTER (WHERE side = 1) AS holder_q_user,
           max(q_text) FILTER (WHERE side = 1) AS holder_query
    FROM texts
    GROUP BY wait_start, wait_ns, outcome, pid, tid, query_seq, object, mode,
             holder_pid, holder_query_seq, held_mode
)
SELECT
    w.wait_start,
    round(w.wait_ns / 1e6, 3) AS wait_ms,
    w.outcome,
    w.pid AS waiter_pid,
    coalesce(w.waiter_q_user, ws."user") AS waiter_user,
    w.object,
    w.mode AS wanted_mode,
    w.holder_pid,
    coalesce(w.holder_q_user, hs."user") AS holder_user,
    w.held_mode,
    w.waiter_query,
    w.holder_query
FROM w
LEFT JOIN sessions ws ON ws.pid = w.pid
LEFT JOIN sessions hs ON hs.pid = w.holder_pid
ORDER BY wait_ms DESC, wait_start, waiter_pid, holder_pid;
