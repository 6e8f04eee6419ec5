-- Latency histogram of all statements: how many took 0-1 us, 2-3 us,
-- 4-7 us, 8-15 us, ... (power-of-two buckets of microseconds, the rows of
-- bcc's dbstat). `dbflight hist TRACE` draws it.
--
--   dbflight sql TRACE -f queries/latency_histogram.sql
--
-- Statements still running when the recording ended have no duration and
-- are not counted. Empty buckets have no row.
WITH buckets AS (
    SELECT log2_bucket(duration_ns / 1000) AS low
    FROM queries
    WHERE duration_ns IS NOT NULL
)
SELECT
    CASE WHEN low <= 1 THEN 0 ELSE low END AS usecs_from,
    CASE WHEN low <= 1 THEN 1 ELSE 2 * low - 1 END AS usecs_to,
    count(*) AS count
FROM buckets
GROUP BY 1, 2
ORDER BY 1;
