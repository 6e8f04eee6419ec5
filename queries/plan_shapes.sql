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
WITH RECURSIVE per_key AS (
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
-- The plan trees of those statements, from their roots down, with the
-- numbers of their key carried along.
tree AS (
    SELECT k.fingerprint, k.plan_id, k.calls, k.timed, k.total_ns,
           n.pid, n.query_seq, n.node_id, 0 AS depth
    FROM per_key k
    JOIN plan_nodes n ON n.pid = k.pid AND n.query_seq = k.query_seq
    WHERE n.parent_node_id IS NULL
    UNION ALL
    SELECT t.fingerprint, t.plan_id, t.calls, t.timed, t.total_ns,
           c.pid, c.query_seq, c.node_id, t.depth + 1
    FROM tree t
    JOIN plan_nodes c ON c.pid = t.pid AND c.query_seq = t.query_seq AND c.parent_node_id = t.node_id
    WHERE c.parent_node_id IS NOT NULL
),
shapes AS (
    SELECT
        t.fingerprint, t.calls, t.timed, t.total_ns,
        -- The lines in node_id order: each starts with its node_id padded
        -- to 11 digits, so that sorting the lines sorts by node_id, and the
        -- padding is cut off after.
        regexp_replace(
            array_to_string(array_sort(array_agg(
                lpad(CAST(t.node_id AS VARCHAR), 11, '0') || repeat('  ', t.depth)
                || CAST(n.node_type AS VARCHAR)
            )), chr(10)),
            '(?m)^[0-9]{11}', '', 'g'
        ) AS plan
    FROM tree t
    JOIN plan_nodes n ON n.pid = t.pid AND n.query_seq = t.query_seq AND n.node_id = t.node_id
    GROUP BY t.fingerprint, t.plan_id, t.pid, t.query_seq, t.calls, t.timed, t.total_ns
),
-- Two keys can give one text.
per_plan AS (
    SELECT fingerprint, plan, sum(calls) AS calls,
           CAST(sum(total_ns) AS DOUBLE) / sum(timed) AS mean_ns,
           sum(total_ns) AS total_ns
    FROM shapes
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
