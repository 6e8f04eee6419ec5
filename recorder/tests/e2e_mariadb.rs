//! End-to-end: real eBPF against a real, throwaway MariaDB (Debian's
//! mariadbd, its own datadir, socket and port), with a workload over two
//! TCP connections of two users whose statements are known before it runs,
//! cross-checked against the server's general log and its own account of
//! each connection (CONNECTION_ID(), USER(), DATABASE(), processlist).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dbflight_format::Table;
use dbflight_format::reader::TraceFiles;

const MARIADBD: &str = "/usr/sbin/mariadbd";

/// What a connection says of itself: `id \t user@host \t database \t host:port`.
const WHO_AM_I: &str = "SELECT CONNECTION_ID(), USER(), DATABASE(), \
     (SELECT host FROM information_schema.processlist WHERE id = CONNECTION_ID())";

/// Connection A: alice, database `test`, the `mariadb` client over TCP,
/// text protocol (COM_QUERY each), including SQL-level PREPARE/EXECUTE
/// (COM_QUERY too) and one error; the client's `USE shop` is a COM_INIT_DB
/// (after the client's own `SELECT DATABASE()`), so the statements after
/// it run in `shop`. It sleeps first, so B connects while A is busy: two
/// server threads.
const TEXT_STATEMENTS: [&str; 12] = [
    "DO SLEEP(1)",
    "CREATE TABLE u (id INT PRIMARY KEY)",
    "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
    "SELECT * FROM t ORDER BY id",
    "PREPARE s FROM 'SELECT v FROM t WHERE id = ?'",
    "SET @id = 2",
    "EXECUTE s USING @id",
    "EXECUTE s USING @id",
    "DEALLOCATE PREPARE s",
    "USE shop",
    "SELECT DATABASE()",
    "SELECT * FROM no_such_table",
];

/// Connection B: bob, database `test`, DBD::MariaDB over TCP with
/// server-side prepare (binary protocol: COM_STMT_PREPARE,
/// COM_STMT_EXECUTE, COM_STMT_CLOSE). It prints who it is, and switches to
/// `shop` with a SQL `USE` (COM_QUERY) before its last statements.
const PERL: &str = r#"
use DBI;
my ($port, $who) = @ARGV;
my $dbh = DBI->connect("DBI:MariaDB:database=test;host=127.0.0.1;port=$port;mariadb_server_prepare=1",
    "bob", "bob-pw", {RaiseError => 1, PrintError => 0});
print join("\t", $dbh->selectrow_array($who)), "\n";
my $ins = $dbh->prepare("INSERT INTO t (id, v) VALUES (?, ?)");
$ins->execute($_, "v$_") for 10 .. 19;
my $sel = $dbh->prepare("SELECT v FROM t WHERE id = ?");
for my $i (10 .. 14) { $sel->execute($i); $sel->fetchall_arrayref; }
undef $ins;
my $n = $dbh->prepare("SELECT count(*) FROM t");
$n->execute; print $n->fetchrow_array, "\n"; $n->finish;
$dbh->do("USE shop", {mariadb_server_prepare => 0});
print $dbh->selectrow_array("SELECT DATABASE()"), "\n";
eval { $dbh->prepare("SELEC broken") };
$dbh->disconnect;
"#;

fn preflight_mariadb(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let perl_ok = Command::new("perl")
        .args(["-MDBD::MariaDB", "-e1"])
        .run_bounded("perl -MDBD::MariaDB")
        .status
        .success();
    let why = if !root {
        Some("not running as root (eBPF needs CAP_BPF/CAP_PERFMON)")
    } else if !Path::new(MARIADBD).exists() {
        Some("no MariaDB server at /usr/sbin/mariadbd (apt-get install mariadb-server)")
    } else if !perl_ok {
        Some("no perl DBD::MariaDB (apt-get install libdbd-mariadb-perl)")
    } else {
        None
    };
    match why {
        Some(why) if required() => panic!(
            "end-to-end test {test} cannot run: {why}; CI must run it (.ci/run installs what it needs)"
        ),
        Some(why) => {
            eprintln!("\n*** SKIPPED end-to-end test {test}: {why}. ***\n");
            false
        }
        None => true,
    }
}

/// A running throwaway server; shut down on drop.
struct MariaDb {
    dir: tempfile::TempDir,
    child: std::process::Child,
    port: u16,
}

