//! End-to-end: real eBPF against a real, throwaway PostgreSQL, with
//! workloads whose counts are known before they run, cross-checked against
//! pg_stat_statements and pgbench's own report.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::*;
use dbflight_format::redact::redact_literals;

const PGBENCH_SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

/// Statement text as pg_stat_statements shows it: literals as $n, no trailing `;`.
fn normalized(text: &str) -> String {
    redact_literals(text)
        .trim()
        .trim_end_matches(';')
        .trim_end()
        .to_string()
}

/// A form both our text and pg_stat_statements' agree on: its normalizer
/// keeps some constants (`GROUP BY 1`) and replaces others (`true`), so
/// every constant, parameter and boolean becomes `?`.
fn canonical(text: &str) -> String {
    use dbflight_format::redact::{TokenKind, tokens};
    let mut out = String::new();
    for t in tokens(text.trim().trim_end_matches(';')) {
        let piece = match t.kind {
            TokenKind::Literal | TokenKind::Param => "?",
            TokenKind::Word
                if t.text.eq_ignore_ascii_case("true") || t.text.eq_ignore_ascii_case("false") =>
            {
                "?"
            }
            TokenKind::Whitespace | TokenKind::Comment => " ",
            _ => t.text,
        };
        out.push_str(piece);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Records `pgbench -S -t 500 -c 2` in one protocol and checks the trace
/// against pgbench and pg_stat_statements.
fn pgbench_select_only(mode: &str, expected_protocol: &str, recorder_args: &[&str]) {
    let Some(bindir) = preflight(&format!("pgbench_{mode}")) else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    pg.pgbench(&["-i", "-q", "-s", "1"]);
    pg.psql("SELECT pg_stat_statements_reset()");
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");

    let rec = Recording::start(pg.postmaster_pid(), &trace, recorder_args);
    let started_ns = dbflight_format::Manifest::read(&trace)
        .unwrap()
        .started_at_ns;
    let out = pg.pgbench(&["-n", "-S", "-t", "500", "-c", "2", "-M", mode]);
    let t = rec.stop();

    let tx = pgbench_transactions(&out);
    assert_eq!(tx, 1000, "pgbench ran 2 clients x 500 transactions");
    let qs = queries(&t);
    let selects: Vec<&Q> = qs
        .iter()
        .filter(|q| normalized(&q.text) == PGBENCH_SELECT)
        .collect();
    assert_eq!(
        selects.len() as u64,
        tx,
        "one queries row per SELECT pgbench reports ({mode})"
    );
    assert!(
        selects
            .iter()
            .all(|q| q.status == "ok" && q.protocol == expected_protocol),
        "{:?}",
        selects.first()
    );
    assert!(selects.iter().all(|q| q.duration_ns.is_some_and(|d| d > 0)));
    assert!(selects.iter().all(
        |q| q.user.as_deref() == Some("postgres") && q.database.as_deref() == Some("postgres")
    ));

    // Per statement text, our count agrees with pg_stat_statements' calls.
    let pss = pg_stat_statements(&pg);
    assert_eq!(
        pss.get(PGBENCH_SELECT),
        Some(&tx),
        "pg_stat_statements: {pss:#?}"
    );
    let mut theirs: BTreeMap<String, u64> = BTreeMap::new();
    for (text, calls) in &pss {
        *theirs.entry(canonical(text)).or_default() += calls;
    }
    let mut ours: BTreeMap<String, u64> = BTreeMap::new();
    for q in &qs {
        *ours.entry(canonical(&q.text)).or_default() += 1;
    }
    for (text, n) in &ours {
        let calls = theirs.get(text).copied().unwrap_or_else(|| {
            panic!("{text:?} recorded but not in pg_stat_statements {theirs:#?}")
        });
        assert_eq!(*n, calls, "calls of {text:?}");
    }

    // pgbench connected after the recorder started: its backends were forked
    // later and traced from their first statement.
    let procs = processes(&t);
    let pids: std::collections::BTreeSet<i32> = selects.iter().map(|q| q.pid).collect();
    assert_eq!(pids.len(), 2, "two pgbench connections");
    for pid in &pids {
        let (role, first_ts) = procs
            .get(pid)
            .unwrap_or_else(|| panic!("no processes row for {pid}: {procs:?}"));
        assert_eq!(role.as_deref(), Some("backend"));
        assert!(
            *first_ts > started_ns,
            "backend {pid} was forked after the recording started"
        );
    }
    let seqs: Vec<u64> = qs
        .iter()
        .filter(|q| q.pid == selects[0].pid)
        .map(|q| q.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "query_seq counts statements per pid"
    );
    assert!(
        procs
            .values()
            .any(|(r, _)| r.as_deref() == Some("postmaster"))
    );

    assert_eq!(
        t.manifest.events["queries"].dropped, 0,
        "no drops at this rate"
    );
    assert!(t.manifest.complete);
    eprintln!(
        "{mode}: {} statements recorded, {} from pgbench, 0 dropped",
        qs.len(),
        selects.len()
    );
}

#[test]
fn pgbench_simple_protocol() {
    pgbench_select_only("simple", "simple", &[]);
}

#[test]
fn pgbench_prepared_protocol() {
    pgbench_select_only("prepared", "extended", &[]);
}

#[test]
fn pgbench_extended_protocol() {
    pgbench_select_only("extended", "extended", &[]);
}

/// The fallback for servers without USDT, forced on this one.
#[test]
fn uprobe_fallback_gives_the_same_statements() {
    pgbench_select_only("simple", "simple", &["--strategy", "queries=uprobe"]);
}

/// Forks followed by the raw tracepoint fallback: new backends still traced.
#[test]
fn raw_tp_fork_following() {
    pgbench_select_only("simple", "simple", &["--strategy", "processes=raw_tp"]);
}

/// One probe hit per statement; start times from the server's own account.
#[test]
fn light_strategy_gives_the_same_statements() {
    pgbench_select_only("simple", "unknown", &["--strategy", "queries=light"]);
    pgbench_select_only("prepared", "unknown", &["--strategy", "queries=light"]);
}

/// With statements alone, each ReadyForQuery waits in BPF and travels with
/// the thread's next message (one ring event per statement): the same rows.
/// pgbench's last statement per connection ends through the exit path.
#[test]
fn statements_alone_carry_each_end_with_the_next_message() {
    pgbench_select_only("simple", "simple", &["--events", "queries"]);
    pgbench_select_only("prepared", "extended", &["--events", "queries"]);
}

/// The same with statements alone: an error, a session that exits, and one
/// still idle when the recording stops (its last end is read from the map).
#[test]
fn statements_alone_end_at_errors_exits_and_the_stop() {
    let Some(bindir) = preflight("statements_alone_end_at_errors_exits_and_the_stop") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let rec = Recording::start(
        pg.postmaster_pid(),
        &trace,
        &["--events", "queries", "--segment", "1s"],
    );
    let (idle, mut stdin) = pg.psql_session();
    for sql in [
        "SELECT 21 AS idle_session;",
        "SELECT 1/0;",
        "SELECT pg_sleep(0.2) AS idle_session;",
    ] {
        pg.run_in_session(&mut stdin, sql);
    }
    pg.psql("SELECT 23 AS exits");
    // Idle for a while, then stop while the session is still connected.
    std::thread::sleep(Duration::from_secs(4));
    let t = rec.stop();
    drop(stdin);
    wait_within(idle, CLIENT_LIMIT, "the idle psql session");

    let mut qs = queries(&t);
    // Rows are in time order within a segment; a statement is written in
    // the segment open when its end became known.
    qs.sort_by_key(|q| (q.pid, q.seq));
    let session = qs
        .iter()
        .find(|q| q.text == "SELECT 21 AS idle_session;")
        .expect("the session's first statement")
        .pid;
    let rows: Vec<(&str, &str)> = qs
        .iter()
        .filter(|q| q.pid == session || q.text == "SELECT 23 AS exits")
        .map(|q| (q.text.as_str(), q.status.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("SELECT 21 AS idle_session;", "ok"),
            ("SELECT 1/0;", "error"),
            ("SELECT pg_sleep(0.2) AS idle_session;", "ok"),
            ("SELECT 23 AS exits", "ok"),
        ],
        "{qs:#?}"
    );
    let slept = qs
        .iter()
        .find(|q| q.text.contains("pg_sleep"))
        .and_then(|q| q.duration_ns)
        .expect("the idle session's last statement has its end");
    assert!(
        (200_000_000..2_000_000_000).contains(&slept),
        "pg_sleep(0.2) took {slept} ns"
    );
    // The idle session's last end was read from the map while it sat idle
    // (once a second), not left for the stop: the segments of the last
    // seconds, after it, hold no statement.
    let segments = &t.manifest.segments;
    let late: u64 = segments
        .iter()
        .rev()
        .take(2)
        .map(|s| s.files.get("queries").map_or(0, |f| f.rows))
        .sum();
    assert!(segments.len() >= 4, "{} segments", segments.len());
    assert_eq!(late, 0, "rows written in the last 2 s: {segments:#?}");
    let probe = &t.manifest.probes["queries"];
    assert_eq!(probe.strategy, "wire");
    assert!(
        probe.detail.contains("one ring event per statement"),
        "{}",
        probe.detail
    );
}

/// The wire strategy keeps its place in the message stream through COPY
/// data (100 000 rows), pipelined Executes and a text spanning recv calls.
#[test]
fn wire_strategy_follows_copy_pipelines_and_long_texts() {
    let Some(bindir) = preflight("wire_strategy_follows_copy_pipelines_and_long_texts") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let rec = Recording::start(pg.postmaster_pid(), &trace, &[]);
    pg.pgbench(&["-i", "-q", "-s", "1"]);
    let script = tmp.path().join("pipeline.sql");
    std::fs::write(
        &script,
        "\\startpipeline\nSELECT 1 AS p1;\nSELECT 2 AS p2;\nSELECT 3 AS p3;\n\\endpipeline\n",
    )
    .unwrap();
    let script = script.display().to_string();
    pg.pgbench(&["-n", "-f", &script, "-t", "10", "-c", "1", "-M", "extended"]);
    let long = format!("SELECT length('{}') AS long_one", "x".repeat(20_000));
    pg.psql(&long);
    pg.psql("SELECT 99 AS after_all");
    let t = rec.stop();

    let qs = queries(&t);
    let count = |text: &str| {
        qs.iter()
            .filter(|q| q.text.trim_end_matches(';') == text)
            .count()
    };
    assert_eq!(
        count("copy pgbench_accounts from stdin with (freeze on)"),
        1
    );
    // pgbench -i's statements after its COPY were seen: in step again.
    assert_eq!(count("vacuum analyze pgbench_accounts"), 1, "{qs:#?}");
    assert_eq!(
        count("alter table pgbench_accounts add primary key (aid)"),
        1
    );
    for p in ["SELECT 1 AS p1", "SELECT 2 AS p2", "SELECT 3 AS p3"] {
        assert_eq!(count(p), 10, "pipelined {p}");
    }
    let cut: Vec<&Q> = qs
        .iter()
        .filter(|q| q.text.contains("long_one") || q.truncated)
        .collect();
    assert_eq!(cut.len(), 1, "{cut:#?}");
    assert!(cut[0].truncated);
    assert_eq!(
        cut[0].text,
        long[..4096],
        "the first 4096 bytes, across recv calls"
    );
    assert_eq!(count("SELECT 99 AS after_all"), 1);
    assert!(qs.iter().all(|q| q.status == "ok"), "{qs:#?}");
    assert_eq!(t.manifest.events["queries"].dropped, 0);
}

/// The USDT strategy (the wire strategy's fallback), forced.
#[test]
fn usdt_strategy_gives_the_same_statements() {
    pgbench_select_only("simple", "simple", &["--strategy", "queries=usdt"]);
    pgbench_select_only("prepared", "extended", &["--strategy", "queries=usdt"]);
}

/// An SSL connection is unreadable on the wire: at the first one, the
/// recorder attaches the statement probes to the whole server, silent for
/// the plain connections, which stay on the wire.
#[test]
fn wire_strategy_hands_encrypted_connections_to_probes() {
    let Some(bindir) = preflight("wire_strategy_hands_encrypted_connections_to_probes") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    let data = pg.dir.path().join("data");
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-x509",
            "-days",
            "2",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(data.join("server.key"))
        .arg("-out")
        .arg(data.join("server.crt"))
        .run_bounded("run openssl (apt-get install openssl)");
    check(out, "openssl req");
    for f in ["server.key", "server.crt"] {
        let out = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(data.join(f))
            .run_bounded("a command");
        check(out, "chown");
    }
    let out = Command::new("chmod")
        .arg("600")
        .arg(data.join("server.key"))
        .run_bounded("a command");
    check(out, "chmod");
    pg.psql("ALTER SYSTEM SET ssl = on");
    pg.psql("SELECT pg_reload_conf()");
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");

    let rec = Recording::start(pg.postmaster_pid(), &trace, &[]);
    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require",
        pg.port
    );
    // The first statement gives the recorder time to attach the probes.
    let out = Command::new(pg.bindir.join("psql"))
        .arg(&conninfo)
        .args(["-X", "-A", "-t"])
        .args(["-c", "SELECT pg_sleep(0.5)"])
        .args([
            "-c",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ])
        .args(["-c", "SELECT 42 AS over_tls", "-c", "SELECT 42 AS over_tls"])
        .args(["-c", "SELECT 42 AS over_tls"])
        .run_bounded("run psql");
    let shown = check(out, "psql over SSL");
    assert!(
        shown.lines().any(|l| l == "t"),
        "the session used SSL: {shown}"
    );
    // One new SSL connection per statement (pgbench -C): each statement is
    // its connection's first, so per-backend probes would come too late.
    let script = tmp.path().join("per-connection.sql");
    std::fs::write(&script, "SELECT 43 AS per_connection;\n").unwrap();
    let out = Command::new(pg.bindir.join("pgbench"))
        .env("PGSSLMODE", "require")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
        ])
        .args(["-n", "-C", "-c", "2", "-t", "25", "-f"])
        .arg(&script)
        .arg("postgres")
        .run_bounded("run pgbench");
    let shown = check(out, "pgbench -C over SSL");
    assert!(
        shown.contains("number of transactions actually processed: 50/50"),
        "{shown}"
    );
    pg.psql("SELECT 7 AS over_socket");
    let t = rec.stop();

    let qs = queries(&t);
    let tls: Vec<&Q> = qs
        .iter()
        .filter(|q| q.text == "SELECT 42 AS over_tls")
        .collect();
    assert_eq!(tls.len(), 3, "{qs:#?}");
    assert!(tls.iter().all(|q| q.status == "ok"
        && q.user.as_deref() == Some("postgres")
        && q.duration_ns.is_some_and(|d| d > 0)));
    let plain: Vec<&Q> = qs
        .iter()
        .filter(|q| q.text == "SELECT 7 AS over_socket")
        .collect();
    // Once: the wire's row, not the probes' too.
    assert_eq!(plain.len(), 1, "{qs:#?}");
    assert_ne!(plain[0].pid, tls[0].pid);
    let short: Vec<&Q> = qs
        .iter()
        .filter(|q| q.text.starts_with("SELECT 43 AS per_connection"))
        .collect();
    assert_eq!(short.len(), 50, "one per SSL connection: {qs:#?}");
    let pids: std::collections::HashSet<i32> = short.iter().map(|q| q.pid).collect();
    assert_eq!(pids.len(), 50, "each on its own backend");
    assert!(short.iter().all(|q| q.status == "ok"));
    let m = &t.manifest.probes["queries"];
    assert_eq!(m.strategy, "wire");
    assert!(m.detail.contains("encrypted connections: usdt"), "{m:?}");
}

