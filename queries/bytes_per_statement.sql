-- Bytes per statement: network bytes each fingerprint received (the
-- statements and their parameters) and sent (results), from the net rows
-- the recorder tied to a statement (same pid, thread and query_seq: a
-- MySQL session is a thread of mysqld, numbered on its own), most bytes
-- sent first.
--
--   dbflight sql TRACE -f queries/bytes_per_statement.sql
--
-- calls counts every statement of the fingerprint, with or without bytes.
-- statement_totals holds each statement's recv_bytes and sent_bytes (NULL
-- when no net rows were recorded at all); the same in plain SQL:
--
--   SELECT pid, tid, query_seq,
--          sum(bytes) FILTER (WHERE direction = 'recv') AS recv_bytes,
--          sum(bytes) FILTER (WHERE direction = 'send') AS sent_bytes
--   FROM net WHERE query_seq IS NOT NULL GROUP BY pid, tid, query_seq;
--
-- joined to queries on (pid, tid, query_seq).
SELECT
    fingerprint,
    count(*) AS calls,
    sum(recv_bytes) AS bytes_received,
    sum(sent_bytes) AS bytes_sent,
    round(avg(recv_bytes), 1) AS avg_received,
    round(avg(sent_bytes), 1) AS avg_sent,
    max(sent_bytes) AS max_sent
FROM statement_totals
GROUP BY fingerprint
HAVING sum(recv_bytes) + sum(sent_bytes) > 0
ORDER BY bytes_sent DESC, bytes_received DESC, fingerprint
LIMIT 25;
