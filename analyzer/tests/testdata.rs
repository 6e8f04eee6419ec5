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

/// The standard output of `dbflight ARGS...` (which must succeed).
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

const QUERIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../queries");

/// Every statement of the sample and the fingerprint it belongs to: the 400
/// simple-protocol SELECTs (each with its own aid) and the 100 prepared ones
/// are one statement; the other TPC-B statements were cut at 64 bytes by
/// --max-query-len, and their fingerprints end where the text ends.
const SAMPLE_FINGERPRINTS: &str = "\
fp,n
SELECT abalance FROM pgbench_accounts WHERE aid = $1,500
BEGIN,100
END,100
\"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES\",100
UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid =,100
UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid =,100
UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid =,100
SELECT count(*) FROM pgbench_branches,2
\"SELECT o.n, p.partstrat, pg_catalog.count(i.inhparent) FROM pg_c\",2
SELECT $1,1
SELECT $1 / $2,1
";

#[test]
fn fingerprints_group_the_sample() {
    assert_eq!(
        sql_csv(
            "SELECT fingerprint(query) AS fp, count(*) AS n FROM queries GROUP BY 1 ORDER BY 2 DESC, 1"
        ),
        SAMPLE_FINGERPRINTS
    );
    // The 400 literal-carrying SELECTs, nearly all different texts (pgbench
    // draws the aids at random), are one fingerprint.
    let simple_selects = "FROM queries WHERE protocol = 'simple' \
        AND query LIKE 'SELECT abalance FROM pgbench_accounts WHERE aid = %'";
    assert_eq!(
        scalar(&format!(
            "SELECT count(*) || ' ' || count(DISTINCT fingerprint(query)) {simple_selects}"
        )),
        "400 1"
    );
    let texts: u32 = scalar(&format!("SELECT count(DISTINCT query) {simple_selects}"))
        .parse()
        .unwrap();
    assert!(texts > 390, "{texts} different texts");
    // Ids follow fingerprints one to one; the per-row protocol as dialect changes nothing here.
    assert_eq!(
        scalar(
            "SELECT count(DISTINCT fingerprint_id(query)) || ' ' || count(DISTINCT fingerprint(query, protocol)) FROM queries"
        ),
        "11 11"
    );
    assert_eq!(
        scalar("SELECT fingerprint_id('SELECT abalance FROM pgbench_accounts WHERE aid = 7')"),
        "762115310259851435"
    );
}

