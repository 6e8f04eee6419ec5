//! `dbflight info TRACE`: what a trace holds, from the manifest and the
//! Parquet footers only (no data pages are read, so it is fast on any size).
//!
//! It answers the first questions of whoever receives a trace: which server,
//! when and for how long, was it closed cleanly, which probes took, what was
//! recorded and what was lost.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use arrow::array::TimestampNanosecondArray;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use comfy_table::{CellAlignment, ContentArrangement};
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use datafusion::parquet::file::statistics::Statistics;
use dbflight_format::reader::{TraceFile, TraceFiles};
use dbflight_format::{Manifest, Table};

use crate::cli::InfoArgs;
use crate::commands::open_traces;
use crate::output::{Stdout, TABLE_PRESET};

pub fn run(args: &InfoArgs) -> Result<()> {
    let traces = open_traces(&args.trace)?;
    let mut out = Stdout::new();
    for (i, trace) in traces.iter().enumerate() {
        let summary = Summary::read(trace)?;
        if i > 0 {
            writeln!(out)?;
        }
        write_info(&mut out, trace, &summary)?;
    }
    out.flush().context("cannot write to stdout")
}

/// What `info` learns beyond the manifest and file list: read from footers and directories.
#[derive(Debug, Default)]
pub struct Summary {
    /// First and last `ts` of the data, and where they come from.
    pub data_range: Option<(i64, i64, &'static str)>,
    /// `*.parquet.tmp` files: segments being written when the recorder stopped.
    pub unfinished_files: usize,
}

impl Summary {
    pub fn read(trace: &TraceFiles) -> Result<Self> {
        let files = |t: Table| trace.tables.get(&t).map_or(&[][..], Vec::as_slice);
        // The statements are what users look at; without any, every event table stands in.
        let data_range = match ts_range(Table::Queries, files(Table::Queries))? {
            Some((lo, hi)) => Some((lo, hi, "ts of queries")),
            None => {
                let mut range = None;
                for t in Table::ALL {
                    if t == Table::RecorderStats {
                        continue;
                    }
                    if let Some(r) = ts_range(t, files(t))? {
                        range = Some(merge(range, r));
                    }
                }
                range.map(|(lo, hi)| (lo, hi, "ts of all tables; no queries recorded"))
            }
        };
        Ok(Summary {
            data_range,
            unfinished_files: count_unfinished(&trace.dir),
        })
    }
}

fn merge(a: Option<(i64, i64)>, (lo, hi): (i64, i64)) -> (i64, i64) {
    a.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi)))
}

/// Smallest and largest `ts` of a table, from the column statistics in the footers.
fn ts_range(table: Table, files: &[TraceFile]) -> Result<Option<(i64, i64)>> {
    let mut range: Option<(i64, i64)> = None;
    for f in files {
        let file =
            File::open(&f.path).with_context(|| format!("cannot open {}", f.path.display()))?;
        let reader = SerializedFileReader::new(file).with_context(|| {
            format!(
                "{} is not a valid Parquet file of table {table}",
                f.path.display()
            )
        })?;
        for rg in reader.metadata().row_groups() {
            let Some(Statistics::Int64(s)) = rg.column(0).statistics() else {
                continue;
            };
            if let (Some(&lo), Some(&hi)) = (s.min_opt(), s.max_opt()) {
                range = Some(merge(range, (lo, hi)));
            }
        }
    }
    Ok(range)
}

