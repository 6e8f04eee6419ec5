-- Timeline: the events of every table merged in time order, one row each
-- with a short description, like `perf script`. `dbflight timeline TRACE
-- [--pid N] [--from T] [--to T]` prints it, filtered.
--
--   dbflight sql TRACE -f queries/timeline.sql
--
-- source is the table an event comes from. Statements, plan nodes,
-- lock, net and scheduler events and wait-event samples are at their ts (a statement at its
-- start, a sched row when the thread left the CPU); a process at its
-- first_ts (fork, or already running when the recording began) and at its
-- last_ts when it exited before the recording ended.
WITH bounds AS (
    SELECT min(ts) AS started, max(end_ts) AS ended FROM recorder_stats
),
events AS (
    SELECT ts, pid, tid, 'queries' AS source,
        'statement ' || coalesce(CAST(round(duration_ns / 1e6, 3) AS VARCHAR) || ' ms', 'still running')
        || ' ' || CAST(status AS VARCHAR) || ' #' || CAST(query_seq AS VARCHAR) || ': ' || query AS description
    FROM queries
    UNION ALL
    SELECT ts, pid, tid, 'plan_nodes',
        'plan node ' || CAST(node_id AS VARCHAR) || ' ' || CAST(node_type AS VARCHAR)
        || coalesce(' under ' || CAST(parent_node_id AS VARCHAR), ' (root)')
        || coalesce(' cost ' || CAST(round(total_cost, 2) AS VARCHAR), '')
        || coalesce(' rows ' || CAST(plan_rows AS VARCHAR), '')
        || ' #' || CAST(query_seq AS VARCHAR)
    FROM plan_nodes
    UNION ALL
    SELECT ts, pid, tid, 'locks',
        CAST(event AS VARCHAR)
        || coalesce(' ' || CAST(mode AS VARCHAR), '')
        || coalesce(' ' || lock_object(lock_type, database_oid, relation_oid, field3, field4), '')
        || coalesce(' ' || CAST(result AS VARCHAR), '')
        || coalesce(' after ' || CAST(round(wait_ns / 1e6, 3) AS VARCHAR) || ' ms', '')
        || coalesce(' #' || CAST(query_seq AS VARCHAR), '')
    FROM locks
    UNION ALL
    SELECT ts, pid, tid, 'lwlocks',
        CAST(event AS VARCHAR) || coalesce(' ' || tranche, '') || coalesce(' ' || CAST(mode AS VARCHAR), '')
        || coalesce(' after ' || CAST(round(wait_ns / 1e6, 3) AS VARCHAR) || ' ms', '')
    FROM lwlocks
    UNION ALL
    SELECT ts, pid, tid, 'net',
        CAST(direction AS VARCHAR) || ' ' || CAST(bytes AS VARCHAR) || ' bytes'
        || CASE WHEN direction = 'send' THEN ' to ' ELSE ' from ' END
        || coalesce(remote_addr || coalesce(':' || CAST(remote_port AS VARCHAR), ''), CAST(family AS VARCHAR), '?')
        || coalesce(' #' || CAST(query_seq AS VARCHAR), '')
    FROM net
    UNION ALL
    SELECT ts, pid, tid, 'sched',
        'off-CPU ' || CAST(round(off_cpu_ns / 1e6, 3) AS VARCHAR) || ' ms state ' || CAST(state AS VARCHAR)
        || coalesce(' cpu ' || CAST(cpu AS VARCHAR), '')
    FROM sched
    UNION ALL
    SELECT ts, pid, tid, 'wait_events',
        'sample: ' || coalesce(CAST(wait_event_type AS VARCHAR) || ':' || CAST(wait_event AS VARCHAR), 'on CPU')
        || coalesce(' #' || CAST(query_seq AS VARCHAR), '')
    FROM wait_events
    UNION ALL
    SELECT coalesce(p.first_ts, p.ts), p.pid, p.tid, 'processes',
        CASE WHEN coalesce(p.first_ts, p.ts) > b.started THEN 'fork' ELSE 'running' END
        || coalesce(' ' || CAST(p.role AS VARCHAR), '')
        || coalesce(' (parent ' || CAST(p.ppid AS VARCHAR) || ')', '')
        || coalesce(': ' || p.title, coalesce(': ' || p.comm, ''))
    FROM processes p CROSS JOIN bounds b
    UNION ALL
    SELECT p.last_ts, p.pid, p.tid, 'processes',
        'exit' || coalesce(' ' || CAST(p.role AS VARCHAR), '') || coalesce(': ' || p.comm, '')
    FROM processes p CROSS JOIN bounds b
    WHERE p.last_ts < b.ended
)
SELECT ts, pid, tid, source, description
FROM events
-- At one instant: a process before its statement, a statement before its events.
ORDER BY ts, pid, tid,
    CASE source WHEN 'processes' THEN 0 WHEN 'queries' THEN 1 WHEN 'plan_nodes' THEN 2 ELSE 3 END,
    source
