//! The `dbflight` binary run as a user runs it, over small traces written
//! with `dbflight_format::writer::TraceWriter` in a temp directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, DictionaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::Int32Type;
use assert_cmd::Command;
use dbflight_format::Table;
use dbflight_format::manifest::{Clock, Manifest, Options, ProbeInfo, Target};
use dbflight_format::writer::TraceWriter;
use predicates::prelude::*;

/// 2025-11-22 02:29:00 UTC, in ns.
const T0: i64 = 1_763_778_540_000_000_000;
const MS: i64 = 1_000_000;

fn dict(values: &[&str]) -> ArrayRef {
    Arc::new(DictionaryArray::<Int32Type>::from_iter(
        values.iter().map(|v| Some(*v)),
    ))
}

fn ts(values: &[i64]) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(values.to_vec()).with_timezone("UTC"))
}

/// Statements of pid 100 starting at `T0 + ms` each, 2 ms long, numbered from `first_seq`.
fn queries(start_ms: &[i64], first_seq: u64) -> RecordBatch {
    let n = start_ms.len();
    let start: Vec<i64> = start_ms.iter().map(|m| T0 + m * MS).collect();
    let end: Vec<i64> = start.iter().map(|s| s + 2 * MS).collect();
    let seq: Vec<u64> = (first_seq..first_seq + n as u64).collect();
    let text: Vec<String> = seq
        .iter()
        .map(|s| format!("SELECT {s} FROM accounts"))
        .collect();
    let status: Vec<&str> = seq
        .iter()
        .map(|s| if *s == 4 { "error" } else { "ok" })
        .collect();
    let cols: Vec<ArrayRef> = vec![
        ts(&start),
        Arc::new(Int32Array::from(vec![100; n])),
        Arc::new(Int32Array::from(vec![100; n])),
        ts(&end),
        Arc::new(Int64Array::from(vec![2 * MS; n])),
        Arc::new(UInt64Array::from(seq)),
        Arc::new(StringArray::from(text)),
        Arc::new(BooleanArray::from(vec![false; n])),
        dict(&vec!["simple"; n]),
        dict(&status),
        dict(&vec!["bank"; n]),
        dict(&vec!["alice"; n]),
    ];
    RecordBatch::try_new(Table::Queries.schema(), cols).unwrap()
}

fn processes() -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        ts(&[T0]),
        Arc::new(Int32Array::from(vec![100])),
        Arc::new(Int32Array::from(vec![100])),
        Arc::new(Int32Array::from(vec![Some(4242)])),
        Arc::new(StringArray::from(vec![Some("postgres")])),
        Arc::new(StringArray::from(vec![Some(
            "postgres: alice bank 10.0.0.5(53412) idle",
        )])),
        dict(&["backend"]),
        dict(&["alice"]),
        dict(&["bank"]),
        Arc::new(StringArray::from(vec![Some("10.0.0.5")])),
        Arc::new(StringArray::from(vec![None::<&str>])),
        ts(&[T0]),
        ts(&[T0 + 60_000 * MS]),
    ];
    RecordBatch::try_new(Table::Processes.schema(), cols).unwrap()
}

/// A trace of 5 statements over 2 segments (3 + 2), one process, 2 dropped
/// statements; closed cleanly when `complete`.
fn write_trace(dir: &Path, complete: bool) {
    let mut m = Manifest::new(
        Target {
            kind: "postgresql".into(),
            version: Some("15.8".into()),
            binary: "/usr/lib/postgresql/15/bin/postgres".into(),
            build_id: Some("8d2f".into()),
            pid: 4242,
        },
        Clock::default(),
        Options {
            events: vec!["queries".into(), "locks".into()],
            max_query_len: 4096,
            redact_literals: false,
        },
        T0,
    );
    m.host = "db1".into();
    m.kernel = "6.18.0-test".into();
    m.probes.insert(
        "queries".into(),
        ProbeInfo {
            strategy: "usdt".into(),
            detail: "postgresql:query__start x1, query__done x1".into(),
            refused: vec!["fentry: EPERM on program load".into()],
            mode: None,
        },
    );
    let mut w = TraceWriter::create(dir, m, 1).unwrap();
    w.append(Table::Queries, queries(&[10, 20, 30], 1)).unwrap();
    w.append(Table::Processes, processes()).unwrap();
    let mut dropped = BTreeMap::new();
    dropped.insert(Table::Queries, 2);
    w.close_segment(T0 + 30_000 * MS, &dropped).unwrap();
    w.append(Table::Queries, queries(&[40_000, 50_000], 4))
        .unwrap();
    if complete {
        w.finish(T0 + 60_000 * MS, &BTreeMap::new()).unwrap();
    } else {
        w.close_segment(T0 + 60_000 * MS, &BTreeMap::new()).unwrap();
    }
}