/// The wire strategy: statuses from ErrorResponse, truncation and
/// redaction, and a session that connected before the recording began.
#[test]
fn wire_strategy_statuses_and_an_older_session() {
    let Some(bindir) = preflight("wire_strategy_statuses_and_an_older_session") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");

    // A session already connected and idle when the recording starts.
    let (old, mut stdin) = pg.psql_session();
    pg.run_in_session(&mut stdin, "SELECT 10 AS old_session;");

    let rec = Recording::start(
        pg.postmaster_pid(),
        &trace,
        &["--max-query-len", "40", "--redact-literals"],
    );
    pg.run_in_session(&mut stdin, "SELECT 11 AS old_session;");
    pg.psql("SELECT 1");
    let err = pg.psql_fails("SELECT 1/0");
    assert!(err.contains("division by zero"));
    let long = format!("SELECT '{}' AS secret_value", "x".repeat(100));
    pg.psql(&long);
    pg.run_in_session(&mut stdin, "SELECT 12 AS old_session;");
    drop(stdin);
    wait_within(old, CLIENT_LIMIT, "the old psql session");
    let t = rec.stop();

    let qs = queries(&t);
    let old_rows: Vec<&Q> = qs
        .iter()
        .filter(|q| q.text == "SELECT $1 AS old_session;")
        .collect();
    assert_eq!(
        old_rows.len(),
        2,
        "the older session's two statements while recording: {qs:#?}"
    );
    assert!(old_rows.iter().all(|q| q.status == "ok"
        && q.protocol == "simple"
        && q.user.as_deref() == Some("postgres")
        && q.database.as_deref() == Some("postgres")));
    assert_eq!(old_rows[0].pid, old_rows[1].pid);
    assert_eq!(
        (old_rows[0].seq, old_rows[1].seq),
        (1, 2),
        "query_seq counts what was recorded"
    );

    let others: Vec<(&str, &str, bool)> = qs
        .iter()
        .filter(|q| q.pid != old_rows[0].pid && !q.text.starts_with("SELECT EXISTS"))
        .map(|q| (q.text.as_str(), q.status.as_str(), q.truncated))
        .collect();
    assert_eq!(
        others,
        [
            ("SELECT $1", "ok", false),
            ("SELECT $1/$2", "error", false),
            ("SELECT $1", "ok", true),
        ],
        "{qs:#?}"
    );
    assert!(!qs.iter().any(|q| q.text.contains("xxxx")));
    assert_eq!(t.manifest.probes["queries"].strategy, "wire");
    assert!(
        !t.manifest.probes["queries"]
            .detail
            .contains("one ring event"),
        "net and sched need each statement's end in order"
    );
    assert_eq!(t.manifest.events["queries"].dropped, 0);
}

