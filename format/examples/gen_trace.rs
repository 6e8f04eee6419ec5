//! Writes a synthetic but realistic schema-v1 trace with the real segment
//! writer, for benchmarking the analyzer (bench/analyzer-vs-duckdb.sh).
//!
//!     cargo run --release -p dbflight-format --example gen_trace -- \
//!         --statements 10000000 -o /tmp/dbflight-10m
//!
//! Options: `--statements N` (default 10 000 000), `-o DIR` (required, must
//! not exist), `--seed S` (default 1), `--backends N` (default 32),
//! `--rate N` statements per second of trace time (default 20 000),
//! `--segment-secs N` (default 30: the recorder's default rotation),
//! `--events LIST` (default `queries,plans,locks,net,sched`, as the
//! recorder's default; `queries` alone gives a queries-only trace).
//!
//! The same options and seed give the same rows (timestamps start at a fixed
//! instant); file bytes can still differ with the parquet version.
//!
//! What one statement writes (see BENCHMARKS.md for measured proportions):
//! - `queries`: one row. About three dozen statement shapes (pgbench's
//!   TPC-B and `-S` statements, a web app's reads and writes, a job queue,
//!   ORM statements over the extended protocol with `$n` parameters,
//!   monitoring queries, a rare slow report), run as transactions
//!   (`BEGIN ... COMMIT`) or alone, with literals drawn at random (so
//!   `fingerprint()` groups them; a few shapes appear in lower case or with
//!   other spacing too). Durations are log-normal per shape with a heavy
//!   tail (0.5 % of statements 2-200x slower), lock waits add to them; 0.1 %
//!   end in an error, the last statement of each backend is `incomplete`.
//! - `plan_nodes`: the shape's plan tree (0 for BEGIN/COMMIT, 1-5 nodes).
//! - `locks`: what PostgreSQL's lock manager does: reads acquire and release
//!   each relation and index; writes hold theirs (and the transaction id) to
//!   the end of the transaction, then one `release_all`; rare lock waits.
//! - `net`: one `recv` (the request) and one `send` (the result).
//! - `sched`: one `S` sleep after each statement (waiting for the client),
//!   preemptions (`R`) inside some statements, `D` at commits.
//! - `processes`: one row per backend and auxiliary process, in the last
//!   segment (as the recorder writes them when it stops).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, StringDictionaryBuilder, TimestampNanosecondBuilder, UInt32Builder,
    UInt64Builder,
};
use arrow::datatypes::Int32Type;
use dbflight_format::Table;
use dbflight_format::manifest::{Clock, Manifest, Options, ProbeInfo, Target};
use dbflight_format::writer::TraceWriter;

type Dict = StringDictionaryBuilder<Int32Type>;

/// 2026-11-22 00:00:00 UTC: every generated trace starts here.
const START_NS: i64 = 1_795_305_600_000_000_000;
const POSTMASTER: i32 = 4000;
const FIRST_BACKEND: i32 = 5001;

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi].
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }
    fn normal(&mut self) -> f64 {
        let u1 = self.f().max(1e-12);
        let u2 = self.f();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f()).ln()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next() as usize % items.len()]
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// BEGIN: no plan, no locks.
    Begin,
    /// COMMIT/END/ROLLBACK: release_all, D sleep for the WAL flush.
    End,
    Read,
    Write,
    /// SELECT 1, set_config: a plan but no relation.
    Util,
}

/// One statement shape.
struct Shape {
    kind: Kind,
    /// Median duration, µs, and the log-normal sigma.
    median_us: f64,
    sigma: f64,
    /// Relations (table, then indexes) by oid.
    rels: &'static [u32],
    /// Plan tree: (node type, parent index) in node_id order.
    plan: &'static [(&'static str, Option<i32>)],
    /// Result bytes sent, median.
    result_bytes: i64,
    extended: bool,
}

const T_ACCOUNTS: u32 = 16397;
const I_ACCOUNTS: u32 = 16410;
const T_TELLERS: u32 = 16391;
const I_TELLERS: u32 = 16406;
const T_BRANCHES: u32 = 16394;
const I_BRANCHES: u32 = 16404;
const T_HISTORY: u32 = 16388;
const T_USERS: u32 = 16420;
const I_USERS: u32 = 16426;
const I_USERS_EMAIL: u32 = 16428;
const T_ORDERS: u32 = 16430;
const I_ORDERS: u32 = 16436;
const I_ORDERS_USER: u32 = 16438;
const T_ITEMS: u32 = 16440;
const T_PRODUCTS: u32 = 16450;
const I_PRODUCTS: u32 = 16456;
const T_INVENTORY: u32 = 16460;
const I_INVENTORY: u32 = 16466;
const T_SESSIONS: u32 = 16470;
const I_SESSIONS: u32 = 16476;
const T_JOBS: u32 = 16480;
const I_JOBS: u32 = 16486;
const T_EVENTS: u32 = 16490;
const T_PG_CLASS: u32 = 1259;
const T_PG_NAMESPACE: u32 = 2615;
const T_PG_SETTINGS: u32 = 12000;

const IDX: &[(&str, Option<i32>)] = &[("Index Scan", None)];
const MOD_IDX: &[(&str, Option<i32>)] = &[("ModifyTable", None), ("Index Scan", Some(0))];
const MOD_RESULT: &[(&str, Option<i32>)] = &[("ModifyTable", None), ("Result", Some(0))];
const MOD_VALUES: &[(&str, Option<i32>)] = &[("ModifyTable", None), ("Values Scan", Some(0))];
const RESULT: &[(&str, Option<i32>)] = &[("Result", None)];
const NONE: &[(&str, Option<i32>)] = &[];

