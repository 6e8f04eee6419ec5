//! `dbflight report`, `locks` and `timeline` run as a user runs them, over
//! the synthetic story of `common` (a lock wait, a deadlock, plans, net and
//! sched rows) whose numbers are fixed there.

mod common;

use std::path::Path;
use std::process::Command as Std;

use assert_cmd::Command;
use common::*;
use predicates::prelude::*;

fn dbflight() -> Command {
    Command::cargo_bin("dbflight").unwrap()
}

fn json(dir: &Path, file: &str) -> Vec<serde_json::Value> {
    let path = format!("{}/../queries/{file}.sql", env!("CARGO_MANIFEST_DIR"));
    let out = run(dir, "sql", &["-f", &path, "--format", "json"]);
    serde_json::from_str(&out).unwrap()
}

/// The lines of a text report's section, from its heading to the next blank line.
fn section<'a>(report: &'a str, title: &str) -> Vec<&'a str> {
    let mut lines = report.lines().skip_while(|l| !l.starts_with(title));
    assert!(lines.next().is_some(), "no section {title} in:\n{report}");
    lines.skip(1).take_while(|l| !l.is_empty()).collect()
}

fn graphviz() -> bool {
    let found = Std::new("dot").arg("-V").output().is_ok();
    if !found {
        eprintln!(
            "\n!!! SKIPPED: Graphviz's `dot` is not installed, so the DOT output is not \
             checked; install it (apt-get install graphviz) to run this test !!!\n"
        );
    }
    found
}

#[test]
fn lock_waits_name_who_blocked_whom_on_what_and_how_long() {
    let (_tmp, dir) = story();
    let rows = json(&dir, "lock_waits");
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let b = rows
        .iter()
        .find(|r| r["waiter_pid"] == B)
        .expect("B's wait");
    assert_eq!(b["holder_pid"], A);
    assert_eq!(b["object"], "relation 16384 (db 5)");
    assert_eq!(b["wanted_mode"], "AccessShareLock");
    assert_eq!(b["held_mode"], "AccessExclusiveLock");
    assert_eq!(b["waiter_user"], "bob");
    assert_eq!(b["holder_user"], "alice");
    assert_eq!(
        b["holder_query"],
        "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE"
    );
    assert_eq!(b["outcome"], "granted");
    assert!((b["wait_ms"].as_f64().unwrap() - 900.0).abs() < 1.0, "{b}");
    // The deadlock's two waits: C's ended when D gave up, D's never ended.
    let c = rows.iter().find(|r| r["waiter_pid"] == C).unwrap();
    assert_eq!(
        (c["holder_pid"].clone(), c["outcome"].clone()),
        (D.into(), "granted".into())
    );
    let d = rows.iter().find(|r| r["waiter_pid"] == D).unwrap();
    assert_eq!(d["holder_pid"], C);
    assert_eq!(d["outcome"], "deadlock victim");
    assert_eq!(d["wait_ms"], 1001.0);

    // The report names them the same way.
    let report = run(&dir, "report", &[]);
    let waits = section(&report, "Lock waits");
    let line = waits
        .iter()
        .find(|l| l.contains("relation 16384"))
        .unwrap_or_else(|| panic!("{report}"));
    let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
    assert_eq!(
        &cells[1..10],
        [
            "900.0",
            "granted",
            "202",
            "bob",
            "relation 16384 (db 5)",
            "AccessShareLock",
            "201",
            "alice",
            "AccessExclusiveLock"
        ],
        "{line}"
    );
}

