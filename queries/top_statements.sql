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
SELECT
    fingerprint,
    count(*) AS calls,
    count(*) FILTER (WHERE status = 'error') AS errors,
    round(sum(duration_ns) / 1e6, 3) AS total_ms,
    round(100.0 * sum(duration_ns) / sum(sum(duration_ns)) OVER (), 1) AS pct_time,
    round(avg(duration_ns) / 1e6, 3) AS mean_ms,
    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ns) / 1e6, 3) AS p50_ms,
    round(percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ns) / 1e6, 3) AS p95_ms,
    round(percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) / 1e6, 3) AS p99_ms,
    round(max(duration_ns) / 1e6, 3) AS max_ms,
    first_value(query ORDER BY duration_ns DESC NULLS LAST, ts, pid) AS example
FROM statement_totals
GROUP BY 1
ORDER BY sum(duration_ns) DESC NULLS LAST, calls DESC, fingerprint
LIMIT 25;
