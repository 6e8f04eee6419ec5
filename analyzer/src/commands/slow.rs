//! `dbflight slow TRACE --threshold 10ms`: the statements that took at
//! least a threshold, in the order they started, printed as bcc's dbslower
//! prints them (or as `dbflight sql` prints a result, with --format).

use std::io::{IsTerminal, Write};

use anyhow::{Result, anyhow};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use dbflight_format::Table;
use futures::StreamExt;

use crate::cli::{Format, SlowArgs, SlowFormat};
use crate::commands::{NO_STATEMENTS, open_traces, restrict_queries, runtime, total_rows};
use crate::output::{Printer, Sink};
use crate::session::session_for_traces;

pub fn run(args: &SlowArgs) -> Result<()> {
    let traces = open_traces(&args.trace)?;
    let total = total_rows(&traces, Table::Queries);
    if total == 0 {
        eprintln!("{NO_STATEMENTS}");
        if args.format == SlowFormat::Text {
            return Ok(());
        }
    }
    let ctx = session_for_traces(&traces)?;
    let width = (!args.full && args.output.is_none())
        .then(line_width)
        .flatten();
    let mut sink = Sink::new(args.output.as_deref());
    let result = runtime()?.block_on(async {
        if let Some(predicate) = &args.where_ {
            restrict_queries(&ctx, predicate).await?;
        }
        list(&ctx, args, width, total, &mut sink).await
    });
    let closed = sink.close(result.is_ok());
    result.and(closed)
}

/// The statement behind the listing: `threshold_ns` is an integer, so it
/// is written into the text as a number.
pub fn slow_sql(threshold_ns: i64) -> String {
    format!(
        "SELECT ts, pid, duration_ns / 1e6 AS duration_ms, query FROM queries \
         WHERE duration_ns >= {threshold_ns} ORDER BY ts, pid, query_seq"
    )
}

/// Runs the listing and prints it in the chosen format.
pub async fn list(
    ctx: &SessionContext,
    args: &SlowArgs,
    width: Option<usize>,
    total: u64,
    out: &mut impl Write,
) -> Result<()> {
    let fail = |e| match &args.where_ {
        Some(w) => anyhow!("cannot list the slow statements matching --where {w:?}: {e}"),
        None => anyhow!("cannot list the slow statements: {e}"),
    };
    let mut stream = ctx
        .sql(&slow_sql(args.threshold.ns))
        .await
        .map_err(fail)?
        .execute_stream()
        .await
        .map_err(fail)?;
    let format = match args.format {
        SlowFormat::Text => None,
        SlowFormat::Table => Some(Format::Table),
        SlowFormat::Csv => Some(Format::Csv),
        SlowFormat::Json => Some(Format::Json),
    };
    if let Some(format) = format {
        let mut printer = Printer::new(format, out, stream.schema());
        while let Some(batch) = stream.next().await {
            printer.write(batch.map_err(fail)?)?;
        }
        return printer.finish();
    }
    writeln!(out, "{:<26} {:<7} {:>10} QUERY", "TIME(UTC)", "PID", "MS")?;
    let mut shown = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(fail)?;
        write_lines(out, &batch, width)?;
        shown += batch.num_rows() as u64;
    }
    let threshold = &args.threshold.text;
    if args.where_.is_some() {
        let s = if shown == 1 { "" } else { "s" };
        writeln!(
            out,
            "({shown} statement{s} matching --where took at least {threshold}; \
             {total} statements in the trace)"
        )?;
    } else {
        writeln!(
            out,
            "({shown} of {total} statements took at least {threshold})"
        )?;
    }
    Ok(())
}

/// One dbslower line per row: time, pid, milliseconds, the text on one
/// line, cut to `width` columns when given.
fn write_lines(out: &mut impl Write, batch: &RecordBatch, width: Option<usize>) -> Result<()> {
    let options = FormatOptions::new().with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.6f"));
    let ts = ArrayFormatter::try_new(batch.column(0).as_ref(), &options)?;
    let pids = batch.column(1).as_primitive::<Int32Type>();
    let ms = batch.column(2).as_primitive::<Float64Type>();
    let texts = batch.column(3).as_string::<i32>();
    for row in 0..batch.num_rows() {
        let text = if texts.is_valid(row) {
            one_line(texts.value(row))
        } else {
            "NULL".to_string()
        };
        let prefix = format!(
            "{:<26} {:<7} {:>10.3} ",
            ts.value(row).to_string(),
            pids.value(row),
            ms.value(row)
        );
        let text = match width {
            Some(w) => cut(&text, w.saturating_sub(prefix.chars().count())),
            None => text,
        };
        writeln!(out, "{prefix}{text}")?;
    }
    Ok(())
}

/// The text with every run of whitespace (newlines too) as one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters (never fewer than 20, so a narrow terminal
/// still shows the statement's start), ending in `...` when cut.
pub fn cut(text: &str, max: usize) -> String {
    let max = max.max(20);
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max - 3).collect();
    format!("{kept}...")
}

/// The width to cut lines to: the terminal's when stdout is one, else
/// `$COLUMNS` when set (as `ps` does), else none.
pub fn line_width() -> Option<usize> {
    if std::io::stdout().is_terminal() {
        // comfy-table reads the terminal size already (crossterm).
        return comfy_table::Table::new().width().map(usize::from);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_line_and_cut_with_an_ellipsis() {
        assert_eq!(one_line("SELECT 1\n  FROM\tt  "), "SELECT 1 FROM t");
        assert_eq!(cut("short", 40), "short");
        let long = "x".repeat(50);
        assert_eq!(cut(&long, 30), format!("{}...", "x".repeat(27)));
        assert_eq!(cut(&long, 3).chars().count(), 20, "never below 20");
        assert_eq!(
            cut("żółw żółw żółw żółw żółw żółw", 23),
            "żółw żółw żółw żółw ..."
        );
    }

    #[test]
    fn thresholds_are_written_as_integers() {
        assert_eq!(
            slow_sql(10_000_000),
            "SELECT ts, pid, duration_ns / 1e6 AS duration_ms, query FROM queries \
             WHERE duration_ns >= 10000000 ORDER BY ts, pid, query_seq"
        );
    }
}
