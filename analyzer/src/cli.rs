//! Command line of `dbflight` (clap derive): the commands, their options and
//! the `--help` texts users read, with an example for each.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "dbflight",
    version,
    about = "Analyze dbflight traces: what a recording holds, SQL over it, reports, latency histograms, slow statements, lock graphs, timelines",
    long_about = "Analyze dbflight traces.\n\n\
        A trace is the directory written by `dbflight-record -o TRACE`: a manifest.json \
        and one Parquet file per table per segment. It can be copied to any machine and \
        analyzed there; this tool needs no root, no eBPF and no Linux.",
    after_help = "Examples:\n  \
        dbflight info ./incident-trace\n  \
        dbflight sql ./incident-trace \"SELECT status, count(*) FROM queries GROUP BY status\"\n  \
        dbflight hist ./incident-trace --by fingerprint\n  \
        dbflight slow ./incident-trace --threshold 10ms\n  \
        dbflight report ./incident-trace --format html -o report.html\n  \
        dbflight locks ./incident-trace --dot | dot -Tsvg > locks.svg\n  \
        dbflight timeline ./incident-trace --pid 4242 --from +1.5s --to +2s\n  \
        dbflight redact ./incident-trace -o ./redacted && dbflight bundle ./redacted -o incident.tar\n  \
        dbflight report incident.tar s3://bucket/traces/yesterday --format html -o both.html\n  \
        dbflight sql ./a ./b \"SELECT trace, count(*) FROM queries GROUP BY trace\"\n\n\
        TRACE is a trace directory, a bundle file (dbflight bundle) or an s3://, gs:// or \
        file:// URL (credentials from AWS_* / GOOGLE_* variables); several TRACEs are read \
        as one, with a `trace` column telling them apart."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a trace holds: target, recording time, probes, rows and drops per table.
    #[command(
        long_about = "Show what a trace holds: the traced server (kind, version, binary, pid), \
            host and kernel, when the recording started and ended, whether it was closed \
            cleanly, which probe strategy each event kind used, the recording options, and \
            per table the rows, files, bytes on disk and events dropped.\n\n\
            Only the manifest and the Parquet footers are read, so this is fast on any size \
            of trace. A trace that was cut short (recorder killed, host crashed) is \
            reported as incomplete; its closed segments are still readable.",
        after_help = "Example:\n  dbflight info ./incident-trace"
    )]
    Info(InfoArgs),

    /// Run SQL over a trace (DataFusion); print the result as a table, CSV or JSON.
    #[command(
        long_about = concat!(
            "Run SQL over a trace with DataFusion and print each result.\n\n",
            "Every table of schema version 1 is registered under its name, even when the ",
            "trace has no rows for it: queries, plan_nodes, locks, lwlocks, net, sched, ",
            "processes, recorder_stats. `SHOW TABLES` lists them and ",
            "`SHOW COLUMNS FROM queries` lists a table's columns.\n\n",
            "Several statements separated by `;` run in order and each result is printed; ",
            "`CREATE VIEW` in one statement is visible to the next.\n\n",
            "Without SQL and with a terminal on standard input, an interactive shell starts: ",
            "statements end with `;`, Tab completes table and column names, functions and ",
            "keywords, `\\d` lists tables, `\\q` quits; history is kept in ~/.dbflight_history ",
            "(mode 0600; $DBFLIGHT_HISTORY overrides the path).\n\n",
            "Several traces: `dbflight sql A B \"SQL\"` (the last of two or more positional ",
            "arguments is the SQL) or `dbflight sql A B -e \"SQL\"`; every table then starts ",
            "with a `trace` column holding the trace's name."
        ),
        after_help = "Examples:\n  \
            dbflight sql ./trace \"SHOW TABLES\"\n  \
            dbflight sql ./trace \"SELECT status, count(*) AS n FROM queries GROUP BY status\"\n  \
            dbflight sql ./trace -f queries/slowest.sql --format csv -o slowest.csv\n  \
            dbflight sql ./trace \"SELECT * FROM locks WHERE event = 'wait_end'\" --format json | jq .\n  \
            dbflight sql ./trace\n  \
            dbflight sql ./a ./b -e \"SELECT trace, count(*) FROM queries GROUP BY trace\""
    )]
    Sql(SqlArgs),

    /// Draw a log2 histogram of statement latency (bcc dbstat style), overall or per fingerprint.
    #[command(
        long_about = concat!(
            "Draw a histogram of how long statements took, in power-of-two buckets of ",
            "microseconds, the way bcc's dbstat does: each row is a range of latencies, how ",
            "many statements fell in it and a bar.\n\n",
            "With --by fingerprint, one histogram per fingerprint (statements that differ only ",
            "in their constants, see `fingerprint(query)` in `dbflight sql`), the ones with the ",
            "most calls first, each headed by its fingerprint. --where keeps the statements a ",
            "SQL condition on the queries table holds for.\n\n",
            "Statements still running when the recording ended have no duration and are not ",
            "counted. The SQL behind it is queries/latency_histogram.sql and ",
            "queries/latency_histogram_by_fingerprint.sql, runnable with `dbflight sql -f`."
        ),
        after_help = "Examples:\n  \
            dbflight hist ./trace\n  \
            dbflight hist ./trace --by fingerprint --top 5\n  \
            dbflight hist ./trace --where \"database = 'bank' AND status = 'ok'\"\n  \
            dbflight hist ./trace --by fingerprint --where \"query LIKE 'UPDATE%'\""
    )]
    Hist(HistArgs),

    /// List the statements that took at least a threshold (bcc dbslower style).
    #[command(
        long_about = concat!(
            "List every statement that took at least THRESHOLD, in the order they started, ",
            "the way bcc's dbslower does: start time (UTC), pid, duration in milliseconds and ",
            "the statement. On a terminal the text is cut to the width of the line (--full ",
            "prints it whole; the recorder may have cut it already, at its --max-query-len).\n\n",
            "It is the same as `dbflight sql TRACE \"SELECT ts, pid, duration_ns / 1e6 AS ",
            "duration_ms, query FROM queries WHERE duration_ns >= 10000000 ORDER BY ts\"` ",
            "for 10ms; --format table, csv or json prints that result as `dbflight sql` does."
        ),
        after_help = "Examples:\n  \
            dbflight slow ./trace --threshold 10ms\n  \
            dbflight slow ./trace --threshold 1.5s --full\n  \
            dbflight slow ./trace --threshold 500us --where \"pid = 4242\"\n  \
            dbflight slow ./trace --threshold 0 --format csv -o all.csv"
    )]
    Slow(SlowArgs),

    /// Write a report: overview, top and slowest statements, latency, locks, bytes, CPU, plans.
    #[command(
        long_about = concat!(
            "Write a report of a trace, one section per file of queries/ (each runnable by ",
            "hand with `dbflight sql TRACE -f queries/NAME.sql`):\n\n",
            "  overview             time range, servers, sessions, statements, errors, drops\n",
            "  top_statements       per fingerprint: calls, total, mean, p50/p95/p99\n",
            "  slowest              the 20 slowest statements\n",
            "  latency_histogram    statements per power-of-two bucket of microseconds\n",
            "  lock_waits           who waited on whom, for what, how long\n",
            "  deadlocks            deadlocks PostgreSQL reported, and who held what\n",
            "  bytes_per_statement  network bytes received and sent per fingerprint\n",
            "  cpu_per_statement    on-CPU vs off-CPU time per fingerprint\n",
            "  plan_shapes          plan trees of the top statements\n\n",
            "A section without data says so in one line. Text and Markdown cut long ",
            "statements to keep tables readable. HTML is one self-contained file (no network ",
            "needed to view it) with SVG charts of the latency histogram, the top statements ",
            "and on/off-CPU time, and the lock wait-for graph of `dbflight locks` (rendered ",
            "when Graphviz's `dot` is on PATH, as DOT text otherwise)."
        ),
        after_help = "Examples:\n  \
            dbflight report ./trace\n  \
            dbflight report ./trace --format markdown -o report.md\n  \
            dbflight report ./trace --format html -o report.html"
    )]
    Report(ReportArgs),

    /// Show the lock wait-for graph: who waited for whom, on what, for how long; deadlocks marked.
    #[command(
        long_about = concat!(
            "Show the lock wait-for graph of a trace, built from its lock transitions (the ",
            "rows of queries/lock_waits.sql and queries/deadlocks.sql).\n\n",
            "Nodes are sessions (pid, user, statement) and locked objects (relation 16384 ",
            "(db 5), transactionid 742, ...). A session points at the object it waited for, ",
            "with the mode it wanted, how many waits and their total time; the object points ",
            "at the sessions that held it in a conflicting mode. Deadlocks are marked: cycles ",
            "of sessions waiting for each other at the same time, and the deadlocks ",
            "PostgreSQL itself reported.\n\n",
            "Without --dot, a text listing; with --dot, Graphviz DOT for `dot -Tsvg`."
        ),
        after_help = "Examples:\n  \
            dbflight locks ./trace\n  \
            dbflight locks ./trace --dot -o locks.dot && dot -Tsvg locks.dot > locks.svg\n  \
            dbflight locks ./trace --dot | dot -Tpng > locks.png"
    )]
    Locks(LocksArgs),

    /// Print the events of all tables merged in time order, one line each (like perf script).
    #[command(
        long_about = concat!(
            "Print the events of every table of a trace merged in time order, one line each, ",
            "the way `perf script` prints samples: time (UTC), offset from the start of the ",
            "recording, pid, tid, the table it comes from, and a short description: the ",
            "statement, plan node type, lock event with mode and object, network direction ",
            "and bytes, time off CPU and state, process fork and exit.\n\n",
            "--pid keeps one or more processes; --from and --to keep a time range, given as ",
            "RFC 3339 times (2025-11-22T02:29:01.5Z) or as offsets from the start of the ",
            "recording (+1.5s, +200ms). The SQL behind it is queries/timeline.sql."
        ),
        after_help = "Examples:\n  \
            dbflight timeline ./trace\n  \
            dbflight timeline ./trace --pid 4242\n  \
            dbflight timeline ./trace --from +1.5s --to +2s\n  \
            dbflight timeline ./trace --from 2025-11-22T02:29:01Z --pid 4242 --pid 4243"
    )]
    Timeline(TimelineArgs),

    /// Copy a trace with the literals of its statements and the client addresses of process titles masked.
    #[command(
        long_about = concat!(
            "Write a copy of TRACE to the new directory OUT that is safe to attach to a bug ",
            "report: every literal of queries.query (strings, numbers) becomes a $N ",
            "placeholder and comments are dropped, lexed in the traced server's dialect ",
            "(PostgreSQL or MySQL, from the manifest), and the client address and port in ",
            "processes.title (`10.0.0.5(53412)`) become `?(?)`. Every other column keeps its ",
            "values, and the files of the other tables are copied byte for byte. The copy's ",
            "manifest says so: options.redact_literals is true and `redaction` lists what was ",
            "masked. processes.client_addr and the addresses of net are not masked."
        ),
        after_help = "Example:\n  dbflight redact ./incident-trace -o ./incident-redacted && dbflight bundle ./incident-redacted -o incident.tar"
    )]
    Redact(RedactArgs),

    /// Pack a trace into one file (a tar, manifest first) that every command accepts as TRACE.
    #[command(
        long_about = concat!(
            "Pack TRACE into one file for a bug report: a POSIX tar whose first member is ",
            "manifest.json, then every complete Parquet file, each mode 0600; the bundle ",
            "itself is created mode 0600. Every dbflight command accepts the bundle as TRACE ",
            "(it is recognised by its content, whatever its name), and `tar xf` unpacks it ",
            "into a trace directory that DuckDB or any Parquet reader opens."
        ),
        after_help = "Examples:\n  \
            dbflight bundle ./incident-trace -o incident.tar\n  \
            dbflight report incident.tar"
    )]
    Bundle(BundleArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Trace: a directory written by `dbflight-record -o`, a bundle file
    /// (`dbflight bundle`) or an s3://, gs:// or file:// URL. Several traces
    /// are read as one; a `trace` column in every table tells them apart.
    #[arg(value_name = "TRACE", required = true, num_args = 1..)]
    pub trace: Vec<PathBuf>,

    /// Output format: plain text for a terminal, Markdown for a bug report or
    /// wiki, or one self-contained HTML file with charts.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text, value_name = "FORMAT")]
    pub format: ReportFormat,

    /// Write the report to FILE instead of stdout, created mode 0600: it holds
    /// query text (e.g. `-o report.html`).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print each section's wall time on stderr as it finishes, and on
    /// Linux the CPU time it took (which queries/NAME.sql to look at when a
    /// report is slow, and whether it kept every core busy). The sections
    /// then run one at a time, not two side by side, so that each one's
    /// time is its own: the report takes longer.
    #[arg(long)]
    pub timings: bool,
}

