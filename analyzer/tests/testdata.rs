//! The analyzer on the real sample trace in `testdata/`, recorded by
//! `dbflight-record` from a pgbench run (see `testdata/record-sample.sh`,
//! which fixes the workload these counts come from). Runs as a user runs it,
//! without root, clang or BPF.

use assert_cmd::Command;

const TRACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/pgbench-pg15");

fn sql_csv(sql: &str) -> String {
    let out = Command::cargo_bin("dbflight")
        .unwrap()
        .args(["sql", TRACE, sql, "--format", "csv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The single value of a one-row, one-column result.
fn scalar(sql: &str) -> String {
    let csv = sql_csv(sql);
    let mut lines = csv.lines().skip(1);
    let v = lines
        .next()
        .unwrap_or_else(|| panic!("no row for {sql}"))
        .to_string();
    assert!(lines.next().is_none(), "one row expected for {sql}: {csv}");
    v
}

#[test]
fn select_only_run_in_simple_protocol() {
    // pgbench -S -t 200 -c 2 -M simple: 400 SELECTs with literal aids.
    let n = scalar(
        "SELECT count(*) FROM queries WHERE protocol = 'simple' AND status = 'ok' \
         AND query LIKE 'SELECT abalance FROM pgbench_accounts WHERE aid = %' AND query NOT LIKE '%$1%'",
    );
    assert_eq!(n, "400");
}

#[test]
fn tpcb_run_in_prepared_protocol() {
    // pgbench -t 50 -c 2 -M prepared: 100 transactions of 7 statements.
    let rows = sql_csv(
        "SELECT split_part(query, ' ', 1) AS verb, count(*) AS n FROM queries \
         WHERE protocol = 'extended' GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(
        rows,
        "verb,n\nBEGIN;,100\nEND;,100\nINSERT,100\nSELECT,100\nUPDATE,300\n"
    );
    assert_eq!(
        scalar("SELECT count(DISTINCT pid) FROM queries WHERE protocol = 'extended'"),
        "2"
    );
}

#[test]
fn errors_and_truncation() {
    assert_eq!(
        scalar("SELECT query FROM queries WHERE status = 'error'"),
        "SELECT 1/0"
    );
    // Recorded with --max-query-len 64: the 100-byte literal is cut, short statements are not.
    assert_eq!(
        scalar(
            "SELECT length(query) || ' ' || CAST(query_truncated AS VARCHAR) FROM queries WHERE query LIKE 'SELECT ''xxxx%'"
        ),
        "64 true"
    );
    assert_eq!(
        scalar("SELECT count(*) FROM queries WHERE query_truncated AND length(query) <> 64"),
        "0"
    );
    assert_eq!(
        scalar(
            "SELECT count(*) FROM queries WHERE query_truncated AND query LIKE 'SELECT abalance%'"
        ),
        "0"
    );
    assert_eq!(
        scalar("SELECT count(*) FROM queries WHERE status = 'incomplete'"),
        "0"
    );
}

#[test]
fn sessions_and_processes_join() {
    // Every statement's backend has a processes row naming its user and database.
    assert_eq!(
        scalar(
            "SELECT count(*) FROM queries q LEFT JOIN processes p ON q.pid = p.pid \
             WHERE (p.role IS DISTINCT FROM 'backend') OR (q.\"user\" IS DISTINCT FROM 'postgres') \
             OR (q.database IS DISTINCT FROM 'postgres')"
        ),
        "0"
    );
    assert_eq!(
        scalar("SELECT count(*) FROM processes WHERE role = 'postmaster'"),
        "1"
    );
    // query_seq numbers each backend's statements 1..n.
    assert_eq!(
        scalar(
            "SELECT count(*) FROM (SELECT pid, max(query_seq) AS m, count(*) AS c FROM queries GROUP BY pid) WHERE m <> c"
        ),
        "0"
    );
}

#[test]
fn info_describes_the_sample() {
    let out = Command::cargo_bin("dbflight")
        .unwrap()
        .args(["info", TRACE])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "postgresql",
        "usdt",
        "tp_btf",
        "queries",
        "processes",
        "recorder_stats",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert_eq!(
        scalar("SELECT sum(queries_dropped) FROM recorder_stats"),
        "0"
    );
    assert!(
        scalar("SELECT count(*) FROM recorder_stats")
            .parse::<u32>()
            .unwrap()
            >= 2,
        "several segments"
    );
}
