//! `dbflight report`: the sections, each the result of one embedded file of
//! `queries/`, turned into text tables once and then written as plain text
//! ([`text`]), Markdown ([`markdown`]) or one self-contained HTML file with
//! SVG charts ([`html`], [`charts`]).

pub mod charts;
pub mod html;
pub mod markdown;
pub mod text;

use std::sync::Arc;

use anyhow::Result;
use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use dbflight_format::reader::TraceFiles;
use futures::{StreamExt, TryStreamExt};

use crate::commands::info::{fmt_duration, fmt_utc};
use crate::lockgraph::LockGraph;
use crate::progress::Progress;
use crate::queries;

/// What a section is and where its rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionDef {
    /// The file's name in `queries/`, also the section's anchor.
    pub id: &'static str,
    pub title: &'static str,
    pub sql: &'static str,
    /// The one line a section without rows says.
    pub empty: &'static str,
}

/// The sections in the order they are written.
pub const SECTIONS: [SectionDef; 10] = [
    SectionDef {
        id: "overview",
        title: "Overview",
        sql: queries::OVERVIEW,
        empty: "No events in this trace.",
    },
    SectionDef {
        id: "top_statements",
        title: "Top statements by total time",
        sql: queries::TOP_STATEMENTS,
        empty: "No statements in this trace.",
    },
    SectionDef {
        id: "slowest",
        title: "Slowest statements",
        sql: queries::SLOWEST,
        empty: "No statements with a duration in this trace.",
    },
    SectionDef {
        id: "latency_histogram",
        title: "Latency histogram",
        sql: queries::LATENCY_HISTOGRAM,
        empty: "No statements with a duration in this trace.",
    },
    SectionDef {
        id: "lock_waits",
        title: "Lock waits",
        sql: queries::LOCK_WAITS,
        empty: "No lock waits in this trace.",
    },
    SectionDef {
        id: "deadlocks",
        title: "Deadlocks",
        sql: queries::DEADLOCKS,
        empty: "No deadlocks in this trace.",
    },
    SectionDef {
        id: "bytes_per_statement",
        title: "Bytes per statement",
        sql: queries::BYTES_PER_STATEMENT,
        empty: "No network bytes tied to statements in this trace (recorded with --events net?).",
    },
    SectionDef {
        id: "cpu_per_statement",
        title: "On-CPU vs off-CPU time per statement",
        sql: queries::CPU_PER_STATEMENT,
        empty: "No scheduler events in this trace (recorded with --events sched?).",
    },
    SectionDef {
        id: "wait_events",
        title: "Wait events per statement",
        sql: queries::WAIT_EVENTS,
        empty: "No wait events in this trace (PostgreSQL, recorded with --events wait_events?).",
    },
    SectionDef {
        id: "plan_shapes",
        title: "Plan shapes of the top statements",
        sql: queries::PLAN_SHAPES,
        empty: "No plan nodes in this trace (recorded with --events plans?).",
    },
];

/// A query result as text cells, formatted once for every renderer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grid {
    pub headers: Vec<String>,
    /// Per column: numbers are right-aligned.
    pub numeric: Vec<bool>,
    /// Cells; `None` is SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
}

