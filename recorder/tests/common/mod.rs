//! Harness for the privileged end-to-end tests: a throwaway PostgreSQL
//! cluster (initdb in a temp dir, its own port and socket, run as the
//! `postgres` user, pg_stat_statements loaded) and a recorder run against it.
//!
//! Outside CI, without root or PostgreSQL, tests skip and say so loudly; in
//! CI (`CI` or `DBFLIGHT_E2E=require` set) they fail instead of skipping.

#![allow(dead_code)]

mod bounded;
pub use bounded::*;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a client command (psql, mariadb, initdb, ...) may take.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(120);
/// How long a benchmark-sized workload (pgbench) may take.
pub const WORKLOAD_LIMIT: Duration = Duration::from_secs(600);

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, UInt64Type};
use dbflight_format::Table;
use dbflight_format::reader::TraceFiles;

/// The tests share kernel state (uprobes on the same binary): one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var("DBFLIGHT_E2E").is_ok_and(|v| v == "require")
}

/// Returns the PostgreSQL bin dir when the test can run, None (after a loud
/// message) when it must skip; panics under CI when it cannot run.
pub fn preflight(test: &str) -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let bindir = pg_bindir();
    let why = match (&bindir, root) {
        (_, false) => Some("not running as root (eBPF needs CAP_BPF/CAP_PERFMON)".to_string()),
        (None, _) => {
            Some("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin".to_string())
        }
        _ => None,
    };
    if let Some(why) = why {
        if required() {
            panic!(
                "end-to-end test {test} cannot run: {why}; CI must run it (.ci/run installs what it needs)"
            );
        }
        eprintln!(
            "\n*** SKIPPED end-to-end test {test}: {why}. Run as root (sudo -E cargo test) to exercise real eBPF. ***\n"
        );
        return None;
    }
    bindir
}

fn pg_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("postgres").exists() && p.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn check(out: Output, what: &str) -> String {
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running throwaway cluster; stopped and removed on drop.
pub struct PgCluster {
    pub bindir: PathBuf,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl PgCluster {
    pub fn start(bindir: &Path) -> PgCluster {
        let dir = tempfile::Builder::new()
            .prefix("dbflight-pg-")
            .tempdir()
            .expect("tempdir");
        let chown = output_within(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()),
            CLIENT_LIMIT,
            "chown",
        );
        check(chown, "chown the cluster dir to postgres");
        let data = dir.path().join("data");
        let as_pg = |prog: &str| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bindir.join(prog));
            c
        };
        let out = output_within(
            as_pg("initdb")
                .args([
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "-D",
                ])
                .arg(&data),
            CLIENT_LIMIT,
            "initdb",
        );
        check(out, "initdb");
        let port = free_port();
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = top\n\
             fsync = off\nmax_connections = 50\nlogging_collector = off\n",
            dir.path().display()
        );
        std::fs::write(data.join("postgresql.auto.conf"), conf).expect("write config");
        let out = output_within(
            as_pg("pg_ctl")
                .args(["-w", "-t", "60", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(dir.path().join("server.log"))
                .arg("start"),
            CLIENT_LIMIT,
            "pg_ctl start",
        );
        check(out, "pg_ctl start");
        let c = PgCluster {
            bindir: bindir.to_path_buf(),
            dir,
            port,
        };
        watch("postmaster", c.postmaster_pid());
        c.psql("CREATE EXTENSION pg_stat_statements");
        c
    }

    pub fn postmaster_pid(&self) -> u32 {
        let pidfile = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .expect("postmaster.pid");
        pidfile
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("pid in postmaster.pid")
    }

    pub fn client(&self, prog: &str) -> Command {
        let mut c = Command::new(self.bindir.join(prog));
        c.arg("-h")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres"]);
        c
    }

    /// Runs SQL with psql (unaligned, tuples only) and returns its output.
    pub fn psql(&self, sql: &str) -> String {
        let what = format!("psql -c {sql:?}");
        let out = output_within(
            self.client("psql").args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                "postgres",
                "-c",
                sql,
            ]),
            CLIENT_LIMIT,
            &what,
        );
        check(out, &what)
    }

    /// Runs SQL that is expected to fail; returns stderr.
    pub fn psql_fails(&self, sql: &str) -> String {
        let out = output_within(
            self.client("psql")
                .args(["-X", "-d", "postgres", "-c", sql]),
            CLIENT_LIMIT,
            &format!("psql -c {sql:?}"),
        );
        assert!(!out.status.success(), "{sql:?} was expected to fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn pgbench(&self, args: &[&str]) -> String {
        let what = format!("pgbench {args:?}");
        let out = output_within(
            self.client("pgbench").args(args).arg("postgres"),
            WORKLOAD_LIMIT,
            &what,
        );
        check(out, &what)
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // No panic here (it may run while a failed test unwinds).
        let _ = run_for_at_most(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bindir.join("pg_ctl"))
                .args(["-m", "immediate", "-w", "-D"])
                .arg(self.dir.path().join("data"))
                .arg("stop"),
            Duration::from_secs(60),
        );
    }
}

