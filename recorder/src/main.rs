//! `dbflight-record`: records a database server's activity into a trace.

use std::process::ExitCode;

use clap::Parser;

#[cfg(target_os = "linux")]
fn run() -> anyhow::Result<()> {
    let args = dbflight_recorder::cli::Args::parse();
    dbflight_recorder::record::run(args)
}

#[cfg(not(target_os = "linux"))]
fn run() -> anyhow::Result<()> {
    let _ = dbflight_recorder::cli::Args::parse();
    anyhow::bail!("dbflight-record needs Linux (eBPF); analyze traces anywhere with `dbflight`")
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dbflight-record: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
