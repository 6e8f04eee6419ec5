//! `dbflight report TRACE [--format text|markdown|html] [-o FILE]`: every
//! section of [`crate::report`], computed from the embedded `queries/` and
//! written in the chosen format, with a spinner when it takes a while.

use anyhow::Result;

use crate::cli::{ReportArgs, ReportFormat};
use crate::commands::locks::render_svg;
use crate::commands::{open_traces, runtime};
use crate::output::Sink;
use crate::progress::Progress;
use crate::report::{self, LockPicture};
use crate::session::session_for_traces;

pub fn run(args: &ReportArgs) -> Result<()> {
    let traces = open_traces(&args.trace)?;
    let trace = &traces[0];
    let ctx = session_for_traces(&traces)?;
    let progress = Progress::start("report");
    let mut report = runtime()?.block_on(report::build(&ctx, trace, &progress, args.timings))?;
    if traces.len() > 1 {
        report.trace = traces
            .iter()
            .map(|t| t.origin.as_str())
            .collect::<Vec<_>>()
            .join(", ");
    }
    let locks = if args.format == ReportFormat::Html && !report.lock_graph.is_empty() {
        progress.set("report: drawing the lock graph");
        Some(lock_picture(&report.lock_graph)?)
    } else {
        None
    };
    drop(progress);
    let mut sink = Sink::new(args.output.as_deref());
    let written = match args.format {
        ReportFormat::Text => report::text::write(&mut sink, &report),
        ReportFormat::Markdown => report::markdown::write(&mut sink, &report),
        ReportFormat::Html => report::html::write(&mut sink, &report, locks.as_ref()),
    };
    let closed = sink.close(written.is_ok());
    written.and(closed)
}

/// The lock graph rendered by Graphviz when `dot` is on PATH, its DOT text otherwise.
fn lock_picture(graph: &crate::lockgraph::LockGraph) -> Result<LockPicture> {
    let mut dot = Vec::new();
    graph.write_dot(&mut dot)?;
    let dot = String::from_utf8(dot)?;
    Ok(match render_svg(&dot)? {
        Some(svg) => LockPicture::Svg(svg),
        None => LockPicture::Dot(dot),
    })
}
