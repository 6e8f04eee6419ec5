//! Command-line interface of `dbflight-record`.

use std::path::PathBuf;

use clap::Parser;

use crate::units::{Limit, parse_duration, parse_limit};

/// The event kinds recorded when `--events` is not given.
pub const DEFAULT_EVENTS: &str = "queries,plans,locks,wait_events,net,sched";

/// Record what a database server does into a dbflight trace.
///
/// Attaches eBPF probes to a running PostgreSQL server (all its backends,
/// including ones that connect later) or MySQL/MariaDB server (all its
/// connection threads) and writes statements and processes
/// into zstd-compressed Parquet segments under TRACE. Stop with Ctrl-C or
/// SIGTERM (or --duration): the open segment is closed and the manifest
/// written; a second Ctrl-C exits at once. Analyze the trace with `dbflight info TRACE` and
/// `dbflight sql TRACE "SELECT ..."`.
///
/// Needs root, or CAP_BPF + CAP_PERFMON (+ CAP_SYS_PTRACE to read another
/// user's /proc/PID/exe). Trace files hold query text and are created 0600.
///
/// Example: sudo dbflight-record --postgres auto --duration 60s -o /tmp/incident
#[derive(Debug, Parser)]
#[command(name = "dbflight-record", version, max_term_width = 100)]
pub struct Args {
    /// PostgreSQL server to trace: `auto` (the one postmaster running) or the postmaster's PID.
    #[arg(long, value_name = "auto|PID")]
    pub postgres: Option<String>,

    /// Probe this binary instead of the one /proc/PID/exe points to.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,

    /// Where separate debug files are looked for by build id (DIR/.build-id/xx/yyyy.debug,
    /// as -dbgsym packages install them); repeatable. DWARF, found there or in the binary,
    /// gives the plan node and lock tag layouts instead of the built-in tables.
    #[arg(
        long = "debug-dir",
        value_name = "DIR",
        default_value = "/usr/lib/debug"
    )]
    pub debug_dirs: Vec<PathBuf>,

    /// MySQL/MariaDB server to trace: `auto` (the one mysqld/mariadbd running) or its PID.
    /// Records queries, net and sched (plans, locks and lwlocks are PostgreSQL's).
    #[arg(long, value_name = "auto|PID")]
    pub mysql: Option<String>,

    /// Event kinds to record, comma separated: `queries` (statements),
    /// `plans` (plan nodes), `locks` (heavyweight locks), `lwlocks` (LWLock
    /// transitions: the most frequent event a server has, so off by
    /// default), `net` (socket bytes), `sched` (off-CPU time). Processes are
    /// always recorded.
    ///
    /// `locks` has two modes: `locks=waits` (the default) records each lock
    /// wait with the sessions blocking it (table lock_blockers), with probes
    /// that run only when a backend must wait; `locks=exact` records every
    /// acquisition and release, a uprobe trap each (costly on a busy server).
    /// `plans` has two too: `plans=sampled` (the default) reads the plans of
    /// the statements running from the backends' memory every 50 ms, with no
    /// probe in the server (every statement longer than that, a share of the
    /// shorter ones); `plans=exact` sends every node of every execution from
    /// a uprobe on ExecInitNode. `wait_events` reads what each backend waits
    /// on (PGPROC.wait_event_info, as pg_stat_activity names it) 100 times a
    /// second from the server's memory, with no probe in the server.
    ///
    /// When the server cannot give wait events (an unknown layout, no MyProc
    /// symbol), the default set goes on without them, with a word on stderr;
    /// asked for by name, that is an error.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = DEFAULT_EVENTS,
        value_name = "KINDS"
    )]
    pub events: Vec<String>,

    /// Stop after this long (e.g. 60s, 15m). Default: until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<std::time::Duration>,

    /// Start a new segment after this long or this many bytes on disk (30s, 64MiB).
    #[arg(long, value_parser = parse_limit, default_value = "30s", value_name = "DURATION|SIZE")]
    pub segment: Limit,

    /// Flight-recorder mode: keep only the newest segments, by age or total size (15m, 2GiB).
    #[arg(long, value_parser = parse_limit, value_name = "DURATION|SIZE")]
    pub keep: Option<Limit>,

    /// Keep at most this many bytes of each statement's text (query_truncated marks cut ones).
    #[arg(long, default_value_t = 4096, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(1..=16382))]
    pub max_query_len: u32,

    /// Replace literals in statement text with $N placeholders before anything is written.
    #[arg(long)]
    pub redact_literals: bool,

    /// Force a probe strategy for an event kind. Statements come by default
    /// from the wire protocol at the socket tracepoints (`queries=wire`: no
    /// probe in the server; one row per message, so a message of several
    /// statements is one row), with USDT probes attached to each backend on
    /// an SSL/GSS connection. `queries=usdt`: USDT probes for every backend
    /// (one row per statement, two probe hits each). `queries=light`: one
    /// probe hit per statement (start times in us from the server's activity
    /// timestamp, protocol unknown). `queries=uprobe`: the fallback for
    /// servers without USDT. `locks=uprobe`: no USDT (no waits).
    /// `net=tp_btf|fexit|kprobe|syscalls` and `sched=tp_btf|raw_tp`,
    /// `processes=tp_btf|raw_tp`: the kernel hook. The manifest records the
    /// strategy each kind used and why earlier ones were refused.
    #[arg(long, value_name = "KIND=STRATEGY")]
    pub strategy: Vec<String>,

    /// No live status line on stderr.
    #[arg(long, short)]
    pub quiet: bool,

    /// Trace directory to create (must not exist, or be empty).
    #[arg(short, long, value_name = "TRACE")]
    pub output: PathBuf,
}

impl Args {
    /// The strategy forced for `kind` with --strategy, if any.
    pub fn forced_strategy(&self, kind: &str) -> Option<&str> {
        self.strategy
            .iter()
            .find_map(|s| s.strip_prefix(kind)?.strip_prefix('='))
    }
}
