//! `dbflight timeline TRACE [--pid N] [--from T] [--to T]`: the events of
//! every table merged in time order, one line each, like `perf script`.
//!
//! The events are the rows of the embedded `queries/timeline.sql`; the
//! filters wrap it, so DataFusion pushes them into the scan of each table
//! (a time range reads only the row groups that hold it).

use std::io::Write;

use anyhow::{Result, anyhow};
use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::cli::TimelineArgs;
use crate::columns::Column;
use crate::commands::slow::{cut, line_width, one_line};
use crate::commands::{open_traces, runtime};
use crate::output::Sink;
use crate::queries;
use crate::session::session_for_traces;

pub fn run(args: &TimelineArgs) -> Result<()> {
    let traces = open_traces(&args.trace)?;
    let ctx = session_for_traces(&traces)?;
    // With several traces, offsets count from the earliest start.
    let start_ns = traces
        .iter()
        .map(|t| t.manifest.started_at_ns)
        .min()
        .unwrap_or_default();
    let filter = Filter {
        pids: args.pid.clone(),
        from_ns: args.from.map(|t| t.resolve(start_ns)),
        to_ns: args.to.map(|t| t.resolve(start_ns)),
    };
    let width = (!args.full && args.output.is_none())
        .then(line_width)
        .flatten();
    let mut sink = Sink::new(args.output.as_deref());
    let result = runtime()?.block_on(print(&ctx, &filter, start_ns, width, &mut sink));
    let closed = sink.close(result.is_ok());
    result.and(closed)
}

/// Which events to print.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub pids: Vec<i32>,
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
}

/// Where the filter goes in `queries/timeline.sql`: its last `FROM`.
const FILTER_AT: &str = "\nFROM events\n";

/// The timeline query with the filter applied to its merged events (before
/// their ORDER BY); pids and times are integers, written in as numbers.
pub fn timeline_sql(filter: &Filter) -> Result<String> {
    let sql = queries::TIMELINE;
    let mut conditions = Vec::new();
    if !filter.pids.is_empty() {
        let pids: Vec<String> = filter.pids.iter().map(i32::to_string).collect();
        conditions.push(format!("pid IN ({})", pids.join(", ")));
    }
    let ts = |ns: i64| format!("arrow_cast({ns}, 'Timestamp(Nanosecond, Some(\"UTC\"))')");
    if let Some(from) = filter.from_ns {
        conditions.push(format!("ts >= {}", ts(from)));
    }
    if let Some(to) = filter.to_ns {
        conditions.push(format!("ts < {}", ts(to)));
    }
    if conditions.is_empty() {
        return Ok(sql.to_string());
    }
    let at = sql
        .rfind(FILTER_AT)
        .ok_or_else(|| anyhow!("queries/timeline.sql has no line `FROM events` to filter"))?
        + FILTER_AT.len();
    Ok(format!(
        "{}WHERE {}\n{}",
        &sql[..at],
        conditions.join(" AND "),
        &sql[at..]
    ))
}

async fn print(
    ctx: &SessionContext,
    filter: &Filter,
    start_ns: i64,
    width: Option<usize>,
    out: &mut impl Write,
) -> Result<()> {
    let fail = |e| anyhow!("cannot build the timeline: {e}");
    let mut stream = ctx
        .sql(&timeline_sql(filter)?)
        .await
        .map_err(fail)?
        .execute_stream()
        .await
        .map_err(fail)?;
    writeln!(
        out,
        "{:<26} {:>12} {:>7} {:>7} {:<10} EVENT",
        "TIME(UTC)", "OFFSET(s)", "PID", "TID", "TABLE"
    )?;
    let mut shown = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(fail)?;
        write_lines(out, &batch, start_ns, width)?;
        shown += batch.num_rows() as u64;
    }
    let s = if shown == 1 { "" } else { "s" };
    writeln!(out, "({shown} event{s})")?;
    Ok(())
}

fn write_lines(
    out: &mut impl Write,
    batch: &RecordBatch,
    start_ns: i64,
    width: Option<usize>,
) -> Result<()> {
    let ts = Column::int(batch, "ts")?;
    let pid = Column::int(batch, "pid")?;
    let tid = Column::int(batch, "tid")?;
    let source = Column::text(batch, "source")?;
    let description = Column::text(batch, "description")?;
    for row in 0..batch.num_rows() {
        let t = ts.i64(row).unwrap_or(0);
        let prefix = format!(
            "{:<26} {:>12} {:>7} {:>7} {:<10} ",
            fmt_time(t),
            fmt_offset(t - start_ns),
            pid.i64(row).unwrap_or(0),
            tid.i64(row).unwrap_or(0),
            source.str(row).unwrap_or("?"),
        );
        let text = one_line(description.str(row).unwrap_or(""));
        let text = match width {
            Some(w) => cut(&text, w.saturating_sub(prefix.chars().count())),
            None => text,
        };
        writeln!(out, "{prefix}{text}")?;
    }
    Ok(())
}

/// `2025-11-22 02:29:00.123456`: microseconds, as `dbflight slow` prints.
fn fmt_time(ns: i64) -> String {
    let a = arrow::array::TimestampNanosecondArray::from(vec![ns]).with_timezone("UTC");
    let options = arrow::util::display::FormatOptions::new()
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.6f"));
    arrow::util::display::ArrayFormatter::try_new(&a, &options)
        .map(|f| f.value(0).to_string())
        .unwrap_or_else(|_| ns.to_string())
}

/// Seconds from the start of the recording, with microseconds: `+1.500000`.
fn fmt_offset(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "+" };
    let abs = ns.unsigned_abs();
    format!(
        "{sign}{}.{:06}",
        abs / 1_000_000_000,
        abs % 1_000_000_000 / 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_times() {
        assert_eq!(fmt_offset(1_500_000_000), "+1.500000");
        assert_eq!(fmt_offset(-2_000), "-0.000002");
        assert_eq!(
            fmt_time(1_763_778_540_123_456_789),
            "2025-11-22 02:29:00.123456"
        );
    }

    #[test]
    fn filters_go_before_the_order() {
        assert_eq!(timeline_sql(&Filter::default()).unwrap(), queries::TIMELINE);
        let sql = timeline_sql(&Filter {
            pids: vec![1, 2],
            from_ns: Some(10),
            to_ns: None,
        })
        .unwrap();
        assert!(
            sql.contains(
                "\nFROM events\nWHERE pid IN (1, 2) AND ts >= arrow_cast(10, 'Timestamp(Nanosecond, Some(\"UTC\"))')\n-- At one instant"
            ),
            "{sql}"
        );
        crate::commands::sql::parse(&sql).unwrap();
    }
}
