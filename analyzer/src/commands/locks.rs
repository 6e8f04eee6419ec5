//! `dbflight locks TRACE [--dot] [-o FILE]`: the lock wait-for graph, as a
//! text listing or Graphviz DOT (see [`crate::lockgraph`]).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// What became of a graph given to Graphviz.
#[derive(Debug)]
pub enum Drawn {
    Svg(String),
    /// `dot` is not on PATH.
    NoGraphviz,
    /// `dot` ran longer than the limit and was stopped.
    TooSlow,
}

/// Renders DOT to SVG with Graphviz's `dot`, stopping it after `limit`.
pub fn render_svg(dot: &str, limit: Duration) -> Result<Drawn> {
    let mut command = Command::new("dot");
    command.arg("-Tsvg");
    render_with(command, dot, limit)
}

fn render_with(mut command: Command, dot: &str, limit: Duration) -> Result<Drawn> {
    let child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Drawn::NoGraphviz),
        Err(e) => return Err(e).context("cannot run Graphviz's dot"),
    };
    // Written and read from other threads: dot may fill its stdout pipe
    // before reading all of stdin, and this one watches the time.
    let mut stdin = child.stdin.take().context("no stdin for dot")?;
    let input = dot.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).map(|_| bytes)
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().context("no stdout for dot")?));
    let stderr = read_all(Box::new(child.stderr.take().context("no stderr for dot")?));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot run Graphviz's dot")? {
            break status;
        }
        if Instant::now() >= deadline {
            // Its pipes close with it, so the threads end.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Drawn::TooSlow);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let joined = |t: std::thread::JoinHandle<std::io::Result<Vec<u8>>>| {
        t.join()
            .map_err(|_| anyhow::anyhow!("reading from dot failed"))?
            .context("cannot read from Graphviz's dot")
    };
    let (out, err) = (joined(stdout)?, joined(stderr)?);
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writing to dot failed"))?;
    // A dot that stopped early also broke the pipe: its own message says why.
    if !status.success() {
        bail!(
            "Graphviz's dot refused the lock graph ({status}): {}",
            String::from_utf8_lossy(&err).trim()
        );
    }
    written.context("cannot write to Graphviz's dot")?;
    let svg = String::from_utf8(out).context("dot wrote SVG that is not UTF-8")?;
    Ok(Drawn::Svg(svg))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    /// A dot that never answers is stopped at the limit; a missing one
    /// says so; `cat` stands for one that answers at once.
    #[test]
    fn a_slow_dot_is_stopped_at_the_limit() {
        let started = Instant::now();
        let drawn = render_with(
            sh("exec sleep 60"),
            "digraph {}",
            Duration::from_millis(300),
        );
        assert!(matches!(drawn, Ok(Drawn::TooSlow)), "{drawn:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let missing = Command::new("/nonexistent/dot");
        let drawn = render_with(missing, "digraph {}", Duration::from_secs(5));
        assert!(matches!(drawn, Ok(Drawn::NoGraphviz)), "{drawn:?}");
        let echoed = render_with(sh("exec cat"), "<svg/>", Duration::from_secs(5)).unwrap();
        assert!(
            matches!(&echoed, Drawn::Svg(s) if s == "<svg/>"),
            "{echoed:?}"
        );
        // It exits before reading: the refusal, not the broken pipe, is told.
        let refused = render_with(
            sh("echo bad >&2; exit 1"),
            &"x".repeat(1 << 20),
            Duration::from_secs(5),
        );
        let message = format!("{:#}", refused.unwrap_err());
        assert!(
            message.contains("refused the lock graph") && message.contains("bad"),
            "{message}"
        );
    }
}