impl MariaDb {
    fn start() -> MariaDb {
        let dir = tempfile::Builder::new()
            .prefix("dbflight-mariadb-")
            .tempdir()
            .expect("tempdir");
        let chown = Command::new("chown")
            .args(["-R", "mysql:mysql"])
            .arg(dir.path())
            .run_bounded("chown");
        check(chown, "chown the datadir to mysql");
        let data = dir.path().join("data");
        let port = free_port();
        let out = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=mysql",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                // No DNS lookup of the host name (a CI machine's may hang).
                "--skip-name-resolve",
            ])
            .arg(format!("--datadir={}", data.display()))
            .run_bounded("run mariadb-install-db");
        check(out, "mariadb-install-db");
        let child = Command::new(MARIADBD)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-error={}",
                dir.path().join("err.log").display()
            ))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--user=mysql",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
                "--general-log=1",
                "--log-output=TABLE",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        watch("mariadbd", child.id());
        let m = MariaDb { dir, child, port };
        let t0 = Instant::now();
        while !m.ping() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "mariadbd did not start: {}",
                std::fs::read_to_string(m.dir.path().join("err.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        m.sql("SELECT 1");
        m
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn ping(&self) -> bool {
        let mut ping = Command::new("mariadb-admin");
        ping.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "--connect-timeout=5", "ping"]);
        output_within(&mut ping, Duration::from_secs(30), "mariadb-admin ping")
            .status
            .success()
    }

    fn client(&self) -> Command {
        let mut c = Command::new("mariadb");
        c.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "--batch", "--skip-column-names"]);
        c
    }

    /// The `mariadb` client over TCP as `user`.
    fn tcp_client(&self, user: &str, password: &str) -> Command {
        let mut c = Command::new("mariadb");
        c.arg("--no-defaults")
            .args(["--protocol=TCP", "--host=127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={user}"))
            .arg(format!("--password={password}"))
            .args(["--batch", "--skip-column-names"]);
        c
    }

    fn sql(&self, sql: &str) -> String {
        let out = self
            .client()
            .args([
                "-e",
                &format!("CREATE DATABASE IF NOT EXISTS test; USE test; {sql}"),
            ])
            .run_bounded("mariadb");
        check(out, &format!("mariadb -e {sql:?}"))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // SAFETY: kill with a pid we spawned.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if t0.elapsed() > Duration::from_secs(20) {
                kill_and_reap(&mut self.child);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Literals (quoted strings, numbers) and `?` placeholders as `?`, so a
/// prepared statement's text and the general log's expanded one agree.
fn canonical(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    let mut prev_word = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            for d in chars.by_ref() {
                if d == '\'' {
                    break;
                }
            }
            out.push('?');
            prev_word = false;
        } else if c.is_ascii_digit() && !prev_word {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
            out.push('?');
        } else {
            prev_word = c.is_alphanumeric() || c == '_' || c == '@';
            out.push(c);
        }
    }
    out
}

