//! `dbflight`: the portable analyzer of dbflight traces.
//!
//! This file only turns the outcome of [`run`] into an exit code: data goes to
//! stdout, diagnostics to stderr, an error prints its whole chain (`{:#}`) and
//! exits 1, and a closed stdout (`dbflight sql ... | head`) exits 0 quietly.

mod cli;
mod columns;
mod commands;
mod histogram;
mod lock_waits;
mod lockgraph;
mod output;
mod progress;
mod queries;
mod redact;
mod report;
mod session;
mod shell;
mod source;
mod statement_totals;
mod udf;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dbflight: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Info(args) => commands::info::run(&args),
        Command::Sql(args) => commands::sql::run(&args),
        Command::Hist(args) => commands::hist::run(&args),
        Command::Slow(args) => commands::slow::run(&args),
        Command::Report(args) => commands::report::run(&args),
        Command::Locks(args) => commands::locks::run(&args),
        Command::Timeline(args) => commands::timeline::run(&args),
        Command::Redact(args) => commands::redact::run(&args),
        Command::Bundle(args) => commands::bundle::run(&args),
    }
}