fn count_unfinished(dir: &Path) -> usize {
    Table::ALL
        .iter()
        .filter_map(|t| std::fs::read_dir(dir.join(t.name())).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet.tmp"))
        .count()
}

/// Writes the whole report.
pub fn write_info(out: &mut impl Write, trace: &TraceFiles, summary: &Summary) -> Result<()> {
    let m = &trace.manifest;
    let field = |out: &mut dyn Write, name: &str, value: &str| writeln!(out, "{name:<11} {value}");

    field(out, "trace", &trace.dir.display().to_string())?;
    field(out, "target", &describe_target(m))?;
    let mut binary = m.target.binary.clone();
    if let Some(id) = &m.target.build_id {
        binary.push_str(&format!("  (build id {id})"));
    }
    field(out, "binary", or_unknown(&binary))?;
    field(out, "host", or_unknown(&m.host))?;
    field(out, "kernel", or_unknown(&m.kernel))?;
    field(
        out,
        "recorder",
        &format!(
            "dbflight {} (format {}, schema {})",
            m.dbflight_version, m.format_version, m.schema_version
        ),
    )?;

    // An incomplete trace has no end time: its last closed segment is where the data stops.
    let last_segment_end = m.segments.iter().map(|s| s.end_ts_ns).max();
    field(out, "started", &fmt_utc(m.started_at_ns))?;
    match (m.ended_at_ns, last_segment_end) {
        (Some(end), _) => {
            field(out, "ended", &fmt_utc(end))?;
            field(out, "duration", &fmt_duration(end - m.started_at_ns))?;
        }
        (None, Some(end)) => {
            field(
                out,
                "ended",
                &format!("unknown; last closed segment ends {}", fmt_utc(end)),
            )?;
            field(
                out,
                "duration",
                &format!("at least {}", fmt_duration(end - m.started_at_ns)),
            )?;
        }
        (None, None) => field(out, "ended", "unknown; no segment was closed")?,
    }
    if m.complete {
        field(out, "complete", "yes")?;
    } else {
        field(
            out,
            "complete",
            "NO: the recording was cut short (recorder killed, host crashed, or still \
             running); closed segments are readable, events after the last one are missing",
        )?;
    }
    field(out, "segments", &m.segments.len().to_string())?;
    if summary.unfinished_files > 0 {
        field(
            out,
            "unfinished",
            &format!(
                "{} *.parquet.tmp file(s) of a segment that was never closed: ignored",
                summary.unfinished_files
            ),
        )?;
    }
    match summary.data_range {
        Some((lo, hi, source)) => field(
            out,
            "data",
            &format!(
                "{} .. {}  ({}, {source})",
                fmt_utc(lo),
                fmt_utc(hi),
                fmt_duration(hi - lo)
            ),
        )?,
        None => field(out, "data", "no events")?,
    }
    let events = if m.options.events.is_empty() {
        "(not recorded)".to_string()
    } else {
        m.options.events.join(",")
    };
    field(
        out,
        "options",
        &format!(
            "events {events}; max query length {} bytes; literals redacted: {}",
            m.options.max_query_len,
            if m.options.redact_literals {
                "yes"
            } else {
                "no"
            }
        ),
    )?;
    if let Some(r) = &m.redaction {
        field(out, "redaction", r)?;
    }

    writeln!(out, "\nprobes")?;
    if m.probes.is_empty() {
        writeln!(out, "  (none recorded in the manifest)")?;
    }
    let kind_width = m.probes.keys().map(|k| k.len()).max().unwrap_or(0);
    for (kind, p) in &m.probes {
        match &p.mode {
            Some(mode) => writeln!(
                out,
                "  {kind:<kind_width$}  {}  mode {mode}: {}",
                p.strategy, p.detail
            )?,
            None => writeln!(out, "  {kind:<kind_width$}  {}  {}", p.strategy, p.detail)?,
        }
        for r in &p.refused {
            writeln!(out, "  {:<kind_width$}  refused: {r}", "")?;
        }
    }

    writeln!(out)?;
    writeln!(out, "{}", tables_table(trace))?;
    let dropped: u64 = m.events.values().map(|c| c.dropped).sum();
    if dropped > 0 {
        writeln!(
            out,
            "warning: {dropped} events were dropped (the recorder could not keep up): counts \
             are lower bounds; recorder_stats shows in which segments"
        )?;
    }
    Ok(())
}

fn tables_table(trace: &TraceFiles) -> comfy_table::Table {
    let m = &trace.manifest;
    let mut t = comfy_table::Table::new();
    t.load_preset(TABLE_PRESET)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(["table", "rows", "files", "on disk", "dropped"]);
    let (mut rows, mut files, mut bytes, mut dropped) = (0u64, 0usize, 0u64, 0u64);
    for table in Table::ALL {
        let n_files = trace.tables.get(&table).map_or(0, Vec::len);
        let d = m.events.get(table.name()).map(|c| c.dropped);
        t.add_row([
            table.name().to_string(),
            trace.rows(table).to_string(),
            n_files.to_string(),
            fmt_bytes(trace.bytes(table)),
            d.map_or_else(|| "-".to_string(), |d| d.to_string()),
        ]);
        rows += trace.rows(table);
        files += n_files;
        bytes += trace.bytes(table);
        dropped += d.unwrap_or(0);
    }
    t.add_row([
        "total".to_string(),
        rows.to_string(),
        files.to_string(),
        fmt_bytes(bytes),
        dropped.to_string(),
    ]);
    for i in 1..5 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

fn describe_target(m: &Manifest) -> String {
    let t = &m.target;
    let mut s = or_unknown(&t.kind).to_string();
    if let Some(v) = &t.version {
        s.push(' ');
        s.push_str(v);
    }
    if t.pid > 0 {
        s.push_str(&format!(", pid {}", t.pid));
    }
    s
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "(unknown)" } else { s }
}

/// `2025-11-22 02:29:00.123 UTC`.
pub fn fmt_utc(ns: i64) -> String {
    let a = TimestampNanosecondArray::from(vec![ns]).with_timezone("UTC");
    let options = FormatOptions::new().with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.3f UTC"));
    ArrayFormatter::try_new(&a, &options)
        .map(|f| f.value(0).to_string())
        .unwrap_or_else(|_| format!("{ns} ns since the epoch"))
}

/// A duration the way people say it: `850ms`, `12.3s`, `4m 05s`, `2h 03m`, `3d 04h`.
pub fn fmt_duration(ns: i64) -> String {
    if ns < 0 {
        return format!("-{}", fmt_duration(ns.saturating_neg()));
    }
    const US: i64 = 1_000;
    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;
    match ns {
        0..US => format!("{ns}ns"),
        US..MS => format!("{:.1}us", ns as f64 / US as f64),
        MS..S => format!("{:.1}ms", ns as f64 / MS as f64),
        _ if ns < 60 * S => format!("{:.1}s", ns as f64 / S as f64),
        _ => {
            let secs = ns / S;
            let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
            if d > 0 {
                format!("{d}d {h:02}h")
            } else if h > 0 {
                format!("{h}h {m:02}m")
            } else {
                format!("{m}m {s:02}s")
            }
        }
    }
}

/// Bytes in binary units: `512 B`, `4.0 KiB`, `1.5 MiB`.
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            (0, "0ns"),
            (999, "999ns"),
            (1_500, "1.5us"),
            (850_000_000, "850.0ms"),
            (12_340_000_000, "12.3s"),
            (245_000_000_000, "4m 05s"),
            (3_600_000_000_000 * 2 + 180_000_000_000, "2h 03m"),
            (86_400_000_000_000 * 3 + 3_600_000_000_000 * 4, "3d 04h"),
            (-1_500, "-1.5us"),
        ];
        for (ns, want) in cases {
            assert_eq!(fmt_duration(ns), want, "{ns}");
        }
    }

    #[test]
    fn bytes() {
        let cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (5 * 1024 * 1024, "5.0 MiB"),
            (3 << 40, "3.0 TiB"),
        ];
        for (n, want) in cases {
            assert_eq!(fmt_bytes(n), want, "{n}");
        }
    }

    #[test]
    fn utc_times() {
        assert_eq!(fmt_utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(
            fmt_utc(1_763_778_540_123_456_789),
            "2025-11-22 02:29:00.123 UTC"
        );
    }
}