#[test]
fn statuses_truncation_and_manifest() {
    let Some(bindir) = preflight("statuses_truncation_and_manifest") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let rec = Recording::start(
        pg.postmaster_pid(),
        &trace,
        &[
            "--strategy",
            "queries=usdt",
            "--max-query-len",
            "40",
            "--redact-literals",
        ],
    );
    pg.psql("SELECT 1");
    let err = pg.psql_fails("SELECT 1/0");
    assert!(err.contains("division by zero"));
    let long = format!("SELECT '{}' AS secret_value", "x".repeat(100));
    pg.psql(&long);
    let t = rec.stop();

    let qs = queries(&t);
    let texts: Vec<(&str, &str, bool)> = qs
        .iter()
        .map(|q| (q.text.as_str(), q.status.as_str(), q.truncated))
        .collect();
    assert_eq!(
        texts,
        [
            ("SELECT $1", "ok", false),
            // Fails while planning (constant folding), before it executes:
            // its protocol is not known then.
            ("SELECT $1/$2", "error", false),
            // Cut at 40 bytes inside the literal; the unterminated literal is still redacted.
            ("SELECT $1", "ok", true),
        ],
        "{qs:#?}"
    );
    assert!(qs[1].duration_ns.is_some_and(|d| d > 0));
    assert!(
        !qs.iter().any(|q| q.text.contains("xxxx")),
        "literals were redacted before writing"
    );
    let m = &t.manifest;
    assert_eq!(m.probes["queries"].strategy, "usdt");
    assert!(
        m.probes["processes"].strategy == "tp_btf" || m.probes["processes"].strategy == "raw_tp"
    );
    assert_eq!(m.target.kind, "postgresql");
    assert_eq!(m.target.pid as u32, pg.postmaster_pid());
    assert!(
        m.target
            .version
            .as_deref()
            .is_some_and(|v| v.starts_with(char::is_numeric))
    );
    assert!(m.options.redact_literals);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in t.tables.values().flatten() {
            assert_eq!(
                std::fs::metadata(&f.path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}

/// Ctrl-C stops cleanly; a second one while stopping exits at once, and the
/// manifest then says the trace is not complete.
#[test]
fn a_second_ctrl_c_exits_at_once() {
    let Some(bindir) = preflight("a_second_ctrl_c_exits_at_once") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let mut rec = Recording::start(pg.postmaster_pid(), &trace, &["--events", "queries"]);
    let child = rec.child.take().expect("running");
    let pid = child.id() as i32;
    // SAFETY: signals to a pid we spawned. Two different ones, so the kernel
    // cannot merge them while the first is pending; the second comes while
    // the stop the first asked for has hardly begun.
    unsafe {
        libc::kill(pid, libc::SIGINT);
        libc::kill(pid, libc::SIGTERM);
    }
    let out = wait_within(
        child,
        CLIENT_LIMIT,
        "dbflight-record after SIGINT and SIGTERM",
    );
    assert!(
        matches!(out.status.code(), Some(130 | 143)),
        "exits at the second signal, 128 + its number: {out:?}"
    );
    let m = dbflight_format::Manifest::read(&trace).expect("the manifest of the start");
    assert!(
        !m.complete,
        "an interrupted stop leaves the trace incomplete"
    );
}

#[test]
fn clear_errors_for_bad_targets() {
    let Some(bindir) = preflight("clear_errors_for_bad_targets") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbflight-record"))
            .args(args)
            .run_bounded("a command");
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let t = tmp.path().join("t").display().to_string();
    assert!(run(&["--postgres", "999999999", "-o", &t]).contains("no process with pid 999999999"));
    // A backend is not a postmaster: name the postmaster instead.
    let child = common_child(pg.postmaster_pid());
    let err = run(&["--postgres", &child.to_string(), "-o", &t]);
    assert!(
        err.contains(&format!("pass --postgres {}", pg.postmaster_pid())),
        "{err}"
    );
    // Output not writable.
    std::fs::create_dir_all(tmp.path().join("full")).unwrap();
    std::fs::write(tmp.path().join("full/x"), b"x").unwrap();
    let err = run(&[
        "--postgres",
        &pg.postmaster_pid().to_string(),
        "-o",
        &tmp.path().join("full").display().to_string(),
    ]);
    assert!(err.contains("not empty"), "{err}");
    let err = run(&[
        "--postgres",
        &pg.postmaster_pid().to_string(),
        "-o",
        "/proc/nope/trace",
    ]);
    assert!(err.contains("/proc/nope/trace"), "{err}");
    // Without privileges: say which capability is missing.
    let out = std::process::Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            env!("CARGO_BIN_EXE_dbflight-record"),
            "--postgres",
            "auto",
            "-o",
            "/tmp/dbflight-nobody",
        ])
        .run_bounded("a command");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("CAP_BPF") && err.contains("sudo"),
        "{err}"
    );
}

fn common_child(postmaster: u32) -> u32 {
    dbflight_recorder::os::procfs::children(postmaster)
        .into_iter()
        .next()
        .expect("the postmaster has children")
}
