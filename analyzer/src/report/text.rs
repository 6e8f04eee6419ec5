//! The report as plain text for a terminal: each section a heading, the
//! file it comes from, and an aligned ASCII table (the latency histogram
//! drawn as bcc draws it, plan shapes as indented trees).

use std::io::Write;

use anyhow::Result;
use comfy_table::{CellAlignment, ContentArrangement};

use super::{CYCLES_HEADING, CYCLES_UNREPORTED, Grid, Report, Section, clip, is_text_column};
use crate::histogram::Log2Hist;
use crate::output::TABLE_PRESET;

/// Longest statement text in a cell.
const TEXT_WIDTH: usize = 60;

pub fn write(out: &mut impl Write, report: &Report) -> Result<()> {
    writeln!(out, "dbflight report: {}", report.trace)?;
    for (item, value) in &report.recording {
        writeln!(out, "  {item:<10} {value}")?;
    }
    for section in &report.sections {
        writeln!(out)?;
        let heading = format!("{} (queries/{}.sql)", section.def.title, section.def.id);
        writeln!(out, "{heading}")?;
        writeln!(out, "{}", "=".repeat(heading.chars().count()))?;
        let cycles = report.cycles_for(section);
        if !cycles.is_empty() {
            if section.is_empty() {
                writeln!(out, "{CYCLES_UNREPORTED}")?;
            } else {
                writeln!(out, "{}", table(&section.grid, TEXT_WIDTH))?;
                writeln!(out, "{CYCLES_HEADING}")?;
            }
            for c in cycles {
                writeln!(out, "  {c}")?;
            }
            continue;
        }
        if section.is_empty() {
            writeln!(out, "{}", section.def.empty)?;
            continue;
        }
        match section.def.id {
            "latency_histogram" => histogram(section).write(out, "usecs")?,
            "plan_shapes" => plans(out, &section.grid)?,
            _ => writeln!(out, "{}", table(&section.grid, TEXT_WIDTH))?,
        }
    }
    Ok(())
}

/// The bcc-style histogram of the latency section's rows.
pub fn histogram(section: &Section) -> Log2Hist {
    let mut h = Log2Hist::default();
    for row in 0..section.grid.rows.len() {
        let low = section.grid.number(row, "usecs_from") as i64;
        let count = section.grid.number(row, "count") as u64;
        h.add(low, count);
    }
    h
}

/// Each plan shape under its fingerprint, the tree indented.
pub fn plans(out: &mut impl Write, grid: &Grid) -> Result<()> {
    for row in 0..grid.rows.len() {
        writeln!(
            out,
            "#{} {}  ({} calls, mean {} ms)",
            grid.cell(row, "rank").unwrap_or("?"),
            clip(grid.cell(row, "fingerprint").unwrap_or("NULL"), 100),
            grid.cell(row, "calls").unwrap_or("?"),
            grid.cell(row, "mean_ms").unwrap_or("?"),
        )?;
        for line in grid.cell(row, "plan").unwrap_or("").lines() {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}

/// An aligned ASCII table; free-text columns cut to `width` characters.
pub fn table(grid: &Grid, width: usize) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(TABLE_PRESET)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(&grid.headers);
    for row in &grid.rows {
        t.add_row(
            row.iter()
                .zip(&grid.headers)
                .map(|(cell, name)| match cell {
                    None => "NULL".to_string(),
                    Some(v) if is_text_column(name) => clip(v, width),
                    Some(v) => v.clone(),
                }),
        );
    }
    for (i, numeric) in grid.numeric.iter().enumerate() {
        if *numeric && let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}