/// Number of shapes; `text` below writes each one's SQL.
const SHAPES: [Shape; 36] = {
    const fn s(
        kind: Kind,
        median_us: f64,
        sigma: f64,
        rels: &'static [u32],
        plan: &'static [(&'static str, Option<i32>)],
        result_bytes: i64,
        extended: bool,
    ) -> Shape {
        Shape {
            kind,
            median_us,
            sigma,
            rels,
            plan,
            result_bytes,
            extended,
        }
    }
    use Kind::*;
    [
        // 0-5: pgbench
        s(Read, 45.0, 0.5, &[T_ACCOUNTS, I_ACCOUNTS], IDX, 70, false),
        s(
            Write,
            90.0,
            0.6,
            &[T_ACCOUNTS, I_ACCOUNTS],
            MOD_IDX,
            15,
            false,
        ),
        s(
            Write,
            60.0,
            0.6,
            &[T_TELLERS, I_TELLERS],
            MOD_IDX,
            15,
            false,
        ),
        s(
            Write,
            60.0,
            0.7,
            &[T_BRANCHES, I_BRANCHES],
            MOD_IDX,
            15,
            false,
        ),
        s(Write, 50.0, 0.5, &[T_HISTORY], MOD_RESULT, 15, false),
        // 5: the -S select in lower case, no spaces around '='
        s(Read, 45.0, 0.5, &[T_ACCOUNTS, I_ACCOUNTS], IDX, 70, false),
        // 6-8: transaction control
        s(Begin, 8.0, 0.4, &[], NONE, 11, false),
        s(End, 250.0, 0.8, &[], NONE, 12, false),
        s(End, 20.0, 0.5, &[], NONE, 14, false),
        // 9-16: web app reads
        s(Read, 60.0, 0.5, &[T_USERS, I_USERS], IDX, 180, false),
        s(Read, 80.0, 0.6, &[T_USERS, I_USERS_EMAIL], IDX, 260, false),
        s(
            Read,
            400.0,
            0.9,
            &[T_ORDERS, I_ORDERS_USER],
            &[("Limit", None), ("Sort", Some(0)), ("Index Scan", Some(1))],
            2400,
            false,
        ),
        s(
            Read,
            9000.0,
            0.7,
            &[T_ORDERS],
            &[("Aggregate", None), ("Seq Scan", Some(0))],
            60,
            false,
        ),
        s(
            Read,
            150.0,
            0.6,
            &[T_PRODUCTS, I_PRODUCTS],
            &[("Index Scan", None)],
            900,
            false,
        ),
        s(
            Read,
            350.0,
            0.7,
            &[T_USERS, I_USERS, T_ORDERS, I_ORDERS_USER],
            &[
                ("Aggregate", None),
                ("Nested Loop", Some(0)),
                ("Index Scan", Some(1)),
                ("Index Scan", Some(1)),
            ],
            120,
            false,
        ),
        s(
            Read,
            700.0,
            0.5,
            &[T_PG_CLASS, T_PG_NAMESPACE],
            &[
                ("Limit", None),
                ("Sort", Some(0)),
                ("Hash Join", Some(1)),
                ("Seq Scan", Some(2)),
                ("Hash", Some(2)),
                ("Seq Scan", Some(4)),
            ],
            1800,
            false,
        ),
        s(
            Read,
            3000.0,
            0.8,
            &[T_PRODUCTS],
            &[("Limit", None), ("Seq Scan", Some(0))],
            3000,
            false,
        ),
        // 17-21: checkout transaction
        s(
            Read,
            70.0,
            0.6,
            &[T_INVENTORY, I_INVENTORY],
            &[("LockRows", None), ("Index Scan", Some(0))],
            90,
            false,
        ),
        s(
            Write,
            80.0,
            0.6,
            &[T_INVENTORY, I_INVENTORY],
            MOD_IDX,
            15,
            false,
        ),
        s(
            Write,
            110.0,
            0.6,
            &[T_ORDERS, I_ORDERS, I_ORDERS_USER],
            MOD_RESULT,
            40,
            false,
        ),
        s(Write, 140.0, 0.6, &[T_ITEMS], MOD_VALUES, 15, false),
        s(Write, 90.0, 0.6, &[T_ORDERS, I_ORDERS], MOD_IDX, 15, false),
        // 22-23: job queue
        s(
            Read,
            120.0,
            0.8,
            &[T_JOBS, I_JOBS],
            &[
                ("Limit", None),
                ("LockRows", Some(0)),
                ("Index Scan", Some(1)),
            ],
            400,
            false,
        ),
        s(Write, 70.0, 0.6, &[T_JOBS, I_JOBS], MOD_IDX, 15, false),
        // 24-28: sessions, events, users
        s(Read, 50.0, 0.5, &[T_SESSIONS, I_SESSIONS], IDX, 120, false),
        s(
            Write,
            90.0,
            0.6,
            &[T_SESSIONS, I_SESSIONS],
            MOD_RESULT,
            15,
            false,
        ),
        s(Write, 80.0, 0.6, &[T_EVENTS], MOD_RESULT, 15, false),
        s(Write, 70.0, 0.6, &[T_USERS, I_USERS], MOD_IDX, 15, false),
        s(
            Write,
            20000.0,
            0.8,
            &[T_SESSIONS],
            &[("ModifyTable", None), ("Seq Scan", Some(0))],
            15,
            false,
        ),
        // 29: the slow hourly report
        s(
            Read,
            250_000.0,
            0.6,
            &[T_EVENTS],
            &[
                ("Sort", None),
                ("HashAggregate", Some(0)),
                ("Seq Scan", Some(1)),
            ],
            2000,
            false,
        ),
        // 30-33: ORM over the extended protocol ($n parameters)
        s(
            Read,
            55.0,
            0.5,
            &[T_USERS, I_USERS],
            &[("Limit", None), ("Index Scan", Some(0))],
            200,
            true,
        ),
        s(
            Read,
            300.0,
            0.8,
            &[T_ORDERS, I_ORDERS_USER],
            &[("Limit", None), ("Sort", Some(0)), ("Index Scan", Some(1))],
            2000,
            true,
        ),
        s(Write, 85.0, 0.6, &[T_USERS, I_USERS], MOD_IDX, 15, true),
        s(Read, 60.0, 0.5, &[T_PRODUCTS, I_PRODUCTS], IDX, 600, true),
        // 34-35: utility
        s(Util, 12.0, 0.4, &[], RESULT, 30, false),
        s(
            Read,
            90.0,
            0.4,
            &[T_PG_SETTINGS],
            &[("Function Scan", None)],
            90,
            false,
        ),
    ]
};