#[test]
fn top_statements_file_has_one_row_per_fingerprint() {
    let file = format!("{QUERIES}/top_statements.sql");
    let out = dbflight(&["sql", TRACE, "-f", &file, "--format", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 11);
    let calls: i64 = rows.iter().map(|r| r["calls"].as_i64().unwrap()).sum();
    assert_eq!(calls, 1106);
    let errors: Vec<(&str, i64)> = rows
        .iter()
        .filter(|r| r["errors"].as_i64().unwrap() > 0)
        .map(|r| {
            (
                r["fingerprint"].as_str().unwrap(),
                r["errors"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(errors, [("SELECT $1 / $2", 1)]);
    // The 500 SELECTs take the most time in this sample.
    assert_eq!(
        rows[0]["fingerprint"],
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
    );
    assert!(
        rows[0]["example"]
            .as_str()
            .unwrap()
            .starts_with("SELECT abalance FROM pgbench_accounts WHERE aid = ")
    );
    let pct: f64 = rows.iter().map(|r| r["pct_time"].as_f64().unwrap()).sum();
    assert!((pct - 100.0).abs() < 0.6, "{pct}");
    let mut previous_total = f64::MAX;
    for r in &rows {
        let f = |k: &str| r[k].as_f64().unwrap();
        assert!(
            f("total_ms") <= previous_total,
            "ordered by total time: {r}"
        );
        previous_total = f("total_ms");
        assert!(
            f("p50_ms") <= f("p95_ms") && f("p95_ms") <= f("p99_ms") && f("p99_ms") <= f("max_ms"),
            "{r}"
        );
        assert!(f("mean_ms") <= f("max_ms"), "{r}");
    }
    // Each example is the text of the group's slowest statement, the
    // earliest of equally slow ones: what the file computes from the
    // example's keys, written as one aggregate over every text.
    let plain = dbflight(&[
        "sql",
        TRACE,
        "SELECT fingerprint, first_value(query ORDER BY duration_ns DESC NULLS LAST, ts, pid) \
         AS example FROM statement_totals GROUP BY fingerprint",
        "--format",
        "json",
    ]);
    let plain: Vec<serde_json::Value> = serde_json::from_str(&plain).unwrap();
    let example_of = |fp: &serde_json::Value| {
        plain
            .iter()
            .find(|p| &p["fingerprint"] == fp)
            .map(|p| p["example"].clone())
    };
    for r in &rows {
        assert_eq!(
            Some(r["example"].clone()),
            example_of(&r["fingerprint"]),
            "{r}"
        );
    }
}

/// Sums the counts of every bcc-style histogram row (`low -> high : count |...|`).
fn histogram_rows(text: &str) -> Vec<(u64, u64, u64)> {
    text.lines()
        .filter(|l| l.contains(" -> "))
        .map(|l| {
            let (range, rest) = l.split_once(" : ").unwrap();
            let (low, high) = range.split_once(" -> ").unwrap();
            let count = rest.split_whitespace().next().unwrap();
            let bar = rest.split('|').nth(1).unwrap();
            assert_eq!(bar.chars().count(), 40, "{l}");
            (
                low.trim().parse().unwrap(),
                high.trim().parse().unwrap(),
                count.parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn hist_counts_every_statement_once() {
    let out = dbflight(&["hist", TRACE]);
    let rows = histogram_rows(&out);
    assert!(
        out.starts_with("     usecs               : count     distribution\n"),
        "{out}"
    );
    assert_eq!(rows[0].0, 0);
    assert_eq!(rows[0].1, 1);
    for pair in rows.windows(2) {
        assert_eq!(pair[1].0, pair[0].1 + 1, "contiguous buckets:\n{out}");
        assert_eq!(pair[1].1, pair[1].0 * 2 - 1, "power-of-two buckets:\n{out}");
    }
    assert_eq!(rows.iter().map(|r| r.2).sum::<u64>(), 1106, "{out}");
    // The largest bucket has the full bar.
    assert!(out.contains(&format!("|{}|", "*".repeat(40))), "{out}");

    // The same numbers as the file it is drawn from.
    let file = format!("{QUERIES}/latency_histogram.sql");
    let csv = dbflight(&["sql", TRACE, "-f", &file, "--format", "csv"]);
    let from_sql: Vec<(u64, u64, u64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let v: Vec<u64> = l.split(',').map(|c| c.parse().unwrap()).collect();
            (v[0], v[1], v[2])
        })
        .collect();
    let drawn: Vec<(u64, u64, u64)> = rows.into_iter().filter(|r| r.2 > 0).collect();
    assert_eq!(drawn, from_sql);
}

#[test]
fn hist_by_fingerprint_draws_one_histogram_per_group() {
    let out = dbflight(&["hist", TRACE, "--by", "fingerprint", "--top", "0"]);
    let sections: Vec<&str> = out.split("\n\n").collect();
    let mut got = String::from("fp,n\n");
    for s in &sections {
        let (heading, hist) = s.split_once('\n').unwrap();
        let fp = heading.strip_prefix("fingerprint = ").unwrap();
        let n: u64 = histogram_rows(hist).iter().map(|r| r.2).sum();
        if fp.contains(',') {
            got.push_str(&format!("\"{fp}\",{n}\n"));
        } else {
            got.push_str(&format!("{fp},{n}\n"));
        }
    }
    // Most calls first, then by text: the order of the SQL result above.
    assert_eq!(got, SAMPLE_FINGERPRINTS);

    let top = dbflight(&["hist", TRACE, "--by", "fingerprint"]);
    assert_eq!(top.matches("fingerprint = ").count(), 10);
    let top1 = dbflight(&["hist", TRACE, "--by", "fingerprint", "--top", "1"]);
    assert!(
        top1.starts_with(
            "fingerprint = SELECT abalance FROM pgbench_accounts WHERE aid = $1\n     usecs"
        ),
        "{top1}"
    );
    assert_eq!(histogram_rows(&top1).iter().map(|r| r.2).sum::<u64>(), 500);
}

#[test]
fn hist_where_narrows_the_statements() {
    let count =
        |args: &[&str]| -> u64 { histogram_rows(&dbflight(args)).iter().map(|r| r.2).sum() };
    assert_eq!(
        count(&["hist", TRACE, "--where", "protocol = 'extended'"]),
        700
    );
    assert_eq!(
        count(&[
            "hist",
            TRACE,
            "--by",
            "fingerprint",
            "--top",
            "0",
            "--where",
            "protocol = 'simple' AND database = 'postgres'",
        ]),
        405
    );
    // Subqueries on other tables work too.
    assert_eq!(
        count(&[
            "hist",
            TRACE,
            "--where",
            "pid IN (SELECT pid FROM processes WHERE role = 'backend') AND fingerprint(query) = 'BEGIN'",
        ]),
        100
    );
}

#[test]
fn slow_threshold_zero_lists_all_and_a_huge_one_none() {
    let csv = dbflight(&["slow", TRACE, "--threshold", "0", "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "ts,pid,duration_ms,query");
    assert_eq!(lines.len(), 1 + 1106);
    let ts: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "in start order");

    let text = dbflight(&["slow", TRACE, "--threshold", "0"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("TIME(UTC)"), "{}", lines[0]);
    assert!(
        lines[0].ends_with(" PID             MS QUERY"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 1 + 1106 + 1);
    assert_eq!(lines[1106 + 1], "(1106 of 1106 statements took at least 0)");

    let none = dbflight(&["slow", TRACE, "--threshold", "1h"]);
    assert_eq!(
        none,
        format!(
            "{:<26} {:<7} {:>10} QUERY\n(0 of 1106 statements took at least 1h)\n",
            "TIME(UTC)", "PID", "MS"
        )
    );
    let json = dbflight(&["slow", TRACE, "-t", "1h", "--format", "json"]);
    assert_eq!(json, "[]\n");
}

#[test]
fn slow_lists_what_took_longer_than_the_threshold() {
    // One statement of the sample took 1.0996 ms; three took over 300 us.
    let out = dbflight(&["slow", TRACE, "--threshold", "1ms", "--format", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["duration_ms"], 1.099623);
    assert!(
        rows[0]["query"]
            .as_str()
            .unwrap()
            .starts_with("UPDATE pgbench_tellers")
    );
    for t in ["300us", "0.3ms", "300000ns"] {
        let text = dbflight(&["slow", TRACE, "--threshold", t]);
        assert!(
            text.ends_with(&format!("(3 of 1106 statements took at least {t})\n")),
            "{text}"
        );
        for line in text.lines().skip(1).take(3) {
            let ms: f64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
            assert!(ms >= 0.3, "{line}");
        }
    }
    assert_eq!(
        sql_csv("SELECT count(*) FROM queries WHERE duration_ns >= 300000"),
        "count(*)\n3\n"
    );
    let err = dbflight(&["slow", TRACE, "-t", "0", "--where", "status = 'error'"]);
    assert!(err.contains(" SELECT 1/0\n"), "{err}");
    assert!(
        err.ends_with(
            "(1 statement matching --where took at least 0; 1106 statements in the trace)\n"
        ),
        "{err}"
    );
}

#[test]
fn slow_text_fits_the_line_unless_full() {
    let run = |args: &[&str]| {
        let out = Command::cargo_bin("dbflight")
            .unwrap()
            .args(args)
            .env("COLUMNS", "80")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let cut = run(&["slow", TRACE, "-t", "0"]);
    let widths: Vec<usize> = cut.lines().map(|l| l.chars().count()).collect();
    assert!(widths.iter().all(|&w| w <= 80), "{cut}");
    assert!(cut.contains("...\n"), "long texts end in ...");
    let full = run(&["slow", TRACE, "-t", "0", "--full"]);
    assert!(full.lines().any(|l| l.chars().count() > 80));
    assert!(full.contains(" INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES\n"));
}

#[test]
fn report_on_the_sample() {
    let text = dbflight(&["report", TRACE]);
    assert!(
        text.contains("| statements        | 1106 (11 fingerprints), "),
        "{text}"
    );
    assert!(text.contains("| errors            | 1 "), "{text}");
    assert!(
        text.contains("| servers           | 1 (pid 11974) "),
        "{text}"
    );
    // The top fingerprint by total time is the 500 SELECTs.
    let top = text
        .split("Top statements by total time (queries/top_statements.sql)\n")
        .nth(1)
        .unwrap();
    let first_row = top.lines().nth(4).unwrap();
    let cells: Vec<&str> = first_row.split('|').map(str::trim).collect();
    assert_eq!(
        cells[1..3],
        [
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
            "500"
        ],
        "{first_row}"
    );
    // Recorded with --events queries only: the other sections say why they are empty.
    for line in [
        "No lock waits in this trace.",
        "No deadlocks in this trace.",
        "No network bytes tied to statements in this trace",
        "No scheduler events in this trace",
        "No plan nodes in this trace",
    ] {
        assert!(text.contains(&format!("\n{line}")), "{line}:\n{text}");
    }
    let hist: u64 = histogram_rows(&text).iter().map(|r| r.2).sum();
    assert_eq!(hist, 1106);

    let md = dbflight(&["report", TRACE, "--format", "markdown"]);
    assert!(md.contains("\n## Top statements by total time\n"), "{md}");
    assert!(
        md.contains("| SELECT abalance FROM pgbench_accounts WHERE aid = $1 | 500 |"),
        "{md}"
    );

    let html = dbflight(&["report", TRACE, "--format", "html"]);
    // The latency histogram and top statements charts; no CPU data, no lock graph.
    assert_eq!(
        html.matches("<div class=\"chart\"><svg").count(),
        2,
        "{html}"
    );
    assert!(
        html.contains("\n#1 SELECT abalance FROM pgbench_accounts"),
        "{html}"
    );
    assert!(html.contains("<p class=\"empty\">No lock waits in this trace.</p>"));
}

#[test]
fn timeline_of_the_sample() {
    let out = dbflight(&["timeline", TRACE, "--full"]);
    let lines: Vec<&str> = out.lines().collect();
    // 1106 statements, 14 processes at their start, and the 8 backends' exits.
    assert_eq!(lines.last(), Some(&"(1128 events)"), "{out}");
    let times: Vec<&str> = lines[1..lines.len() - 1].iter().map(|l| &l[..26]).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "time order");
    let exits = lines.iter().filter(|l| l.contains(" exit backend")).count();
    assert_eq!(exits, 8);
    // One backend: fork, its statements, its exit.
    let one = dbflight(&["timeline", TRACE, "--pid", "11991"]);
    let sources: Vec<&str> = one
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    assert_eq!(
        sources,
        ["processes", "queries", "queries", "processes"],
        "{one}"
    );
}

/// The real lock sample, recorded by `testdata/record-locks.sh` with
/// `locks=exact`; the scenarios and their answers are fixed there.
const LOCKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/locks-pg15");
/// The same scenarios recorded with the default `locks=waits`: no
/// acquisitions, the waits' blockers in `lock_blockers`.
const LOCK_WAITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/lock-waits-pg15");

fn query_json(trace: &str, name: &str) -> Vec<serde_json::Value> {
    let file = format!("{QUERIES}/{name}.sql");
    serde_json::from_str(&dbflight(&["sql", trace, "-f", &file, "--format", "json"])).unwrap()
}

/// The lock report's answers are the same whether the trace has every
/// acquisition or only the waits with their blockers.
#[test]
fn locks_sample_lock_wait_and_deadlock() {
    for trace in [LOCKS, LOCK_WAITS] {
        lock_wait_and_deadlock(trace);
    }
}

fn lock_wait_and_deadlock(trace: &str) {
    let waits = query_json(trace, "lock_waits");
    // 1. B's SELECT waited ~0.7 s for A's ACCESS EXCLUSIVE lock on accounts.
    let rel: Vec<&serde_json::Value> = waits
        .iter()
        .filter(|w| w["object"].as_str().unwrap().starts_with("relation "))
        .collect();
    assert_eq!(rel.len(), 1, "{trace}: {waits:#?}");
    let w = rel[0];
    assert_eq!(w["wanted_mode"], "AccessShareLock");
    assert_eq!(w["held_mode"], "AccessExclusiveLock");
    assert_eq!(w["waiter_query"], "SELECT count(*) FROM accounts");
    assert!(
        w["holder_query"]
            .as_str()
            .unwrap()
            .contains("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE"),
        "{w}"
    );
    let ms = w["wait_ms"].as_f64().unwrap();
    assert!((600.0..=800.0).contains(&ms), "{trace}: ~0.7 s: {ms}");
    assert_ne!(w["waiter_pid"], w["holder_pid"]);

    // 2. C and D waited for each other's transaction; one was the victim.
    let xact: Vec<&serde_json::Value> = waits
        .iter()
        .filter(|w| w["object"].as_str().unwrap().starts_with("transactionid "))
        .collect();
    assert_eq!(xact.len(), 2, "{waits:#?}");
    assert_eq!(xact[0]["waiter_pid"], xact[1]["holder_pid"]);
    assert_eq!(xact[1]["waiter_pid"], xact[0]["holder_pid"]);
    let outcomes: Vec<&str> = xact
        .iter()
        .map(|w| w["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"deadlock victim") && outcomes.contains(&"granted"),
        "{outcomes:?}"
    );
    let deadlocks = query_json(trace, "deadlocks");
    assert_eq!(deadlocks.len(), 1);
    let victim = xact
        .iter()
        .find(|w| w["outcome"] == "deadlock victim")
        .unwrap();
    assert_eq!(deadlocks[0]["pid"], victim["waiter_pid"]);
    assert_eq!(deadlocks[0]["waiting_for"], victim["object"]);

    let text = dbflight(&["locks", trace]);
    assert!(
        text.starts_with("3 lock waits by 4 sessions on 3 objects"),
        "{text}"
    );
    assert_eq!(text.matches("  cycle: ").count(), 1, "{text}");
    assert_eq!(text.matches("[deadlock]").count(), 2, "{text}");
    let dot = dbflight(&["locks", trace, "--dot"]);
    assert_eq!(dot.matches("deadlock: pid ").count(), 1, "{dot}");
}

#[test]
fn locks_sample_plan_bytes_and_cpu() {
    // 3. The join's plan.
    let plans = query_json(LOCKS, "plan_shapes");
    let join = plans
        .iter()
        .find(|p| p["fingerprint"].as_str().unwrap().contains("JOIN orders"))
        .expect("the join's plan");
    assert_eq!(
        join["plan"],
        "Limit\n  Sort\n    Aggregate\n      Hash Join\n        Seq Scan\n        Hash\n          Seq Scan"
    );
    // 4. ~1 MB sent for 1000 rows of 1000 bytes.
    let bytes = query_json(LOCKS, "bytes_per_statement");
    assert_eq!(
        bytes[0]["fingerprint"],
        "SELECT repeat($1, $2) FROM generate_series($3, $4)"
    );
    let sent = bytes[0]["bytes_sent"].as_i64().unwrap();
    assert!((1_000_000..1_100_000).contains(&sent), "{sent}");
    // 5. pg_sleep(0.5): half a second off CPU, asleep.
    let cpu = query_json(LOCKS, "cpu_per_statement");
    let sleep = cpu
        .iter()
        .find(|r| r["fingerprint"] == "SELECT pg_sleep($1)")
        .unwrap();
    let off = sleep["sleep_ms"].as_f64().unwrap();
    assert!((490.0..=520.0).contains(&off), "{sleep}");
    assert!(sleep["on_cpu_ms"].as_f64().unwrap() < 20.0, "{sleep}");
    // The lock wait is off CPU too: B slept through it.
    let count = cpu
        .iter()
        .find(|r| r["fingerprint"] == "SELECT count(*) FROM accounts")
        .unwrap();
    assert!(count["off_cpu_ms"].as_f64().unwrap() >= 600.0, "{count}");
}

/// The default event set's sample (`lock-waits-pg15`) has wait events: B's
/// SELECT waited ~0.7 s on A's table lock (about 70 samples at 100 a
/// second), and `pg_sleep(0.5)` slept half a second. The exact-locks
/// sample was recorded without them and has none.
#[test]
fn lock_waits_sample_wait_events_per_fingerprint() {
    let rows = query_json(LOCK_WAITS, "wait_events");
    let samples = |fp: &str, event: &str| {
        rows.iter()
            .find(|r| r["fingerprint"] == fp && r["wait_event"] == event)
            .and_then(|r| r["samples"].as_i64())
            .unwrap_or_else(|| panic!("no {event} for {fp}: {rows:#?}"))
    };
    let lock = samples("SELECT count(*) FROM accounts", "Lock:relation");
    assert!((55..=85).contains(&lock), "~0.7 s of Lock:relation: {lock}");
    let sleep = samples("SELECT pg_sleep($1)", "Timeout:PgSleep");
    assert!(
        (40..=55).contains(&sleep),
        "~0.5 s of Timeout:PgSleep: {sleep}"
    );
    let report = dbflight(&["report", LOCK_WAITS]);
    assert!(
        report.contains("Wait events per statement (queries/wait_events.sql)"),
        "{report}"
    );
    let none = query_json(LOCKS, "wait_events");
    assert!(none.is_empty(), "{none:?}");
}

#[test]
fn report_on_the_locks_sample() {
    let text = dbflight(&["report", LOCKS]);
    assert!(!text.contains("No lock waits"), "{text}");
    assert!(
        text.contains("Sessions waiting for each other at the same time (dbflight locks):"),
        "{text}"
    );
    let html = dbflight(&["report", LOCKS, "--format", "html"]);
    // Histogram, top statements and CPU charts, all with data here.
    assert_eq!(html.matches("<div class=\"chart\"><svg").count(), 3);
    let graph = html.contains("<div class=\"graph\"><svg") || html.contains("<pre>digraph locks {");
    assert!(graph, "the lock graph, as SVG or DOT");
}

const MARIADB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/mariadb-10.11");

/// testdata/record-mariadb.sh: connection A (alice over TCP, mariadb
/// client: 5 statements, one error, then the client's SELECT DATABASE()
/// before its `USE shop`, and SELECT DATABASE() in shop) and connection B
/// (bob over the socket, DBD::MariaDB: 4 SETs, 20 + 10 prepared
/// executions) are two sessions of one server process.
#[test]
fn report_on_the_mariadb_sample_counts_threads_as_sessions() {
    let text = dbflight(&["report", MARIADB]);
    let line = |item: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("| {item} ")))
            .unwrap_or_else(|| panic!("no {item} line in:\n{text}"))
            .to_string()
    };
    assert!(
        line("sessions").contains("| 2 with statements"),
        "{}",
        line("sessions")
    );
    assert!(
        line("statements").contains("| 41 ("),
        "{}",
        line("statements")
    );
    assert!(line("errors").contains("| 1 "), "{}", line("errors"));
    // Each connection is a processes row of its own, and its statements
    // carry its user and the database current when they ran.
    let conns = dbflight(&[
        "sql",
        MARIADB,
        "SELECT \"user\", database, client_addr, regexp_replace(title, '[0-9]+', 'N', 'g') AS title \
         FROM processes WHERE role = 'connection' ORDER BY \"user\"",
        "--format",
        "csv",
    ]);
    assert_eq!(
        conns,
        "user,database,client_addr,title\n\
         alice,test,127.0.0.1,mariadbd: alice test N.N.N.N(N) id N\n\
         bob,test,,mariadbd: bob test localhost id N\n"
    );
    let per_db = dbflight(&[
        "sql",
        MARIADB,
        "SELECT \"user\", database, count(*) AS n FROM queries GROUP BY 1, 2 ORDER BY 1, 2",
        "--format",
        "csv",
    ]);
    assert_eq!(
        per_db,
        "user,database,n\nalice,shop,1\nalice,test,6\nbob,test,34\n"
    );
}

/// A MySQL session is a thread of mysqld with its own statement numbers:
/// time and bytes go to the statements of their thread, not of the pid
/// (two sessions' statement 3 are different statements).
#[test]
fn mariadb_sample_time_and_bytes_per_statement_follow_the_thread() {
    let cpu = query_json(MARIADB, "cpu_per_statement");
    assert!(!cpu.is_empty());
    for r in &cpu {
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        assert!(f("on_cpu_ms") >= 0.0, "{r}");
        assert!(f("off_cpu_ms") <= f("total_ms") + 0.001, "{r}");
    }
    let bytes = query_json(MARIADB, "bytes_per_statement");
    let big: Vec<&serde_json::Value> = bytes
        .iter()
        .filter(|r| r["bytes_sent"].as_i64().unwrap() > 10_000)
        .collect();
    // Only the SELECT of 1 000 rows of 100 bytes sends that much.
    assert_eq!(big.len(), 1, "{bytes:?}");
    assert_eq!(big[0]["fingerprint"], "SELECT id, repeat(?, ?) FROM big");
    assert!(big[0]["bytes_sent"].as_i64().unwrap() > 100_000);
}