#[test]
fn statements_over_two_connections_match_the_general_log() {
    if !preflight_mariadb("statements_over_two_connections_match_the_general_log") {
        return;
    }
    let _serial = serial();
    let db = MariaDb::start();
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let perl = tmp.path().join("workload.pl");
    std::fs::write(&perl, PERL).unwrap();

    db.sql(
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); CREATE DATABASE shop; \
         CREATE USER alice@'127.0.0.1' IDENTIFIED BY 'alice-pw'; \
         CREATE USER bob@'127.0.0.1' IDENTIFIED BY 'bob-pw'; \
         GRANT ALL ON test.* TO alice@'127.0.0.1', bob@'127.0.0.1'; \
         GRANT ALL ON shop.* TO alice@'127.0.0.1', bob@'127.0.0.1'",
    );
    let rec = Recording::start_server("--mysql", db.pid(), &trace, &[]);
    // A: one mariadb client session (--force: go on after the error).
    let a = db
        .tcp_client("alice", "alice-pw")
        .args(["--force", "--database=test", "-e"])
        .arg(
            std::iter::once(WHO_AM_I)
                .chain(TEXT_STATEMENTS)
                .collect::<Vec<_>>()
                .join(";\n"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mariadb workload");
    std::thread::sleep(Duration::from_millis(300));
    let b = Command::new("perl")
        .arg(&perl)
        .arg(db.port.to_string())
        .arg(WHO_AM_I)
        .run_bounded("perl workload");
    let a = wait_within(a, CLIENT_LIMIT, "mariadb workload");
    assert!(
        String::from_utf8_lossy(&a.stderr).contains("no_such_table"),
        "the failing statement failed: {a:?}"
    );
    let a_out = String::from_utf8_lossy(&a.stdout).into_owned();
    let a_who = Who::parse(a_out.lines().next().expect("A's first line"));
    assert_eq!(a_out.lines().last(), Some("shop"), "A's USE took: {a_out}");
    let b_out = check(b, "perl DBD::MariaDB workload");
    let mut b_lines = b_out.lines();
    let b_who = Who::parse(b_lines.next().expect("B's first line"));
    let rows_in_t: u64 = b_lines.next().and_then(|l| l.parse().ok()).expect("count");
    assert!(rows_in_t >= 10, "B inserted 10 rows");
    assert_eq!(b_lines.next(), Some("shop"), "B's USE took");
    assert_eq!(
        (a_who.user.as_str(), b_who.user.as_str(), a_who.db.as_str()),
        ("alice@127.0.0.1", "bob@127.0.0.1", "test")
    );
    let (a_conn, b_conn) = (a_who.id, b_who.id);
    let t = rec.stop();

    let qs = queries(&t);
    let tids: std::collections::BTreeSet<i32> = qs.iter().map(|q| q.tid).collect();
    assert_eq!(tids.len(), 2, "two connections, two threads: {qs:#?}");
    assert!(
        qs.iter()
            .all(|q| q.pid == db.pid() as i32 && q.protocol == "mysql")
    );
    assert!(qs.iter().all(|q| q.duration_ns.is_some_and(|d| d > 0)));
    for tid in &tids {
        let seqs: Vec<u64> = qs.iter().filter(|q| q.tid == *tid).map(|q| q.seq).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "query_seq counts statements per thread"
        );
    }

    // A, exactly: its statements in order, the failing one `error`.
    let a_tid = qs
        .iter()
        .find(|q| q.text == WHO_AM_I && q.user.as_deref() == Some("alice"))
        .map(|q| q.tid)
        .expect("A's first statement");
    let a_rows: Vec<(&str, &str)> = qs
        .iter()
        .filter(|q| q.tid == a_tid)
        .map(|q| (q.text.as_str(), q.status.as_str()))
        .collect();
    let mut expected: Vec<(&str, &str)> = vec![(WHO_AM_I, "ok")];
    expected.extend(TEXT_STATEMENTS.iter().map(|s| {
        (
            // The client asks before its COM_INIT_DB.
            if *s == "USE shop" {
                "SELECT DATABASE()"
            } else {
                *s
            },
            if s.contains("no_such_table") {
                "error"
            } else {
                "ok"
            },
        )
    }));
    assert_eq!(a_rows, expected);

    // B: 10 + 5 + 1 executions with their prepared text, and the failed prepare.
    let b_rows: Vec<&Q> = qs.iter().filter(|q| q.tid != a_tid).collect();
    let b_tid = b_rows[0].tid;
    let count = |text: &str| b_rows.iter().filter(|q| q.text == text).count();
    assert_eq!(count("INSERT INTO t (id, v) VALUES (?, ?)"), 10);
    assert_eq!(count("SELECT v FROM t WHERE id = ?"), 5);
    assert_eq!(count("SELECT count(*) FROM t"), 1);
    let failed: Vec<&&Q> = b_rows.iter().filter(|q| q.status == "error").collect();
    assert_eq!(failed.len(), 1, "{b_rows:#?}");
    assert_eq!(failed[0].text, "SELEC broken");
    assert!(
        b_rows.iter().all(|q| !q.text.contains("dbflight:")),
        "every execute found its prepared text: {b_rows:#?}"
    );

    // The server's own account: every Query and Execute of the two
    // connections in the general log, per canonical text, as often as ours.
    let log = db.sql(&format!(
        "SELECT command_type, REPLACE(argument, '\\n', ' ') FROM mysql.general_log \
         WHERE thread_id IN ({a_conn}, {b_conn}) AND command_type IN ('Query', 'Execute')"
    ));
    let mut theirs: BTreeMap<String, usize> = BTreeMap::new();
    for line in log.lines() {
        let (_, arg) = line.split_once('\t').expect("two columns");
        *theirs.entry(canonical(arg)).or_default() += 1;
    }
    // The log also writes what a SQL-level EXECUTE runs, expanded, as a
    // Query of its own (`SELECT v FROM t WHERE id = 2`): not a command.
    let sql_executes = theirs["EXECUTE s USING @id"];
    *theirs
        .get_mut(&canonical("SELECT v FROM t WHERE id = ?"))
        .expect("expanded EXECUTE in the log") -= sql_executes;
    let mut ours: BTreeMap<String, usize> = BTreeMap::new();
    for q in qs.iter().filter(|q| q.text != "SELEC broken") {
        *ours.entry(canonical(&q.text)).or_default() += 1;
    }
    assert_eq!(
        ours, theirs,
        "per-statement counts: ours vs the general log"
    );
    let total: usize = theirs.values().sum();
    assert_eq!(
        total,
        13 + 1 + 4 + 10 + 5 + 1 + 1 + 1,
        "A, B's first SELECT, driver SETs, executes, USE, SELECT DATABASE()"
    );

    check_sessions(&t, &qs, db.pid(), [(a_tid, &a_who), (b_tid, &b_who)]);

    // Network bytes and off-CPU time of the connection threads, attributed
    // to their statements.
    let net = rows(&t, Table::Net);
    for tid in &tids {
        let mine: Vec<&Row> = net
            .iter()
            .filter(|r| num(r, "tid") == *tid as i64)
            .collect();
        assert!(
            mine.iter()
                .any(|r| text(r, "direction") == Some("send") && r["query_seq"].is_some()),
            "thread {tid} sent results of its statements"
        );
    }
    let select_seq = qs
        .iter()
        .find(|q| q.text == "SELECT * FROM t ORDER BY id")
        .unwrap()
        .seq;
    assert!(
        net.iter().any(|r| num(r, "tid") == a_tid as i64
            && r["query_seq"].as_deref() == Some(&select_seq.to_string())
            && text(r, "direction") == Some("send")),
        "the SELECT's result bytes carry its query_seq"
    );
    let sched = rows(&t, Table::Sched);
    assert!(
        tids.iter()
            .all(|tid| sched.iter().any(|r| num(r, "tid") == *tid as i64)),
        "off-CPU time of both threads"
    );
    let m = &t.manifest;
    assert_eq!(m.target.kind, "mariadb");
    assert!(
        m.target
            .version
            .as_deref()
            .is_some_and(|v| v.starts_with("10.") || v.starts_with("11."))
    );
    assert_eq!(m.probes["queries"].strategy, "uprobe");
    assert_eq!(m.events["queries"].dropped, 0);
    assert!(m.complete);
    eprintln!(
        "mariadb: {} statements recorded ({} in the general log + 1 failed prepare), {} net rows, {} sched rows",
        qs.len(),
        total,
        net.len(),
        sched.len()
    );
}

