//! Small synthetic traces with known lock waits, a deadlock, plan nodes,
//! network and scheduler rows, written with `dbflight_format`'s writer, for
//! the tests of `report`, `locks` and `timeline` (the real traces of
//! `testdata/` have no locks yet).
//!
//! All times are milliseconds after [`T0`]. The story:
//!
//! - Lock wait: pid [`A`] (alice) runs `LOCK TABLE accounts` at 100 ms and
//!   holds relation 16384 AccessExclusiveLock until its COMMIT at 1100 ms;
//!   pid [`B`] (bob) asks AccessShareLock for `SELECT * FROM accounts` at
//!   200 ms and waits 900 ms.
//! - Deadlock: pid [`C`] locks relation 16390, pid [`D`] relation 16391;
//!   C then waits for 16391 (2020 ms) and D for 16390 (2030 ms); D's
//!   deadlock check fires at 3030 ms, D aborts (release_all at 3031 ms) and
//!   C gets its lock after waiting 1011 ms.
//! - Pid [`E`] runs the same join twice: 100 ms at 5000 ms with 42 ms off
//!   CPU (three sched rows, one at its first instant) and 50 ms at 6000 ms
//!   with 5 ms off CPU; a sched row after each statement (one at its very
//!   end) is outside it. Plan nodes: Aggregate <- Hash
//!   Join <- (Seq Scan a, Hash <- Seq Scan b). Net: 120 + 130 bytes in,
//!   4000 + 2000 bytes out.

#![allow(dead_code, reason = "each test file uses a part of the fixture")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::Int32Type;
use dbflight_format::Table;
use dbflight_format::manifest::{Clock, Manifest, Options, Target};
use dbflight_format::writer::TraceWriter;

/// 2025-11-22 02:29:00 UTC, in ns.
pub const T0: i64 = 1_763_778_540_000_000_000;
pub const MS: i64 = 1_000_000;

pub const A: i32 = 201;
pub const B: i32 = 202;
pub const C: i32 = 301;
pub const D: i32 = 302;
pub const E: i32 = 400;

/// Where the recording ends, ms after T0.
pub const END_MS: i64 = 8000;

fn at(ms: f64) -> i64 {
    T0 + (ms * MS as f64) as i64
}

fn dict<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(DictionaryArray::<Int32Type>::from_iter(values))
}

fn ts(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(values).with_timezone("UTC"))
}

fn opt_ts(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(values).with_timezone("UTC"))
}

fn pids(values: &[i32]) -> ArrayRef {
    Arc::new(Int32Array::from(values.to_vec()))
}

/// One statement: pid, seq, start ms, duration ms (None: still running), text, status, user.
pub struct Stmt {
    pub pid: i32,
    pub seq: u64,
    pub start_ms: f64,
    pub ms: Option<f64>,
    pub text: &'static str,
    pub status: &'static str,
    pub user: &'static str,
}

pub fn statements() -> Vec<Stmt> {
    let s = |pid, seq, start_ms, ms: f64, text, status, user| Stmt {
        pid,
        seq,
        start_ms,
        ms: Some(ms),
        text,
        status,
        user,
    };
    vec![
        s(A, 1, 0.0, 0.1, "BEGIN", "ok", "alice"),
        s(
            A,
            2,
            100.0,
            1.0,
            "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE",
            "ok",
            "alice",
        ),
        s(A, 3, 1100.0, 0.5, "COMMIT", "ok", "alice"),
        s(B, 1, 200.0, 902.0, "SELECT * FROM accounts", "ok", "bob"),
        s(C, 1, 1990.0, 0.1, "BEGIN", "ok", "carol"),
        s(
            C,
            2,
            2000.0,
            1.0,
            "LOCK TABLE t1 IN ACCESS EXCLUSIVE MODE",
            "ok",
            "carol",
        ),
        s(
            C,
            3,
            2020.0,
            1012.0,
            "LOCK TABLE t2 IN ACCESS EXCLUSIVE MODE",
            "ok",
            "carol",
        ),
        s(C, 4, 3100.0, 0.5, "COMMIT", "ok", "carol"),
        s(D, 1, 2005.0, 0.1, "BEGIN", "ok", "dave"),
        s(
            D,
            2,
            2010.0,
            1.0,
            "LOCK TABLE t2 IN ACCESS EXCLUSIVE MODE",
            "ok",
            "dave",
        ),
        s(
            D,
            3,
            2030.0,
            1001.0,
            "LOCK TABLE t1 IN ACCESS EXCLUSIVE MODE",
            "error",
            "dave",
        ),
        s(
            E,
            1,
            5000.0,
            100.0,
            "SELECT a.id, sum(b.x) FROM a JOIN b ON b.a_id = a.id WHERE a.id > 10 GROUP BY a.id",
            "ok",
            "erin",
        ),
        s(
            E,
            2,
            6000.0,
            50.0,
            "SELECT a.id, sum(b.x) FROM a JOIN b ON b.a_id = a.id WHERE a.id > 20 GROUP BY a.id",
            "ok",
            "erin",
        ),
    ]
}

