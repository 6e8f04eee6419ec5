-- Bytes per statement: network bytes each fingerprint received (the
-- statements and their parameters) and sent (results), from the net rows
-- the recorder tied to a statement (same pid and query_seq), most bytes
-- sent first.
--
--   dbflight sql TRACE -f queries/bytes_per_statement.sql
--
-- calls counts every statement of the fingerprint, with or without bytes.
WITH per_statement AS (
    SELECT
        q.pid,
        q.query_seq,
        fingerprint(q.query) AS fingerprint,
        coalesce(sum(n.bytes) FILTER (WHERE n.direction = 'recv'), 0) AS recv,
        coalesce(sum(n.bytes) FILTER (WHERE n.direction = 'send'), 0) AS sent
    FROM queries q
    LEFT JOIN net n ON n.pid = q.pid AND n.query_seq = q.query_seq
    GROUP BY q.pid, q.query_seq, q.query
)
SELECT
    fingerprint,
    count(*) AS calls,
    sum(recv) AS bytes_received,
    sum(sent) AS bytes_sent,
    round(avg(recv), 1) AS avg_received,
    round(avg(sent), 1) AS avg_sent,
    max(sent) AS max_sent
FROM per_statement
GROUP BY fingerprint
HAVING sum(recv) + sum(sent) > 0
ORDER BY bytes_sent DESC, bytes_received DESC, fingerprint
LIMIT 25;