const STATUSES: &[&str] = &["new", "paid", "shipped", "cancelled", "refunded"];
const WORDS: &[&str] = &[
    "lamp", "chair", "desk", "cable", "mug", "pen", "sofa", "rug",
];
const QUEUES: &[&str] = &["mail", "billing", "thumbnails", "reindex"];
const KINDS: &[&str] = &["login", "view", "click", "purchase", "logout"];
const SETTINGS: &[&str] = &[
    "work_mem",
    "shared_buffers",
    "max_connections",
    "statement_timeout",
];

fn hex(rng: &mut Rng, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "{:016x}{:016x}", rng.next(), rng.next());
}

/// The SQL text of shape `i` with fresh literals.
fn text(i: usize, rng: &mut Rng) -> String {
    let aid = rng.range(1, 1_000_000);
    let tid = rng.range(1, 100);
    let bid = rng.range(1, 10);
    let delta = rng.range(0, 10_000) as i64 - 5000;
    let uid = rng.range(1, 2_000_000);
    match i {
        0 => format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"),
        1 => format!("UPDATE pgbench_accounts SET abalance = abalance + {delta} WHERE aid = {aid};"),
        2 => format!("UPDATE pgbench_tellers SET tbalance = tbalance + {delta} WHERE tid = {tid};"),
        3 => format!("UPDATE pgbench_branches SET bbalance = bbalance + {delta} WHERE bid = {bid};"),
        4 => format!(
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({tid}, {bid}, {aid}, {delta}, CURRENT_TIMESTAMP);"
        ),
        5 => format!("select abalance from pgbench_accounts where aid={aid}"),
        6 => "BEGIN".into(),
        7 => "COMMIT".into(),
        8 => "ROLLBACK".into(),
        9 => format!("SELECT id, email, name, created_at FROM users WHERE id = {uid}"),
        10 => format!(
            "SELECT * FROM users WHERE email = 'user{}@example.com'",
            rng.range(1, 2_000_000)
        ),
        11 => format!(
            "SELECT o.id, o.total, o.status, o.created_at FROM orders o WHERE o.user_id = {uid} ORDER BY o.created_at DESC LIMIT {}",
            rng.pick(&[10, 20, 50])
        ),
        12 => format!(
            "SELECT count(*) FROM orders WHERE status = '{}' AND created_at > now() - interval '{} minutes'",
            rng.pick(STATUSES),
            rng.range(5, 120)
        ),
        13 => {
            let n = rng.range(1, 20);
            let ids: Vec<String> = (0..n).map(|_| rng.range(1, 50_000).to_string()).collect();
            format!(
                "SELECT p.id, p.name, p.price FROM products p WHERE p.id IN ({})",
                ids.join(", ")
            )
        }
        14 => format!(
            "SELECT u.name, sum(o.total) AS spent FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = {uid} GROUP BY u.name"
        ),
        15 => format!(
            "SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{}' ORDER BY c.reltuples DESC LIMIT {}",
            rng.pick(&["public", "app", "audit"]),
            rng.pick(&[10, 20])
        ),
        16 => format!(
            "SELECT id, name, price FROM products WHERE name ILIKE '%{}%' LIMIT {}",
            rng.pick(WORDS),
            rng.pick(&[20, 50, 100])
        ),
        17 => format!(
            "SELECT qty FROM inventory WHERE product_id = {} FOR UPDATE",
            rng.range(1, 50_000)
        ),
        18 => format!(
            "UPDATE inventory SET qty = qty - {} WHERE product_id = {}",
            rng.range(1, 5),
            rng.range(1, 50_000)
        ),
        19 => format!(
            "INSERT INTO orders (user_id, total, status) VALUES ({uid}, {}.{:02}, 'new') RETURNING id",
            rng.range(1, 900),
            rng.range(0, 99)
        ),
        20 => {
            let order = rng.range(1, 90_000_000);
            let rows: Vec<String> = (0..rng.range(1, 5))
                .map(|_| {
                    format!(
                        "({order}, {}, {}, {}.{:02})",
                        rng.range(1, 50_000),
                        rng.range(1, 4),
                        rng.range(1, 300),
                        rng.range(0, 99)
                    )
                })
                .collect();
            format!(
                "INSERT INTO order_items (order_id, product_id, qty, price) VALUES {}",
                rows.join(", ")
            )
        }
        21 => format!(
            "UPDATE orders SET status = '{}', updated_at = now() WHERE id = {}",
            rng.pick(STATUSES),
            rng.range(1, 90_000_000)
        ),
        22 => format!(
            "SELECT id, payload FROM jobs WHERE queue = '{}' AND run_at <= now() ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            rng.pick(QUEUES)
        ),
        23 => format!(
            "UPDATE jobs SET state = 'done', finished_at = now() WHERE id = {}",
            rng.range(1, 50_000_000)
        ),
        24 => {
            let mut s = String::from("SELECT user_id, expires_at FROM sessions WHERE token = '");
            hex(rng, &mut s);
            s.push('\'');
            s
        }
        25 => {
            let mut s = String::from("INSERT INTO sessions (token, user_id, expires_at) VALUES ('");
            hex(rng, &mut s);
            s.push_str(&format!("', {uid}, now() + interval '30 days')"));
            s
        }
        26 => format!(
            "INSERT INTO events (user_id, kind, payload) VALUES ({uid}, '{}', '{{\"page\": \"/p/{}\", \"ms\": {}}}')",
            rng.pick(KINDS),
            rng.range(1, 50_000),
            rng.range(1, 3000)
        ),
        27 => format!("UPDATE users SET last_seen = now() WHERE id = {uid}"),
        28 => format!(
            "DELETE FROM sessions WHERE expires_at < now() - interval '{} hours'",
            rng.range(1, 48)
        ),
        29 => "SELECT date_trunc('hour', created_at) AS hour, kind, count(*) FROM events WHERE created_at > now() - interval '1 day' GROUP BY 1, 2 ORDER BY 1, 2".into(),
        30 => "SELECT \"users\".\"id\", \"users\".\"email\", \"users\".\"name\" FROM \"users\" WHERE \"users\".\"id\" = $1 LIMIT $2".into(),
        31 => "SELECT \"orders\".* FROM \"orders\" WHERE \"orders\".\"user_id\" = $1 ORDER BY \"orders\".\"created_at\" DESC LIMIT $2 OFFSET $3".into(),
        32 => "UPDATE \"users\" SET \"last_seen\" = $1, \"updated_at\" = $2 WHERE \"users\".\"id\" = $3".into(),
        33 => "SELECT \"products\".* FROM \"products\" WHERE \"products\".\"id\" = $1".into(),
        34 => "SELECT 1".into(),
        35 => format!(
            "SELECT name, setting FROM pg_settings WHERE name = '{}'",
            rng.pick(SETTINGS)
        ),
        _ => unreachable!(),
    }
}