fn trace() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("trace");
    write_trace(&dir, true);
    (tmp, dir)
}

fn dbflight() -> Command {
    Command::cargo_bin("dbflight").unwrap()
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

/// The cells of the row of an ASCII table whose first cell is `first`.
fn table_row(output: &str, first: &str) -> Vec<String> {
    output
        .lines()
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first().is_some_and(|c| c == first))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{output}"))
}

#[test]
fn info_describes_the_trace_and_counts_rows_per_table() {
    let (_tmp, dir) = trace();
    let out = stdout_of(dbflight().arg("info").arg(&dir));

    assert!(
        out.contains("target      postgresql 15.8, pid 4242\n"),
        "{out}"
    );
    assert!(
        out.contains("binary      /usr/lib/postgresql/15/bin/postgres  (build id 8d2f)\n"),
        "{out}"
    );
    assert!(out.contains("host        db1\n"), "{out}");
    assert!(out.contains("kernel      6.18.0-test\n"), "{out}");
    assert!(
        out.contains("started     2025-11-22 02:29:00.000 UTC\n"),
        "{out}"
    );
    assert!(
        out.contains("ended       2025-11-22 02:30:00.000 UTC\n"),
        "{out}"
    );
    assert!(out.contains("duration    1m 00s\n"), "{out}");
    assert!(out.contains("complete    yes\n"), "{out}");
    assert!(out.contains("segments    2\n"), "{out}");
    // First statement at +10 ms, last at +50 s.
    assert!(
        out.contains("data        2025-11-22 02:29:00.010 UTC .. 2025-11-22 02:29:50.000 UTC  (50.0s, ts of queries)\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "options     events queries,locks; max query length 4096 bytes; literals redacted: no\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("queries  usdt  postgresql:query__start x1, query__done x1\n"),
        "{out}"
    );
    assert!(
        out.contains("refused: fentry: EPERM on program load\n"),
        "{out}"
    );

    // table, rows, files, on disk, dropped
    let q = table_row(&out, "queries");
    assert_eq!(&q[1..3], ["5", "2"], "{out}");
    assert_eq!(q[4], "2", "{out}");
    assert_eq!(&table_row(&out, "processes")[1..3], ["1", "1"]);
    assert_eq!(&table_row(&out, "recorder_stats")[1..3], ["2", "2"]);
    let locks = table_row(&out, "locks");
    assert_eq!(&locks[1..5], ["0", "0", "0 B", "0"]);
    assert_eq!(table_row(&out, "recorder_stats")[4], "-");
    assert_eq!(&table_row(&out, "total")[1..3], ["8", "5"]);
    for t in Table::ALL {
        table_row(&out, t.name());
    }
    assert!(out.contains("warning: 2 events were dropped"), "{out}");
}

#[test]
fn info_says_when_a_trace_was_cut_short() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("trace");
    write_trace(&dir, false);
    std::fs::write(dir.join("queries/00000003.parquet.tmp"), b"half a segment").unwrap();
    let out = stdout_of(dbflight().arg("info").arg(&dir));
    assert!(
        out.contains("complete    NO: the recording was cut short"),
        "{out}"
    );
    assert!(
        out.contains("ended       unknown; last closed segment ends 2025-11-22 02:30:00.000 UTC\n"),
        "{out}"
    );
    assert!(out.contains("duration    at least 1m 00s\n"), "{out}");
    assert!(out.contains("unfinished  1 *.parquet.tmp file(s)"), "{out}");
    assert_eq!(&table_row(&out, "queries")[1..3], ["5", "2"]);
}

