//! The report as GitHub-flavoured Markdown: a heading per section, tables
//! with `|` escaped, the histogram and plan trees in code blocks.

use std::io::Write;

use anyhow::Result;

use super::{CYCLES_HEADING, CYCLES_UNREPORTED, Grid, Report, clip, is_text_column};

/// Longest statement text in a cell.
const TEXT_WIDTH: usize = 80;

pub fn write(out: &mut impl Write, report: &Report) -> Result<()> {
    writeln!(out, "# dbflight report: `{}`\n", report.trace)?;
    for (item, value) in &report.recording {
        writeln!(out, "- **{item}**: {}", escape(value))?;
    }
    for section in &report.sections {
        writeln!(out)?;
        writeln!(out, "## {}\n", section.def.title)?;
        writeln!(
            out,
            "<sub>`dbflight sql TRACE -f queries/{}.sql`</sub>\n",
            section.def.id
        )?;
        let cycles = report.cycles_for(section);
        if !cycles.is_empty() {
            if section.is_empty() {
                writeln!(out, "{CYCLES_UNREPORTED}\n")?;
            } else {
                table(out, &section.grid)?;
                writeln!(out, "\n{CYCLES_HEADING}\n")?;
            }
            for c in cycles {
                writeln!(out, "- {}", escape(&c))?;
            }
            continue;
        }
        if section.is_empty() {
            writeln!(out, "_{}_", section.def.empty)?;
            continue;
        }
        match section.def.id {
            "latency_histogram" => {
                writeln!(out, "```text")?;
                super::text::histogram(section).write(out, "usecs")?;
                writeln!(out, "```")?;
            }
            "plan_shapes" => plans(out, &section.grid)?,
            _ => table(out, &section.grid)?,
        }
    }
    Ok(())
}

fn plans(out: &mut impl Write, grid: &Grid) -> Result<()> {
    for row in 0..grid.rows.len() {
        writeln!(
            out,
            "**#{}** `{}` ({} calls, mean {} ms)\n",
            grid.cell(row, "rank").unwrap_or("?"),
            clip(grid.cell(row, "fingerprint").unwrap_or("NULL"), 120).replace('`', "'"),
            grid.cell(row, "calls").unwrap_or("?"),
            grid.cell(row, "mean_ms").unwrap_or("?"),
        )?;
        writeln!(out, "```text")?;
        writeln!(out, "{}", grid.cell(row, "plan").unwrap_or(""))?;
        writeln!(out, "```\n")?;
    }
    Ok(())
}

pub fn table(out: &mut impl Write, grid: &Grid) -> Result<()> {
    writeln!(out, "| {} |", grid.headers.join(" | "))?;
    let aligns: Vec<&str> = grid
        .numeric
        .iter()
        .map(|n| if *n { "---:" } else { "---" })
        .collect();
    writeln!(out, "| {} |", aligns.join(" | "))?;
    for row in &grid.rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&grid.headers)
            .map(|(cell, name)| match cell {
                None => "NULL".to_string(),
                Some(v) if is_text_column(name) => escape(&clip(v, TEXT_WIDTH)),
                Some(v) => escape(v),
            })
            .collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
    }
    Ok(())
}

/// A cell on one line with the characters Markdown tables care about escaped.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_escape_pipes_and_align_numbers() {
        let grid = Grid {
            headers: vec!["query".into(), "n".into()],
            numeric: vec![false, true],
            rows: vec![vec![Some("SELECT a || b\nFROM t".into()), None]],
        };
        let mut out = Vec::new();
        table(&mut out, &grid).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "| query | n |\n| --- | ---: |\n| SELECT a \\|\\| b FROM t | NULL |\n"
        );
    }
}
