-- Latency histogram per fingerprint: the buckets of latency_histogram.sql
-- for each group of statements that differ only in their constants, the
-- groups with the most calls first. `dbflight hist TRACE --by fingerprint`
-- draws the top ones.
--
--   dbflight sql TRACE -f queries/latency_histogram_by_fingerprint.sql
--
-- calls counts the statements of the fingerprint that have a duration.
WITH statements AS (
    SELECT fingerprint(query) AS fingerprint, log2_bucket(duration_ns / 1000) AS low
    FROM queries
    WHERE duration_ns IS NOT NULL
),
counted AS (
    SELECT fingerprint, count(*) OVER (PARTITION BY fingerprint) AS calls, low
    FROM statements
)
SELECT
    fingerprint,
    calls,
    CASE WHEN low <= 1 THEN 0 ELSE low END AS usecs_from,
    CASE WHEN low <= 1 THEN 1 ELSE 2 * low - 1 END AS usecs_to,
    count(*) AS count
FROM counted
GROUP BY 1, 2, 3, 4
ORDER BY calls DESC, fingerprint, usecs_from;
