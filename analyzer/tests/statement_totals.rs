//! The derived table `statement_totals`: its sums on a trace whose answer is
//! known row by row (the story of `common`), and equal to the plain SQL its
//! documentation gives on the recorded traces of `testdata/`.

mod common;

use std::path::Path;

use common::{E, MS, NET, SCHED};

/// Rows of a result without its header.
fn rows(trace: &Path, sql: &str) -> Vec<String> {
    common::run(trace, "sql", &[sql, "--format", "csv"])
        .lines()
        .skip(1)
        .map(String::from)
        .collect()
}

#[test]
fn sums_of_each_statement_of_the_story() {
    let (_tmp, dir) = common::story();
    let got = rows(
        &dir,
        "SELECT pid, query_seq, recv_bytes, sent_bytes, off_cpu_ns, sleep_ns, disk_ns, \
                preempted_ns, plan_id IS NOT NULL AS has_plan \
         FROM statement_totals ORDER BY pid, query_seq",
    );
    assert_eq!(got.len(), common::statements().len());
    let ms = |v: f64| (v * MS as f64) as i64;
    // E's statements: seq 1 ran [5000, 5100) ms, seq 2 [6000, 6050) ms.
    let off = |seq: u64, state: Option<&str>| -> i64 {
        let (start, end) = if seq == 1 {
            (5000.0, 5100.0)
        } else {
            (6000.0, 6050.0)
        };
        SCHED
            .iter()
            .filter(|r| r.0 >= start && r.0 < end && state.is_none_or(|s| s == r.2))
            .map(|r| ms(r.1))
            .sum()
    };
    let bytes = |seq: u64, dir: &str| -> i64 {
        NET.iter()
            .filter(|r| r.3 == Some(seq) && r.1 == dir)
            .map(|r| r.2)
            .sum()
    };
    for seq in [1u64, 2] {
        let want = format!(
            "{E},{seq},{},{},{},{},{},{},true",
            bytes(seq, "recv"),
            bytes(seq, "send"),
            off(seq, None),
            off(seq, Some("S")),
            off(seq, Some("D")),
            off(seq, Some("R")),
        );
        assert!(got.contains(&want), "{want} not in {got:#?}");
    }
    // The figures the rows above were built to give: the switch at the very
    // start counts, the one at the end (6050 ms) and the one between (5200 ms) do not.
    assert_eq!(off(1, None), ms(42.0));
    assert_eq!(off(2, None), ms(5.0));
    // Every other statement: no events, zero sums, no plan.
    let others = got.iter().filter(|r| !r.starts_with(&format!("{E},")));
    for r in others {
        assert!(r.ends_with(",0,0,0,0,0,0,false"), "{r}");
    }
    // Both of E's statements ran the same plan.
    let plans = rows(
        &dir,
        "SELECT count(DISTINCT plan_id) FROM statement_totals WHERE plan_id IS NOT NULL",
    );
    assert_eq!(plans, ["1"]);
}

/// A trace without net, sched or plan_nodes rows: NULL, not 0, so "not
/// recorded" and "nothing happened" stay apart.
#[test]
fn kinds_not_recorded_are_null() {
    let trace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/mariadb-10.11");
    let counts = rows(
        &trace,
        "SELECT (SELECT count(*) FROM plan_nodes) AS plan_rows, count(*) AS n, count(plan_id) AS ids \
         FROM statement_totals",
    );
    let [c] = counts.as_slice() else {
        panic!("{counts:?}")
    };
    let v: Vec<i64> = c.split(',').map(|x| x.parse().unwrap()).collect();
    assert_eq!(v[0], 0, "this check needs a trace without plan nodes");
    assert!(v[1] > 0);
    assert_eq!(v[2], 0);
}

/// The plain SQL of `queries/cpu_per_statement.sql` and
/// `queries/bytes_per_statement.sql`, and plan shapes as sorted row lists,
/// against the table, statement by statement.
const SAME_AS_PLAIN_SQL: &str = "
WITH marks AS (
    SELECT pid, tid, ts, ts AS statement_ts, CAST(NULL AS BIGINT) AS off_cpu_ns,
           CAST(NULL AS VARCHAR) AS state FROM queries
    WHERE duration_ns IS NOT NULL
    UNION ALL SELECT pid, tid, ts, NULL, off_cpu_ns, CAST(state AS VARCHAR) FROM sched),