#[test]
fn deadlocks_are_listed_and_drawn_as_a_cycle() {
    let (_tmp, dir) = story();
    let rows = json(&dir, "deadlocks");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["pid"], D);
    assert_eq!(rows[0]["waiting_for"], "relation 16390 (db 5)");
    assert_eq!(rows[0]["held_by"], "301");
    assert_eq!(rows[0]["query"], "LOCK TABLE t1 IN ACCESS EXCLUSIVE MODE");

    let text = run(&dir, "locks", &[]);
    assert!(
        text.starts_with("3 lock waits by 4 sessions on 3 objects, 2.912 s waited in total\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  pid 202 (bob) -> pid 201 (alice): relation 16384 (db 5), AccessShareLock wanted, \
             AccessExclusiveLock held, 1 wait, 900.0 ms\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  pid 301 (carol) -> pid 302 (dave): relation 16391 (db 5), AccessExclusiveLock wanted, AccessExclusiveLock held, 1 wait, 1.011 s  [deadlock]\n"),
        "{text}"
    );
    assert!(
        text.contains("  cycle: pid 301 (carol) -> pid 302 (dave) -> pid 301 (carol)  (closed 2025-11-22 02:29:02.030 UTC)\n"),
        "{text}"
    );
    assert!(
        text.contains("  reported by pid 302 (dave) at 2025-11-22 02:29:03.030 UTC waiting for relation 16390 (db 5) held by pid 301"),
        "{text}"
    );
    let report = run(&dir, "report", &[]);
    assert!(
        report.contains(
            "Sessions waiting for each other at the same time (dbflight locks):\n  \
             pid 301 (carol) -> pid 302 (dave) -> pid 301 (carol)  (closed 2025-11-22 02:29:02.030 UTC)\n"
        ),
        "{report}"
    );
    // The wait that is not part of the deadlock is not marked.
    let bob = text
        .lines()
        .find(|l| l.starts_with("  pid 202 (bob) ->"))
        .unwrap();
    assert!(!bob.contains("deadlock"), "{bob}");
}

#[test]
fn a_cycle_is_shown_even_when_no_deadlock_was_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("unreported");
    write_story_keeping(&dir, |l| l.event != "deadlock");
    assert!(json(&dir, "deadlocks").is_empty());
    let report = run(&dir, "report", &[]);
    let lines = section(&report, "Deadlocks");
    assert_eq!(
        lines,
        [
            "PostgreSQL reported no deadlock, but sessions waited for each other at the same time (dbflight locks):",
            "  pid 301 (carol) -> pid 302 (dave) -> pid 301 (carol)  (closed 2025-11-22 02:29:02.030 UTC)"
        ],
        "{report}"
    );
    // Without the report, D's wait ends at its release_all as cancelled.
    let waits = json(&dir, "lock_waits");
    let d = waits.iter().find(|r| r["waiter_pid"] == D).unwrap();
    assert_eq!(d["outcome"], "cancelled");
    let text = run(&dir, "locks", &[]);
    assert!(
        text.contains("  cycle: pid 301 (carol) -> pid 302 (dave) -> pid 301 (carol)"),
        "{text}"
    );
    assert!(!text.contains("reported"), "{text}");
}

#[test]
fn dot_output_renders_and_marks_the_cycle() {
    let (tmp, dir) = story();
    let path = tmp.path().join("locks.dot");
    let out = run(&dir, "locks", &["--dot", "-o", path.to_str().unwrap()]);
    assert_eq!(out, "");
    let dot = std::fs::read_to_string(&path).unwrap();
    assert!(dot.starts_with("digraph locks {\n"), "{dot}");
    assert!(
        dot.contains("deadlock: pid 301 -> pid 302 -> pid 301"),
        "{dot}"
    );
    // The cycle: two waits-for and two held-by edges in red; B's wait is not red.
    let red: Vec<&str> = dot
        .lines()
        .filter(|l| l.contains(" -> n") && l.contains("color=red"))
        .collect();
    assert_eq!(red.len(), 4, "{dot}");
    let plain: Vec<&str> = dot
        .lines()
        .filter(|l| l.contains(" -> n") && !l.contains("color=red"))
        .collect();
    assert_eq!(plain.len(), 2, "{dot}");
    assert!(
        plain
            .iter()
            .any(|l| l.contains("waits AccessShareLock\\n1 wait, 900.0 ms")),
        "{dot}"
    );
    assert!(dot.contains("deadlock reported here"), "{dot}");
    if !graphviz() {
        return;
    }
    let svg = Std::new("dot").arg("-Tsvg").arg(&path).output().unwrap();
    assert!(
        svg.status.success(),
        "dot refused the output: {}",
        String::from_utf8_lossy(&svg.stderr)
    );
    let svg = String::from_utf8(svg.stdout).unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    for text in ["pid 201", "pid 202", "relation 16384 (db 5)", "pid 302"] {
        assert!(svg.contains(text), "{text} missing from the SVG");
    }
    assert!(svg.contains("stroke=\"red\""), "the cycle is drawn in red");
}

