-- The 20 slowest statements, slowest first, with when, where and how they
-- ended. `dbflight slow TRACE --threshold 10ms` lists every statement over
-- a threshold in time order instead.
--
--   dbflight sql TRACE -f queries/slowest.sql
SELECT
    ts,
    pid,
    round(duration_ns / 1e6, 3) AS ms,
    status,
    database,
    "user",
    query
FROM queries
WHERE duration_ns IS NOT NULL
ORDER BY duration_ns DESC, ts
LIMIT 20;