/// A connection as the server tells it (WHO_AM_I's row).
#[derive(Debug)]
struct Who {
    id: u64,
    user: String,
    db: String,
    port: u16,
}

impl Who {
    fn parse(line: &str) -> Who {
        let f: Vec<&str> = line.trim_end().split('\t').collect();
        assert_eq!(f.len(), 4, "{line:?}");
        let (addr, port) = f[3].rsplit_once(':').expect("host:port");
        assert_eq!(addr, "127.0.0.1", "{line:?}");
        Who {
            id: f[0].parse().expect("connection id"),
            user: f[1].to_string(),
            db: f[2].to_string(),
            port: port.parse().expect("port"),
        }
    }
}

/// Each connection is a `processes` row with the server's account of it;
/// its statements carry its user and the database current when they ran.
fn check_sessions(t: &TraceFiles, qs: &[Q], server: u32, conns: [(i32, &Who); 2]) {
    let procs = rows(t, Table::Processes);
    let server_rows: Vec<&Row> = procs
        .iter()
        .filter(|r| num(r, "tid") == server as i64)
        .collect();
    assert_eq!(server_rows.len(), 1, "{procs:#?}");
    assert_eq!(text(server_rows[0], "role"), Some("mysqld"));
    let conn_rows: Vec<&Row> = procs
        .iter()
        .filter(|r| text(r, "role") == Some("connection"))
        .collect();
    assert_eq!(conn_rows.len(), 2, "two connections: {conn_rows:#?}");
    for (tid, who) in conns {
        let r = conn_rows
            .iter()
            .find(|r| num(r, "tid") == tid as i64)
            .unwrap_or_else(|| panic!("no row for thread {tid}: {conn_rows:#?}"));
        let user = who.user.split('@').next().unwrap();
        assert_eq!(num(r, "pid"), server as i64);
        assert_eq!(text(r, "user"), Some(user));
        assert_eq!(
            text(r, "database"),
            Some(who.db.as_str()),
            "as it connected"
        );
        assert_eq!(text(r, "client_addr"), Some("127.0.0.1"));
        let title = format!(
            "mariadbd: {user} {} 127.0.0.1({}) id {}",
            who.db, who.port, who.id
        );
        assert_eq!(text(r, "title"), Some(title.as_str()));
        assert!(text(r, "comm").is_some_and(|c| !c.is_empty()));
        // Its lifetime covers its statements.
        let mine: Vec<&Q> = qs.iter().filter(|q| q.tid == tid).collect();
        let times: Vec<Row> = rows(t, Table::Queries)
            .into_iter()
            .filter(|q| num(q, "tid") == tid as i64)
            .collect();
        let first = times.iter().map(|q| num(q, "ts")).min().unwrap();
        let last = times.iter().map(|q| num(q, "end_ts")).max().unwrap();
        assert!(
            num(r, "first_ts") <= first && num(r, "last_ts") >= last,
            "{r:?}"
        );
        // Statements: the user throughout; `test` until the USE took, `shop` after.
        let mut after_use = false;
        for q in &mine {
            assert_eq!(q.user.as_deref(), Some(user), "{q:?}");
            let want = if after_use { "shop" } else { "test" };
            assert_eq!(q.database.as_deref(), Some(want), "{q:?}");
            // A's client sends SELECT DATABASE() then COM_INIT_DB; B a SQL USE.
            if q.text == "USE shop" || (q.text == "SELECT DATABASE()" && !after_use) {
                after_use = true;
            }
        }
        assert!(after_use, "thread {tid} switched to shop");
        eprintln!(
            "connection {} (thread {tid}): {} statements, title {title:?}",
            who.id,
            mine.len()
        );
    }
}