/// A `dbflight-record` process recording a cluster.
pub struct Recording {
    pub child: Option<Child>,
    pub trace: PathBuf,
}

impl Drop for Recording {
    /// A test that fails before `stop` must not leave a recorder running.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_and_reap(&mut c);
        }
    }
}

impl Recording {
    /// Starts the recorder and waits until its probes are attached (the
    /// manifest is written after attaching).
    pub fn start(pid: u32, trace: &Path, extra: &[&str]) -> Recording {
        Recording::start_server("--postgres", pid, trace, extra)
    }

    /// Starts the recorder on server `pid` named by `flag` (`--postgres`, `--mysql`).
    pub fn start_server(flag: &str, pid: u32, trace: &Path, extra: &[&str]) -> Recording {
        let child = Command::new(env!("CARGO_BIN_EXE_dbflight-record"))
            .args([flag, &pid.to_string(), "--quiet", "-o"])
            .arg(trace)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dbflight-record");
        watch("recorder", child.id());
        let mut r = Recording {
            child: Some(child),
            trace: trace.to_path_buf(),
        };
        let t0 = Instant::now();
        while !trace.join("manifest.json").exists() {
            let c = r.child.as_mut().expect("running");
            if let Some(status) = c.try_wait().expect("try_wait") {
                let mut err = String::new();
                use std::io::Read;
                c.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("dbflight-record exited early ({status}): {err}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "dbflight-record did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// SIGTERM, then wait for a clean exit; returns the opened trace.
    pub fn stop(mut self) -> TraceFiles {
        let child = self.child.take().expect("running");
        // SAFETY: kill with a pid we spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = wait_within(child, CLIENT_LIMIT, "dbflight-record after SIGTERM");
        assert!(
            out.status.success(),
            "dbflight-record failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        TraceFiles::open(&self.trace).expect("open the recorded trace")
    }
}

/// One `queries` row, the columns the tests look at.
#[derive(Debug, Clone)]
pub struct Q {
    pub pid: i32,
    pub tid: i32,
    pub seq: u64,
    pub text: String,
    pub truncated: bool,
    pub protocol: String,
    pub status: String,
    pub database: Option<String>,
    pub user: Option<String>,
    pub duration_ns: Option<i64>,
}

fn dict_str(b: &RecordBatch, col: &str, i: usize) -> Option<String> {
    let a = b.column_by_name(col).unwrap().as_dictionary::<Int32Type>();
    if a.is_null(i) {
        return None;
    }
    let values = a.values().as_string::<i32>();
    Some(values.value(a.keys().value(i) as usize).to_string())
}

pub fn queries(t: &TraceFiles) -> Vec<Q> {
    let mut out = Vec::new();
    for b in t.read_table(Table::Queries).expect("read queries") {
        for i in 0..b.num_rows() {
            let dur = b
                .column_by_name("duration_ns")
                .unwrap()
                .as_primitive::<arrow::datatypes::Int64Type>();
            out.push(Q {
                pid: b
                    .column_by_name("pid")
                    .unwrap()
                    .as_primitive::<Int32Type>()
                    .value(i),
                tid: b
                    .column_by_name("tid")
                    .unwrap()
                    .as_primitive::<Int32Type>()
                    .value(i),
                seq: b
                    .column_by_name("query_seq")
                    .unwrap()
                    .as_primitive::<UInt64Type>()
                    .value(i),
                text: b
                    .column_by_name("query")
                    .unwrap()
                    .as_string::<i32>()
                    .value(i)
                    .to_string(),
                truncated: b
                    .column_by_name("query_truncated")
                    .unwrap()
                    .as_boolean()
                    .value(i),
                protocol: dict_str(&b, "protocol", i).unwrap(),
                status: dict_str(&b, "status", i).unwrap(),
                database: dict_str(&b, "database", i),
                user: dict_str(&b, "user", i),
                duration_ns: (!dur.is_null(i)).then(|| dur.value(i)),
            });
        }
    }
    out
}

/// `processes` rows: pid -> (role, first_ts ns).
pub fn processes(t: &TraceFiles) -> BTreeMap<i32, (Option<String>, i64)> {
    let mut out = BTreeMap::new();
    for b in t.read_table(Table::Processes).expect("read processes") {
        let first = b
            .column_by_name("first_ts")
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        for i in 0..b.num_rows() {
            let pid = b
                .column_by_name("pid")
                .unwrap()
                .as_primitive::<Int32Type>()
                .value(i);
            out.insert(pid, (dict_str(&b, "role", i), first.value(i)));
        }
    }
    out
}

/// pg_stat_statements: normalized query text -> calls.
pub fn pg_stat_statements(c: &PgCluster) -> BTreeMap<String, u64> {
    c.psql("SELECT calls || E'\\t' || query FROM pg_stat_statements")
        .lines()
        .filter_map(|l| {
            let (calls, q) = l.split_once('\t')?;
            Some((q.to_string(), calls.parse().ok()?))
        })
        .collect()
}

/// The number pgbench reports as processed transactions.
pub fn pgbench_transactions(out: &str) -> u64 {
    out.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("number of transactions actually processed: ")
        })
        .and_then(|v| v.split('/').next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no transaction count in pgbench output:\n{out}"))
}

/// One row of any table as column -> value text (None for null);
/// timestamps as ns since the epoch, dictionary columns as their values.
pub type Row = BTreeMap<String, Option<String>>;

pub fn rows(t: &TraceFiles, table: Table) -> Vec<Row> {
    use arrow::datatypes::{DataType, TimeUnit};
    use arrow::util::display::array_value_to_string;
    let mut out = Vec::new();
    for b in t.read_table(table).expect("read table") {
        let schema = b.schema();
        for i in 0..b.num_rows() {
            let mut row = Row::new();
            for (f, col) in schema.fields().iter().zip(b.columns()) {
                let v = if col.is_null(i) {
                    None
                } else if let DataType::Timestamp(TimeUnit::Nanosecond, _) = f.data_type() {
                    Some(
                        col.as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                            .value(i)
                            .to_string(),
                    )
                } else {
                    Some(array_value_to_string(col, i).expect("display value"))
                };
                row.insert(f.name().clone(), v);
            }
            out.push(row);
        }
    }
    out
}

/// A column of a row as a number (panics when null or not a number).
pub fn num(r: &Row, col: &str) -> i64 {
    r[col]
        .as_deref()
        .unwrap_or_else(|| panic!("{col} is null in {r:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{col} is not a number in {r:?}"))
}

pub fn text<'a>(r: &'a Row, col: &str) -> Option<&'a str> {
    r[col].as_deref()
}

impl PgCluster {
    /// psql running `sql` in the background (one session); `tcp` connects
    /// over 127.0.0.1 instead of the socket.
    pub fn psql_spawn(&self, sql: &str, tcp: bool) -> Child {
        let mut c = Command::new(self.bindir.join("psql"));
        if tcp {
            c.args(["-h", "127.0.0.1"]);
        } else {
            c.arg("-h").arg(self.dir.path());
        }
        c.args(["-p", &self.port.to_string(), "-U", "postgres"])
            .args(["-X", "-A", "-t", "-d", "postgres", "-c", sql])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn psql")
    }

    /// A psql session reading statements from the returned stdin, its
    /// output discarded; it ends when stdin is dropped.
    pub fn psql_session(&self) -> (Child, std::process::ChildStdin) {
        let mut c = self.client("psql");
        c.args(["-X", "-A", "-t", "-d", "postgres", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().expect("spawn psql");
        let stdin = child.stdin.take().expect("psql's stdin");
        (child, stdin)
    }

    /// Sends `sql` to a [`psql_session`](Self::psql_session) and waits until
    /// its backend ran it and is idle again.
    pub fn run_in_session(&self, stdin: &mut std::process::ChildStdin, sql: &str) {
        use std::io::Write;
        writeln!(stdin, "{sql}").expect("write to psql");
        self.wait_until(&format!(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query = '{sql}' AND state = 'idle')"
        ));
    }

    /// Waits until `sql` (a boolean query) answers `t`, for up to 10 s.
    pub fn wait_until(&self, sql: &str) {
        let t0 = Instant::now();
        while self.psql(sql).trim() != "t" {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "timed out waiting for {sql}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
