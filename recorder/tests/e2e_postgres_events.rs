//! End-to-end tests of the event kinds beyond statements (plan nodes, locks,
//! network bytes, off-CPU time) against a real, throwaway PostgreSQL, each
//! with a workload whose answer is known in advance and checked against the
//! server's own account where it has one (EXPLAIN, pg_locks, its log).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use common::*;
use dbflight_format::reader::TraceFiles;
use dbflight_format::{Manifest, Table};

/// The `queries` rows whose text contains `marker`, in time order:
/// (pid, query_seq, start ns, end ns). Statements sent in one simple-protocol
/// message share its whole text (PostgreSQL's debug_query_string).
fn statements(t: &TraceFiles, marker: &str) -> Vec<(i64, i64, i64, i64)> {
    let mut found: Vec<(i64, i64, i64, i64)> = rows(t, Table::Queries)
        .into_iter()
        .filter(|r| text(r, "query").is_some_and(|q| q.contains(marker)))
        .map(|r| {
            (
                num(&r, "pid"),
                num(&r, "query_seq"),
                num(&r, "ts"),
                num(&r, "end_ts"),
            )
        })
        .collect();
    found.sort_by_key(|s| s.2);
    assert!(!found.is_empty(), "no statement contains {marker}");
    found
}

/// The one statement whose text contains `marker`.
fn statement(t: &TraceFiles, marker: &str) -> (i64, i64, i64, i64) {
    let found = statements(t, marker);
    assert_eq!(found.len(), 1, "statements containing {marker}: {found:?}");
    found[0]
}

/// Every table's rows match what recorder_stats says was written.
fn check_recorder_stats(t: &TraceFiles) {
    let stats = rows(t, Table::RecorderStats);
    assert!(!stats.is_empty(), "one recorder_stats row per segment");
    for table in [
        Table::Queries,
        Table::PlanNodes,
        Table::Locks,
        Table::Net,
        Table::Sched,
    ] {
        let col = format!("{}_written", table.name());
        let written: i64 = stats.iter().map(|r| num(r, &col)).sum();
        assert_eq!(
            written as usize,
            rows(t, table).len(),
            "recorder_stats {col} vs rows"
        );
        let dropped: i64 = stats
            .iter()
            .map(|r| num(r, &format!("{}_dropped", table.name())))
            .sum();
        assert_eq!(dropped, 0, "{} events dropped", table.name());
    }
}

