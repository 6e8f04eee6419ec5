-- Plan shapes of the top statements: for the 10 fingerprints with the most
-- total time that have plan nodes, each distinct plan tree their
-- statements ran with (node types, children indented under their parent,
-- in plan_node_id order), how many statements ran it and their mean time.
--
--   dbflight sql TRACE -f queries/plan_shapes.sql
--
-- plan_nodes rows join their statement on pid and query_seq. Times in
-- milliseconds.
--
-- A statement's plan text depends only on its rows of (node_id,
-- parent_node_id, node_type), and millions of statements share a few
-- plans, so the text is built once per plan_id of statement_totals (a hash
-- of that set of rows) and fingerprint, from the first statement that ran
-- it.
WITH per_key AS (
    SELECT
        fingerprint,
        plan_id,
        count(*) AS calls,
        count(duration_ns) AS timed,
        sum(duration_ns) AS total_ns,
        first_value(pid ORDER BY pid, query_seq) AS pid,
        first_value(query_seq ORDER BY pid, query_seq) AS query_seq
    FROM statement_totals
    WHERE plan_id IS NOT NULL
    GROUP BY 1, 2
),
-- The plan tree of each key's statement, drawn by plan_tree() from its
-- plan_nodes rows: the roots (no parent) and every node under them,
-- indented two spaces per level, in node_id order. (A recursive CTE
-- draws the same, reading plan_nodes once per level of the deepest tree.)
shapes AS (
    SELECT
        k.fingerprint, k.calls, k.timed, k.total_ns,
        plan_tree(n.node_id, n.parent_node_id, n.node_type) AS plan
    FROM per_key k
    JOIN plan_nodes n ON n.pid = k.pid AND n.query_seq = k.query_seq
    GROUP BY k.fingerprint, k.plan_id, k.pid, k.query_seq, k.calls, k.timed, k.total_ns
),
per_plan AS (
    SELECT fingerprint, plan, sum(calls) AS calls,
           CAST(sum(total_ns) AS DOUBLE) / sum(timed) AS mean_ns,
           sum(total_ns) AS total_ns
    FROM shapes
    WHERE plan IS NOT NULL
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
