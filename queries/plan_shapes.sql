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
        -- The lines in node_id order: each starts with its node_id padded
        -- to 11 digits, so that sorting the lines sorts by node_id, and the
        -- padding is cut off after (string_agg(... ORDER BY) is far slower
        -- over millions of statements).
        regexp_replace(
            array_to_string(array_sort(array_agg(
                lpad(CAST(t.node_id AS VARCHAR), 11, '0') || repeat('  ', t.depth)
                || CAST(n.node_type AS VARCHAR)
            )), chr(10)),
            '(?m)^[0-9]{11}', '', 'g'
        ) AS plan
    FROM tree t
    JOIN plan_nodes n ON n.pid = t.pid AND n.query_seq = t.query_seq AND n.node_id = t.node_id
    GROUP BY t.pid, t.query_seq
),
planned AS (
    SELECT fingerprint(q.query) AS fingerprint, q.duration_ns, s.plan
    FROM queries q
    JOIN shapes s ON s.pid = q.pid AND s.query_seq = q.query_seq
),
-- One pass over the statements: per fingerprint and plan, then the
-- fingerprints ranked by their total over all their plans.
per_plan AS (
    SELECT fingerprint, plan, count(*) AS calls, avg(duration_ns) AS mean_ns,
           sum(duration_ns) AS total_ns
    FROM planned
    GROUP BY fingerprint, plan
),
ranked AS (
    SELECT *, sum(total_ns) OVER (PARTITION BY fingerprint) AS fingerprint_ns
    FROM per_plan
),
top AS (
    SELECT *, dense_rank() OVER (ORDER BY fingerprint_ns DESC NULLS LAST, fingerprint) AS rank
    FROM ranked
)
SELECT
    rank,
    fingerprint,
    calls,
    round(mean_ns / 1e6, 3) AS mean_ms,
    plan
FROM top
WHERE rank <= 10
ORDER BY rank, calls DESC, plan;