/// How `dbflight report` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Headings and aligned tables, for a terminal.
    Text,
    /// GitHub-flavoured Markdown tables.
    Markdown,
    /// One HTML file with inline SVG charts; needs no network to view.
    Html,
}

#[derive(Debug, Args)]
pub struct LocksArgs {
    /// Trace: a directory written by `dbflight-record -o`, a bundle file
    /// (`dbflight bundle`) or an s3://, gs:// or file:// URL. Several traces
    /// are read as one; a `trace` column in every table tells them apart.
    #[arg(value_name = "TRACE", required = true, num_args = 1..)]
    pub trace: Vec<PathBuf>,

    /// Write Graphviz DOT (render with `dot -Tsvg`) instead of the text listing.
    #[arg(long)]
    pub dot: bool,

    /// Write to FILE instead of stdout, created mode 0600 (e.g. `-o locks.dot`).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// Trace: a directory written by `dbflight-record -o`, a bundle file
    /// (`dbflight bundle`) or an s3://, gs:// or file:// URL. Several traces
    /// are read as one; a `trace` column in every table tells them apart.
    #[arg(value_name = "TRACE", required = true, num_args = 1..)]
    pub trace: Vec<PathBuf>,

    /// Only the events of this process (repeat for several).
    #[arg(long, value_name = "N")]
    pub pid: Vec<i32>,