/// Transaction scripts: (weight, shapes in order).
const SCRIPTS: &[(u32, &[usize])] = &[
    (300, &[0]),                  // pgbench -S
    (40, &[5]),                   // the same from another client, lower case
    (70, &[6, 1, 0, 2, 3, 4, 7]), // pgbench TPC-B
    (120, &[24, 9, 11]),          // a web request
    (40, &[10]),
    (50, &[13]),
    (30, &[14]),
    (35, &[6, 17, 18, 19, 20, 7]), // checkout
    (15, &[6, 17, 18, 8]),         // checkout given up
    (15, &[21]),
    (45, &[6, 22, 23, 7]), // job worker
    (40, &[26]),
    (30, &[27]),
    (10, &[25]),
    (90, &[30, 31]),       // ORM page
    (40, &[6, 30, 32, 7]), // ORM update
    (50, &[33]),
    (30, &[34]), // health check
    (5, &[35]),
    (3, &[12]),
    (2, &[16]),
    (1, &[15]),
    (1, &[28]),
];

/// Per-backend state.
struct Backend {
    pid: i32,
    user: &'static str,
    database: &'static str,
    client: String,
    port: i32,
    seq: u64,
    script: Vec<usize>,
    step: usize,
    /// Inside BEGIN ... COMMIT.
    in_tx: bool,
    /// Locks taken in the open transaction (released by one release_all).
    holding: bool,
    /// A write in the open transaction (its transaction id is locked).
    wrote: bool,
    first_ts: i64,
    last_ts: i64,
}

struct Args {
    statements: u64,
    out: PathBuf,
    seed: u64,
    backends: i32,
    rate: f64,
    segment_ns: i64,
    events: Vec<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        statements: 10_000_000,
        out: PathBuf::new(),
        seed: 1,
        backends: 32,
        rate: 20_000.0,
        segment_ns: 30_000_000_000,
        events: ["queries", "plans", "locks", "net", "sched"]
            .map(String::from)
            .to_vec(),
    };
    let mut it = std::env::args().skip(1);
    let usage = "usage: gen_trace [--statements N] [--seed S] [--backends N] [--rate N] \
                 [--segment-secs N] [--events queries,plans,locks,net,sched] -o DIR";
    while let Some(arg) = it.next() {
        let mut val = || {
            it.next().unwrap_or_else(|| {
                eprintln!("{arg} needs a value\n{usage}");
                std::process::exit(2)
            })
        };
        let num = |v: String| -> u64 {
            v.replace('_', "").parse().unwrap_or_else(|_| {
                eprintln!("not a number: {v}\n{usage}");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--statements" => a.statements = num(val()),
            "--seed" => a.seed = num(val()),
            "--backends" => a.backends = num(val()).clamp(1, 10_000) as i32,
            "--rate" => a.rate = num(val()).max(1) as f64,
            "--segment-secs" => a.segment_ns = num(val()).max(1) as i64 * 1_000_000_000,
            "--events" => a.events = val().split(',').map(String::from).collect(),
            "-o" | "--output" => a.out = PathBuf::from(val()),
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0)
            }
            _ => {
                eprintln!("unknown argument {arg}\n{usage}");
                std::process::exit(2)
            }
        }
    }
    if a.out.as_os_str().is_empty() {
        eprintln!("-o DIR is required\n{usage}");
        std::process::exit(2)
    }
    if !a.events.iter().any(|e| e == "queries") {
        eprintln!("--events must include queries");
        std::process::exit(2)
    }
    a
}

fn ts_builder() -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::new().with_timezone("UTC")
}

/// Rows of one table being collected, turned into a batch by `finish`.
#[derive(Default)]
struct QueriesCols {
    ts: Vec<i64>,
    pid: Vec<i32>,
    end_ts: Vec<Option<i64>>,
    dur: Vec<Option<i64>>,
    seq: Vec<u64>,
    query: Vec<String>,
    protocol: Vec<&'static str>,
    status: Vec<&'static str>,
    database: Vec<&'static str>,
    user: Vec<&'static str>,
}

impl QueriesCols {
    fn len(&self) -> usize {
        self.ts.len()
    }
    fn finish(&mut self) -> RecordBatch {
        let n = self.len();
        let mut ts = ts_builder();
        let mut end = ts_builder();
        let mut query = StringBuilder::with_capacity(n, n * 80);
        let mut trunc = BooleanBuilder::with_capacity(n);
        let (mut proto, mut status, mut db, mut user) =
            (Dict::new(), Dict::new(), Dict::new(), Dict::new());
        for i in 0..n {
            ts.append_value(self.ts[i]);
            end.append_option(self.end_ts[i]);
            query.append_value(&self.query[i]);
            trunc.append_value(false);
            proto.append_value(self.protocol[i]);
            status.append_value(self.status[i]);
            db.append_value(self.database[i]);
            user.append_value(self.user[i]);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(ts.finish()),
            Arc::new(arrow::array::Int32Array::from(self.pid.clone())),
            Arc::new(arrow::array::Int32Array::from(self.pid.clone())),
            Arc::new(end.finish()),
            Arc::new(arrow::array::Int64Array::from(self.dur.clone())),
            Arc::new(arrow::array::UInt64Array::from(self.seq.clone())),
            Arc::new(query.finish()),
            Arc::new(trunc.finish()),
            Arc::new(proto.finish()),
            Arc::new(status.finish()),
            Arc::new(db.finish()),
            Arc::new(user.finish()),
        ];
        *self = QueriesCols::default();
        RecordBatch::try_new(Table::Queries.schema(), cols).expect("queries batch")
    }
}