impl Grid {
    pub fn from_batches(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Grid> {
        let options = FormatOptions::default()
            .with_display_error(true)
            .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.3f"));
        let mut grid = Grid {
            headers: schema.fields().iter().map(|f| f.name().clone()).collect(),
            numeric: schema
                .fields()
                .iter()
                .map(|f| f.data_type().is_numeric())
                .collect(),
            rows: Vec::new(),
        };
        for batch in batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..batch.num_rows() {
                grid.rows.push(
                    batch
                        .columns()
                        .iter()
                        .zip(&formatters)
                        .map(|(c, f)| {
                            (!c.is_null(row) && c.data_type() != &DataType::Null)
                                .then(|| f.value(row).to_string())
                        })
                        .collect(),
                );
            }
        }
        Ok(grid)
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// The cell of `row` in column `name`.
    pub fn cell(&self, row: usize, name: &str) -> Option<&str> {
        let c = self.column(name)?;
        self.rows.get(row)?.get(c)?.as_deref()
    }

    /// The cell as a number (0 when NULL or not a number).
    pub fn number(&self, row: usize, name: &str) -> f64 {
        self.cell(row, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

/// A computed section.
#[derive(Debug, Clone)]
pub struct Section {
    pub def: SectionDef,
    pub grid: Grid,
}

impl Section {
    pub fn is_empty(&self) -> bool {
        self.grid.rows.is_empty()
    }
}

/// The lock wait-for graph as the HTML report shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum LockPicture {
    /// Rendered by Graphviz.
    Svg(String),
    /// Graphviz was not on PATH or took too long (`why`): the DOT text to
    /// render elsewhere.
    Dot { dot: String, why: String },
}

/// Everything a renderer needs.
#[derive(Debug)]
pub struct Report {
    pub trace: String,
    /// About the recording, from the manifest: (item, value).
    pub recording: Vec<(String, String)>,
    pub sections: Vec<Section>,
    pub lock_graph: LockGraph,
}

/// Sections computed side by side. Each leaves a core idle for part of
/// its time (a sum on one thread, a final merge, planning): on 10 M
/// statements a report took 8.9 s one section at a time (the session-8
/// binary) and 7.6 s two at a time, for 350 MB more at its peak; three
/// were no faster and took 400 MB more again (BENCHMARKS.md, session 9).
const AT_ONCE: usize = 2;

/// Whether a section reads `statement_totals`.
fn reads_totals(def: &SectionDef) -> bool {
    def.sql.contains(crate::statement_totals::NAME)
}

/// Runs every section's SQL and builds the lock graph.
///
/// Up to [`AT_ONCE`] sections run side by side, those that read no
/// `statement_totals` first. Of those that do, the first (the overview)
/// runs before the others are planned: its scan makes the fingerprints
/// and keys they read, and a scan planned before that one ran would read
/// and fingerprint the text again. With `timings`, one section at a
/// time in the report's order, so that each one's wall and CPU time are
/// its own.
pub async fn build(
    ctx: &SessionContext,
    trace: &TraceFiles,
    progress: &Progress,
    timings: bool,
) -> Result<Report> {
    let running = std::sync::Mutex::new(Vec::<&str>::new());
    let show = |running: &[&str]| progress.set(&format!("report: {}", running.join(", ")));
    let first_totals = SECTIONS.iter().position(reads_totals);
    // Says when the first section that reads statement_totals has run.
    let (totals_ready, ready) = tokio::sync::watch::channel(false);
    let totals_ready = &totals_ready;
    let compute = |(n, def): (usize, SectionDef)| {
        let ctx = ctx.clone();
        let running = &running;
        let mut ready = ready.clone();
        async move {
            if reads_totals(&def) && Some(n) != first_totals {
                // Fails only when the sender is gone, which outlives every
                // section; when the first one fails, this one is dropped.
                let _ = ready.wait_for(|done| *done).await;
            }
            {
                let mut r = running.lock().expect("running lock");
                r.push(def.title);
                show(&r);
            }
            let what = format!("section {} (queries/{}.sql)", def.title, def.id);
            let fail = |e| anyhow::anyhow!("cannot compute the {what}: {e}");
            let started = std::time::Instant::now();
            let cpu_before = process_cpu_seconds();
            let df = queries::plan(&ctx, def.sql).await.map_err(fail)?;
            let schema: SchemaRef = Arc::clone(df.schema().inner());
            // A task of its own, so that one section's work on this thread
            // (a final merge) does not hold up the others'.
            let batches = tokio::spawn(df.collect())
                .await
                .map_err(|e| anyhow::anyhow!("the {what} stopped: {e}"))?
                .map_err(fail)?;
            if Some(n) == first_totals {
                totals_ready.send_replace(true);
            }
            if timings {
                let cpu = match (cpu_before, process_cpu_seconds()) {
                    (Some(a), Some(b)) => format!(" {:>7.2} s CPU", b - a),
                    _ => String::new(),
                };
                progress.println(&format!(
                    "{:>8.3} s{cpu}  queries/{}.sql",
                    started.elapsed().as_secs_f64(),
                    def.id
                ));
            }
            {
                let mut r = running.lock().expect("running lock");
                r.retain(|t| *t != def.title);
                show(&r);
            }
            Ok::<_, anyhow::Error>((n, schema, batches))
        }
    };
    let at_once = if timings { 1 } else { AT_ONCE };
    let mut order: Vec<(usize, SectionDef)> = SECTIONS.into_iter().enumerate().collect();
    if at_once > 1 {
        // The first that reads statement_totals, then those that read none, then the rest.
        order.sort_by_key(
            |(n, def)| match (Some(*n) == first_totals, reads_totals(def)) {
                (true, _) => 0,
                (false, false) => 1,
                (false, true) => 2,
            },
        );
    }
    let mut computed: Vec<_> = futures::stream::iter(order.into_iter().map(compute))
        .buffer_unordered(at_once)
        .try_collect()
        .await?;
    computed.sort_by_key(|(n, _, _)| *n);
    let mut sections = Vec::with_capacity(SECTIONS.len());
    let mut lock_waits = Vec::new();
    let mut deadlocks = Vec::new();
    for (n, schema, batches) in computed {
        let def = SECTIONS[n];
        if def.id == "lock_waits" {
            lock_waits = batches.clone();
        }
        if def.id == "deadlocks" {
            deadlocks = batches.clone();
        }
        sections.push(Section {
            def,
            grid: Grid::from_batches(&schema, &batches)?,
        });
    }
    let lock_graph = LockGraph::build(
        &crate::lockgraph::Wait::from_batches(&lock_waits)?,
        crate::lockgraph::DeadlockReport::from_batches(&deadlocks)?,
    );
    Ok(Report {
        trace: trace.dir.display().to_string(),
        recording: recording(trace),
        sections,
        lock_graph,
    })
}

/// User and system CPU time of this process so far, where the system says
/// (`/proc/self/stat` on Linux; `None` elsewhere): `--timings` shows how
/// much of each section's wall time kept both cores busy.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // Clock ticks (USER_HZ): 100 per second on Linux's common ABIs (x86, Arm, RISC-V).
    Some((utime + stime) / 100.0)
}

/// What the manifest says about the recording.
fn recording(trace: &TraceFiles) -> Vec<(String, String)> {
    let m = &trace.manifest;
    let mut out = Vec::new();
    let mut target = if m.target.kind.is_empty() {
        "(unknown)".to_string()
    } else {
        m.target.kind.clone()
    };
    if let Some(v) = &m.target.version {
        target.push_str(&format!(" {v}"));
    }
    if m.target.pid > 0 {
        target.push_str(&format!(", pid {}", m.target.pid));
    }
    out.push(("target".into(), target));
    if !m.host.is_empty() {
        out.push(("host".into(), m.host.clone()));
    }
    if !m.kernel.is_empty() {
        out.push(("kernel".into(), m.kernel.clone()));
    }
    out.push(("started".into(), fmt_utc(m.started_at_ns)));
    match m.ended_at_ns {
        Some(end) => out.push((
            "ended".into(),
            format!("{} ({})", fmt_utc(end), fmt_duration(end - m.started_at_ns)),
        )),
        None => out.push((
            "ended".into(),
            "unknown: the recording was cut short; closed segments are shown".into(),
        )),
    }
    if !m.options.events.is_empty() {
        out.push(("events".into(), m.options.events.join(",")));
    }
    if let Some(r) = &m.redaction {
        out.push(("redaction".into(), r.clone()));
    }
    out
}

impl Report {
    /// The deadlock cycles of the wait-for graph to show under `section`,
    /// one line each: the deadlocks section's, none elsewhere.
    pub fn cycles_for(&self, section: &Section) -> Vec<String> {
        if section.def.id != "deadlocks" {
            return Vec::new();
        }
        self.lock_graph
            .cycles
            .iter()
            .map(|c| self.lock_graph.describe(c))
            .collect()
    }
}

/// What the deadlocks section says about cycles of the wait-for graph.
pub const CYCLES_HEADING: &str =
    "Sessions waiting for each other at the same time (dbflight locks):";

/// What it says when PostgreSQL reported no deadlock but waits form a cycle.
pub const CYCLES_UNREPORTED: &str = "PostgreSQL reported no deadlock, but sessions waited for each other at the same time (dbflight locks):";

/// Text on one line, at most `max` characters, `...` when cut.
pub fn clip(text: &str, max: usize) -> String {
    crate::lockgraph::shorten(text, max)
}

/// Columns of free text (statements, fingerprints) that renderers shorten.
pub fn is_text_column(name: &str) -> bool {
    matches!(
        name,
        "fingerprint" | "example" | "query" | "waiter_query" | "holder_query"
    )
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn grids_hold_formatted_cells_and_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(
                    TimestampNanosecondArray::from(vec![Some(1_763_778_540_123_456_789), None])
                        .with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from(vec![Some(3), None])),
                Arc::new(StringArray::from(vec![Some("x"), None])),
            ],
        )
        .unwrap();
        let g = Grid::from_batches(&schema, &[batch]).unwrap();
        assert_eq!(g.numeric, [false, true, false]);
        assert_eq!(
            g.rows[0],
            [
                Some("2025-11-22 02:29:00.123".into()),
                Some("3".into()),
                Some("x".into())
            ]
        );
        assert_eq!(g.rows[1], [None, None, None]);
        assert_eq!(g.number(0, "n"), 3.0);
        assert_eq!(g.number(1, "n"), 0.0);
        assert_eq!(g.cell(0, "s"), Some("x"));
    }

    #[test]
    fn every_section_is_a_file_of_queries() {
        for def in SECTIONS {
            assert!(
                def.sql.contains(&format!("queries/{}.sql", def.id)),
                "{}",
                def.id
            );
        }
    }
}
