//! `dbflight locks TRACE [--dot] [-o FILE]`: the lock wait-for graph, as a
//! text listing or Graphviz DOT (see [`crate::lockgraph`]).

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use datafusion::prelude::SessionContext;

use crate::cli::LocksArgs;
use crate::commands::{collect, open_traces, runtime};
use crate::lockgraph::{DeadlockReport, LockGraph, Wait};
use crate::output::Sink;
use crate::progress::Progress;
use crate::queries;
use crate::session::session_for_traces;

pub fn run(args: &LocksArgs) -> Result<()> {
    let traces = open_traces(&args.trace)?;
    let ctx = session_for_traces(&traces)?;
    let progress = Progress::start("building the lock wait-for graph");
    let graph = runtime()?.block_on(lock_graph(&ctx))?;
    drop(progress);
    let mut sink = Sink::new(args.output.as_deref());
    let written = if args.dot {
        graph.write_dot(&mut sink)
    } else {
        graph.write_text(&mut sink)
    };
    let closed = sink.close(written.is_ok());
    written.and(closed)
}

/// Runs the lock wait and deadlock queries and builds the graph.
pub async fn lock_graph(ctx: &SessionContext) -> Result<LockGraph> {
    let waits = collect(ctx, queries::LOCK_WAITS, "lock waits").await?;
    let deadlocks = collect(ctx, queries::DEADLOCKS, "deadlocks").await?;
    Ok(LockGraph::build(
        &Wait::from_batches(&waits)?,
        DeadlockReport::from_batches(&deadlocks)?,
    ))
}

/// Renders DOT to SVG with Graphviz's `dot`; `Ok(None)` when `dot` is not on PATH.
pub fn render_svg(dot: &str) -> Result<Option<String>> {
    let child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("cannot run Graphviz's dot"),
    };
    let mut stdin = child.stdin.take().context("no stdin for dot")?;
    let input = dot.to_string();
    // Written from another thread: dot may fill its stdout pipe before reading all of stdin.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .context("cannot run Graphviz's dot")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writing to dot failed"))?
        .context("cannot write to Graphviz's dot")?;
    if !out.status.success() {
        bail!(
            "Graphviz's dot refused the lock graph ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let svg = String::from_utf8(out.stdout).context("dot wrote SVG that is not UTF-8")?;
    Ok(Some(svg))
}