struct PlanCols {
    ts: TimestampNanosecondBuilder,
    pid: Int32Builder,
    seq: UInt64Builder,
    node: Int32Builder,
    parent: Int32Builder,
    node_type: Dict,
    startup: Float64Builder,
    total: Float64Builder,
    rows: Float64Builder,
    width: Int32Builder,
    n: usize,
}

impl PlanCols {
    fn new() -> Self {
        PlanCols {
            ts: ts_builder(),
            pid: Int32Builder::new(),
            seq: UInt64Builder::new(),
            node: Int32Builder::new(),
            parent: Int32Builder::new(),
            node_type: Dict::new(),
            startup: Float64Builder::new(),
            total: Float64Builder::new(),
            rows: Float64Builder::new(),
            width: Int32Builder::new(),
            n: 0,
        }
    }
    fn finish(&mut self) -> RecordBatch {
        let pid = Arc::new(self.pid.finish());
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            pid.clone(),
            pid,
            Arc::new(self.seq.finish()),
            Arc::new(self.node.finish()),
            Arc::new(self.parent.finish()),
            Arc::new(self.node_type.finish()),
            Arc::new(self.startup.finish()),
            Arc::new(self.total.finish()),
            Arc::new(self.rows.finish()),
            Arc::new(self.width.finish()),
        ];
        self.n = 0;
        RecordBatch::try_new(Table::PlanNodes.schema(), cols).expect("plan_nodes batch")
    }
}

/// Lock type, mode, database, relation, field3 (the transaction id).
type Lock<'a> = (&'a str, &'a str, Option<u32>, Option<u32>, u32);

struct LockCols {
    ts: TimestampNanosecondBuilder,
    pid: Int32Builder,
    seq: UInt64Builder,
    event: Dict,
    lock_type: Dict,
    mode: Dict,
    db: UInt32Builder,
    rel: UInt32Builder,
    f3: UInt32Builder,
    f4: UInt32Builder,
    result: Dict,
    wait: Int64Builder,
    n: usize,
}

impl LockCols {
    fn new() -> Self {
        LockCols {
            ts: ts_builder(),
            pid: Int32Builder::new(),
            seq: UInt64Builder::new(),
            event: Dict::new(),
            lock_type: Dict::new(),
            mode: Dict::new(),
            db: UInt32Builder::new(),
            rel: UInt32Builder::new(),
            f3: UInt32Builder::new(),
            f4: UInt32Builder::new(),
            result: Dict::new(),
            wait: Int64Builder::new(),
            n: 0,
        }
    }
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        ts: i64,
        pid: i32,
        seq: Option<u64>,
        event: &str,
        lock: Option<Lock<'_>>,
        result: Option<&str>,
        wait_ns: Option<i64>,
    ) {
        self.ts.append_value(ts);
        self.pid.append_value(pid);
        self.seq.append_option(seq);
        self.event.append_value(event);
        match lock {
            Some((lock_type, mode, db, rel, f3)) => {
                self.lock_type.append_value(lock_type);
                self.mode.append_value(mode);
                self.db.append_option(db);
                self.rel.append_option(rel);
                self.f3.append_value(f3);
                self.f4.append_value(0);
            }
            None => {
                self.lock_type.append_null();
                self.mode.append_null();
                self.db.append_null();
                self.rel.append_null();
                self.f3.append_null();
                self.f4.append_null();
            }
        }
        self.result.append_option(result);
        self.wait.append_option(wait_ns);
        self.n += 1;
    }
    fn finish(&mut self) -> RecordBatch {
        let pid = Arc::new(self.pid.finish());
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            pid.clone(),
            pid,
            Arc::new(self.seq.finish()),
            Arc::new(self.event.finish()),
            Arc::new(self.lock_type.finish()),
            Arc::new(self.mode.finish()),
            Arc::new(self.db.finish()),
            Arc::new(self.rel.finish()),
            Arc::new(self.f3.finish()),
            Arc::new(self.f4.finish()),
            Arc::new(self.result.finish()),
            Arc::new(self.wait.finish()),
        ];
        self.n = 0;
        RecordBatch::try_new(Table::Locks.schema(), cols).expect("locks batch")
    }
}

struct NetCols {
    ts: TimestampNanosecondBuilder,
    pid: Int32Builder,
    dir: Dict,
    bytes: Int64Builder,
    family: Dict,
    laddr: StringBuilder,
    lport: Int32Builder,
    raddr: StringBuilder,
    rport: Int32Builder,
    seq: UInt64Builder,
    n: usize,
}

