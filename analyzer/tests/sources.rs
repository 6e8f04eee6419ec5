//! Where a trace can come from, on the real samples of `testdata/`: bundles
//! (`dbflight bundle`), redacted copies (`dbflight redact`), several traces at
//! once (the `trace` column) and file:// URLs read through object_store.

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use assert_cmd::Command;
use dbflight_format::reader::TraceFiles;
use dbflight_format::redact::{TokenKind, tokens};
use dbflight_format::{MANIFEST_FILE, Table};

const PGBENCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/pgbench-pg15");
const LOCKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/locks-pg15");

/// The standard output of `dbflight ARGS...`, which must succeed.
fn dbflight(args: &[&str]) -> String {
    let out = Command::cargo_bin("dbflight")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The standard error of `dbflight ARGS...`, which must fail.
fn dbflight_fails(args: &[&str]) -> String {
    let out = Command::cargo_bin("dbflight")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// One row per table: `table,rows`, for comparing two traces.
const COUNTS: &str = "SELECT 'queries' AS t, count(*) AS n FROM queries \
     UNION ALL SELECT 'plan_nodes', count(*) FROM plan_nodes \
     UNION ALL SELECT 'locks', count(*) FROM locks \
     UNION ALL SELECT 'net', count(*) FROM net \
     UNION ALL SELECT 'sched', count(*) FROM sched \
     UNION ALL SELECT 'processes', count(*) FROM processes \
     UNION ALL SELECT 'recorder_stats', count(*) FROM recorder_stats ORDER BY t";

fn counts(trace: &str) -> String {
    dbflight(&["sql", trace, COUNTS, "--format", "csv"])
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn bundles_of_the_samples_read_like_the_directories() {
    let tmp = tempfile::tempdir().unwrap();
    for trace in [PGBENCH, LOCKS] {
        // No .tar in the name: a bundle is recognised by its content.
        let bundle = tmp.path().join("incident.bin");
        dbflight(&["bundle", trace, "-o", path_str(&bundle)]);
        #[cfg(unix)]
        assert_eq!(mode(&bundle), 0o600);

        let mut archive = tar::Archive::new(std::fs::File::open(&bundle).unwrap());
        let names: Vec<PathBuf> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().into_owned())
            .collect();
        assert_eq!(names[0], Path::new(MANIFEST_FILE), "manifest first");
        let files = TraceFiles::open(Path::new(trace)).unwrap();
        let parquet: usize = files.tables.values().map(Vec::len).sum();
        assert_eq!(names.len(), 1 + parquet, "{names:?}");

        assert_eq!(counts(path_str(&bundle)), counts(trace), "{trace}");
        let info = dbflight(&["info", path_str(&bundle)]);
        assert!(info.contains("postgresql"), "{info}");
        // A bundle of a bundle is the same bundle.
        let again = tmp.path().join("again.tar");
        dbflight(&["bundle", path_str(&bundle), "-o", path_str(&again)]);
        assert_eq!(
            std::fs::read(&bundle).unwrap(),
            std::fs::read(&again).unwrap()
        );
    }
    let report = dbflight(&["report", path_str(&tmp.path().join("incident.bin"))]);
    assert!(report.contains("Lock waits"), "{report}");
}

#[test]
fn a_file_that_is_neither_trace_nor_bundle_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "not a trace").unwrap();
    let err = dbflight_fails(&["info", path_str(&text)]);
    assert!(
        err.contains("notes.txt")
            && err.contains("neither a trace directory nor a dbflight bundle"),
        "{err}"
    );

    // A tar, but not of a trace.
    let other = tmp.path().join("other.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&other).unwrap());
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    h.set_mode(0o600);
    b.append_data(&mut h, "README", &b"hi"[..]).unwrap();
    b.into_inner().unwrap();
    let err = dbflight_fails(&["sql", path_str(&other), "SELECT 1"]);
    assert!(
        err.contains("other.tar") && err.contains("first member is README"),
        "{err}"
    );

    // A bundle cut short.
    let bundle = tmp.path().join("cut.tar");
    dbflight(&["bundle", PGBENCH, "-o", path_str(&bundle)]);
    let bytes = std::fs::read(&bundle).unwrap();
    std::fs::write(&bundle, &bytes[..bytes.len() / 2]).unwrap();
    let err = dbflight_fails(&["info", path_str(&bundle)]);
    assert!(err.contains("cut.tar"), "{err}");

    let err = dbflight_fails(&["info", "/nonexistent/trace"]);
    assert!(err.contains("/nonexistent/trace does not exist"), "{err}");
}

fn concat(files: &TraceFiles, table: Table) -> RecordBatch {
    let batches = files.read_table(table).unwrap();
    arrow::compute::concat_batches(&table.schema(), &batches).unwrap()
}

#[test]
fn redacted_samples_keep_no_literal_and_every_other_value() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, trace) in [PGBENCH, LOCKS].into_iter().enumerate() {
        let out = tmp.path().join(format!("redacted{i}"));
        dbflight(&["redact", trace, "-o", path_str(&out)]);
        #[cfg(unix)]
        {
            assert_eq!(mode(&out), 0o700);
            assert_eq!(mode(&out.join(MANIFEST_FILE)), 0o600);
            assert_eq!(mode(&out.join("queries/00000001.parquet")), 0o600);
        }
        let orig = TraceFiles::open(Path::new(trace)).unwrap();
        let red = TraceFiles::open(&out).unwrap();
        assert!(red.manifest.options.redact_literals);
        let note = red.manifest.redaction.clone().unwrap();
        assert!(
            note.contains("queries.query") && note.contains("processes.title"),
            "{note}"
        );
        assert_eq!(counts(path_str(&out)), counts(trace));

        for table in Table::ALL {
            assert_eq!(orig.rows(table), red.rows(table), "{table}");
            if orig.rows(table) == 0 {
                continue;
            }
            let (a, b) = (concat(&orig, table), concat(&red, table));
            let rewritten = match table {
                Table::Queries => Some("query"),
                Table::Processes => Some("title"),
                _ => None,
            };
            for (idx, field) in table.schema().fields().iter().enumerate() {
                if Some(field.name().as_str()) == rewritten {
                    continue;
                }
                assert_eq!(
                    a.column(idx).as_ref(),
                    b.column(idx).as_ref(),
                    "{table}.{}",
                    field.name()
                );
            }
        }

        // No literal of any original statement survives, and no literal at all is left.
        let a = concat(&orig, Table::Queries);
        let b = concat(&red, Table::Queries);
        let idx = Table::Queries.schema().index_of("query").unwrap();
        let (before, after) = (
            a.column(idx).as_string::<i32>(),
            b.column(idx).as_string::<i32>(),
        );
        let mut literals = 0;
        for row in 0..before.len() {
            if before.is_null(row) {
                continue;
            }
            let text = after.value(row);
            for t in tokens(text) {
                assert_ne!(
                    t.kind,
                    TokenKind::Literal,
                    "literal {:?} left in {text:?}",
                    t.text
                );
            }
            for t in tokens(before.value(row)).filter(|t| t.kind == TokenKind::Literal) {
                literals += 1;
                // Numbers like 1 also occur in `$1`; longer literals must be gone as text.
                if t.text.len() >= 3 {
                    assert!(!text.contains(t.text), "{:?} survives in {text:?}", t.text);
                }
            }
        }
        assert!(literals > 0, "{trace} has literals to redact");

        let titles = dbflight(&[
            "sql",
            path_str(&out),
            "SELECT title FROM processes",
            "--format",
            "csv",
        ]);
        let ip = titles
            .lines()
            .filter(|l| l.contains("127.0.0.1(") || l.contains("::1("))
            .count();
        assert_eq!(ip, 0, "{titles}");
    }
}