#[test]
fn info_of_a_minimal_trace_without_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("trace");
    let m = Manifest::new(Target::default(), Clock::default(), Options::default(), T0);
    let mut w = TraceWriter::create(&dir, m, 1).unwrap();
    w.append(Table::Processes, processes()).unwrap();
    w.finish(T0 + 1500 * MS, &BTreeMap::new()).unwrap();
    let out = stdout_of(dbflight().arg("info").arg(&dir));
    assert!(out.contains("target      (unknown)\n"), "{out}");
    assert!(out.contains("duration    1.5s\n"), "{out}");
    assert!(
        out.contains("data        2025-11-22 02:29:00.000 UTC .. 2025-11-22 02:29:00.000 UTC  (0ns, ts of all tables; no queries recorded)\n"),
        "{out}"
    );
    assert!(out.contains("options     events (not recorded);"), "{out}");
    assert!(
        out.contains("probes\n  (none recorded in the manifest)\n"),
        "{out}"
    );
    assert_eq!(&table_row(&out, "processes")[1..3], ["1", "1"]);
    assert_eq!(&table_row(&out, "queries")[1..3], ["0", "0"]);
    assert!(!out.contains("warning:"), "{out}");
}

#[test]
fn sql_count_as_csv_is_exact() {
    let (_tmp, dir) = trace();
    let out = stdout_of(dbflight().args(["sql"]).arg(&dir).args([
        "SELECT count(*) AS n FROM queries",
        "--format",
        "csv",
    ]));
    assert_eq!(out, "n\n5\n");
}