/// Connections one after another over the socket: the thread cache hands
/// an ended connection's thread to the next one, and each connection is a
/// row of its own, named by the connection id the client saw.
#[test]
fn sequential_connections_are_one_row_each() {
    if !preflight_mariadb("sequential_connections_are_one_row_each") {
        return;
    }
    let _serial = serial();
    let db = MariaDb::start();
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let rec = Recording::start_server("--mysql", db.pid(), &trace, &[]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = db
            .client()
            .args(["-e", "SELECT CONNECTION_ID()"])
            .run_bounded("mariadb");
        ids.push(check(out, "mariadb -e").trim().parse::<u64>().unwrap());
        std::thread::sleep(Duration::from_millis(300));
    }
    let t = rec.stop();

    let conns: Vec<Row> = rows(&t, Table::Processes)
        .into_iter()
        .filter(|r| text(r, "role") == Some("connection"))
        .collect();
    let titles: Vec<&str> = conns.iter().filter_map(|r| text(r, "title")).collect();
    let want: Vec<String> = ids
        .iter()
        .map(|id| format!("mariadbd: root localhost id {id}"))
        .collect();
    assert_eq!(titles, want, "one row per connection, in order: {conns:#?}");
    for r in &conns {
        assert_eq!(text(r, "user"), Some("root"));
        assert_eq!((text(r, "database"), text(r, "client_addr")), (None, None));
    }
    let tids: std::collections::BTreeSet<i64> = conns.iter().map(|r| num(r, "tid")).collect();
    assert!(
        tids.len() < conns.len(),
        "the thread cache served several connections on one thread: {conns:#?}"
    );
    for w in conns.windows(2) {
        assert!(
            num(&w[0], "last_ts") < num(&w[1], "first_ts"),
            "one connection ends before the next begins: {w:#?}"
        );
    }
    let qs = queries(&t);
    assert_eq!(qs.len(), 3);
    assert!(
        qs.iter()
            .all(|q| q.user.as_deref() == Some("root") && q.database.is_none())
    );
    eprintln!(
        "mariadb: 3 connections (ids {ids:?}) on {} thread(s)",
        tids.len()
    );
}

#[test]
fn errors_for_missing_or_wrong_server() {
    let out = Command::new(env!("CARGO_BIN_EXE_dbflight-record"))
        .args(["--mysql", "999999999", "-o"])
        .arg(tempfile::tempdir().unwrap().path().join("t"))
        .run_bounded("a command");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no process with pid") || err.contains("CAP_BPF"),
        "{err}"
    );
}