#[test]
fn several_traces_have_a_trace_column_and_reports_cover_the_union() {
    let per_trace = |t: &str| {
        dbflight(&["sql", t, "SELECT count(*) FROM queries", "--format", "csv"])
            .lines()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let (a, b) = (per_trace(PGBENCH), per_trace(LOCKS));
    let both = dbflight(&[
        "sql",
        PGBENCH,
        LOCKS,
        "SELECT trace, count(*) AS n FROM queries GROUP BY trace ORDER BY trace",
        "--format",
        "csv",
    ]);
    assert_eq!(both, format!("trace,n\nlocks-pg15,{b}\npgbench-pg15,{a}\n"));
    // -e names the SQL; every positional is a trace.
    let e = dbflight(&[
        "sql",
        PGBENCH,
        LOCKS,
        "-e",
        "SELECT count(DISTINCT trace) AS traces, count(*) AS n FROM processes",
        "--format",
        "csv",
    ]);
    assert!(e.starts_with("traces,n\n2,"), "{e}");
    // The same trace twice: names are kept apart.
    let twice = dbflight(&[
        "sql",
        PGBENCH,
        PGBENCH,
        "SELECT DISTINCT trace FROM queries ORDER BY trace",
        "--format",
        "csv",
    ]);
    assert_eq!(twice, "trace\npgbench-pg15\npgbench-pg15#2\n");

    // The derived tables too: per trace, the same rows and sums as that
    // trace alone. `derived(table, aggregates)`: each trace alone, then the union.
    let derived = |table: &str, aggregates: &str| {
        let alone = |t: &str| {
            let sql = format!("SELECT {aggregates} FROM {table}");
            dbflight(&["sql", t, &sql, "--format", "csv"])
                .lines()
                .nth(1)
                .unwrap()
                .to_string()
        };
        let sql = format!("SELECT trace, {aggregates} FROM {table} GROUP BY trace ORDER BY trace");
        let union = dbflight(&["sql", PGBENCH, LOCKS, &sql, "--format", "csv"]);
        (alone(PGBENCH), alone(LOCKS), union)
    };
    let (ta, tb, union) = derived(
        "statement_totals",
        "count(*) AS n, sum(off_cpu_ns) AS off, sum(sent_bytes) AS sent, \
         count(DISTINCT plan_id) AS plans, count(DISTINCT fingerprint) AS fps",
    );
    assert_eq!(
        union,
        format!("trace,n,off,sent,plans,fps\nlocks-pg15,{tb}\npgbench-pg15,{ta}\n")
    );
    assert!(ta.starts_with(&format!("{a},")), "{ta}");
    // lock_waits: each trace's own waits and holders.
    let (wa, wb, union) = derived(
        "lock_waits",
        "count(*) AS n, count(holder_pid) AS held, sum(wait_ns) AS ns",
    );
    // (pgbench's trace has no waits, so it has no group.)
    assert_eq!(wa, "0,0,");
    assert_eq!(union, format!("trace,n,held,ns\nlocks-pg15,{wb}\n"));
    assert!(!wb.starts_with("0,"), "the locks trace has waits: {wb}");

    let total: u64 = a.parse::<u64>().unwrap() + b.parse::<u64>().unwrap();
    let report = dbflight(&["report", PGBENCH, LOCKS, "--format", "markdown"]);
    assert!(
        report.contains("pgbench-pg15") && report.contains("locks-pg15"),
        "{report}"
    );
    assert!(report.contains("Lock waits"), "{report}");
    let hist = dbflight(&["hist", PGBENCH, LOCKS]);
    let counted: u64 = hist
        .lines()
        .filter_map(|l| {
            l.split(':')
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let incomplete: u64 = dbflight(&[
        "sql",
        PGBENCH,
        LOCKS,
        "SELECT count(*) FROM queries WHERE duration_ns IS NULL",
        "--format",
        "csv",
    ])
    .lines()
    .nth(1)
    .unwrap()
    .parse()
    .unwrap();
    assert_eq!(counted + incomplete, total, "{hist}");
    dbflight(&["locks", PGBENCH, LOCKS]);
    dbflight(&["timeline", PGBENCH, LOCKS, "--pid", "1"]);
    let info = dbflight(&["info", PGBENCH, LOCKS]);
    assert!(
        info.contains("pgbench-pg15") && info.contains("locks-pg15"),
        "{info}"
    );
}

#[test]
fn file_urls_are_read_through_object_store() {
    let dir = std::fs::canonicalize(LOCKS).unwrap();
    let url = url_of(&dir);
    assert_eq!(counts(&url), counts(LOCKS));
    let named = dbflight(&[
        "sql",
        &url,
        PGBENCH,
        "SELECT DISTINCT trace FROM queries ORDER BY trace",
        "--format",
        "csv",
    ]);
    assert_eq!(named, "trace\nlocks-pg15\npgbench-pg15\n");

    let tmp = tempfile::tempdir().unwrap();
    let empty = url_of(tmp.path());
    let err = dbflight_fails(&["info", &empty]);
    assert!(
        err.contains(&empty) && err.contains("nothing is stored under it"),
        "{err}"
    );
    std::fs::write(tmp.path().join("x.txt"), "x").unwrap();
    let err = dbflight_fails(&["info", &empty]);
    assert!(err.contains("has no manifest.json"), "{err}");
}

fn url_of(dir: &Path) -> String {
    url::Url::from_directory_path(dir).unwrap().to_string()
}