#[test]
fn timeline_is_in_time_order_and_filters_by_pid_and_time() {
    let (_tmp, dir) = story();
    let parse = |out: &str| -> Vec<(String, i32, String)> {
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("TIME(UTC)"), "{out}");
        lines[1..lines.len() - 1]
            .iter()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    format!("{} {}", f[0], f[1]),
                    f[3].parse().unwrap(),
                    f[5].to_string(),
                )
            })
            .collect()
    };
    let all = run(&dir, "timeline", &["--full"]);
    let events = parse(&all);
    // 13 statements, 10 plan nodes, 16 lock rows, 5 net, 6 sched, 6 processes + 1 exit.
    assert_eq!(events.len(), 57, "{all}");
    assert!(all.ends_with("(57 events)\n"), "{all}");
    assert!(
        events.windows(2).all(|w| w[0].0 <= w[1].0),
        "time order:\n{all}"
    );
    for source in [
        "queries",
        "plan_nodes",
        "locks",
        "net",
        "sched",
        "processes",
    ] {
        assert!(events.iter().any(|e| e.2 == source), "{source} missing");
    }
    assert!(all.contains(" +0.200000     202     202 locks      wait_start AccessShareLock relation 16384 (db 5) #1\n"), "{all}");
    assert!(
        all.contains(" sched      off-CPU 30.0 ms state D cpu 1\n"),
        "{all}"
    );
    assert!(
        all.contains(" net        send 4000 bytes to 10.0.0.5:53412 #1\n"),
        "{all}"
    );
    assert!(
        all.contains(" plan_nodes plan node 1 Hash Join under 0 cost 200.0 rows 100.0 #1\n"),
        "{all}"
    );
    assert!(
        all.contains(" processes  exit backend: postgres\n"),
        "{all}"
    );
    // A statement comes before the events it caused at the same instant.
    let at_b = all
        .lines()
        .position(|l| l.contains("statement 902.0 ms ok #1: SELECT * FROM accounts"))
        .unwrap();
    let wait_b = all
        .lines()
        .position(|l| l.contains("wait_start AccessShareLock"))
        .unwrap();
    assert!(at_b < wait_b, "{all}");

    let b = parse(&run(&dir, "timeline", &["--pid", "202"]));
    assert_eq!(b.len(), 8);
    assert!(b.iter().all(|e| e.1 == B));

    let window = parse(&run(&dir, "timeline", &["--from", "+1s", "--to", "+1.5s"]));
    assert_eq!(window.len(), 6, "{window:?}");
    assert!(
        window
            .iter()
            .all(|e| e.0.as_str() >= "2025-11-22 02:29:01.000000"
                && e.0.as_str() < "2025-11-22 02:29:01.500000")
    );

    let rfc = parse(&run(
        &dir,
        "timeline",
        &[
            "--from",
            "2025-11-22T02:29:05.05Z",
            "--to",
            "+5.1s",
            "--pid",
            "400",
            "--pid",
            "1",
        ],
    ));
    let kinds: Vec<&str> = rfc.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(kinds, ["sched", "net"]);

    dbflight()
        .arg("timeline")
        .arg(&dir)
        .args(["--from", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("RFC 3339"));
}

#[test]
fn on_and_off_cpu_and_bytes_add_up_per_fingerprint() {
    let (_tmp, dir) = story();
    let fp = "SELECT a.id, sum(b.x) FROM a JOIN b ON b.a_id = a.id WHERE a.id > $1 GROUP BY a.id";
    let cpu = json(&dir, "cpu_per_statement");
    let join = cpu.iter().find(|r| r["fingerprint"] == fp).unwrap();
    // 100 ms with 2 (S, at its start) + 30 (D) + 10 (S) off; 50 ms with 5 (R)
    // off; rows at or after end_ts are outside.
    assert_eq!(join["calls"], 2);
    assert_eq!(join["total_ms"], 150.0);
    assert_eq!(join["off_cpu_ms"], 47.0);
    assert_eq!(join["on_cpu_ms"], 103.0);
    assert_eq!(join["off_cpu_pct"], 31.3);
    assert_eq!(
        (
            join["disk_ms"].clone(),
            join["sleep_ms"].clone(),
            join["preempted_ms"].clone()
        ),
        (30.0.into(), 12.0.into(), 5.0.into())
    );
    let others: f64 = cpu
        .iter()
        .filter(|r| r["fingerprint"] != fp)
        .map(|r| r["off_cpu_ms"].as_f64().unwrap())
        .sum();
    assert_eq!(others, 0.0);

    let bytes = json(&dir, "bytes_per_statement");
    assert_eq!(bytes.len(), 1, "only statements with bytes: {bytes:?}");
    assert_eq!(bytes[0]["fingerprint"], fp);
    assert_eq!(bytes[0]["bytes_received"], 250);
    assert_eq!(bytes[0]["bytes_sent"], 6000);
    assert_eq!(bytes[0]["max_sent"], 4000);

    let report = run(&dir, "report", &[]);
    let lines = section(&report, "On-CPU vs off-CPU time");
    let cells = lines
        .iter()
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect::<Vec<_>>()
        })
        .find(|c| c[0].starts_with("SELECT a.id"))
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(
        &cells[1..6],
        ["2", "150.0", "103.0", "47.0", "31.3"],
        "{report}"
    );
}