attributed AS (
    SELECT pid, tid, ts, off_cpu_ns, state, max(statement_ts) OVER (
        PARTITION BY pid, tid ORDER BY ts, statement_ts NULLS LAST
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS statement_ts
    FROM marks),
off AS (
    SELECT q.pid, q.tid, q.query_seq, sum(a.off_cpu_ns) AS off_cpu_ns,
           sum(a.off_cpu_ns) FILTER (WHERE a.state = 'D') AS disk_ns
    FROM attributed a JOIN queries q
        ON q.pid = a.pid AND q.tid = a.tid AND q.ts = a.statement_ts
    WHERE a.off_cpu_ns IS NOT NULL AND a.ts < q.end_ts
    GROUP BY q.pid, q.tid, q.query_seq),
bytes AS (
    SELECT pid, tid, query_seq,
           sum(bytes) FILTER (WHERE direction = 'recv') AS recv_bytes,
           sum(bytes) FILTER (WHERE direction = 'send') AS sent_bytes
    FROM net WHERE query_seq IS NOT NULL GROUP BY pid, tid, query_seq),
shapes AS (
    SELECT pid, tid, query_seq, array_to_string(array_sort(array_agg(
        concat(node_id, ':', coalesce(CAST(parent_node_id AS VARCHAR), '-'), ':',
               CAST(node_type AS VARCHAR)))), ',') AS shape
    FROM plan_nodes GROUP BY pid, tid, query_seq),
joined AS (
    SELECT t.*, o.off_cpu_ns AS want_off, o.disk_ns AS want_disk,
           b.recv_bytes AS want_recv, b.sent_bytes AS want_sent, s.shape
    FROM statement_totals t
    LEFT JOIN off o ON o.pid = t.pid AND o.tid = t.tid AND o.query_seq = t.query_seq
    LEFT JOIN bytes b ON b.pid = t.pid AND b.tid = t.tid AND b.query_seq = t.query_seq
    LEFT JOIN shapes s ON s.pid = t.pid AND s.tid = t.tid AND s.query_seq = t.query_seq)
SELECT
    count(*) AS statements,
    count(*) FILTER (WHERE duration_ns IS NOT NULL AND (SELECT count(*) FROM sched) > 0
        AND ((off_cpu_ns IS DISTINCT FROM coalesce(want_off, 0))
             OR (disk_ns IS DISTINCT FROM coalesce(want_disk, 0)))) AS off_cpu_wrong,
    count(*) FILTER (WHERE (SELECT count(*) FROM net) > 0
        AND ((recv_bytes IS DISTINCT FROM coalesce(want_recv, 0))
             OR (sent_bytes IS DISTINCT FROM coalesce(want_sent, 0)))) AS bytes_wrong,
    count(*) FILTER (WHERE (plan_id IS NULL) <> (shape IS NULL)) AS plan_presence_wrong,
    count(DISTINCT plan_id) AS plan_ids,
    count(DISTINCT shape) AS shapes,
    count(DISTINCT concat(CAST(plan_id AS VARCHAR), '|', shape)) FILTER (WHERE shape IS NOT NULL) AS pairs,
    count(*) FILTER (WHERE coalesce(want_off, 0) > 0) AS with_off_cpu,
    count(*) FILTER (WHERE coalesce(want_sent, 0) > 0) AS with_bytes
FROM joined";

fn check_same_as_plain_sql(trace: &Path) -> Vec<i64> {
    let got = rows(trace, SAME_AS_PLAIN_SQL);
    let [row] = got.as_slice() else {
        panic!("{got:?}")
    };
    let v: Vec<i64> = row.split(',').map(|x| x.parse().unwrap()).collect();
    let [
        statements,
        off_wrong,
        bytes_wrong,
        presence_wrong,
        ids,
        shapes,
        pairs,
        ..,
    ] = v[..]
    else {
        panic!("{row}")
    };
    assert!(statements > 0, "{}: no statements", trace.display());
    assert_eq!(
        (off_wrong, bytes_wrong, presence_wrong),
        (0, 0, 0),
        "{}: {row}",
        trace.display()
    );
    // One plan_id per distinct set of plan rows, and the other way round.
    assert_eq!((ids, pairs), (shapes, shapes), "{}: {row}", trace.display());
    v
}

#[test]
fn same_as_the_plain_sql_on_the_story() {
    let (_tmp, dir) = common::story();
    let v = check_same_as_plain_sql(&dir);
    assert_eq!(
        (v[7], v[8]),
        (2, 2),
        "E's two statements have off-CPU time and bytes"
    );
}

#[test]
fn same_as_the_plain_sql_on_the_recorded_traces() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let mut with = [0i64; 3];
    for trace in [
        "pgbench-pg15",
        "locks-pg15",
        "lock-waits-pg15",
        "mariadb-10.11",
    ] {
        let v = check_same_as_plain_sql(&root.join(trace));
        with[0] += v[5];
        with[1] += v[7];
        with[2] += v[8];
    }
    // The check compared something of each kind.
    assert!(
        with.iter().all(|&n| n > 0),
        "shapes, off-CPU, bytes: {with:?}"
    );
}