impl NetCols {
    fn new() -> Self {
        NetCols {
            ts: ts_builder(),
            pid: Int32Builder::new(),
            dir: Dict::new(),
            bytes: Int64Builder::new(),
            family: Dict::new(),
            laddr: StringBuilder::new(),
            lport: Int32Builder::new(),
            raddr: StringBuilder::new(),
            rport: Int32Builder::new(),
            seq: UInt64Builder::new(),
            n: 0,
        }
    }
    fn push(&mut self, ts: i64, b: &Backend, dir: &str, bytes: i64, seq: u64) {
        self.ts.append_value(ts);
        self.pid.append_value(b.pid);
        self.dir.append_value(dir);
        self.bytes.append_value(bytes);
        self.family.append_value("inet");
        self.laddr.append_value("10.0.0.2");
        self.lport.append_value(5432);
        self.raddr.append_value(&b.client);
        self.rport.append_value(b.port);
        self.seq.append_value(seq);
        self.n += 1;
    }
    fn finish(&mut self) -> RecordBatch {
        let pid = Arc::new(self.pid.finish());
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            pid.clone(),
            pid,
            Arc::new(self.dir.finish()),
            Arc::new(self.bytes.finish()),
            Arc::new(self.family.finish()),
            Arc::new(self.laddr.finish()),
            Arc::new(self.lport.finish()),
            Arc::new(self.raddr.finish()),
            Arc::new(self.rport.finish()),
            Arc::new(self.seq.finish()),
        ];
        self.n = 0;
        RecordBatch::try_new(Table::Net.schema(), cols).expect("net batch")
    }
}

struct SchedCols {
    ts: TimestampNanosecondBuilder,
    pid: Int32Builder,
    off: Int64Builder,
    state: Dict,
    cpu: Int32Builder,
    n: usize,
}

impl SchedCols {
    fn new() -> Self {
        SchedCols {
            ts: ts_builder(),
            pid: Int32Builder::new(),
            off: Int64Builder::new(),
            state: Dict::new(),
            cpu: Int32Builder::new(),
            n: 0,
        }
    }
    fn push(&mut self, ts: i64, pid: i32, off_ns: i64, state: &str, cpu: i32) {
        self.ts.append_value(ts);
        self.pid.append_value(pid);
        self.off.append_value(off_ns.max(1));
        self.state.append_value(state);
        self.cpu.append_value(cpu);
        self.n += 1;
    }
    fn finish(&mut self) -> RecordBatch {
        let pid = Arc::new(self.pid.finish());
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            pid.clone(),
            pid,
            Arc::new(self.off.finish()),
            Arc::new(self.state.finish()),
            Arc::new(self.cpu.finish()),
        ];
        self.n = 0;
        RecordBatch::try_new(Table::Sched.schema(), cols).expect("sched batch")
    }
}

struct Gen {
    rng: Rng,
    writer: TraceWriter,
    plans: bool,
    locks: bool,
    net: bool,
    sched: bool,
    /// The last transaction id handed out.
    xid: u32,
    q: QueriesCols,
    p: PlanCols,
    l: LockCols,
    n: NetCols,
    s: SchedCols,
}

const FLUSH_ROWS: usize = 65_536;

impl Gen {
    /// Hands the collected rows to the writer (the recorder does this about once a second).
    fn flush(&mut self) {
        let w = &mut self.writer;
        if self.q.len() > 0 {
            w.append(Table::Queries, self.q.finish()).expect("append");
        }
        if self.p.n > 0 {
            w.append(Table::PlanNodes, self.p.finish()).expect("append");
        }
        if self.l.n > 0 {
            w.append(Table::Locks, self.l.finish()).expect("append");
        }
        if self.n.n > 0 {
            w.append(Table::Net, self.n.finish()).expect("append");
        }
        if self.s.n > 0 {
            w.append(Table::Sched, self.s.finish()).expect("append");
        }
    }