fn queries_batch(rows: &[Stmt]) -> RecordBatch {
    let n = rows.len();
    let start: Vec<i64> = rows.iter().map(|r| at(r.start_ms)).collect();
    let dur: Vec<Option<i64>> = rows
        .iter()
        .map(|r| r.ms.map(|m| (m * MS as f64) as i64))
        .collect();
    let end: Vec<Option<i64>> = start
        .iter()
        .zip(&dur)
        .map(|(s, d)| d.map(|d| s + d))
        .collect();
    let pid: Vec<i32> = rows.iter().map(|r| r.pid).collect();
    let cols: Vec<ArrayRef> = vec![
        ts(start),
        pids(&pid),
        pids(&pid),
        opt_ts(end),
        Arc::new(Int64Array::from(dur)),
        Arc::new(UInt64Array::from(
            rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.text).collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(vec![false; n])),
        dict(rows.iter().map(|_| Some("simple"))),
        dict(rows.iter().map(|r| Some(r.status))),
        dict(rows.iter().map(|_| Some("bank"))),
        dict(rows.iter().map(|r| Some(r.user))),
    ];
    RecordBatch::try_new(Table::Queries.schema(), cols).unwrap()
}

/// A lock tag: (lock_type, database_oid, relation_oid, field3, field4).
pub type Tag = (
    &'static str,
    Option<u32>,
    Option<u32>,
    Option<u32>,
    Option<u32>,
);

pub fn relation(oid: u32) -> Tag {
    ("relation", Some(5), Some(oid), Some(0), Some(0))
}

/// One `locks` row.
pub struct Lock {
    pub ms: f64,
    pub pid: i32,
    pub seq: Option<u64>,
    pub event: &'static str,
    pub tag: Option<Tag>,
    pub mode: Option<&'static str>,
    pub result: Option<&'static str>,
    pub wait_ms: Option<f64>,
}

pub fn lock_rows() -> Vec<Lock> {
    let l = |ms, pid, seq, event, tag: Option<Tag>, mode, result, wait_ms| Lock {
        ms,
        pid,
        seq: Some(seq),
        event,
        tag,
        mode,
        result,
        wait_ms,
    };
    let acquire = |ms, pid, seq, tag, mode| {
        l(
            ms,
            pid,
            seq,
            "acquire",
            Some(tag),
            Some(mode),
            Some("granted"),
            None,
        )
    };
    let release_all = |ms, pid, seq| l(ms, pid, seq, "release_all", None, None, None, None);
    let ae = "AccessExclusiveLock";
    vec![
        // A holds relation 16384 for 1 s; B waits 0.9 s for it.
        acquire(100.0, A, 2, relation(16384), ae),
        l(
            200.0,
            B,
            1,
            "wait_start",
            Some(relation(16384)),
            Some("AccessShareLock"),
            None,
            None,
        ),
        release_all(1100.0, A, 3),
        l(
            1100.0,
            B,
            1,
            "wait_end",
            Some(relation(16384)),
            Some("AccessShareLock"),
            None,
            Some(900.0),
        ),
        acquire(1100.0, B, 1, relation(16384), "AccessShareLock"),
        release_all(1102.0, B, 1),
        // A lock nobody conflicts with: no wait, no holder rows.
        acquire(1101.0, B, 1, relation(2619), "AccessShareLock"),
        // The deadlock: C holds 16390 and waits for 16391, D the other way round.
        acquire(2000.0, C, 2, relation(16390), ae),
        acquire(2010.0, D, 2, relation(16391), ae),
        l(
            2020.0,
            C,
            3,
            "wait_start",
            Some(relation(16391)),
            Some(ae),
            None,
            None,
        ),
        l(
            2030.0,
            D,
            3,
            "wait_start",
            Some(relation(16390)),
            Some(ae),
            None,
            None,
        ),
        l(3030.0, D, 3, "deadlock", None, None, None, None),
        release_all(3031.0, D, 3),
        l(
            3031.0,
            C,
            3,
            "wait_end",
            Some(relation(16391)),
            Some(ae),
            None,
            Some(1011.0),
        ),
        acquire(3031.0, C, 3, relation(16391), ae),
        release_all(3100.0, C, 4),
    ]
}

