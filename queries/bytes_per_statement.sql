-- Bytes per statement: network bytes each fingerprint received (the
-- statements and their parameters) and sent (results), from the net rows
-- the recorder tied to a statement (same pid, thread and query_seq: a
-- MySQL session is a thread of mysqld, numbered on its own), most bytes
-- sent first.
--
--   dbflight sql TRACE -f queries/bytes_per_statement.sql
--
-- calls counts every statement of the fingerprint, with or without bytes.
-- Net rows are summed per statement first (integer keys), then joined.
WITH net_per_statement AS (
    SELECT
        pid,
        tid,
        query_seq,
        sum(bytes) FILTER (WHERE direction = 'recv') AS recv,
        sum(bytes) FILTER (WHERE direction = 'send') AS sent
    FROM net
    WHERE query_seq IS NOT NULL
    GROUP BY pid, tid, query_seq
),
per_statement AS (
    SELECT
        fingerprint(q.query) AS fingerprint,
        coalesce(n.recv, 0) AS recv,
        coalesce(n.sent, 0) AS sent
    FROM queries q
    LEFT JOIN net_per_statement n
        ON n.pid = q.pid AND n.tid = q.tid AND n.query_seq = q.query_seq
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