    /// One statement of backend `b` starting at `start`; returns its end.
    fn statement(&mut self, b: &mut Backend, start: i64, last: bool) -> i64 {
        let rng = &mut self.rng;
        if b.step >= b.script.len() {
            let total: u32 = SCRIPTS.iter().map(|s| s.0).sum();
            let mut r = (rng.next() % u64::from(total)) as u32;
            let script = SCRIPTS
                .iter()
                .find(|(w, _)| {
                    if r < *w {
                        true
                    } else {
                        r -= w;
                        false
                    }
                })
                .expect("weights");
            b.script = script.1.to_vec();
            b.step = 0;
        }
        let si = b.script[b.step];
        b.step += 1;
        let shape = &SHAPES[si];
        b.seq += 1;
        let seq = b.seq;
        let query = text(si, rng);

        let mut dur = shape.median_us * 1000.0 * (shape.sigma * rng.normal()).exp();
        if rng.chance(0.005) {
            // The tail: a cold cache, a checkpoint, a bad plan.
            dur *= 2.0 * (100.0f64).powf(rng.f());
        }
        let mut dur = dur.max(2000.0) as i64;
        let error = rng.chance(0.001) && shape.kind != Kind::Begin;
        if error {
            dur = (dur / 3).max(2000);
        }
        // Rare lock waits on a row another transaction updates (TPC-B's branches, inventory).
        let wait = (shape.kind == Kind::Write && matches!(si, 3 | 18) && rng.chance(0.01))
            .then(|| (rng.exp(3_000_000.0) as i64).max(10_000));
        if let Some(w) = wait {
            dur += w;
        }
        let end = start + dur;

        if self.net {
            let recv = query.len() as i64 + if shape.extended { 60 } else { 6 };
            self.n.push(start - 2_000, b, "recv", recv, seq);
            let send = (shape.result_bytes as f64 * (0.3 * rng.normal()).exp()) as i64;
            self.n.push(end - 1_000, b, "send", send.max(6), seq);
        }
        if self.plans {
            let mut t = start + 8_000;
            let cost = shape.median_us / 10.0;
            for (id, (node_type, parent)) in shape.plan.iter().enumerate() {
                self.p.ts.append_value(t);
                self.p.pid.append_value(b.pid);
                self.p.seq.append_value(seq);
                self.p.node.append_value(id as i32);
                self.p.parent.append_option(*parent);
                self.p.node_type.append_value(node_type);
                self.p
                    .startup
                    .append_value(if id == 0 { 0.0 } else { 0.29 });
                self.p.total.append_value(cost / (id as f64 + 1.0) + 8.3);
                self.p.rows.append_value(if shape.kind == Kind::Write {
                    0.0
                } else {
                    1.0 + id as f64
                });
                self.p.width.append_value(4 + 8 * id as i32);
                self.p.n += 1;
                t += 300;
            }
        }
        if shape.kind == Kind::Begin {
            b.in_tx = true;
        }
        if self.locks {
            let db = if b.database == "pgbench" {
                16384
            } else {
                16385
            };
            let mode = match shape.kind {
                Kind::Write => "RowExclusiveLock",
                _ if shape.plan.first().is_some_and(|p| p.0 == "LockRows") => "RowShareLock",
                _ => "AccessShareLock",
            };
            let mut t = start + 5_000;
            // Relation locks are held to the end of the transaction.
            for &rel in shape.rels {
                let db = if rel < 16384 { 0 } else { db };
                self.l.push(
                    t,
                    b.pid,
                    Some(seq),
                    "acquire",
                    Some(("relation", mode, Some(db), Some(rel), 0)),
                    Some("granted"),
                    None,
                );
                b.holding = true;
                t += 400;
            }
            if shape.kind == Kind::Write && !b.wrote {
                // The transaction's own id, taken at its first write.
                b.wrote = true;
                self.xid += 1;
                self.l.push(
                    t,
                    b.pid,
                    Some(seq),
                    "acquire",
                    Some(("transactionid", "ExclusiveLock", None, None, self.xid)),
                    Some("granted"),
                    None,
                );
            }
            if let Some(w) = wait {
                // Another transaction's id, taken a little earlier.
                let xid = self.xid.saturating_sub(rng.range(1, 20) as u32);
                let lock = Some(("transactionid", "ShareLock", None, None, xid));
                self.l
                    .push(t + 1_000, b.pid, Some(seq), "wait_start", lock, None, None);
                self.l.push(
                    t + 1_000 + w,
                    b.pid,
                    Some(seq),
                    "wait_end",
                    lock,
                    Some("granted"),
                    Some(w),
                );
            }
            if (!b.in_tx || shape.kind == Kind::End) && b.holding {
                self.l
                    .push(end - 2_500, b.pid, None, "release_all", None, None, None);
                b.holding = false;
            }
        }
        if shape.kind == Kind::End || !b.in_tx {
            b.in_tx = false;
            b.wrote = false;
        }
        if self.sched {
            let cpu = b.pid % 2;
            if rng.chance(0.15) {
                let off = (dur / 10).min(rng.exp(40_000.0) as i64 + 2_000);
                self.s.push(start + dur / 2, b.pid, off, "R", cpu);
            }
            if shape.kind == Kind::End && si == 7 {
                self.s.push(end - dur / 2, b.pid, dur / 3, "D", cpu);
            }
            if si == 29 {
                for k in 1..=5 {
                    self.s.push(start + dur * k / 6, b.pid, dur / 20, "D", cpu);
                }
            }
        }

        let (end_ts, dur_ns, status) = if last {
            (None, None, "incomplete")
        } else if error {
            (Some(end), Some(dur), "error")
        } else {
            (Some(end), Some(dur), "ok")
        };
        self.q.ts.push(start);
        self.q.pid.push(b.pid);
        self.q.end_ts.push(end_ts);
        self.q.dur.push(dur_ns);
        self.q.seq.push(seq);
        self.q.query.push(query);
        self.q
            .protocol
            .push(if shape.extended { "extended" } else { "simple" });
        self.q.status.push(status);
        self.q.database.push(b.database);
        self.q.user.push(b.user);
        b.last_ts = end;
        end
    }
}

