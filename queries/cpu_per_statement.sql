-- On-CPU vs off-CPU time per fingerprint: how much of its statements'
-- time the backend spent running and how much waiting off the CPU
-- (sleeping on a lock, a latch or the client: state S; in the kernel, most
-- often disk I/O: D; preempted while runnable: R), by total time.
--
--   dbflight sql TRACE -f queries/cpu_per_statement.sql
--
-- A sched row counts for a statement when the backend left the CPU (ts)
-- inside the statement's [ts, end_ts) on the same thread (a PostgreSQL
-- backend's one, a MySQL session's own thread of mysqld); its whole off_cpu_ns
-- counts, so on_cpu_ms = total_ms - off_cpu_ms. Statements without a
-- duration are left out. Times in milliseconds.
--
-- A thread runs one statement at a time, so each sched row belongs to the
-- last statement of its thread that started at or before it, if it left
-- the CPU before that statement ended: a running max over each thread's
-- rows in time order, not a range join.
WITH marks AS (
    SELECT pid, tid, ts, ts AS statement_ts, CAST(NULL AS BIGINT) AS off_cpu_ns,
           CAST(NULL AS VARCHAR) AS state
    FROM queries
    WHERE duration_ns IS NOT NULL
    UNION ALL
    SELECT pid, tid, ts, NULL, off_cpu_ns, CAST(state AS VARCHAR)
    FROM sched
),
attributed AS (
    SELECT
        pid, tid, ts, off_cpu_ns, state,
        max(statement_ts) OVER (
            -- At one instant the statement comes first: [ts, end_ts) holds its start.
            PARTITION BY pid, tid ORDER BY ts, statement_ts NULLS LAST
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS statement_ts
    FROM marks
),
off_cpu AS (
    SELECT
        q.pid, q.tid, q.query_seq,
        sum(a.off_cpu_ns) AS off_cpu_ns,
        sum(a.off_cpu_ns) FILTER (WHERE a.state = 'S') AS sleep_ns,
        sum(a.off_cpu_ns) FILTER (WHERE a.state = 'D') AS disk_ns,
        sum(a.off_cpu_ns) FILTER (WHERE a.state = 'R') AS preempted_ns
    FROM attributed a
    JOIN queries q ON q.pid = a.pid AND q.tid = a.tid AND q.ts = a.statement_ts
    WHERE a.off_cpu_ns IS NOT NULL AND a.ts < q.end_ts
    GROUP BY q.pid, q.tid, q.query_seq
),
per_statement AS (
    SELECT
        fingerprint(q.query) AS fingerprint,
        q.duration_ns,
        coalesce(o.off_cpu_ns, 0) AS off_cpu_ns,
        coalesce(o.sleep_ns, 0) AS sleep_ns,
        coalesce(o.disk_ns, 0) AS disk_ns,
        coalesce(o.preempted_ns, 0) AS preempted_ns
    FROM queries q
    LEFT JOIN off_cpu o ON o.pid = q.pid AND o.tid = q.tid AND o.query_seq = q.query_seq
    -- Without any sched row the scheduler was not traced: no result rather than 0 off-CPU.
    WHERE q.duration_ns IS NOT NULL AND (SELECT count(*) FROM sched) > 0
)
SELECT
    fingerprint,
    count(*) AS calls,
    round(sum(duration_ns) / 1e6, 3) AS total_ms,
    round((sum(duration_ns) - sum(off_cpu_ns)) / 1e6, 3) AS on_cpu_ms,
    round(sum(off_cpu_ns) / 1e6, 3) AS off_cpu_ms,
    round(100.0 * sum(off_cpu_ns) / nullif(sum(duration_ns), 0), 1) AS off_cpu_pct,
    round(sum(sleep_ns) / 1e6, 3) AS sleep_ms,
    round(sum(disk_ns) / 1e6, 3) AS disk_ms,
    round(sum(preempted_ns) / 1e6, 3) AS preempted_ms
FROM per_statement
GROUP BY fingerprint
ORDER BY sum(duration_ns) DESC, fingerprint
LIMIT 25;
