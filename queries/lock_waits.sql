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
)
SELECT
    w.wait_start,
    round(w.wait_ns / 1e6, 3) AS wait_ms,
    w.outcome,
    w.pid AS waiter_pid,
    coalesce(CAST(wq."user" AS VARCHAR), ws."user") AS waiter_user,
    w.object,
    w.mode AS wanted_mode,
    w.holder_pid,
    coalesce(CAST(hq."user" AS VARCHAR), hs."user") AS holder_user,
    w.held_mode,
    wq.query AS waiter_query,
    hq.query AS holder_query
FROM lock_waits w
LEFT JOIN queries wq ON wq.pid = w.pid AND wq.query_seq = w.query_seq
LEFT JOIN queries hq ON hq.pid = w.holder_pid AND hq.query_seq = w.holder_query_seq
LEFT JOIN sessions ws ON ws.pid = w.pid
LEFT JOIN sessions hs ON hs.pid = w.holder_pid
ORDER BY wait_ms DESC, wait_start, waiter_pid, holder_pid;
