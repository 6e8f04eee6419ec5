//! Command line of `dbflight` (clap derive): the commands, their options and
//! the `--help` texts users read, with an example for each.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "dbflight",
    version,
    about = "Analyze dbflight traces: what a recording holds, and SQL over it",
    long_about = "Analyze dbflight traces.\n\n\
        A trace is the directory written by `dbflight-record -o TRACE`: a manifest.json \
        and one Parquet file per table per segment. It can be copied to any machine and \
        analyzed there; this tool needs no root, no eBPF and no Linux.",
    after_help = "Examples:\n  \
        dbflight info ./incident-trace\n  \
        dbflight sql ./incident-trace \"SELECT status, count(*) FROM queries GROUP BY status\""
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
            "`CREATE VIEW` in one statement is visible to the next."
        ),
        after_help = "Examples:\n  \
            dbflight sql ./trace \"SHOW TABLES\"\n  \
            dbflight sql ./trace \"SELECT status, count(*) AS n FROM queries GROUP BY status\"\n  \
            dbflight sql ./trace -f queries/slowest.sql --format csv -o slowest.csv\n  \
            dbflight sql ./trace \"SELECT * FROM locks WHERE event = 'wait_end'\" --format json | jq ."
    )]
    Sql(SqlArgs),
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Trace directory, as written by `dbflight-record -o TRACE`.
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Trace directory, as written by `dbflight-record -o TRACE`.
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,

    /// SQL to run; several statements may be separated by `;`.
    ///
    /// Tables: queries, plan_nodes, locks, lwlocks, net, sched, processes, recorder_stats.
    /// Without SQL and without -f, the statements are read from standard input
    /// (e.g. `dbflight sql ./trace < report.sql`).
    #[arg(value_name = "SQL", conflicts_with = "file")]
    pub sql: Option<String>,

    /// Read the SQL from FILE instead of the command line; `-` reads stdin
    /// (e.g. `-f queries/slowest.sql`).
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
        let err =
            Cli::try_parse_from(["dbflight", "sql", "t", "SELECT 1", "-f", "x.sql"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn sql_defaults_to_table_format() {
        let cli = Cli::try_parse_from(["dbflight", "sql", "t", "SELECT 1"]).unwrap();
        let Command::Sql(args) = cli.command else {
            panic!("expected sql");
        };
        assert_eq!(args.format, Format::Table);
        assert_eq!(args.sql.as_deref(), Some("SELECT 1"));
        assert!(args.output.is_none() && args.file.is_none());
    }
}
