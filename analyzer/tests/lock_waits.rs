//! The derived table `lock_waits` against its meaning in plain SQL
//! (`analyzer/src/lock_waits/plain.sql`), row for row: on the story of
//! `common` (a wait, a deadlock and its victim), on the story without the
//! deadlock report or without the holder's release_all, and on the
//! recorded traces of `testdata/` (the locks scenario: waits, a deadlock).

mod common;

use std::path::Path;

/// Which lock rows of the story a trace keeps.
type Keep = fn(&common::Lock) -> bool;

const PLAIN: &str = include_str!("../src/lock_waits/plain.sql");

/// The rows of the table and of the plain SQL, as CSV lines.
fn both(trace: &Path) -> (Vec<String>, Vec<String>) {
    let rows = |sql: &str| -> Vec<String> {
        common::run(trace, "sql", &[sql, "--format", "csv"])
            .lines()
            .map(String::from)
            .collect()
    };
    let table = rows("SELECT * FROM lock_waits ORDER BY wait_ns DESC, wait_start, pid, holder_pid");
    let plain = rows(&format!(
        "SET datafusion.optimizer.join_reordering = false; {PLAIN}"
    ));
    (table, plain)
}

fn check(trace: &Path) -> Vec<String> {
    let (table, plain) = both(trace);
    assert_eq!(table, plain, "{}", trace.display());
    assert!(
        table[0].starts_with("wait_start,wait_end,wait_ns,outcome,pid,"),
        "{}",
        table[0]
    );
    table
}

#[test]
fn same_as_the_plain_sql_on_the_story() {
    let (_tmp, dir) = common::story();
    let rows = check(&dir);
    // The header, B's wait on A, and the deadlock's two waits.
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert!(
        rows.iter().any(|r| r.contains(",deadlock victim,")),
        "{rows:#?}"
    );
    assert!(rows.iter().any(|r| r.contains(",granted,")), "{rows:#?}");
}

#[test]
fn same_as_the_plain_sql_with_rows_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    // Without the deadlock report the victim's wait is cancelled; without
    // release_all rows it ends at the end of the trace (02:29:08).
    let cases: [(&str, Keep, &str); 2] = [
        ("unreported", |l| l.event != "deadlock", ",cancelled,"),
        (
            "unreleased",
            |l| l.event != "release_all",
            ",2025-11-22T02:29:08Z,5970000000,deadlock victim,",
        ),
    ];
    for (name, keep, outcome) in cases {
        let dir = tmp.path().join(name);
        common::write_story_keeping(&dir, keep);
        let rows = check(&dir);
        assert!(
            rows.iter().any(|r| r.contains(outcome)),
            "{name}: {rows:#?}"
        );
    }
}

#[test]
fn same_as_the_plain_sql_on_the_recorded_traces() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    for trace in [
        "pgbench-pg15",
        "locks-pg15",
        "lock-waits-pg15",
        "mariadb-10.11",
    ] {
        let rows = check(&root.join(trace));
        let holders = rows
            .iter()
            .skip(1)
            .filter(|r| r.split(',').nth(10).is_some_and(|h| !h.is_empty()))
            .count();
        // The lock scenarios (testdata/record-locks.sh): a table lock's
        // holder, and the two sessions of a deadlock, each the other's,
        // whether from the acquisitions (exact) or as recorded (waits).
        let want = if trace.contains("lock") { 3 } else { 0 };
        assert_eq!(holders, want, "{trace}: {rows:#?}");
    }
}