fn finish(child: Child) -> (bool, String, String) {
    let out = wait_within(child, CLIENT_LIMIT, "psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A plan in EXPLAIN (FORMAT JSON), flattened in pre-order:
/// (node type, index of the parent), the order the planner numbers nodes in.
fn explain_preorder(json: &str) -> Vec<(String, Option<usize>, f64, f64)> {
    fn walk(
        node: &serde_json::Value,
        parent: Option<usize>,
        out: &mut Vec<(String, Option<usize>, f64, f64)>,
    ) {
        let me = out.len();
        out.push((
            node["Node Type"].as_str().unwrap().to_string(),
            parent,
            node["Total Cost"].as_f64().unwrap(),
            node["Plan Rows"].as_f64().unwrap(),
        ));
        for child in node["Plans"].as_array().into_iter().flatten() {
            walk(child, Some(me), out);
        }
    }
    let v: serde_json::Value = serde_json::from_str(json).expect("EXPLAIN JSON");
    let mut out = Vec::new();
    walk(&v[0]["Plan"], None, &mut out);
    out
}

#[test]
fn plan_nodes_of_a_join_match_explain() {
    let Some(bindir) = preflight("plan_nodes_of_a_join_match_explain") else {
        return;
    };
    let _serial = serial();
    let m = join_plan_matches_explain(
        &bindir,
        &["--events", "queries,plans=exact,locks,net,sched"],
    );
    assert_eq!(m.probes["plans"].mode.as_deref(), Some("exact"));
    let strategies: Vec<(&str, &str)> = m
        .probes
        .iter()
        .map(|(k, p)| (k.as_str(), p.strategy.as_str()))
        .collect();
    // locks=waits, the default: uprobes on the wait hooks.
    assert_eq!(m.probes["locks"].mode.as_deref(), Some("waits"));
    for kind in [
        ("locks", "uprobe"),
        ("net", "tp_btf"),
        ("plans", "uprobe"),
        ("queries", "wire"),
        ("sched", "tp_btf"),
    ] {
        assert!(strategies.contains(&kind), "{kind:?} in {strategies:?}");
    }
    // Debian's postgres has no DWARF and no debug file is installed here.
    for kind in ["plans", "locks"] {
        let detail = &m.probes[kind].detail;
        assert!(
            detail.contains("layout from the built-in table for PostgreSQL"),
            "{kind}: {detail}"
        );
    }
    assert!(
        !m.probes.contains_key("lwlocks"),
        "LWLocks are off by default"
    );
}

/// A debug file for the server binary, as a -dbgsym package installs it
/// (DIR/.build-id/xx/yyyy.debug): DWARF of the server's own headers
/// (postgresql-server-dev), compiled here. The recorder reads the plan and
/// lock layouts from it instead of its table.
#[test]
fn plan_nodes_with_the_layout_from_a_debug_file() {
    let Some(bindir) = preflight("plan_nodes_with_the_layout_from_a_debug_file") else {
        return;
    };
    let _serial = serial();
    let major = bindir
        .parent()
        .and_then(|d| d.file_name()?.to_str()?.parse::<u32>().ok())
        .expect("bindir is /usr/lib/postgresql/NN/bin");
    let headers = PathBuf::from(format!("/usr/include/postgresql/{major}/server"));
    assert!(
        headers.join("nodes/plannodes.h").is_file(),
        "no {}: apt-get install postgresql-server-dev-all (.ci/run does)",
        headers.display()
    );
    let elf = dbflight_recorder::probes::elf::ElfInfo::from_path(&bindir.join("postgres")).unwrap();
    let id = elf.build_id().expect("the server binary has a build id");
    let debug_root = tempfile::tempdir().unwrap();
    let dir = debug_root.path().join(".build-id").join(&id[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("types.c");
    std::fs::write(
        &src,
        "#include \"postgres.h\"\n#include \"nodes/plannodes.h\"\n#include \"storage/lock.h\"\n\
         Plan v1; List v2; ListCell v3; LOCKTAG v4; NodeTag v5; LockTagType v6; Append v7;\n\
         MergeAppend v8; BitmapAnd v9; BitmapOr v10; CustomScan v11; SubqueryScan v12;\n\
         int main(void) { return 0; }\n",
    )
    .unwrap();
    let debug = dir.join(format!("{}.debug", &id[2..]));
    let st = Command::new("cc")
        .args(["-g", "-w", "-I"])
        .arg(&headers)
        .arg(&src)
        .arg("-o")
        .arg(&debug)
        .run_bounded("cc")
        .status;
    assert!(st.success());
    let dirs = debug_root.path().to_str().unwrap();
    let m = join_plan_matches_explain(
        &bindir,
        &[
            "--debug-dir",
            dirs,
            "--events",
            "queries,plans=exact,locks,net,sched",
        ],
    );
    for kind in ["plans", "locks"] {
        let detail = &m.probes[kind].detail;
        assert!(
            detail.contains(&format!("layout from DWARF in {}", debug.display())),
            "{kind}: {detail}"
        );
    }
}

/// Records a two-table join and its EXPLAIN with `extra` recorder
/// arguments; checks plan_nodes against EXPLAIN (FORMAT JSON): node types,
/// ids, parents, costs and rows.
fn join_plan_matches_explain(bindir: &Path, extra: &[&str]) -> Manifest {
    let pg = PgCluster::start(bindir);
    pg.psql(
        "CREATE TABLE pa (id int PRIMARY KEY, x int); CREATE TABLE pb (id int, a_id int); \
         INSERT INTO pa SELECT g, g % 100 FROM generate_series(1, 10000) g; \
         INSERT INTO pb SELECT g, g % 10000 + 1 FROM generate_series(1, 20000) g; \
         ANALYZE pa; ANALYZE pb",
    );
    // Settings for every session, so each statement below is alone in its message.
    pg.psql("ALTER DATABASE postgres SET enable_mergejoin = off");
    pg.psql("ALTER DATABASE postgres SET enable_nestloop = off");
    pg.psql("ALTER DATABASE postgres SET max_parallel_workers_per_gather = 0");
    let q =
        "SELECT /* dbflight-join */ count(*) FROM pb JOIN pa ON pb.a_id = pa.id WHERE pa.x < 50";
    let expected = explain_preorder(&pg.psql(&format!("EXPLAIN (FORMAT JSON) {q}")));
    let types: Vec<&str> = expected.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        types,
        ["Aggregate", "Hash Join", "Seq Scan", "Hash", "Seq Scan"],
        "the plan shape this test is about"
    );

    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let rec = Recording::start(pg.postmaster_pid(), &trace, extra);
    pg.psql(q);
    pg.psql(&format!("EXPLAIN (FORMAT JSON) {q}"));
    let t = rec.stop();

    // The SELECT, then the EXPLAIN of it.
    let found = statements(&t, "/* dbflight-join */");
    assert_eq!(found.len(), 2, "{found:?}");
    let (pid, seq, ..) = found[0];
    let mut nodes: Vec<Row> = rows(&t, Table::PlanNodes)
        .into_iter()
        .filter(|r| num(r, "pid") == pid && num(r, "query_seq") == seq)
        .collect();
    nodes.sort_by_key(|r| num(r, "node_id"));
    assert_eq!(nodes.len(), expected.len(), "one row per node: {nodes:?}");
    for (i, (r, (kind, parent, total, plan_rows))) in nodes.iter().zip(&expected).enumerate() {
        assert_eq!(text(r, "node_type"), Some(kind.as_str()), "node {i}");
        let parent_id = parent.map(|p| num(&nodes[p], "node_id"));
        assert_eq!(
            r["parent_node_id"]
                .as_deref()
                .map(|v| v.parse::<i64>().unwrap()),
            parent_id,
            "parent of node {i} ({kind})"
        );
        let cost: f64 = text(r, "total_cost").unwrap().parse().unwrap();
        assert!(
            (cost - total).abs() < 0.01,
            "total cost {cost} vs EXPLAIN {total}"
        );
        let prow: f64 = text(r, "plan_rows").unwrap().parse().unwrap();
        assert_eq!(prow, *plan_rows, "plan rows of {kind}");
    }
    // The EXPLAIN statement initialised the same plan (EXPLAIN does
    // ExecutorStart): attributed to that statement, not to the SELECT.
    let (epid, eseq, ..) = found[1];
    let explained = rows(&t, Table::PlanNodes)
        .iter()
        .filter(|r| num(r, "pid") == epid && num(r, "query_seq") == eseq)
        .count();
    assert_eq!(explained, expected.len());
    check_recorder_stats(&t);
    assert!(rows(&t, Table::Lwlocks).is_empty());
    Manifest::read(&trace).unwrap()
}

/// The plan nodes of statement `seq` of `pid` read in one look (one `ts`),
/// parents resolved to indexes, in node id order: (type, parent index).
fn sampled_plan(t: &TraceFiles, pid: i64, seq: i64) -> Vec<Vec<(String, Option<usize>)>> {
    let mut by_ts: std::collections::BTreeMap<i64, Vec<Row>> = Default::default();
    for r in rows(t, Table::PlanNodes) {
        if num(&r, "pid") == pid && num(&r, "query_seq") == seq {
            by_ts.entry(num(&r, "ts")).or_default().push(r);
        }
    }
    by_ts
        .into_values()
        .map(|mut nodes| {
            nodes.sort_by_key(|r| num(r, "node_id"));
            let index = |id: i64| nodes.iter().position(|n| num(n, "node_id") == id);
            nodes
                .iter()
                .map(|r| {
                    let parent = r["parent_node_id"]
                        .as_deref()
                        .and_then(|p| index(p.parse().unwrap()));
                    (text(r, "node_type").unwrap().to_string(), parent)
                })
                .collect()
        })
        .collect()
}

/// The default `plans=sampled`: no probe in the server; a join run 60
/// times (each its own message) has its plan as EXPLAIN gives it, and so
/// has a statement of about 300 ms that ran once.
#[test]
fn sampled_plans_of_a_repeated_join_and_a_slow_statement() {
    let Some(bindir) = preflight("sampled_plans_of_a_repeated_join_and_a_slow_statement") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    pg.psql(
        "CREATE TABLE pa (id int PRIMARY KEY, x int); CREATE TABLE pb (id int, a_id int); \
         INSERT INTO pa SELECT g, g % 100 FROM generate_series(1, 10000) g; \
         INSERT INTO pb SELECT g, g % 10000 + 1 FROM generate_series(1, 50000) g; \
         ANALYZE pa; ANALYZE pb",
    );
    pg.psql("ALTER DATABASE postgres SET enable_mergejoin = off");
    pg.psql("ALTER DATABASE postgres SET max_parallel_workers_per_gather = 0");
    let join = "SELECT /* dbf-join */ count(*) FROM pb JOIN pa ON pb.a_id = pa.id WHERE pa.x < 50";
    let slow = "SELECT /* dbf-slow */ count(*) FROM pa, pg_sleep(0.3) WHERE pa.x < 10";
    let shape = |q: &str| -> Vec<(String, Option<usize>)> {
        explain_preorder(&pg.psql(&format!("EXPLAIN (FORMAT JSON) {q}")))
            .into_iter()
            .map(|(kind, parent, ..)| (kind, parent))
            .collect()
    };
    let (join_plan, slow_plan) = (shape(join), shape(slow));
    assert_eq!(join_plan.len(), 5, "{join_plan:?}");
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), format!("{join};\n")).unwrap();
    std::fs::set_permissions(
        script.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let rec = Recording::start(pg.postmaster_pid(), &trace, &[]);
    pg.pgbench(&[
        "-n",
        "-M",
        "simple",
        "-t",
        "60",
        "-f",
        script.path().to_str().unwrap(),
    ]);
    pg.psql(slow);
    let t = rec.stop();
    let m = Manifest::read(&trace).unwrap();
    let plans = &m.probes["plans"];
    assert_eq!(
        (plans.strategy.as_str(), plans.mode.as_deref()),
        ("memory", Some("sampled"))
    );

    let runs = statements(&t, "/* dbf-join */");
    assert_eq!(runs.len(), 60, "{runs:?}");
    let mut seen = 0;
    for (pid, seq, ..) in &runs {
        for looked in sampled_plan(&t, *pid, *seq) {
            assert_eq!(
                looked, join_plan,
                "execution {seq}: each look is the whole plan"
            );
            seen += 1;
        }
    }
    eprintln!("{seen} of 60 executions of the join sampled");
    assert!(seen >= 1, "no execution of the join was sampled");
    let (pid, seq, start, end) = statement(&t, "/* dbf-slow */");
    assert!(end - start >= 300_000_000);
    let looks = sampled_plan(&t, pid, seq);
    assert!(!looks.is_empty(), "the 300 ms statement has its plan");
    for looked in looks {
        assert_eq!(looked, slow_plan);
    }
    check_recorder_stats(&t);
}

/// The exact mode: every acquisition, fast-path ones included, and waits.
#[test]
fn lock_wait_and_fast_path_locks() {
    let Some(bindir) = preflight("lock_wait_and_fast_path_locks") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    pg.psql("CREATE TABLE lt (id int); INSERT INTO lt VALUES (1)");
    let oid: i64 = pg
        .psql("SELECT 'lt'::regclass::oid")
        .trim()
        .parse()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let rec = Recording::start(
        pg.postmaster_pid(),
        &trace,
        &["--events", "queries,plans,locks=exact,net,sched"],
    );

    // Fast path: a plain read takes AccessShareLock without the shared lock table.
    let fast = pg.psql(
        "SELECT /* dbflight-fast */ count(*) FROM lt; \
         SELECT bool_and(fastpath) FROM pg_locks WHERE relation = 'lt'::regclass AND pid = pg_backend_pid()",
    );
    assert_eq!(
        fast.lines().last(),
        Some("t"),
        "the lock was taken by the fast path"
    );

    let holder = pg.psql_spawn(
        "BEGIN; LOCK TABLE lt IN ACCESS EXCLUSIVE MODE; SELECT /* dbflight-hold */ pg_sleep(1); COMMIT",
        false,
    );
    pg.wait_until(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'lt'::regclass AND mode = 'AccessExclusiveLock' AND granted)",
    );
    let waiter = pg.psql_spawn("SELECT /* dbflight-waiter */ count(*) FROM lt", false);
    let (ok1, _, e1) = finish(holder);
    let (ok2, out2, e2) = finish(waiter);
    assert!(ok1 && ok2, "{e1}{e2}");
    assert_eq!(out2.trim(), "1");
    let t = rec.stop();
    let locks = rows(&t, Table::Locks);
    let on_lt = |r: &&Row| r["relation_oid"].as_deref() == Some(&oid.to_string());

    // Two statements in one message: the count is the first.
    let (fpid, fseq, ..) = statements(&t, "/* dbflight-fast */")[0];
    let fast_acquires: Vec<&Row> = locks
        .iter()
        .filter(on_lt)
        .filter(|r| num(r, "pid") == fpid && text(r, "event") == Some("acquire"))
        .collect();
    assert_eq!(fast_acquires.len(), 1, "{fast_acquires:?}");
    let a = fast_acquires[0];
    assert_eq!(
        (text(a, "mode"), text(a, "result"), text(a, "lock_type")),
        (Some("AccessShareLock"), Some("granted"), Some("relation"))
    );
    assert_eq!(num(a, "query_seq"), fseq);

    let (hpid, ..) = statements(&t, "LOCK TABLE lt")[0];
    let (wpid, wseq, wstart, wend) = statement(&t, "/* dbflight-waiter */");
    let of = |pid: i64, event: &str| -> Vec<&Row> {
        locks
            .iter()
            .filter(on_lt)
            .filter(|r| num(r, "pid") == pid && text(r, "event") == Some(event))
            .collect()
    };
    let (starts, ends) = (of(wpid, "wait_start"), of(wpid, "wait_end"));
    assert_eq!(
        (starts.len(), ends.len()),
        (1, 1),
        "one wait: {starts:?} {ends:?}"
    );
    assert_eq!(num(ends[0], "query_seq"), wseq);
    let wait_ns = num(ends[0], "wait_ns");
    // The wait happened while the statement was parsed (the parser locks
    // the table it reads): its duration counts from the server's receipt.
    assert!(
        wend - wstart >= wait_ns,
        "waiter took {} ns, of which {wait_ns} ns waiting",
        wend - wstart
    );
    let held = of(hpid, "acquire");
    assert_eq!(
        held.len(),
        1,
        "holder {hpid}: {:?}",
        locks
            .iter()
            .filter(|r| num(r, "pid") == hpid)
            .collect::<Vec<_>>()
    );
    assert_eq!(text(held[0], "mode"), Some("AccessExclusiveLock"));
    let released = locks
        .iter()
        .filter(|r| num(r, "pid") == hpid && text(r, "event") == Some("release_all"))
        .map(|r| num(r, "ts"))
        .find(|&ts| ts > num(held[0], "ts"))
        .expect("the holder releases its locks at commit");
    let hold_ns = released - num(held[0], "ts");
    assert!(
        (hold_ns - 1_000_000_000).abs() < 200_000_000,
        "held about 1 s: {hold_ns} ns"
    );
    assert!(
        (wait_ns - hold_ns).abs() as f64 <= 0.2 * hold_ns as f64,
        "wait {wait_ns} ns within 20% of the hold {hold_ns} ns"
    );
    let granted = of(wpid, "acquire");
    assert_eq!(granted.len(), 1);
    assert_eq!(text(granted[0], "result"), Some("granted"));
    assert!(
        released <= num(granted[0], "ts"),
        "the holder's release ({released}) comes before the waiter's grant ({})",
        num(granted[0], "ts")
    );
    assert!(num(starts[0], "ts") < num(ends[0], "ts"));
    check_recorder_stats(&t);
}

#[test]
fn deadlock_matches_the_server_log() {
    let Some(bindir) = preflight("deadlock_matches_the_server_log") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    for mode in ["waits", "exact"] {
        deadlock_in_mode(&pg, mode);
    }
}

/// Two sessions updating two rows in opposite orders, recorded with
/// `locks=MODE`: one deadlock, its victim the one the server log names.
fn deadlock_in_mode(pg: &PgCluster, mode: &str) {
    pg.psql(
        "DROP TABLE IF EXISTS dl; CREATE TABLE dl (id int PRIMARY KEY, v int); INSERT INTO dl VALUES (1, 0), (2, 0)",
    );
    let log_before = pg.server_log().len();
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let events = format!("queries,plans,locks={mode},net,sched");
    let rec = Recording::start(pg.postmaster_pid(), &trace, &["--events", &events]);
    let session = |first: u32, second: u32| {
        pg.psql_spawn(
            &format!(
                "BEGIN; UPDATE dl SET v = v + 1 WHERE id = {first}; SELECT pg_sleep(0.5); \
                 UPDATE dl SET v = v + 1 WHERE id = {second}; COMMIT"
            ),
            false,
        )
    };
    let (s1, s2) = (session(1, 2), session(2, 1));
    let (r1, r2) = (finish(s1), finish(s2));
    let t = rec.stop();
    let failed: Vec<&String> = [&r1, &r2].iter().filter(|r| !r.0).map(|r| &r.2).collect();
    assert_eq!(
        failed.len(),
        1,
        "exactly one session is the deadlock victim"
    );
    assert!(failed[0].contains("deadlock detected"), "{}", failed[0]);

    // The server's account: `[pid] ERROR:  deadlock detected`.
    let log = pg.server_log()[log_before..].to_string();
    let victim: i64 = log
        .lines()
        .find(|l| l.contains("ERROR:  deadlock detected"))
        .and_then(|l| l.split('[').nth(1)?.split(']').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no deadlock in the server log:\n{log}"));
    let deadlocks: Vec<Row> = rows(&t, Table::Locks)
        .into_iter()
        .filter(|r| text(r, "event") == Some("deadlock"))
        .collect();
    assert_eq!(deadlocks.len(), 1, "{mode}: {deadlocks:?}");
    assert_eq!(
        num(&deadlocks[0], "pid"),
        victim,
        "{mode}: the victim the server names"
    );
    assert_eq!(text(&deadlocks[0], "lock_type"), Some("transactionid"));
    // Both sessions' pids appear in the server's DETAIL and in the trace.
    let mut updaters: Vec<i64> = statements(&t, "UPDATE dl").iter().map(|s| s.0).collect();
    updaters.dedup();
    updaters.sort();
    updaters.dedup();
    assert_eq!(updaters.len(), 2, "two sessions: {updaters:?}");
    for &pid in &updaters {
        assert!(
            log.contains(&format!("Process {pid} waits")),
            "{pid} in:\n{log}"
        );
    }
    if mode == "waits" {
        // Each waited for the other's transaction, and said so.
        let (a, b) = (updaters[0], updaters[1]);
        let blockers = rows(&t, Table::LockBlockers);
        for (waiter, holder) in [(a, b), (b, a)] {
            let of: Vec<(i64, Option<&str>, Option<&str>)> = blockers
                .iter()
                .filter(|r| num(r, "pid") == waiter)
                .map(|r| {
                    (
                        num(r, "blocker_pid"),
                        text(r, "blocker_mode"),
                        text(r, "blocking"),
                    )
                })
                .collect();
            assert_eq!(
                of,
                [(holder, Some("ExclusiveLock"), Some("hard"))],
                "{waiter}"
            );
        }
        let locks = rows(&t, Table::Locks);
        let ends: Vec<(i64, Option<&str>)> = locks
            .iter()
            .filter(|r| text(r, "event") == Some("wait_end"))
            .map(|r| (num(r, "pid"), text(r, "result")))
            .collect();
        let survivor = if victim == a { b } else { a };
        let mut ends = ends;
        ends.sort();
        let mut want = vec![(victim, Some("error")), (survivor, Some("granted"))];
        want.sort();
        assert_eq!(
            ends, want,
            "the victim's wait ends in error, the other's is granted"
        );
    }
    check_recorder_stats(&t);
}

/// The sessions blocking one wait of `pid`, as (pid, mode, hard|soft).
fn blockers_of(t: &TraceFiles, pid: i64) -> Vec<(i64, String, String)> {
    rows(t, Table::LockBlockers)
        .iter()
        .filter(|r| num(r, "pid") == pid)
        .map(|r| {
            (
                num(r, "blocker_pid"),
                text(r, "blocker_mode").unwrap_or("?").to_string(),
                text(r, "blocking").unwrap_or("?").to_string(),
            )
        })
        .collect()
}

/// The server's own `pg_blocking_pids()` of the session running `marker`,
/// once it waits. (`_` for `-` in the pattern: this query's own text must
/// not contain the marker, or the trace would have two statements with it.)
fn server_blockers(pg: &PgCluster, marker: &str) -> Vec<i64> {
    let pattern = marker.replace('-', "_");
    let q = format!(
        "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity WHERE query LIKE '%{pattern}%' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    );
    pg.wait_until(&format!("SELECT EXISTS ({q})"));
    let out = pg.psql(&format!(
        "SELECT array_to_string(b, ',') FROM ({q}) AS w(pid, b)"
    ));
    let mut v: Vec<i64> = out.trim().split(',').map(|p| p.parse().unwrap()).collect();
    v.sort();
    v
}

/// The default `locks=waits`: no trap on locks granted at once, and each
/// wait with the sessions blocking it, as pg_blocking_pids() names them: a
/// table lock, a row lock, a queue of three (hard and soft), and a holder
/// whose lock was taken by the fast path.
#[test]
fn lock_waits_with_their_holders() {
    let Some(bindir) = preflight("lock_waits_with_their_holders") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    pg.psql(
        "CREATE TABLE wt (id int PRIMARY KEY, v int); INSERT INTO wt VALUES (1, 0); \
         CREATE TABLE wq (id int); CREATE TABLE wf (id int)",
    );
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let rec = Recording::start(pg.postmaster_pid(), &trace, &[]);
    let granted =
        |sql: &str| format!("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE {sql} AND granted)");

    // 1. A table held in ACCESS EXCLUSIVE mode for about a second.
    let holder = pg.psql_spawn(
        "BEGIN; LOCK TABLE wt IN ACCESS EXCLUSIVE MODE; SELECT /* dbf-hold-1 */ pg_sleep(1); COMMIT",
        false,
    );
    pg.wait_until(&granted(
        "relation = 'wt'::regclass AND mode = 'AccessExclusiveLock'",
    ));
    let reader = pg.psql_spawn("SELECT /* dbf-read-1 */ count(*) FROM wt", false);
    let table_blockers = server_blockers(&pg, "dbf-read-1");
    let (ok1, ok2) = (finish(holder).0, finish(reader).0);
    assert!(ok1 && ok2);

    // 2. A row lock: the second UPDATE waits for the first's transaction.
    let updater = pg.psql_spawn(
        "BEGIN; UPDATE wt SET v = 1 WHERE id = 1; SELECT /* dbf-hold-2 */ pg_sleep(0.5); COMMIT",
        false,
    );
    pg.wait_until(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%dbf_hold_2%' AND wait_event = 'PgSleep')",
    );
    let second = pg.psql_spawn("UPDATE /* dbf-row-2 */ wt SET v = 2 WHERE id = 1", false);
    let row_blockers = server_blockers(&pg, "dbf-row-2");
    assert!(finish(updater).0 && finish(second).0);

    // 3. A queue of three: the third is blocked by the first (hard) and
    // queued behind the second (soft).
    let first = pg.psql_spawn(
        "BEGIN; LOCK TABLE wq IN ACCESS EXCLUSIVE MODE; SELECT /* dbf-hold-3 */ pg_sleep(1.5); COMMIT",
        false,
    );
    pg.wait_until(&granted(
        "relation = 'wq'::regclass AND mode = 'AccessExclusiveLock'",
    ));
    let second = pg.psql_spawn("SELECT /* dbf-queue-2 */ count(*) FROM wq", false);
    server_blockers(&pg, "dbf-queue-2");
    let third = pg.psql_spawn(
        "BEGIN; LOCK TABLE wq IN ACCESS EXCLUSIVE MODE /* dbf-queue-3 */; COMMIT",
        false,
    );
    let queue_blockers = server_blockers(&pg, "dbf-queue-3");
    assert!(finish(first).0 && finish(second).0 && finish(third).0);

    // 4. A holder whose AccessShareLock the fast path took.
    let reader = pg.psql_spawn(
        "BEGIN; SELECT count(*) FROM wf; SELECT /* dbf-hold-4 */ pg_sleep(1); COMMIT",
        false,
    );
    pg.wait_until(&granted(
        "relation = 'wf'::regclass AND mode = 'AccessShareLock' AND fastpath",
    ));
    let locker = pg.psql_spawn(
        "BEGIN; LOCK TABLE wf IN ACCESS EXCLUSIVE MODE /* dbf-fast-4 */; COMMIT",
        false,
    );
    let fast_blockers = server_blockers(&pg, "dbf-fast-4");
    assert!(finish(reader).0 && finish(locker).0);

    let t = rec.stop();
    let m = Manifest::read(&trace).unwrap();
    assert_eq!(m.probes["locks"].mode.as_deref(), Some("waits"));
    let locks = rows(&t, Table::Locks);
    // Only waits: every lock granted at once went by without a trap.
    let events: std::collections::BTreeSet<&str> =
        locks.iter().filter_map(|r| text(r, "event")).collect();
    assert_eq!(events, ["wait_end", "wait_start"].into(), "{locks:?}");
    let pid_of = |marker: &str| statement(&t, marker).0;

    // 1: one wait, about the hold, on the holder's AccessExclusiveLock.
    let (h1, w1) = (pid_of("dbf-hold-1"), pid_of("dbf-read-1"));
    assert_eq!(table_blockers, [h1], "the server's pg_blocking_pids");
    assert_eq!(
        blockers_of(&t, w1),
        [(h1, "AccessExclusiveLock".into(), "hard".into())]
    );
    // The holder's statement then: its running message (LOCK ... pg_sleep).
    let hold_row = rows(&t, Table::LockBlockers)
        .into_iter()
        .find(|r| num(r, "pid") == w1)
        .unwrap();
    assert_eq!(
        num(&hold_row, "blocker_query_seq"),
        statement(&t, "dbf-hold-1").1
    );
    assert_eq!(num(&hold_row, "query_seq"), statement(&t, "dbf-read-1").1);
    let waits: Vec<&Row> = locks.iter().filter(|r| num(r, "pid") == w1).collect();
    assert_eq!(waits.len(), 2, "{waits:?}");
    let (start, end) = (waits[0], waits[1]);
    assert_eq!(
        (text(start, "lock_type"), text(start, "mode")),
        (Some("relation"), Some("AccessShareLock"))
    );
    assert_eq!(text(end, "result"), Some("granted"));
    let (_, _, hold_start, hold_end) = statement(&t, "LOCK TABLE wt");
    let hold_ns = hold_end - hold_start;
    let wait_ns = num(end, "wait_ns");
    assert!(
        (wait_ns - hold_ns).abs() as f64 <= 0.2 * hold_ns as f64,
        "wait {wait_ns} ns within 20% of the hold {hold_ns} ns"
    );
    assert_eq!(num(start, "query_seq"), statement(&t, "dbf-read-1").1);

    // 2: the row lock, a transaction id, held by the first updater.
    let (h2, w2) = (pid_of("dbf-hold-2"), pid_of("dbf-row-2"));
    assert_eq!(row_blockers, [h2]);
    assert_eq!(
        blockers_of(&t, w2),
        [(h2, "ExclusiveLock".into(), "hard".into())]
    );
    let row_wait = locks
        .iter()
        .find(|r| num(r, "pid") == w2 && text(r, "event") == Some("wait_start"))
        .unwrap();
    assert_eq!(
        (text(row_wait, "lock_type"), text(row_wait, "mode")),
        (Some("transactionid"), Some("ShareLock"))
    );

    // 3: the third is blocked by the first, hard, and the second, soft.
    let (q1, q2, q3) = (
        pid_of("dbf-hold-3"),
        pid_of("dbf-queue-2"),
        pid_of("dbf-queue-3"),
    );
    let mut want = vec![q1, q2];
    want.sort();
    assert_eq!(queue_blockers, want);
    assert_eq!(
        blockers_of(&t, q3),
        [
            (q1, "AccessExclusiveLock".into(), "hard".into()),
            (q2, "AccessShareLock".into(), "soft".into())
        ]
    );
    assert_eq!(
        blockers_of(&t, q2),
        [(q1, "AccessExclusiveLock".into(), "hard".into())]
    );

    // 4: the fast-path lock was moved to the main table before the wait.
    let (h4, w4) = (pid_of("dbf-hold-4"), pid_of("dbf-fast-4"));
    assert_eq!(fast_blockers, [h4]);
    assert_eq!(
        blockers_of(&t, w4),
        [(h4, "AccessShareLock".into(), "hard".into())]
    );
    // Five waits, each with its end; nothing else blocked anything.
    assert_eq!(locks.len(), 10, "{locks:?}");
    assert_eq!(rows(&t, Table::LockBlockers).len(), 6);
    check_recorder_stats(&t);
}

/// Records one ~1 MB result over TCP; returns the send bytes of that
/// statement and the trace's manifest strategy for net.
fn one_megabyte(pg: &PgCluster, extra: &[&str]) -> (i64, String) {
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let rec = Recording::start(pg.postmaster_pid(), &trace, extra);
    let (ok, out, err) = finish(pg.psql_spawn(
        "SELECT /* dbflight-1mb */ repeat('x', 1000) FROM generate_series(1, 1000)",
        true,
    ));
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1000);
    let t = rec.stop();
    let (pid, seq, ..) = statement(&t, "/* dbflight-1mb */");
    let sends: Vec<Row> = rows(&t, Table::Net)
        .into_iter()
        .filter(|r| num(r, "pid") == pid && text(r, "direction") == Some("send"))
        .filter(|r| r["query_seq"].as_deref() == Some(&seq.to_string()))
        .collect();
    assert!(!sends.is_empty());
    for r in &sends {
        assert_eq!(text(r, "family"), Some("inet"));
        assert_eq!(num(r, "local_port"), pg.port as i64);
        assert_eq!(text(r, "remote_addr"), Some("127.0.0.1"));
    }
    check_recorder_stats(&t);
    let m = Manifest::read(&trace).unwrap();
    (
        sends.iter().map(|r| num(r, "bytes")).sum(),
        m.probes["net"].strategy.clone(),
    )
}

#[test]
fn network_bytes_of_a_megabyte_result_with_each_strategy() {
    let Some(bindir) = preflight("network_bytes_of_a_megabyte_result") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    const RESULT: i64 = 1000 * 1000;
    let (bytes, strategy) = one_megabyte(&pg, &[]);
    assert_eq!(strategy, "tp_btf");
    assert!(
        (RESULT..=2 * RESULT).contains(&bytes),
        "send bytes {bytes} between the result size and twice it"
    );
    let (fallback, strategy) = one_megabyte(&pg, &["--strategy", "net=syscalls"]);
    assert_eq!(strategy, "syscalls");
    assert!(
        (fallback - bytes).abs() as f64 <= 0.05 * bytes as f64,
        "syscalls {fallback} vs tp_btf {bytes}: within 5%"
    );
    // fexit and kprobes are refused on this kernel: forcing one is a clear error.
    for forced in ["fexit", "kprobe"] {
        let tmp = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_dbflight-record"))
            .args(["--postgres", &pg.postmaster_pid().to_string(), "--quiet"])
            .args(["--strategy", &format!("net={forced}"), "--duration", "1s"])
            .arg("-o")
            .arg(tmp.path().join("t"))
            .run_bounded("a command");
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            // A kernel that has them: then the bytes must agree too.
            eprintln!("note: net={forced} works on this kernel");
            continue;
        }
        assert!(
            err.contains("cannot record net") && err.contains(forced),
            "{forced}: {err}"
        );
        assert!(!tmp.path().join("t").exists(), "no trace left behind");
    }
}

#[test]
fn off_cpu_time_of_a_sleep() {
    let Some(bindir) = preflight("off_cpu_time_of_a_sleep") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    // The default hook, then the fallback forced: each must see the sleep.
    for (strategy, extra) in [
        ("tp_btf", vec![]),
        ("raw_tp", vec!["--strategy", "sched=raw_tp"]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let trace = tmp.path().join("trace");
        let rec = Recording::start(pg.postmaster_pid(), &trace, &extra);
        let marker = format!("/* dbflight-sleep-{strategy} */");
        pg.psql(&format!("SELECT {marker} pg_sleep(0.5)"));
        std::thread::sleep(Duration::from_millis(100));
        let t = rec.stop();
        assert_eq!(
            Manifest::read(&trace).unwrap().probes["sched"].strategy,
            strategy
        );
        let (pid, _, start, end) = statement(&t, &marker);
        let off: i64 = rows(&t, Table::Sched)
            .iter()
            .filter(|r| num(r, "pid") == pid && (start..end).contains(&num(r, "ts")))
            .map(|r| num(r, "off_cpu_ns"))
            .sum();
        assert!(
            off >= 450_000_000,
            "{strategy}: off CPU {off} ns during pg_sleep(0.5)"
        );
        assert!(off <= end - start, "off-CPU time fits in the statement");
        let states: Vec<String> = rows(&t, Table::Sched)
            .iter()
            .filter(|r| num(r, "pid") == pid)
            .filter_map(|r| r["state"].clone())
            .collect();
        assert!(
            states.iter().any(|s| s == "S"),
            "pg_sleep sleeps: {states:?}"
        );
        check_recorder_stats(&t);
    }
}

/// The lock fallback for servers without USDT: uprobes only, so acquires
/// and releases but no waits.
#[test]
fn lock_uprobe_fallback_sees_acquires() {
    let Some(bindir) = preflight("lock_uprobe_fallback_sees_acquires") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    pg.psql("CREATE TABLE lu (id int)");
    let oid = pg.psql("SELECT 'lu'::regclass::oid").trim().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let rec = Recording::start(
        pg.postmaster_pid(),
        &trace,
        &[
            "--events",
            "queries,locks=exact",
            "--strategy",
            "locks=uprobe",
            // One row per statement of the message below (wire: one per message).
            "--strategy",
            "queries=usdt",
        ],
    );
    pg.psql("BEGIN; LOCK TABLE lu IN SHARE MODE; COMMIT");
    let t = rec.stop();
    assert_eq!(
        Manifest::read(&trace).unwrap().probes["locks"].strategy,
        "uprobe"
    );
    // BEGIN, LOCK, COMMIT share the message's text: the LOCK is the second.
    let (pid, seq, ..) = statements(&t, "LOCK TABLE lu")[1];
    let locks = rows(&t, Table::Locks);
    let acquires: Vec<&Row> = locks
        .iter()
        .filter(|r| num(r, "pid") == pid && text(r, "event") == Some("acquire"))
        .filter(|r| r["relation_oid"].as_deref() == Some(oid.as_str()))
        .collect();
    assert_eq!(acquires.len(), 1, "{acquires:?}");
    assert_eq!(
        (text(acquires[0], "mode"), text(acquires[0], "result")),
        (Some("ShareLock"), Some("granted"))
    );
    assert_eq!(num(acquires[0], "query_seq"), seq);
    assert!(
        locks
            .iter()
            .any(|r| num(r, "pid") == pid && text(r, "event") == Some("release_all")),
        "the transaction's locks are released"
    );
    assert!(!locks.iter().any(|r| text(r, "event") == Some("wait_start")));
    check_recorder_stats(&t);
}

#[test]
fn lwlocks_on_request_with_tranche_names() {
    let Some(bindir) = preflight("lwlocks_on_request_with_tranche_names") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    pg.pgbench(&["-i", "-q", "-s", "1"]);
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let rec = Recording::start(
        pg.postmaster_pid(),
        &trace,
        &["--events", "queries,lwlocks"],
    );
    pg.pgbench(&["-n", "-t", "100", "-c", "2"]);
    let t = rec.stop();
    let m = Manifest::read(&trace).unwrap();
    assert_eq!(m.probes["lwlocks"].strategy, "usdt");
    assert!(!m.probes.contains_key("locks"), "only what was asked");
    let lw = rows(&t, Table::Lwlocks);
    let count = |event: &str| {
        lw.iter()
            .filter(|r| text(r, "event") == Some(event))
            .count()
    };
    assert!(count("acquire") > 1000, "{} acquires", count("acquire"));
    // Every acquire is released (a few may straddle the recording's ends).
    let (acq, rel) = (count("acquire") as i64, count("release") as i64);
    assert!(
        (acq - rel).abs() < acq / 100 + 10,
        "{acq} acquires, {rel} releases"
    );
    let tranches: std::collections::BTreeSet<&str> =
        lw.iter().filter_map(|r| text(r, "tranche")).collect();
    for name in ["BufferContent", "WALInsert", "LockManager"] {
        assert!(tranches.contains(name), "{name} in {tranches:?}");
    }
    for r in lw.iter().filter(|r| text(r, "event") == Some("acquire")) {
        assert!(
            matches!(text(r, "mode"), Some("exclusive" | "shared")),
            "{r:?}"
        );
    }
    for r in lw.iter().filter(|r| text(r, "event") == Some("wait_end")) {
        assert!(num(r, "wait_ns") >= 0, "{r:?}");
    }
    let stats = rows(&t, Table::RecorderStats);
    let written: i64 = stats.iter().map(|r| num(r, "lwlocks_written")).sum();
    assert_eq!(written as usize, lw.len());
}

/// The wait events of `pid` sampled while `seq` ran, between `from` and
/// `to`: `type:event` (`CPU` for a sample with none).
fn sampled_waits(t: &TraceFiles, pid: i64, seq: i64, from: i64, to: i64) -> Vec<String> {
    rows(t, Table::WaitEvents)
        .iter()
        .filter(|r| num(r, "pid") == pid && (from..=to).contains(&num(r, "ts")))
        .map(|r| {
            assert_eq!(num(r, "query_seq"), seq, "a sample names its statement");
            match (text(r, "wait_event_type"), text(r, "wait_event")) {
                (Some(c), Some(e)) => format!("{c}:{e}"),
                _ => "CPU".to_string(),
            }
        })
        .collect()
}

/// The default `wait_events`: 100 samples a second of what each backend
/// waits on, named as pg_stat_activity names it (checked against the
/// server's own pg_stat_activity while it happens), tied to the statement:
/// a reader blocked by LOCK TABLE shows Lock:relation, its holder's
/// pg_sleep Timeout:PgSleep.
#[test]
fn wait_events_of_a_lock_wait_and_a_sleep() {
    let Some(bindir) = preflight("wait_events_of_a_lock_wait_and_a_sleep") else {
        return;
    };
    let _serial = serial();
    let pg = PgCluster::start(&bindir);
    pg.psql("CREATE TABLE we (id int)");
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let rec = Recording::start(pg.postmaster_pid(), &trace, &[]);
    let holder = pg.psql_spawn(
        "BEGIN; LOCK TABLE we IN ACCESS EXCLUSIVE MODE; SELECT /* dbf-we-hold */ pg_sleep(1); COMMIT",
        false,
    );
    pg.wait_until(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'we'::regclass AND mode = 'AccessExclusiveLock' AND granted)",
    );
    let reader = pg.psql_spawn("SELECT /* dbf-we-read */ count(*) FROM we", false);
    // The markers split in two, so that these queries do not match themselves.
    let activity = |marker: &str| {
        pg.psql(&format!(
            "SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity WHERE query LIKE '%dbf-we-' || '{marker}%'"
        ))
        .trim()
        .to_string()
    };
    pg.wait_until(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%dbf-we-' || 'read%' AND wait_event_type = 'Lock')",
    );
    let server_reader = activity("read");
    let server_holder = activity("hold");
    assert!(finish(holder).0 && finish(reader).0);
    let t = rec.stop();
    assert_eq!(server_reader, "Lock:relation", "pg_stat_activity");
    assert_eq!(server_holder, "Timeout:PgSleep", "pg_stat_activity");
    let m = Manifest::read(&trace).unwrap();
    assert_eq!(m.probes["wait_events"].strategy, "memory");
    assert!(m.options.events.iter().any(|e| e == "wait_events"));

    let share = |got: &[String], want: &str| {
        got.iter().filter(|s| *s == want).count() as f64 / got.len().max(1) as f64
    };
    // The reader, from its wait's start to its end.
    let (pid, seq, ..) = statement(&t, "dbf-we-read");
    let locks = rows(&t, Table::Locks);
    let at = |event: &str| {
        locks
            .iter()
            .find(|r| num(r, "pid") == pid && text(r, "event") == Some(event))
            .map(|r| num(r, "ts"))
            .unwrap_or_else(|| panic!("no {event} of the reader: {locks:?}"))
    };
    let (from, to) = (at("wait_start"), at("wait_end"));
    let got = sampled_waits(&t, pid, seq, from, to);
    let lock = share(&got, &server_reader);
    eprintln!(
        "reader: {} samples in its {} ms wait, {:.0} % {server_reader}",
        got.len(),
        (to - from) / 1_000_000,
        lock * 100.0
    );
    assert!(got.len() >= 40, "about 100 samples a second: {got:?}");
    assert!(lock >= 0.8, "{got:?}");
    // The holder, during its pg_sleep.
    let (pid, seq, start, end) = statement(&t, "dbf-we-hold");
    let got = sampled_waits(&t, pid, seq, start, end);
    let sleep = share(&got, &server_holder);
    eprintln!(
        "holder: {} samples in its pg_sleep(1), {:.0} % {server_holder}",
        got.len(),
        sleep * 100.0
    );
    assert!(got.len() >= 50, "{got:?}");
    assert!(sleep >= 0.8, "{got:?}");
    // Idle sessions are not sampled: no row outside a statement is ClientRead.
    assert!(
        rows(&t, Table::WaitEvents)
            .iter()
            .all(|r| !(r["query_seq"].is_none() && text(r, "wait_event") == Some("ClientRead"))),
        "an idle session's ClientRead is left out"
    );
    check_recorder_stats(&t);
}