    /// Only events at or after T: an RFC 3339 time (2025-11-22T02:29:01.5Z) or
    /// an offset from the start of the recording (+1.5s, +200ms).
    #[arg(long, value_parser = parse_time_point, value_name = "T")]
    pub from: Option<TimePoint>,

    /// Only events before T (same forms as --from).
    #[arg(long, value_parser = parse_time_point, value_name = "T")]
    pub to: Option<TimePoint>,

    /// Print each description whole, even on a terminal narrower than it.
    #[arg(long)]
    pub full: bool,

    /// Write to FILE instead of stdout, created mode 0600: it holds query text.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// A point in time of `--from`/`--to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePoint {
    /// Nanoseconds since the epoch (UTC).
    At(i64),
    /// Nanoseconds after the start of the recording.
    Offset(i64),
}

impl TimePoint {
    /// Nanoseconds since the epoch, for a recording that started at `start_ns`.
    pub fn resolve(self, start_ns: i64) -> i64 {
        match self {
            TimePoint::At(ns) => ns,
            TimePoint::Offset(ns) => start_ns.saturating_add(ns),
        }
    }
}

/// Parses `+1.5s`, `+200ms` (offsets) and RFC 3339 times (`2025-11-22T02:29:01.5Z`;
/// without a zone, UTC).
pub fn parse_time_point(s: &str) -> Result<TimePoint, String> {
    let text = s.trim();
    if let Some(offset) = text.strip_prefix('+') {
        return parse_threshold(offset)
            .map(|t| TimePoint::Offset(t.ns))
            .map_err(|e| format!("{e} (an offset from the start looks like +1.5s or +200ms)"));
    }
    arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(text)
        .map(TimePoint::At)
        .map_err(|_| {
            format!(
                "{text:?} is neither an RFC 3339 time (2025-11-22T02:29:01.5Z) nor an offset \
                 from the start of the recording (+1.5s)"
            )
        })
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Trace: a directory written by `dbflight-record -o`, a bundle file
    /// (`dbflight bundle`) or an s3://, gs:// or file:// URL. Several traces
    /// are read as one; a `trace` column in every table tells them apart.
    #[arg(value_name = "TRACE", required = true, num_args = 1..)]
    pub trace: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The trace(s), then the SQL: `dbflight sql TRACE "SQL"`,
    /// `dbflight sql A B "SQL"`. Without -e and -f, the last of two or more is
    /// the SQL; with -e or -f, every one is a trace. A trace is a directory
    /// written by `dbflight-record -o`, a bundle file or an s3://, gs:// or
    /// file:// URL.
    ///
    /// Tables: queries, plan_nodes, locks, lwlocks, net, sched, processes, recorder_stats;
    /// with several traces each has a `trace` column (the trace's name) first.
    /// Without SQL, the statements are read from standard input
    /// (e.g. `dbflight sql ./trace < report.sql`), or an interactive shell
    /// starts when standard input is a terminal.
    #[arg(value_name = "TRACE|SQL", required = true, num_args = 1..)]
    pub args: Vec<PathBuf>,

    /// The SQL to run; every positional argument is then a trace
    /// (e.g. `dbflight sql A B -e "SELECT trace, count(*) FROM queries GROUP BY trace"`).
    #[arg(
        short = 'e',
        long = "execute",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    pub execute: Option<String>,

    /// Read the SQL from FILE instead of the command line; `-` reads stdin
    /// (e.g. `-f queries/slowest.sql`). Every positional argument is then a trace.
    #[arg(short = 'f', long = "file", value_name = "FILE.sql")]
    pub file: Option<PathBuf>,

    /// Output format: an aligned text table, CSV with a header row, or JSON
    /// (one array of objects per statement).
    #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
    pub format: Format,

    /// Write the result to FILE instead of stdout. The file is created mode 0600:
    /// results may hold query text (e.g. `-o slow.csv`).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl SqlArgs {
    /// The traces, and the SQL given on the command line (by -e or as the
    /// last of two or more positional arguments).
    pub fn split(&self) -> Result<(Vec<PathBuf>, Option<String>), String> {
        if self.execute.is_some() || self.file.is_some() || self.args.len() < 2 {
            return Ok((self.args.clone(), self.execute.clone()));
        }
        let (last, traces) = self.args.split_last().ok_or("no TRACE given")?;
        let sql = last
            .to_str()
            .ok_or("the SQL is not valid UTF-8")?
            .to_string();
        Ok((traces.to_vec(), Some(sql)))
    }
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// Trace to pack: a directory, a bundle or an s3://, gs:// or file:// URL.
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,

    /// The bundle file to write, mode 0600 (e.g. `-o incident.tar`).
    #[arg(short = 'o', long = "output", value_name = "FILE", required = true)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct RedactArgs {
    /// Trace to copy: a directory, a bundle or an s3://, gs:// or file:// URL.
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,

    /// The new directory to write the redacted trace to (mode 0700, files 0600).
    #[arg(short = 'o', long = "output", value_name = "OUT", required = true)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct HistArgs {
    /// Trace: a directory written by `dbflight-record -o`, a bundle file
    /// (`dbflight bundle`) or an s3://, gs:// or file:// URL. Several traces
    /// are read as one; a `trace` column in every table tells them apart.
    #[arg(value_name = "TRACE", required = true, num_args = 1..)]
    pub trace: Vec<PathBuf>,

    /// One histogram per fingerprint (statements that differ only in their
    /// constants), most calls first, instead of one for all statements.
    #[arg(long, value_enum, value_name = "KEY")]
    pub by: Option<By>,

    /// With --by: how many histograms to draw; 0 draws them all.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,

    /// Only the statements this SQL condition on the queries table holds for
    /// (e.g. `--where "database = 'bank'"`; `SHOW COLUMNS FROM queries` in
    /// `dbflight sql` lists the columns).
    #[arg(long = "where", value_name = "SQL")]
    pub where_: Option<String>,
}

