-- Overview of a trace: when it was recorded, the servers and sessions,
-- how many statements ran and failed, lock waits and deadlocks, and per
-- table how many events were written and how many the recorder dropped
-- (when it could not keep up: then counts are lower bounds). One row per
-- item, in a fixed order.
--
--   dbflight sql TRACE -f queries/overview.sql
WITH stats AS (
    SELECT
        min(ts) AS started, max(end_ts) AS ended,
        count(*) AS segments,
        sum(queries_written) AS queries_w, sum(queries_dropped) AS queries_d,
        sum(plan_nodes_written) AS plan_nodes_w, sum(plan_nodes_dropped) AS plan_nodes_d,
        sum(locks_written) AS locks_w, sum(locks_dropped) AS locks_d,
        sum(lwlocks_written) AS lwlocks_w, sum(lwlocks_dropped) AS lwlocks_d,
        sum(net_written) AS net_w, sum(net_dropped) AS net_d,
        sum(sched_written) AS sched_w, sum(sched_dropped) AS sched_d,
        sum(processes_written) AS processes_w, sum(processes_dropped) AS processes_d
    FROM recorder_stats
),
q AS (
    SELECT
        min(ts) AS first_ts, max(coalesce(end_ts, ts)) AS last_ts,
        count(*) AS statements,
        count(*) FILTER (WHERE status = 'error') AS errors,
        count(*) FILTER (WHERE status = 'incomplete') AS incomplete,
        -- A session is a backend (PostgreSQL) or a connection thread (MySQL):
        -- thread ids are unique across processes, and a backend's is its pid.
        count(DISTINCT tid) AS sessions,
        sum(duration_ns) AS total_ns
    FROM queries
),
-- fingerprint(query) of every statement, as statement_totals keeps it for the other sections.
f AS (SELECT count(DISTINCT fingerprint) AS fingerprints FROM statement_totals),
l AS (
    SELECT
        count(*) FILTER (WHERE event = 'wait_start') AS waits,
        count(*) FILTER (WHERE event = 'wait_end') AS ended,
        coalesce(sum(wait_ns), 0) AS wait_ns,
        count(*) FILTER (WHERE event = 'deadlock') AS deadlocks
    FROM locks
),
p AS (
    SELECT
        -- The server: PostgreSQL's postmaster, or mysqld/mariadbd.
        count(*) FILTER (WHERE role IN ('postmaster', 'mysqld')) AS servers,
        string_agg(CAST(pid AS VARCHAR), ', ' ORDER BY pid)
            FILTER (WHERE role IN ('postmaster', 'mysqld')) AS server_pids,
        -- Client sessions: backends (PostgreSQL), connection threads (MySQL).
        count(DISTINCT tid) FILTER (WHERE role IN ('backend', 'connection')) AS backends,
        count(DISTINCT pid) AS processes
    FROM processes
),
items(n, item, value) AS (
    SELECT 1, 'recorded', CAST(started AS VARCHAR) || ' .. ' || CAST(ended AS VARCHAR) FROM stats
    UNION ALL SELECT 2, 'duration',
        CAST(round((CAST(ended AS BIGINT) - CAST(started AS BIGINT)) / 1e9, 3) AS VARCHAR) || ' s'
        || ' in ' || CAST(segments AS VARCHAR) || ' segment(s)' FROM stats
    UNION ALL SELECT 3, 'servers', CAST(servers AS VARCHAR) || coalesce(' (pid ' || server_pids || ')', '') FROM p
    UNION ALL SELECT 4, 'processes', CAST(processes AS VARCHAR) || ' traced, ' || CAST(backends AS VARCHAR) || ' client sessions (backends or connections)' FROM p
    UNION ALL SELECT 5, 'sessions', CAST(sessions AS VARCHAR) || ' with statements' FROM q
    UNION ALL SELECT 6, 'statements',
        CAST(statements AS VARCHAR) || ' (' || CAST(fingerprints AS VARCHAR) || ' fingerprints), '
        || CAST(round(coalesce(total_ns, 0) / 1e6, 3) AS VARCHAR) || ' ms in total' FROM q CROSS JOIN f
    UNION ALL SELECT 7, 'statement range',
        coalesce(CAST(first_ts AS VARCHAR) || ' .. ' || CAST(last_ts AS VARCHAR), 'none') FROM q
    UNION ALL SELECT 8, 'errors', CAST(errors AS VARCHAR) FROM q
    UNION ALL SELECT 9, 'incomplete', CAST(incomplete AS VARCHAR) || ' (still running when the recording ended)' FROM q
    UNION ALL SELECT 10, 'lock waits',
        CAST(waits AS VARCHAR) || ' (' || CAST(ended AS VARCHAR) || ' ended, after '
        || CAST(round(wait_ns / 1e6, 3) AS VARCHAR) || ' ms in total)' FROM l
    UNION ALL SELECT 11, 'deadlocks', CAST(deadlocks AS VARCHAR) FROM l
    UNION ALL SELECT 20, 'queries events', CAST(queries_w AS VARCHAR) || ' written, ' || CAST(queries_d AS VARCHAR) || ' dropped' FROM stats
    UNION ALL SELECT 21, 'plan_nodes events', CAST(plan_nodes_w AS VARCHAR) || ' written, ' || CAST(plan_nodes_d AS VARCHAR) || ' dropped' FROM stats
    UNION ALL SELECT 22, 'locks events', CAST(locks_w AS VARCHAR) || ' written, ' || CAST(locks_d AS VARCHAR) || ' dropped' FROM stats
    UNION ALL SELECT 23, 'lwlocks events', CAST(lwlocks_w AS VARCHAR) || ' written, ' || CAST(lwlocks_d AS VARCHAR) || ' dropped' FROM stats
    UNION ALL SELECT 24, 'net events', CAST(net_w AS VARCHAR) || ' written, ' || CAST(net_d AS VARCHAR) || ' dropped' FROM stats
    UNION ALL SELECT 25, 'sched events', CAST(sched_w AS VARCHAR) || ' written, ' || CAST(sched_d AS VARCHAR) || ' dropped' FROM stats
    UNION ALL SELECT 26, 'processes events', CAST(processes_w AS VARCHAR) || ' written, ' || CAST(processes_d AS VARCHAR) || ' dropped' FROM stats
)
SELECT item, value FROM items ORDER BY n;
