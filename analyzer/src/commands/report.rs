//! `dbflight report TRACE [--format text|markdown|html] [-o FILE]`: every
//! section of [`crate::report`], computed from the embedded `queries/` and
//! written in the chosen format, with a spinner when it takes a while.

use std::time::Duration;

use anyhow::Result;

use crate::cli::{ReportArgs, ReportFormat};
use crate::commands::locks::{Drawn, render_svg};
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

/// Waits-for edges the HTML report draws at most: Graphviz lays out a few
/// hundred nodes in a second, thousands in minutes, and nobody reads them.
const DRAWN_EDGES: usize = 60;

/// How long Graphviz may take over the picture before its DOT text is
/// written instead.
const DRAWING_LIMIT: Duration = Duration::from_secs(30);

/// The lock graph's longest waits rendered by Graphviz when `dot` is on
/// PATH and done in time, its DOT text otherwise.
fn lock_picture(graph: &crate::lockgraph::LockGraph) -> Result<LockPicture> {
    let mut dot = Vec::new();
    graph.heaviest(DRAWN_EDGES).write_dot(&mut dot)?;
    let dot = String::from_utf8(dot)?;
    Ok(match render_svg(&dot, DRAWING_LIMIT)? {
        Drawn::Svg(svg) => LockPicture::Svg(svg),
        Drawn::NoGraphviz => LockPicture::Dot {
            dot,
            why: "Graphviz was not installed when this report was written".into(),
        },
        Drawn::TooSlow => LockPicture::Dot {
            dot,
            why: format!(
                "Graphviz had not drawn the graph after {} s when this report was written",
                DRAWING_LIMIT.as_secs()
            ),
        },
    })
}