/// What `dbflight hist --by` draws one histogram for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// Each group of statements that differ only in their constants.
    Fingerprint,
}

#[derive(Debug, Args)]
pub struct SlowArgs {
    /// Trace: a directory written by `dbflight-record -o`, a bundle file
    /// (`dbflight bundle`) or an s3://, gs:// or file:// URL. Several traces
    /// are read as one; a `trace` column in every table tells them apart.
    #[arg(value_name = "TRACE", required = true, num_args = 1..)]
    pub trace: Vec<PathBuf>,

    /// List statements that took at least this long: a number and a unit,
    /// ns, us, ms, s, m or h (e.g. 10ms, 1.5s, 500us, 100ns); 0 lists all.
    #[arg(
        short = 't',
        long,
        default_value = "10ms",
        value_parser = parse_threshold,
        value_name = "DURATION"
    )]
    pub threshold: Threshold,

    /// Only the statements this SQL condition on the queries table holds for
    /// (e.g. `--where "database = 'bank'"`).
    #[arg(long = "where", value_name = "SQL")]
    pub where_: Option<String>,

    /// Print each statement whole, even on a terminal narrower than it.
    #[arg(long)]
    pub full: bool,

    /// Output format: dbslower-style lines, or as `dbflight sql` prints:
    /// an aligned table, CSV with a header row, or JSON.
    #[arg(long, value_enum, default_value_t = SlowFormat::Text, value_name = "FORMAT")]
    pub format: SlowFormat,

    /// Write the result to FILE instead of stdout, created mode 0600: it
    /// holds query text (e.g. `-o slow.csv`).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// How `dbflight slow` prints statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlowFormat {
    /// One line per statement, as bcc's dbslower: time (UTC), pid, ms, text.
    Text,
    /// An aligned text table followed by the row count.
    Table,
    /// Comma-separated values with a header row; timestamps in RFC 3339.
    Csv,
    /// A JSON array of objects, one per row.
    Json,
}

