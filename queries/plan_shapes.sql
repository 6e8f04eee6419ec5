-- Plan shapes of the top statements: for the 10 fingerprints with the most
-- total time that have plan nodes, each distinct plan tree their
-- statements ran with (node types, children indented under their parent,
-- in plan_node_id order), how many statements ran it and their mean time.
--
--   dbflight sql TRACE -f queries/plan_shapes.sql
--
-- plan_nodes rows join their statement on pid and query_seq. Times in
-- milliseconds.
WITH RECURSIVE tree AS (
    SELECT pid, query_seq, node_id, 0 AS depth
    FROM plan_nodes
    WHERE parent_node_id IS NULL
    UNION ALL
    SELECT c.pid, c.query_seq, c.node_id, t.depth + 1
    FROM plan_nodes c
    JOIN tree t ON c.pid = t.pid AND c.query_seq = t.query_seq AND c.parent_node_id = t.node_id
),
shapes AS (
    SELECT
        t.pid,
        t.query_seq,
        string_agg(repeat('  ', t.depth) || CAST(n.node_type AS VARCHAR), chr(10) ORDER BY t.node_id) AS plan
    FROM tree t
    JOIN plan_nodes n ON n.pid = t.pid AND n.query_seq = t.query_seq AND n.node_id = t.node_id
    GROUP BY t.pid, t.query_seq
),
planned AS (
    SELECT fingerprint(q.query) AS fingerprint, q.duration_ns, s.plan
    FROM queries q
    JOIN shapes s ON s.pid = q.pid AND s.query_seq = q.query_seq
),
top AS (
    SELECT fingerprint, sum(duration_ns) AS total_ns,
           row_number() OVER (ORDER BY sum(duration_ns) DESC NULLS LAST, fingerprint) AS rank
    FROM planned
    GROUP BY fingerprint
)
SELECT
    t.rank,
    p.fingerprint,
    count(*) AS calls,
    round(avg(p.duration_ns) / 1e6, 3) AS mean_ms,
    p.plan
FROM planned p
JOIN top t ON t.fingerprint = p.fingerprint
WHERE t.rank <= 10
GROUP BY t.rank, p.fingerprint, p.plan
ORDER BY t.rank, calls DESC, p.plan;