fn main() {
    let args = parse_args();
    if args.out.exists() {
        eprintln!("{} exists: give a new directory", args.out.display());
        std::process::exit(2);
    }
    let has = |k: &str| args.events.iter().any(|e| e == k);
    let mut manifest = Manifest::new(
        Target {
            kind: "postgresql".into(),
            version: Some("15.18".into()),
            binary: "/usr/lib/postgresql/15/bin/postgres".into(),
            build_id: Some("44c007cfee140e4c25e8a434008096828e70a92c".into()),
            pid: POSTMASTER,
        },
        Clock {
            monotonic_to_utc_ns: START_NS - 1_000_000_000_000,
        },
        Options {
            events: args.events.clone(),
            max_query_len: 4096,
            redact_literals: false,
        },
        START_NS,
    );
    manifest.host = "gen_trace".into();
    manifest.kernel = format!(
        "synthetic (format/examples/gen_trace.rs, seed {}, {} statements)",
        args.seed, args.statements
    );
    let probe = |s: &str, d: &str| ProbeInfo {
        strategy: s.into(),
        detail: d.into(),
        refused: Vec::new(),
        mode: None,
    };
    manifest.probes.insert(
        "queries".into(),
        probe(
            "usdt",
            "PortalRun entry (uprobe), postgresql:query__execute__done x2",
        ),
    );
    manifest.probes.insert(
        "processes".into(),
        probe("tp_btf", "sched_process_fork, sched_process_exit"),
    );
    for (kind, s, d) in [
        ("plans", "uprobe", "ExecInitNode entry (uprobe)"),
        (
            "locks",
            "usdt",
            "LockAcquireExtended entry+return, LockRelease, LockReleaseAll",
        ),
        ("net", "tp_btf", "sock_send_length, sock_recv_length"),
        ("sched", "tp_btf", "sched_switch"),
    ] {
        if has(kind) {
            manifest.probes.insert(kind.into(), probe(s, d));
        }
    }
    let writer = TraceWriter::create(&args.out, manifest, 3999).expect("create trace");

    let mut g = Gen {
        rng: Rng(args.seed),
        writer,
        plans: has("plans"),
        locks: has("locks"),
        net: has("net"),
        sched: has("sched"),
        xid: 1000,
        q: QueriesCols::default(),
        p: PlanCols::new(),
        l: LockCols::new(),
        n: NetCols::new(),
        s: SchedCols::new(),
    };

    let users: [(&str, &str); 4] = [
        ("app", "appdb"),
        ("app", "appdb"),
        ("app", "appdb"),
        ("bench", "pgbench"),
    ];
    let mut backends: Vec<Backend> = (0..args.backends)
        .map(|i| {
            let (user, database) = users[i as usize % users.len()];
            Backend {
                pid: FIRST_BACKEND + i * 7,
                user,
                database,
                client: format!("10.0.1.{}", 10 + i % 200),
                port: 40_000 + i,
                seq: 0,
                script: Vec::new(),
                step: 0,
                in_tx: false,
                holding: false,
                wrote: false,
                first_ts: START_NS + 50_000_000 + i64::from(i) * 1_000_000,
                last_ts: 0,
            }
        })
        .collect();
    // Backends by the time they are free again: the next arrival goes to the first free.
    let mut free: BinaryHeap<Reverse<(i64, usize)>> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| Reverse((b.first_ts, i)))
        .collect();

    let gap = 1e9 / args.rate;
    let mut arrival = START_NS as f64 + 100_000_000.0;
    let mut segment_end = START_NS + args.segment_ns;
    let mut remaining_last: Vec<bool> = vec![false; backends.len()];
    let n = args.statements;
    let started = std::time::Instant::now();
    for i in 0..n {
        arrival += g.rng.exp(gap);
        let Reverse((free_at, bi)) = free.pop().expect("backends");
        // The client's think time after its previous result.
        let think = g.rng.exp(30_000.0) as i64 + 10_000;
        let start = (arrival as i64).max(free_at + think);
        if start >= segment_end {
            g.flush();
            g.writer
                .close_segment(segment_end, &BTreeMap::new())
                .expect("close segment");
            segment_end += args.segment_ns;
        }
        // The last args.backends statements: each backend's final one is still running.
        let last = i + (backends.len() as u64) >= n && !remaining_last[bi];
        if last {
            remaining_last[bi] = true;
        }
        let b = &mut backends[bi];
        let end = g.statement(b, start, last);
        if g.sched {
            // Sleeping on the client's next message: from the end of the result to the next statement.
            let next = think + g.rng.exp(gap * f64::from(args.backends) / 4.0) as i64;
            let cpu = b.pid % 2;
            g.s.push(end + 1_500, b.pid, next, "S", cpu);
        }
        free.push(Reverse((if last { i64::MAX } else { end }, bi)));
        if g.q.len() >= FLUSH_ROWS {
            g.flush();
        }
        if (i + 1) % 1_000_000 == 0 {
            eprintln!(
                "gen_trace: {} statements, {:.1} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    g.flush();
    let end = backends.iter().map(|b| b.last_ts).max().unwrap_or(START_NS) + 1_000_000;

    // Processes: the postmaster, its auxiliary processes and every backend.
    let mut p_ts = ts_builder();
    let mut pid = Int32Builder::new();
    let mut ppid = Int32Builder::new();
    let mut comm = StringBuilder::new();
    let mut title = StringBuilder::new();
    let (mut role, mut user, mut database) = (Dict::new(), Dict::new(), Dict::new());
    let mut client = StringBuilder::new();
    let mut cgroup = StringBuilder::new();
    let mut first = ts_builder();
    let mut last = ts_builder();
    let aux = [
        (
            POSTMASTER,
            None,
            "postmaster",
            "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main",
        ),
        (
            POSTMASTER + 1,
            Some(POSTMASTER),
            "checkpointer",
            "postgres: 15/main: checkpointer",
        ),
        (
            POSTMASTER + 2,
            Some(POSTMASTER),
            "background writer",
            "postgres: 15/main: background writer",
        ),
        (
            POSTMASTER + 3,
            Some(POSTMASTER),
            "walwriter",
            "postgres: 15/main: walwriter",
        ),
        (
            POSTMASTER + 4,
            Some(POSTMASTER),
            "autovacuum launcher",
            "postgres: 15/main: autovacuum launcher",
        ),
    ];
    for (p, pp, r, t) in aux {
        p_ts.append_value(START_NS);
        pid.append_value(p);
        ppid.append_option(pp.or(Some(1)));
        comm.append_value("postgres");
        title.append_value(t);
        role.append_value(r);
        user.append_null();
        database.append_null();
        client.append_null();
        cgroup.append_value("/system.slice/postgresql@15-main.service");
        first.append_value(START_NS);
        last.append_value(end);
    }
    for b in &backends {
        p_ts.append_value(b.first_ts);
        pid.append_value(b.pid);
        ppid.append_value(POSTMASTER);
        comm.append_value("postgres");
        title.append_value(format!(
            "postgres: 15/main: {} {} {}({}) idle",
            b.user, b.database, b.client, b.port
        ));
        role.append_value("backend");
        user.append_value(b.user);
        database.append_value(b.database);
        client.append_value(&b.client);
        cgroup.append_value("/system.slice/postgresql@15-main.service");
        first.append_value(b.first_ts);
        last.append_value(end);
    }
    let pids = Arc::new(pid.finish());
    let cols: Vec<ArrayRef> = vec![
        Arc::new(p_ts.finish()),
        pids.clone(),
        pids,
        Arc::new(ppid.finish()),
        Arc::new(comm.finish()),
        Arc::new(title.finish()),
        Arc::new(role.finish()),
        Arc::new(user.finish()),
        Arc::new(database.finish()),
        Arc::new(client.finish()),
        Arc::new(cgroup.finish()),
        Arc::new(first.finish()),
        Arc::new(last.finish()),
    ];
    let batch = RecordBatch::try_new(Table::Processes.schema(), cols).expect("processes batch");
    g.writer.append(Table::Processes, batch).expect("append");
    let manifest = g
        .writer
        .finish(end.max(segment_end - args.segment_ns + 1), &BTreeMap::new())
        .expect("finish trace");
    let rows: Vec<String> = manifest
        .events
        .iter()
        .filter(|(_, c)| c.written > 0)
        .map(|(k, c)| format!("{k} {}", c.written))
        .collect();
    eprintln!(
        "gen_trace: wrote {} in {:.1} s: {} segments; rows: {}",
        args.out.display(),
        started.elapsed().as_secs_f64(),
        manifest.segments.len(),
        rows.join(", ")
    );
}