#[test]
fn text_report_has_every_section_and_the_plan_tree() {
    let (_tmp, dir) = story();
    let report = run(&dir, "report", &[]);
    for title in [
        "Overview (queries/overview.sql)",
        "Top statements by total time (queries/top_statements.sql)",
        "Slowest statements (queries/slowest.sql)",
        "Latency histogram (queries/latency_histogram.sql)",
        "Lock waits (queries/lock_waits.sql)",
        "Deadlocks (queries/deadlocks.sql)",
        "Bytes per statement (queries/bytes_per_statement.sql)",
        "On-CPU vs off-CPU time per statement (queries/cpu_per_statement.sql)",
        "Wait events per statement (queries/wait_events.sql)",
        "Plan shapes of the top statements (queries/plan_shapes.sql)",
    ] {
        assert!(
            report.contains(&format!("\n{title}\n")),
            "{title}:\n{report}"
        );
    }
    assert!(report.starts_with("dbflight report: "), "{report}");
    assert!(
        report.contains(
            "(2 calls, mean 75.0 ms)\n    Aggregate\n      Hash Join\n        Seq Scan\n        Hash\n          Seq Scan\n"
        ),
        "{report}"
    );
    assert!(
        report.contains("| net events        | 5 written, 3 dropped "),
        "{report}"
    );
    assert!(report.contains("| deadlocks         | 1 "), "{report}");
    // The last statement ends at 6.050 s, in the second file (see session.rs on dynamic filters).
    assert!(
        report.contains("| statement range   | 2025-11-22T02:29:00Z .. 2025-11-22T02:29:06.050Z "),
        "{report}"
    );
    // The latency histogram is drawn as dbflight hist draws it: 13 statements.
    let hist = section(&report, "Latency histogram");
    let total: u64 = hist
        .iter()
        .filter(|l| l.contains(" -> "))
        .map(|l| {
            l.split(" : ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 13, "{report}");

    let md = run(&dir, "report", &["--format", "markdown"]);
    assert!(md.starts_with("# dbflight report: `"), "{md}");
    assert!(md.contains("\n## Lock waits\n"), "{md}");
    assert!(
        md.contains("| 2025-11-22 02:29:00.200 | 900.0 | granted | 202 | bob | relation 16384 (db 5) | AccessShareLock | 201 | alice | AccessExclusiveLock |"),
        "{md}"
    );
    assert!(md.contains("```text\nAggregate\n  Hash Join\n"), "{md}");
}

#[test]
fn html_report_is_one_self_contained_file_with_charts() {
    let (tmp, dir) = story();
    let path = tmp.path().join("report.html");
    let out = run(
        &dir,
        "report",
        &["--format", "html", "-o", path.to_str().unwrap()],
    );
    assert_eq!(out, "");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.trim_end().ends_with("</html>"));
    // Charts: latency histogram, top statements, on/off CPU (+ the lock graph with Graphviz).
    assert!(
        html.matches("<div class=\"chart\"><svg").count() == 3,
        "{html}"
    );
    assert!(html.contains("Statements per latency bucket"));
    assert!(html.contains("On-CPU vs off-CPU time"));
    assert!(
        !html.contains("<?xml"),
        "SVG documents are inlined as elements"
    );
    // Nothing is fetched: no scripts, stylesheets or images from anywhere.
    for fetch in ["<script", "<link", "<img", "src=", "url(", "@import"] {
        assert!(!html.contains(fetch), "{fetch} in the report");
    }
    assert!(html.contains("<h3>#1 <code>SELECT a.id, sum(b.x) FROM a JOIN b"));
    assert!(html.contains("<td>relation 16384 (db 5)</td>"), "{html}");
    if graphviz() {
        assert!(html.contains("<div class=\"graph\"><svg"), "{html}");
    }

    // Without Graphviz on PATH, the DOT text is embedded instead.
    let out = dbflight()
        .arg("report")
        .arg(&dir)
        .args(["--format", "html"])
        .env("PATH", "")
        .output()
        .unwrap();
    assert!(out.status.success());
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(!html.contains("<div class=\"graph\">"));
    assert!(
        html.contains("render this with <code>dot -Tsvg</code>"),
        "{html}"
    );
    assert!(html.contains("<pre>digraph locks {"), "{html}");
}

/// The same trace gives the same HTML file, byte for byte: a report can be
/// diffed and attached twice. (The charts' bars once came out in a hash
/// map's order.) The pgbench sample draws a dozen bars or more per chart.
#[test]
fn html_report_is_the_same_file_every_run() {
    let trace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/pgbench-pg15");
    let html = || run(&trace, "report", &["--format", "html"]);
    let first = html();
    assert!(first.matches("<rect").count() > 20, "{first}");
    for _ in 0..3 {
        assert!(html() == first, "two runs gave different HTML");
    }
}

/// Sections run side by side in a report and one at a time with
/// `--timings`: the report is the same either way, on the story and on
/// every recorded trace (its lock waits, deadlocks and plan shapes among
/// them), in each format.
#[test]
fn sections_side_by_side_give_the_report_of_one_at_a_time() {
    let (_tmp, story) = story();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    for trace in [
        story,
        root.join("pgbench-pg15"),
        root.join("locks-pg15"),
        root.join("lock-waits-pg15"),
        root.join("mariadb-10.11"),
    ] {
        for format in ["text", "markdown", "html"] {
            let together = run(&trace, "report", &["--format", format]);
            let alone = run(&trace, "report", &["--format", format, "--timings"]);
            assert!(
                together == alone,
                "{} as {format}: side by side\n{together}\none at a time\n{alone}",
                trace.display()
            );
            assert!(together.len() > 1000, "{together}");
        }
    }
}

#[test]
fn sections_without_data_say_so_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("empty");
    let m = dbflight_format::Manifest::new(
        Default::default(),
        Default::default(),
        Default::default(),
        T0,
    );
    let w = dbflight_format::writer::TraceWriter::create(&dir, m, 1).unwrap();
    w.finish(T0 + MS, &Default::default()).unwrap();
    let report = run(&dir, "report", &[]);
    for (title, line) in [
        (
            "Top statements by total time",
            "No statements in this trace.",
        ),
        (
            "Slowest statements",
            "No statements with a duration in this trace.",
        ),
        (
            "Latency histogram",
            "No statements with a duration in this trace.",
        ),
        ("Lock waits", "No lock waits in this trace."),
        ("Deadlocks", "No deadlocks in this trace."),
        (
            "Bytes per statement",
            "No network bytes tied to statements in this trace",
        ),
        (
            "On-CPU vs off-CPU time",
            "No scheduler events in this trace",
        ),
        ("Wait events per statement", "No wait events in this trace"),
        ("Plan shapes", "No plan nodes in this trace"),
    ] {
        let lines = section(&report, title);
        assert_eq!(lines.len(), 1, "{title}: {lines:?}");
        assert!(lines[0].starts_with(line), "{title}: {lines:?}");
    }
    let html = run(&dir, "report", &["--format", "html"]);
    assert!(html.contains("<p class=\"empty\">No lock waits in this trace.</p>"));
    let md = run(&dir, "report", &["--format", "markdown"]);
    assert!(md.contains("_No deadlocks in this trace._"));
    assert_eq!(
        run(&dir, "locks", &[]),
        "no lock waits or deadlocks in trace\n"
    );
    assert_eq!(
        run(&dir, "timeline", &[]).lines().last(),
        Some("(0 events)")
    );
}

#[test]
fn help_has_an_example_for_each_command() {
    for (command, example) in [
        (
            "report",
            "dbflight report ./trace --format html -o report.html",
        ),
        (
            "locks",
            "dbflight locks ./trace --dot | dot -Tpng > locks.png",
        ),
        (
            "timeline",
            "dbflight timeline ./trace --from +1.5s --to +2s",
        ),
    ] {
        dbflight()
            .args([command, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:").and(predicate::str::contains(example)));
    }
    dbflight().arg("--help").assert().success().stdout(
        predicate::str::contains("report")
            .and(predicate::str::contains("locks"))
            .and(predicate::str::contains("timeline")),
    );
}