fn locks_batch(rows: &[Lock]) -> RecordBatch {
    let pid: Vec<i32> = rows.iter().map(|r| r.pid).collect();
    let tag = |f: fn(&Tag) -> Option<u32>| -> ArrayRef {
        Arc::new(UInt32Array::from(
            rows.iter()
                .map(|r| r.tag.as_ref().and_then(f))
                .collect::<Vec<_>>(),
        ))
    };
    let cols: Vec<ArrayRef> = vec![
        ts(rows.iter().map(|r| at(r.ms)).collect()),
        pids(&pid),
        pids(&pid),
        Arc::new(UInt64Array::from(
            rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        )),
        dict(rows.iter().map(|r| Some(r.event))),
        dict(rows.iter().map(|r| r.tag.map(|t| t.0))),
        dict(rows.iter().map(|r| r.mode)),
        tag(|t| t.1),
        tag(|t| t.2),
        tag(|t| t.3),
        tag(|t| t.4),
        dict(rows.iter().map(|r| r.result)),
        Arc::new(Int64Array::from(
            rows.iter()
                .map(|r| r.wait_ms.map(|m| (m * MS as f64) as i64))
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(Table::Locks.schema(), cols).unwrap()
}

/// The plan of each of E's statements: (node_id, parent, node_type, total_cost).
pub const PLAN: [(i32, Option<i32>, &str, f64); 5] = [
    (0, None, "Aggregate", 250.0),
    (1, Some(0), "Hash Join", 200.0),
    (2, Some(1), "Seq Scan", 80.0),
    (3, Some(1), "Hash", 90.0),
    (4, Some(3), "Seq Scan", 90.0),
];

fn plan_batch() -> RecordBatch {
    let mut rows = Vec::new();
    for (seq, start) in [(1u64, 5000.0), (2, 6000.0)] {
        for (i, node) in PLAN.iter().enumerate() {
            rows.push((at(start + 0.01 * i as f64), seq, *node));
        }
    }
    let n = rows.len();
    let cols: Vec<ArrayRef> = vec![
        ts(rows.iter().map(|r| r.0).collect()),
        pids(&vec![E; n]),
        pids(&vec![E; n]),
        Arc::new(UInt64Array::from(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.2.0).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.2.1).collect::<Vec<_>>(),
        )),
        dict(rows.iter().map(|r| Some(r.2.2))),
        Arc::new(Float64Array::from(vec![Some(0.0); n])),
        Arc::new(Float64Array::from(
            rows.iter().map(|r| Some(r.2.3)).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(vec![Some(100.0); n])),
        Arc::new(Int32Array::from(vec![Some(8); n])),
    ];
    RecordBatch::try_new(Table::PlanNodes.schema(), cols).unwrap()
}

/// Net rows: (ms, direction, bytes, query_seq).
pub const NET: [(f64, &str, i64, Option<u64>); 5] = [
    (5000.0, "recv", 120, Some(1)),
    (5099.0, "send", 4000, Some(1)),
    (6000.0, "recv", 130, Some(2)),
    (6049.0, "send", 2000, Some(2)),
    (7000.0, "recv", 5, None),
];

fn net_batch() -> RecordBatch {
    let n = NET.len();
    let cols: Vec<ArrayRef> = vec![
        ts(NET.iter().map(|r| at(r.0)).collect()),
        pids(&vec![E; n]),
        pids(&vec![E; n]),
        dict(NET.iter().map(|r| Some(r.1))),
        Arc::new(Int64Array::from(
            NET.iter().map(|r| r.2).collect::<Vec<_>>(),
        )),
        dict(NET.iter().map(|_| Some("inet"))),
        Arc::new(StringArray::from(vec![Some("10.0.0.1"); n])),
        Arc::new(Int32Array::from(vec![Some(5432); n])),
        Arc::new(StringArray::from(vec![Some("10.0.0.5"); n])),
        Arc::new(Int32Array::from(vec![Some(53412); n])),
        Arc::new(UInt64Array::from(
            NET.iter().map(|r| r.3).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(Table::Net.schema(), cols).unwrap()
}

/// Sched rows of E: (ms when it left the CPU, off-CPU ms, state).
pub const SCHED: [(f64, f64, &str); 6] = [
    // Left the CPU at the very instant the statement began: it counts.
    (5000.0, 2.0, "S"),
    (5010.0, 30.0, "D"),
    (5050.0, 10.0, "S"),
    (5200.0, 7.0, "S"),
    (6020.0, 5.0, "R"),
    (6050.0, 3.0, "S"),
];

fn sched_batch() -> RecordBatch {
    let n = SCHED.len();
    let cols: Vec<ArrayRef> = vec![
        ts(SCHED.iter().map(|r| at(r.0)).collect()),
        pids(&vec![E; n]),
        pids(&vec![E; n]),
        Arc::new(Int64Array::from(
            SCHED
                .iter()
                .map(|r| (r.1 * MS as f64) as i64)
                .collect::<Vec<_>>(),
        )),
        dict(SCHED.iter().map(|r| Some(r.2))),
        Arc::new(Int32Array::from(vec![Some(1); n])),
    ];
    RecordBatch::try_new(Table::Sched.schema(), cols).unwrap()
}

/// One backend per pid, the postmaster (pid 100) and its exit-less life.
fn processes_batch() -> RecordBatch {
    let procs: [(i32, &str, Option<&str>, f64, f64); 6] = [
        (100, "postmaster", None, 0.0, END_MS as f64),
        (A, "backend", Some("alice"), 0.0, END_MS as f64),
        (B, "backend", Some("bob"), 150.0, 1500.0),
        (C, "backend", Some("carol"), 0.0, END_MS as f64),
        (D, "backend", Some("dave"), 0.0, END_MS as f64),
        (E, "backend", Some("erin"), 0.0, END_MS as f64),
    ];
    let n = procs.len();
    let pid: Vec<i32> = procs.iter().map(|p| p.0).collect();
    let cols: Vec<ArrayRef> = vec![
        ts(procs.iter().map(|p| at(p.3)).collect()),
        pids(&pid),
        pids(&pid),
        Arc::new(Int32Array::from(
            procs
                .iter()
                .map(|p| Some(if p.0 == 100 { 1 } else { 100 }))
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(vec![Some("postgres"); n])),
        Arc::new(StringArray::from(
            procs
                .iter()
                .map(|p| match p.2 {
                    Some(u) => Some(format!("postgres: {u} bank 10.0.0.5(53412) idle")),
                    None => Some("/usr/lib/postgresql/15/bin/postgres -D /data".to_string()),
                })
                .collect::<Vec<_>>(),
        )),
        dict(procs.iter().map(|p| Some(p.1))),
        dict(procs.iter().map(|p| p.2)),
        dict(procs.iter().map(|p| p.2.map(|_| "bank"))),
        Arc::new(StringArray::from(
            procs
                .iter()
                .map(|p| p.2.map(|_| "10.0.0.5"))
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(vec![Some("/"); n])),
        ts(procs.iter().map(|p| at(p.3)).collect()),
        ts(procs.iter().map(|p| at(p.4)).collect()),
    ];
    RecordBatch::try_new(Table::Processes.schema(), cols).unwrap()
}

/// Writes the whole story to `dir` in two segments (split at 4 s), with 3
/// net events dropped in the second.
pub fn write_story(dir: &Path) {
    write_story_keeping(dir, |_| true);
}

/// The story with only the lock rows `keep` holds for.
pub fn write_story_keeping(dir: &Path, keep: impl Fn(&Lock) -> bool) {
    let m = Manifest::new(
        Target {
            kind: "postgresql".into(),
            version: Some("15.8".into()),
            binary: "/usr/lib/postgresql/15/bin/postgres".into(),
            build_id: None,
            pid: 100,
        },
        Clock::default(),
        Options {
            events: ["queries", "plans", "locks", "net", "sched"]
                .map(String::from)
                .to_vec(),
            max_query_len: 4096,
            redact_literals: false,
        },
        T0,
    );
    let mut w = TraceWriter::create(dir, m, 1).unwrap();
    let (early, late): (Vec<Stmt>, Vec<Stmt>) =
        statements().into_iter().partition(|s| s.start_ms < 4000.0);
    let (early_locks, late_locks): (Vec<Lock>, Vec<Lock>) = lock_rows()
        .into_iter()
        .filter(|l| keep(l))
        .partition(|l| l.ms < 4000.0);
    w.append(Table::Queries, queries_batch(&early)).unwrap();
    w.append(Table::Locks, locks_batch(&early_locks)).unwrap();
    assert!(late_locks.is_empty());
    w.append(Table::Processes, processes_batch()).unwrap();
    w.close_segment(at(4000.0), &BTreeMap::new()).unwrap();
    w.append(Table::Queries, queries_batch(&late)).unwrap();
    w.append(Table::PlanNodes, plan_batch()).unwrap();
    w.append(Table::Net, net_batch()).unwrap();
    w.append(Table::Sched, sched_batch()).unwrap();
    let mut dropped = BTreeMap::new();
    dropped.insert(Table::Net, 3);
    w.finish(at(END_MS as f64), &dropped).unwrap();
}

/// The story in a fresh temp directory.
pub fn story() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("story");
    write_story(&dir);
    (tmp, dir)
}

/// The standard output of `dbflight COMMAND TRACE ARGS...`, which must succeed.
pub fn run(dir: &Path, command: &str, args: &[&str]) -> String {
    let out = assert_cmd::Command::cargo_bin("dbflight")
        .unwrap()
        .arg(command)
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{command} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
