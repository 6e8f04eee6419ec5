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
-- statement_totals holds those sums per statement (off_cpu_ns, sleep_ns,
-- disk_ns, preempted_ns). The same in plain SQL, slower on big traces: a
-- thread runs one statement at a time, so each sched row belongs to the
-- last statement of its thread that started at or before it (statements
-- first at one instant), if it left the CPU before that statement ended:
--
--   WITH marks AS (
--       SELECT pid, tid, ts, ts AS statement_ts, NULL AS off_cpu_ns FROM queries
--       WHERE duration_ns IS NOT NULL
--       UNION ALL SELECT pid, tid, ts, NULL, off_cpu_ns FROM sched),
--   attributed AS (
--       SELECT pid, tid, ts, off_cpu_ns, max(statement_ts) OVER (
--           PARTITION BY pid, tid ORDER BY ts, statement_ts NULLS LAST
--           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS statement_ts
--       FROM marks)
--   SELECT q.pid, q.tid, q.query_seq, sum(a.off_cpu_ns) AS off_cpu_ns
--   FROM attributed a JOIN queries q
--       ON q.pid = a.pid AND q.tid = a.tid AND q.ts = a.statement_ts
--   WHERE a.off_cpu_ns IS NOT NULL AND a.ts < q.end_ts
--   GROUP BY q.pid, q.tid, q.query_seq;
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
FROM statement_totals
-- off_cpu_ns is NULL without any sched row (the scheduler was not traced):
-- no result rather than 0 off-CPU.
WHERE duration_ns IS NOT NULL AND off_cpu_ns IS NOT NULL
GROUP BY fingerprint
ORDER BY sum(duration_ns) DESC, fingerprint
LIMIT 25;
