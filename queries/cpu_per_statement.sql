-- On-CPU vs off-CPU time per fingerprint: how much of its statements'
-- time the backend spent running and how much waiting off the CPU
-- (sleeping on a lock, a latch or the client: state S; in the kernel, most
-- often disk I/O: D; preempted while runnable: R), by total time.
--
--   dbflight sql TRACE -f queries/cpu_per_statement.sql
--
-- A sched row counts for a statement when the backend left the CPU (ts)
-- inside the statement's [ts, end_ts) on the same pid; its whole off_cpu_ns
-- counts, so on_cpu_ms = total_ms - off_cpu_ms. Statements without a
-- duration are left out. Times in milliseconds.
WITH per_statement AS (
    SELECT
        q.pid,
        q.query_seq,
        fingerprint(q.query) AS fingerprint,
        q.duration_ns,
        coalesce(sum(s.off_cpu_ns), 0) AS off_cpu_ns,
        coalesce(sum(s.off_cpu_ns) FILTER (WHERE s.state = 'S'), 0) AS sleep_ns,
        coalesce(sum(s.off_cpu_ns) FILTER (WHERE s.state = 'D'), 0) AS disk_ns,
        coalesce(sum(s.off_cpu_ns) FILTER (WHERE s.state = 'R'), 0) AS preempted_ns
    FROM queries q
    LEFT JOIN sched s ON s.pid = q.pid AND s.ts >= q.ts AND s.ts < q.end_ts
    -- Without any sched row the scheduler was not traced: no result rather than 0 off-CPU.
    WHERE q.duration_ns IS NOT NULL AND (SELECT count(*) FROM sched) > 0
    GROUP BY q.pid, q.query_seq, q.query, q.duration_ns
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
