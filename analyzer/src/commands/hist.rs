//! `dbflight hist TRACE [--by fingerprint] [--where SQL]`: log2 histograms
//! of statement latency in microseconds, drawn as bcc's dbstat draws them.
//!
//! The numbers come from the embedded `queries/latency_histogram*.sql`, so
//! what is drawn is exactly what `dbflight sql -f` on those files prints.

use std::io::Write;

use anyhow::{Context, Result, anyhow};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use dbflight_format::Table;

use crate::cli::{By, HistArgs};
use crate::commands::{NO_STATEMENTS, collect, open_traces, restrict_queries, runtime, total_rows};
use crate::histogram::Log2Hist;
use crate::output::Stdout;
use crate::queries;
use crate::session::session_for_traces;

pub fn run(args: &HistArgs) -> Result<()> {
    let traces = open_traces(&args.trace)?;
    if total_rows(&traces, Table::Queries) == 0 {
        eprintln!("{NO_STATEMENTS}");
        return Ok(());
    }
    let ctx = session_for_traces(&traces)?;
    let histograms = runtime()?.block_on(compute(&ctx, args))?;
    if histograms.is_empty() {
        match &args.where_ {
            Some(w) => eprintln!("no statements with a duration match --where {w:?}"),
            None => eprintln!("no statements with a duration in trace (all incomplete)"),
        }
        return Ok(());
    }
    let mut out = Stdout::new();
    let shown = match args.top {
        0 => histograms.len(),
        n => n.min(histograms.len()),
    };
    write_histograms(&mut out, &histograms[..shown])?;
    out.flush().context("cannot write to stdout")?;
    if shown < histograms.len() {
        eprintln!(
            "({shown} of {} fingerprints shown, most calls first; --top 0 shows all)",
            histograms.len()
        );
    }
    Ok(())
}

/// One histogram: all statements (`None`) or those of one fingerprint.
#[derive(Debug, PartialEq)]
pub struct Histogram {
    pub fingerprint: Option<String>,
    pub hist: Log2Hist,
}

/// The histograms to draw, most calls first; empty when no statement counts.
pub async fn compute(ctx: &SessionContext, args: &HistArgs) -> Result<Vec<Histogram>> {
    if let Some(predicate) = &args.where_ {
        restrict_queries(ctx, predicate).await?;
    }
    let of = match &args.where_ {
        Some(w) => format!(" of the statements matching --where {w:?}"),
        None => String::new(),
    };
    match args.by {
        None => {
            let what = format!("latency histogram{of}");
            let batches = collect(ctx, queries::LATENCY_HISTOGRAM, &what).await?;
            let mut hist = Log2Hist::default();
            for batch in &batches {
                let lows = int64(batch, "usecs_from")?;
                let counts = int64(batch, "count")?;
                for (low, count) in lows.iter().zip(counts.iter()) {
                    hist.add(low.unwrap_or(0), count_of(count));
                }
            }
            Ok(if hist.total() == 0 {
                Vec::new()
            } else {
                vec![Histogram {
                    fingerprint: None,
                    hist,
                }]
            })
        }
        Some(By::Fingerprint) => {
            let sql = queries::LATENCY_HISTOGRAM_BY_FINGERPRINT;
            let what = format!("latency histograms by fingerprint{of}");
            let batches = collect(ctx, sql, &what).await?;
            let mut out: Vec<Histogram> = Vec::new();
            for batch in &batches {
                let fingerprints = batch
                    .column_by_name("fingerprint")
                    .ok_or_else(|| anyhow!("no column fingerprint in the histogram query"))?
                    .as_string::<i32>();
                let lows = int64(batch, "usecs_from")?;
                let counts = int64(batch, "count")?;
                for row in 0..batch.num_rows() {
                    let fp = fingerprints
                        .is_valid(row)
                        .then(|| fingerprints.value(row).to_string());
                    // Rows come grouped by fingerprint, most calls first.
                    let fingerprint = Some(fp.unwrap_or_else(|| "NULL".to_string()));
                    if out.last().is_none_or(|h| h.fingerprint != fingerprint) {
                        out.push(Histogram {
                            fingerprint,
                            hist: Log2Hist::default(),
                        });
                    }
                    if let Some(h) = out.last_mut() {
                        let low = lows.is_valid(row).then(|| lows.value(row));
                        let count = counts.is_valid(row).then(|| counts.value(row));
                        h.hist.add(low.unwrap_or(0), count_of(count));
                    }
                }
            }
            Ok(out)
        }
    }
}

fn int64<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a arrow::array::PrimitiveArray<Int64Type>> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| anyhow!("no column {name} in the histogram query"))?;
    column
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| anyhow!("column {name} of the histogram query is not Int64"))
}

fn count_of(count: Option<i64>) -> u64 {
    count.and_then(|c| u64::try_from(c).ok()).unwrap_or(0)
}

/// Writes each histogram, those of fingerprints headed `fingerprint = TEXT`
/// as bcc heads per-key histograms, separated by blank lines.
pub fn write_histograms(out: &mut impl Write, histograms: &[Histogram]) -> Result<()> {
    for (i, h) in histograms.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        if let Some(fp) = &h.fingerprint {
            writeln!(out, "fingerprint = {fp}")?;
        }
        h.hist.write(out, "usecs")?;
    }
    Ok(())
}