/// A duration threshold, kept with the text it was given as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threshold {
    pub ns: i64,
    pub text: String,
}

/// Parses `10ms`, `1.5s`, `500us`, `100ns`, `2m`, `1h`, and `0` alone.
pub fn parse_threshold(s: &str) -> Result<Threshold, String> {
    let text = s.trim();
    if text.starts_with('-') {
        return Err(format!("{text:?} is negative: a threshold is 0 or more"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_ns: f64 = match unit.trim() {
        "" if !number.is_empty() && number.bytes().all(|b| b == b'0' || b == b'.') => 1.0,
        "" => {
            return Err(format!(
                "{text:?} has no unit: write e.g. 10ms, 1.5s, 500us or 100ns"
            ));
        }
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ns, us, ms, s, m or h (e.g. 10ms)"
            ));
        }
    };
    let value: f64 = number.parse().map_err(|_| {
        format!("{text:?} is not a duration: write e.g. 10ms, 1.5s, 500us or 100ns")
    })?;
    let ns = (value * unit_ns).round();
    if !(0.0..=i64::MAX as f64).contains(&ns) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Threshold {
        // In range, checked above.
        ns: ns as i64,
        text: text.to_string(),
    })
}

/// How `dbflight sql` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned text table followed by the row count.
    Table,
    /// Comma-separated values with a header row; timestamps in RFC 3339.
    Csv,
    /// A JSON array of objects, one per row; nulls written as null.
    Json,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sql_and_file_conflict() {
        let err = Cli::try_parse_from(["dbflight", "sql", "t", "-e", "SELECT 1", "-f", "x.sql"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    fn sql_split(argv: &[&str]) -> (Vec<PathBuf>, Option<String>) {
        let cli = Cli::try_parse_from(argv).unwrap();
        let Command::Sql(args) = cli.command else {
            panic!("expected sql");
        };
        args.split().unwrap()
    }

    #[test]
    fn sql_traces_and_statement_stay_unambiguous() {
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        let cases: [(&[&str], Vec<PathBuf>, Option<&str>); 6] = [
            (&["dbflight", "sql", "t"], p(&["t"]), None),
            (
                &["dbflight", "sql", "t", "SELECT 1"],
                p(&["t"]),
                Some("SELECT 1"),
            ),
            (
                &["dbflight", "sql", "a", "b", "SELECT 1"],
                p(&["a", "b"]),
                Some("SELECT 1"),
            ),
            (
                &["dbflight", "sql", "a", "b", "-e", "SELECT 1"],
                p(&["a", "b"]),
                Some("SELECT 1"),
            ),
            (
                &["dbflight", "sql", "a", "b", "-f", "x.sql"],
                p(&["a", "b"]),
                None,
            ),
            (
                &["dbflight", "sql", "-e", "SELECT 1", "a"],
                p(&["a"]),
                Some("SELECT 1"),
            ),
        ];
        for (argv, traces, sql) in cases {
            assert_eq!(sql_split(argv), (traces, sql.map(String::from)), "{argv:?}");
        }
        let err = Cli::try_parse_from(["dbflight", "sql"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn several_traces_for_every_reading_command() {
        for cmd in ["info", "hist", "slow", "report", "locks", "timeline"] {
            Cli::try_parse_from(["dbflight", cmd, "a", "b.tar", "s3://x/y"])
                .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        }
        let err = Cli::try_parse_from(["dbflight", "bundle", "t"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn thresholds() {
        let ok = [
            ("10ms", 10_000_000),
            ("1.5s", 1_500_000_000),
            ("500us", 500_000),
            ("500µs", 500_000),
            ("100ns", 100),
            ("0", 0),
            ("0.0", 0),
            ("0ms", 0),
            ("2m", 120_000_000_000),
            ("1h", 3_600_000_000_000),
            (" 0.25ms ", 250_000),
            (".5s", 500_000_000),
            ("1.0000001s", 1_000_000_100),
        ];
        for (text, ns) in ok {
            assert_eq!(parse_threshold(text).map(|t| t.ns), Ok(ns), "{text}");
        }
        let bad = [
            ("10", "no unit"),
            ("", "no unit"),
            ("ms", "not a duration"),
            ("10 parsecs", "unknown unit"),
            ("-5ms", "negative"),
            ("1.2.3s", "not a duration"),
            ("99999999999h", "out of range"),
        ];
        for (text, want) in bad {
            let err = parse_threshold(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn slow_and_hist_defaults() {
        let cli = Cli::try_parse_from(["dbflight", "slow", "t"]).unwrap();
        let Command::Slow(args) = cli.command else {
            panic!("expected slow");
        };
        assert_eq!(args.threshold.ns, 10_000_000);
        assert_eq!(args.format, SlowFormat::Text);
        assert!(!args.full && args.where_.is_none());

        let cli = Cli::try_parse_from([
            "dbflight",
            "hist",
            "t",
            "--by",
            "fingerprint",
            "--where",
            "pid = 1",
        ])
        .unwrap();
        let Command::Hist(args) = cli.command else {
            panic!("expected hist");
        };
        assert_eq!(args.by, Some(By::Fingerprint));
        assert_eq!(args.top, 10);
        assert_eq!(args.where_.as_deref(), Some("pid = 1"));

        let err = Cli::try_parse_from(["dbflight", "slow", "t", "--threshold", "10"]).unwrap_err();
        assert!(err.to_string().contains("no unit"), "{err}");
    }

    #[test]
    fn time_points() {
        assert_eq!(
            parse_time_point("+1.5s"),
            Ok(TimePoint::Offset(1_500_000_000))
        );
        assert_eq!(parse_time_point("+0"), Ok(TimePoint::Offset(0)));
        assert_eq!(
            parse_time_point("2025-11-22T02:29:00Z"),
            Ok(TimePoint::At(1_763_778_540_000_000_000))
        );
        assert_eq!(
            parse_time_point("2025-11-22T04:29:00.5+02:00"),
            Ok(TimePoint::At(1_763_778_540_500_000_000))
        );
        assert_eq!(
            parse_time_point("2025-11-22 02:29:00"),
            Ok(TimePoint::At(1_763_778_540_000_000_000))
        );
        let err = parse_time_point("+10").unwrap_err();
        assert!(err.contains("no unit") && err.contains("+1.5s"), "{err}");
        let err = parse_time_point("yesterday").unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
        assert_eq!(TimePoint::Offset(5).resolve(10), 15);
        assert_eq!(TimePoint::At(5).resolve(10), 5);
    }

    #[test]
    fn report_locks_timeline_defaults() {
        let cli = Cli::try_parse_from(["dbflight", "report", "t"]).unwrap();
        let Command::Report(args) = cli.command else {
            panic!("expected report");
        };
        assert_eq!(args.format, ReportFormat::Text);
        let cli = Cli::try_parse_from(["dbflight", "locks", "t", "--dot"]).unwrap();
        let Command::Locks(args) = cli.command else {
            panic!("expected locks");
        };
        assert!(args.dot);
        let cli = Cli::try_parse_from([
            "dbflight", "timeline", "t", "--pid", "1", "--pid", "2", "--from", "+1s",
        ])
        .unwrap();
        let Command::Timeline(args) = cli.command else {
            panic!("expected timeline");
        };
        assert_eq!(args.pid, [1, 2]);
        assert_eq!(args.from, Some(TimePoint::Offset(1_000_000_000)));
        assert_eq!(args.to, None);
    }

    #[test]
    fn sql_defaults_to_table_format() {
        let cli = Cli::try_parse_from(["dbflight", "sql", "t", "SELECT 1"]).unwrap();
        let Command::Sql(args) = cli.command else {
            panic!("expected sql");
        };
        assert_eq!(args.format, Format::Table);
        assert_eq!(args.split().unwrap().1.as_deref(), Some("SELECT 1"));
        assert!(args.output.is_none() && args.file.is_none());
    }
}