#[test]
fn sql_json_parses_and_holds_the_rows() {
    let (_tmp, dir) = trace();
    let out = stdout_of(dbflight().arg("sql").arg(&dir).args([
        "SELECT query_seq, query, status, duration_ns FROM queries ORDER BY ts",
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[3],
        serde_json::json!({"query_seq": 4, "query": "SELECT 4 FROM accounts", "status": "error", "duration_ns": 2_000_000})
    );
    let seqs: Vec<u64> = rows
        .iter()
        .map(|r| r["query_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

#[test]
fn tables_without_files_are_empty_not_missing() {
    let (_tmp, dir) = trace();
    let out = stdout_of(dbflight().arg("sql").arg(&dir).args([
        "SELECT count(*) FROM locks",
        "--format",
        "csv",
    ]));
    assert_eq!(out.lines().nth(1), Some("0"), "{out}");
    let out = stdout_of(dbflight().arg("sql").arg(&dir).args([
        "SELECT count(*) AS n, max(wait_ns) AS w FROM locks",
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, serde_json::json!([{"n": 0, "w": null}]));
}

#[test]
fn show_tables_lists_all_eight_and_the_derived_ones() {
    let (_tmp, dir) = trace();
    let out = stdout_of(
        dbflight()
            .arg("sql")
            .arg(&dir)
            .args(["SHOW TABLES", "--format", "csv"]),
    );
    let mut names: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            (cols.get(1) == Some(&"public")).then(|| cols[2])
        })
        .collect();
    names.sort();
    // The tables of the format, and the derived statement_totals and lock_waits.
    let mut want: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
    want.extend(["statement_totals", "lock_waits"]);
    want.sort();
    assert_eq!(names, want, "{out}");
    assert!(out.contains("statement_totals,VIEW"), "{out}");
    assert!(out.contains("lock_waits,VIEW"), "{out}");
}

#[test]
fn show_columns_uses_the_format_schema() {
    let (_tmp, dir) = trace();
    let out = stdout_of(dbflight().arg("sql").arg(&dir).args([
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_name = 'queries' ORDER BY ordinal_position",
        "--format",
        "csv",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + 12, "{out}");
    assert_eq!(lines[1], "ts,\"Timestamp(ns, \"\"UTC\"\")\"");
    assert_eq!(lines[9], "protocol,\"Dictionary(Int32, Utf8)\"");
}

#[test]
fn default_table_format_prints_rows_and_count() {
    let (_tmp, dir) = trace();
    let out = stdout_of(
        dbflight()
            .arg("sql")
            .arg(&dir)
            .arg("SELECT status, count(*) AS n FROM queries GROUP BY status ORDER BY status"),
    );
    assert_eq!(
        out,
        "\
+--------+---+
| status | n |
+--------+---+
| error  | 1 |
| ok     | 4 |
+--------+---+
(2 rows)
"
    );
}

#[test]
fn several_statements_from_a_file_each_print() {
    let (tmp, dir) = trace();
    let file = tmp.path().join("report.sql");
    std::fs::write(
        &file,
        "-- statements of pid 100; the view is visible to the next statement\n\
         CREATE VIEW slow AS SELECT * FROM queries WHERE duration_ns >= 2000000;\n\
         SELECT count(*) AS n FROM slow;\n\
         SELECT comm, role FROM processes;\n",
    )
    .unwrap();
    let out = stdout_of(
        dbflight()
            .arg("sql")
            .arg(&dir)
            .arg("-f")
            .arg(&file)
            .args(["--format", "csv"]),
    );
    assert_eq!(out, "n\n5\n\ncomm,role\npostgres,backend\n");
}

#[test]
fn sql_from_stdin() {
    let (_tmp, dir) = trace();
    let out = stdout_of(
        dbflight()
            .arg("sql")
            .arg(&dir)
            .args(["--format", "csv"])
            .write_stdin("SELECT max(query_seq) AS m FROM queries"),
    );
    assert_eq!(out, "m\n5\n");
}

#[test]
fn output_file_gets_the_result_and_is_private() {
    let (tmp, dir) = trace();
    let path = tmp.path().join("out.csv");
    let out = stdout_of(
        dbflight()
            .arg("sql")
            .arg(&dir)
            .args([
                "SELECT query_seq FROM queries WHERE query_seq > 3 ORDER BY query_seq",
                "--format",
                "csv",
                "-o",
            ])
            .arg(&path),
    );
    assert_eq!(out, "");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "query_seq\n4\n5\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// `-o /dev/null` (timing a run without its output) is not a file to sync.
#[cfg(unix)]
#[test]
fn output_to_a_device_works() {
    let (_tmp, dir) = trace();
    for command in [["sql", "SELECT 1"], ["report", "--timings"]] {
        dbflight()
            .arg(command[0])
            .arg(&dir)
            .arg(command[1])
            .args(["-o", "/dev/null"])
            .assert()
            .success();
    }
}

#[test]
fn a_failing_statement_leaves_an_existing_output_file_alone() {
    let (tmp, dir) = trace();
    let path = tmp.path().join("out.csv");
    std::fs::write(&path, "previous result\n").unwrap();
    dbflight()
        .arg("sql")
        .arg(&dir)
        .args(["SELECT nope FROM queries", "-o"])
        .arg(&path)
        .assert()
        .failure();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous result\n");
}

#[test]
fn sql_errors_show_datafusion_and_hint() {
    let (_tmp, dir) = trace();
    dbflight()
        .arg("sql")
        .arg(&dir)
        .arg("SELECT nope FROM queries")
        .assert()
        .code(1)
        .stdout("")
        .stderr(
            predicate::str::starts_with("dbflight: error: SQL failed: ")
                .and(predicate::str::contains("nope"))
                .and(predicate::str::contains("SHOW TABLES"))
                .and(predicate::str::contains("SHOW COLUMNS FROM queries")),
        );
    dbflight()
        .arg("sql")
        .arg(&dir)
        .arg("SELECT 1 AS a; SELECT * FROM nosuchtable")
        .assert()
        .code(1)
        .stdout("+---+\n| a |\n+---+\n| 1 |\n+---+\n(1 row)\n")
        .stderr(
            predicate::str::contains("statement 2 of 2 (SELECT * FROM nosuchtable) failed")
                .and(predicate::str::contains("nosuchtable"))
                .and(predicate::str::contains("SHOW TABLES")),
        );
}

#[test]
fn truncated_file_is_named() {
    let (_tmp, dir) = trace();
    let f = dir.join("queries/00000002.parquet");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    for args in [vec!["info"], vec!["sql"]] {
        let mut cmd = dbflight();
        cmd.args(&args).arg(&dir);
        if args[0] == "sql" {
            cmd.arg("SELECT count(*) FROM queries");
        }
        cmd.assert().code(1).stdout("").stderr(
            predicate::str::contains("queries/00000002.parquet")
                .and(predicate::str::contains("truncated or not Parquet")),
        );
    }
}

#[test]
fn missing_segment_file_is_named() {
    let (_tmp, dir) = trace();
    std::fs::remove_file(dir.join("processes/00000001.parquet")).unwrap();
    dbflight()
        .arg("info")
        .arg(&dir)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("processes/00000001.parquet"));
}

#[test]
fn not_a_trace_says_what_to_pass() {
    let tmp = tempfile::tempdir().unwrap();
    dbflight()
        .arg("info")
        .arg(tmp.path())
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("is not a dbflight trace")
                .and(predicate::str::contains("dbflight-record -o")),
        );
    dbflight()
        .arg("sql")
        .arg(tmp.path().join("nowhere"))
        .arg("SELECT 1")
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("nowhere does not exist")
                .and(predicate::str::contains("dbflight-record -o")),
        );
}

#[cfg(unix)]
#[test]
fn closed_stdout_exits_zero_quietly() {
    use std::io::Read;
    use std::process::{Command as Std, Stdio};

    let (_tmp, dir) = trace();
    for format in ["csv", "table"] {
        let mut child = Std::new(assert_cmd::cargo::cargo_bin("dbflight"))
            .arg("sql")
            .arg(&dir)
            .args([
                "SELECT * FROM generate_series(1, 200000)",
                "--format",
                format,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // The pipe's read end is dropped here, like `| head -c 16`.
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{format}: {:?}", out);
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{format}");
    }
}

#[test]
fn help_explains_with_examples() {
    dbflight()
        .args(["sql", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("SHOW TABLES")
                .and(predicate::str::contains("Examples:"))
                .and(predicate::str::contains("--format <FORMAT>"))
                .and(predicate::str::contains("mode 0600")),
        );
    dbflight()
        .args(["info", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("dbflight info ./incident-trace"));
}

/// A trace with processes but no statement.
fn trace_without_statements(kind: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("trace");
    let target = Target {
        kind: kind.into(),
        ..Target::default()
    };
    let m = Manifest::new(target, Clock::default(), Options::default(), T0);
    let mut w = TraceWriter::create(&dir, m, 1).unwrap();
    w.append(Table::Processes, processes()).unwrap();
    w.finish(T0 + 1500 * MS, &BTreeMap::new()).unwrap();
    (tmp, dir)
}

#[test]
fn hist_and_slow_say_when_a_trace_has_no_statements() {
    let (_tmp, dir) = trace_without_statements("postgresql");
    for args in [
        vec!["hist"],
        vec!["hist", "--by", "fingerprint"],
        vec!["slow", "-t", "0"],
    ] {
        dbflight()
            .args(&args)
            .arg(&dir)
            .assert()
            .success()
            .stdout("")
            .stderr("no statements in trace\n");
    }
    // Machine-readable formats still print their empty result.
    dbflight()
        .args(["slow", "--format", "csv"])
        .arg(&dir)
        .assert()
        .success()
        .stdout("ts,pid,duration_ms,query\n")
        .stderr("no statements in trace\n");
}

#[test]
fn hist_and_slow_over_a_small_trace() {
    let (_tmp, dir) = trace();
    // Five statements of 2 ms: 2000 us is in the 1024 -> 2047 bucket.
    let out = stdout_of(dbflight().arg("hist").arg(&dir));
    assert!(
        out.ends_with(&format!(
            "      1024 -> 2047       : 5        |{}|\n",
            "*".repeat(40)
        )),
        "{out}"
    );
    let out = stdout_of(dbflight().args(["hist", "--by", "fingerprint"]).arg(&dir));
    assert!(
        out.starts_with("fingerprint = SELECT $1 FROM accounts\n     usecs "),
        "{out}"
    );
    let out = stdout_of(dbflight().args(["slow", "-t", "2ms"]).arg(&dir));
    assert_eq!(
        out,
        "\
TIME(UTC)                  PID             MS QUERY
2025-11-22 02:29:00.010000 100          2.000 SELECT 1 FROM accounts
2025-11-22 02:29:00.020000 100          2.000 SELECT 2 FROM accounts
2025-11-22 02:29:00.030000 100          2.000 SELECT 3 FROM accounts
2025-11-22 02:29:40.000000 100          2.000 SELECT 4 FROM accounts
2025-11-22 02:29:50.000000 100          2.000 SELECT 5 FROM accounts
(5 of 5 statements took at least 2ms)
"
    );
    let out = stdout_of(dbflight().args(["slow", "-t", "2.5ms"]).arg(&dir));
    assert!(
        out.ends_with("(0 of 5 statements took at least 2.5ms)\n"),
        "{out}"
    );
    let out = stdout_of(
        dbflight()
            .args(["hist", "--where", "database = 'nope'"])
            .arg(&dir),
    );
    assert_eq!(out, "");
}

#[test]
fn bad_where_shows_datafusion_and_what_was_tried() {
    let (_tmp, dir) = trace();
    for command in ["hist", "slow"] {
        dbflight()
            .arg(command)
            .arg(&dir)
            .args(["--where", "databse = 'bank'"])
            .assert()
            .code(1)
            .stdout("")
            .stderr(
                predicate::str::starts_with(
                    "dbflight: error: --where \"databse = 'bank'\" is not a condition on the queries table: ",
                )
                .and(predicate::str::contains("No field named databse"))
                .and(predicate::str::contains(
                    "tried: SELECT * FROM queries WHERE databse = 'bank'",
                ))
                .and(predicate::str::contains("SHOW COLUMNS FROM queries")),
            );
    }
    // Not one expression: refused before any query is built from it.
    dbflight()
        .arg("hist")
        .arg(&dir)
        .args(["--where", "1=1) OR (1=1"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("--where \"1=1) OR (1=1\" is not a condition")
                .and(predicate::str::contains("end of expression"))
                .and(predicate::str::contains("tried:").not()),
        );
    dbflight()
        .arg("hist")
        .arg(&dir)
        .args(["--where", "pid"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("non-boolean predicate"));
    // Failing only while running still names the condition.
    dbflight()
        .arg("hist")
        .arg(&dir)
        .args(["--where", "CAST(query AS INT) > 1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "cannot compute the latency histogram of the statements matching --where \"CAST(query AS INT) > 1\"",
        ));
}

#[test]
fn slow_threshold_needs_a_unit() {
    let (_tmp, dir) = trace();
    dbflight()
        .arg("slow")
        .arg(&dir)
        .args(["--threshold", "10"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no unit: write e.g. 10ms, 1.5s, 500us or 100ns",
        ));
}

#[test]
fn sql_functions_are_registered() {
    let (_tmp, dir) = trace();
    let out = stdout_of(dbflight().arg("sql").arg(&dir).args([
        "SELECT fingerprint(query) AS fp, count(*) AS n, min(log2_bucket(duration_ns)) AS b, \
         count(DISTINCT fingerprint_id(query)) AS ids FROM queries GROUP BY 1",
        "--format",
        "csv",
    ]));
    assert_eq!(out, "fp,n,b,ids\nSELECT $1 FROM accounts,5,1048576,1\n");
    let out = stdout_of(dbflight().arg("sql").arg(&dir).args([
        "SELECT fingerprint('select *  from t where id=42 -- hot') AS a, \
         fingerprint('SELECT * FROM t WHERE id = ?', 'mysql') AS b, \
         log2_bucket(0) AS c, log2_bucket(1500) AS d",
        "--format",
        "csv",
    ]));
    assert_eq!(
        out,
        "a,b,c,d\nSELECT * FROM t WHERE id = $1,SELECT * FROM t WHERE id = ?,0,1024\n"
    );
    let out = stdout_of(dbflight().arg("sql").arg(&dir).args([
        "SELECT DISTINCT routine_name, syntax_example FROM information_schema.routines \
         WHERE routine_name IN ('fingerprint', 'fingerprint_id', 'log2_bucket') ORDER BY 1",
        "--format",
        "csv",
    ]));
    assert_eq!(
        out,
        "routine_name,syntax_example\n\
         fingerprint,\"fingerprint(query [, dialect])\"\n\
         fingerprint_id,\"fingerprint_id(query [, dialect])\"\n\
         log2_bucket,log2_bucket(n)\n"
    );
}

#[test]
fn fingerprint_lexes_the_traced_servers_dialect() {
    let sql = "SELECT fingerprint('SELECT \"a\" # note') AS fp";
    let (_tmp, pg) = trace_without_statements("postgresql");
    let out = stdout_of(
        dbflight()
            .arg("sql")
            .arg(&pg)
            .args([sql, "--format", "csv"]),
    );
    assert_eq!(out, "fp\nSELECT a # note\n");
    let (_tmp, my) = trace_without_statements("mariadb");
    let out = stdout_of(
        dbflight()
            .arg("sql")
            .arg(&my)
            .args([sql, "--format", "csv"]),
    );
    assert_eq!(out, "fp\nSELECT ?\n");
}

#[test]
fn hist_and_slow_help_have_examples() {
    dbflight()
        .args(["hist", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Examples:")
                .and(predicate::str::contains(
                    "dbflight hist ./trace --by fingerprint",
                ))
                .and(predicate::str::contains("--where <SQL>"))
                .and(predicate::str::contains("queries/latency_histogram.sql")),
        );
    dbflight()
        .args(["slow", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Examples:")
                .and(predicate::str::contains(
                    "dbflight slow ./trace --threshold 10ms",
                ))
                .and(predicate::str::contains("10ms, 1.5s, 500us"))
                .and(predicate::str::contains("--full")),
        );
    dbflight()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("hist").and(predicate::str::contains("slow")));
}

#[test]
fn report_timings_name_every_section_on_stderr_only() {
    let (_tmp, dir) = trace();
    let plain = dbflight().arg("report").arg(&dir).assert().success();
    let timed = dbflight()
        .arg("report")
        .arg(&dir)
        .arg("--timings")
        .assert()
        .success();
    let (plain, timed) = (plain.get_output(), timed.get_output());
    // The report itself does not change (its sections ran one at a time, not two side by side).
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&timed.stdout)
    );
    assert!(plain.stderr.is_empty());
    let stderr = String::from_utf8_lossy(&timed.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 10, "{stderr}");
    for (line, name) in lines.iter().zip([
        "overview",
        "top_statements",
        "slowest",
        "latency_histogram",
        "lock_waits",
        "deadlocks",
        "bytes_per_statement",
        "cpu_per_statement",
        "wait_events",
        "plan_shapes",
    ]) {
        // "WALL s  queries/NAME.sql", with "CPU s CPU" between on Linux.
        let (times, file) = line
            .trim()
            .rsplit_once("  ")
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(file, format!("queries/{name}.sql"));
        let (wall, cpu) = times.split_once(" s").unwrap_or_else(|| panic!("{line}"));
        assert!(wall.parse::<f64>().unwrap() >= 0.0, "{line}");
        if cfg!(target_os = "linux") {
            let cpu = cpu
                .trim()
                .strip_suffix(" s CPU")
                .unwrap_or_else(|| panic!("{line}"));
            assert!(cpu.parse::<f64>().unwrap() >= 0.0, "{line}");
        }
    }
}
