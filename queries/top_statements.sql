-- Top statements: one row per fingerprint (statements that differ only in
-- their constants, spacing, comments or keyword case), by total time, like
-- pg_stat_statements but from a trace.
--
--   dbflight sql TRACE -f queries/top_statements.sql
--
-- statement_totals is queries with each statement's fingerprint (the
-- same as fingerprint(query)), computed once per session and shared with
-- the other sections. Times in milliseconds. p50/p95/p99 are exact
-- (percentile_cont, the standard syntax, so the file also runs in DuckDB
-- over a view adding a fingerprint column to queries). pct_time is the share of all statement time. errors
-- counts statements that ended in an error; example is the slowest
-- statement of the group as recorded (cut at --max-query-len), the
-- earliest of equally slow ones.
--
-- The groups keep which statement is their example, and its text is read
-- for the 25 shown only: the same as first_value(query ORDER BY
-- duration_ns DESC NULLS LAST, ts, pid) in the GROUP BY, without carrying
-- every statement's text through it. (pid, tid, query_seq, ts) names one
-- statement, also across several traces read as one; should two traces
-- hold the very same statement, min() keeps one row per group.
WITH per_fingerprint AS (
    SELECT
        fingerprint,
        count(*) AS calls,
        count(*) FILTER (WHERE status = 'error') AS errors,
        sum(duration_ns) AS total_ns,
        round(100.0 * sum(duration_ns) / sum(sum(duration_ns)) OVER (), 1) AS pct_time,
        avg(duration_ns) AS mean_ns,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ns) AS p50_ns,
        percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ns) AS p95_ns,
        percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) AS p99_ns,
        max(duration_ns) AS max_ns,
        first_value(pid ORDER BY duration_ns DESC NULLS LAST, ts, pid) AS example_pid,
        first_value(tid ORDER BY duration_ns DESC NULLS LAST, ts, pid) AS example_tid,
        first_value(query_seq ORDER BY duration_ns DESC NULLS LAST, ts, pid) AS example_seq,
        first_value(ts ORDER BY duration_ns DESC NULLS LAST, ts, pid) AS example_ts
    FROM statement_totals
    GROUP BY fingerprint
    ORDER BY total_ns DESC NULLS LAST, calls DESC, fingerprint
    LIMIT 25
)
SELECT
    t.fingerprint,
    t.calls,
    t.errors,
    round(t.total_ns / 1e6, 3) AS total_ms,
    t.pct_time,
    round(t.mean_ns / 1e6, 3) AS mean_ms,
    round(t.p50_ns / 1e6, 3) AS p50_ms,
    round(t.p95_ns / 1e6, 3) AS p95_ms,
    round(t.p99_ns / 1e6, 3) AS p99_ms,
    round(t.max_ns / 1e6, 3) AS max_ms,
    min(q.query) AS example
FROM per_fingerprint t
JOIN queries q
    ON q.pid = t.example_pid AND q.tid = t.example_tid
    AND q.query_seq = t.example_seq AND q.ts = t.example_ts
GROUP BY t.fingerprint, t.calls, t.errors, t.total_ns, t.pct_time, t.mean_ns,
    t.p50_ns, t.p95_ns, t.p99_ns, t.max_ns
ORDER BY t.total_ns DESC NULLS LAST, t.calls DESC, t.fingerprint;
