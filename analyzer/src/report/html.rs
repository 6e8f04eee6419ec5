//! The report as one self-contained HTML file: inline CSS, inline SVG
//! charts (see [`super::charts`]) and the lock wait-for graph (SVG rendered
//! by Graphviz, or its DOT text). Nothing is loaded from the network.

use std::io::Write;

use anyhow::Result;

use super::{
    CYCLES_HEADING, CYCLES_UNREPORTED, Grid, LockPicture, Report, Section, charts, clip,
    is_text_column,
};

/// Longest statement text in a cell; the whole text is in its tooltip.
const TEXT_WIDTH: usize = 120;

const STYLE: &str = "
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .5em; vertical-align: top; text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.null { color: #999; }
.src { color: #777; font-size: .85em; font-family: monospace; }
.empty { color: #777; font-style: italic; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: .85em; }
.chart svg, .graph svg { max-width: 100%; height: auto; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: bold; } dd { margin: 0; }
";

pub fn write(out: &mut impl Write, report: &Report, locks: Option<&LockPicture>) -> Result<()> {
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, "<html lang=\"en\"><head><meta charset=\"utf-8\">")?;
    writeln!(
        out,
        "<title>dbflight report: {}</title>",
        escape(&report.trace)
    )?;
    writeln!(out, "<style>{STYLE}</style></head><body>")?;
    writeln!(
        out,
        "<h1>dbflight report: <code>{}</code></h1>",
        escape(&report.trace)
    )?;
    writeln!(out, "<dl>")?;
    for (item, value) in &report.recording {
        writeln!(out, "<dt>{}</dt><dd>{}</dd>", escape(item), escape(value))?;
    }
    writeln!(out, "</dl>")?;
    write!(out, "<nav>")?;
    for s in &report.sections {
        write!(out, "<a href=\"#{}\">{}</a>", s.def.id, escape(s.def.title))?;
    }
    writeln!(out, "</nav>")?;
    for section in &report.sections {
        writeln!(
            out,
            "<section id=\"{}\"><h2>{}</h2>",
            section.def.id,
            escape(section.def.title)
        )?;
        writeln!(
            out,
            "<div class=\"src\">dbflight sql TRACE -f queries/{}.sql</div>",
            section.def.id
        )?;
        let cycles = report.cycles_for(section);
        if section.is_empty() && cycles.is_empty() {
            writeln!(out, "<p class=\"empty\">{}</p>", escape(section.def.empty))?;
        } else if !section.is_empty() {
            body(out, section)?;
        }
        if !cycles.is_empty() {
            let heading = if section.is_empty() {
                CYCLES_UNREPORTED
            } else {
                CYCLES_HEADING
            };
            writeln!(out, "<p>{}</p><ul>", escape(heading))?;
            for c in cycles {
                writeln!(out, "<li>{}</li>", escape(&c))?;
            }
            writeln!(out, "</ul>")?;
        }
        // The graph also shows deadlocks reported without recorded waits.
        if section.def.id == "lock_waits" && !report.lock_graph.is_empty() {
            lock_picture(out, locks)?;
        }
        writeln!(out, "</section>")?;
    }
    writeln!(
        out,
        "<footer class=\"src\"><p>Written by dbflight {}.</p></footer>",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(out, "</body></html>")?;
    Ok(())
}

fn body(out: &mut impl Write, section: &Section) -> Result<()> {
    let chart = match section.def.id {
        "latency_histogram" => Some(charts::latency_histogram(&section.grid)),
        "top_statements" => Some(charts::top_statements(&section.grid)),
        "cpu_per_statement" => Some(charts::cpu(&section.grid)),
        _ => None,
    };
    match chart {
        Some(Ok(svg)) => writeln!(
            out,
            "<div class=\"chart\">{}</div>",
            strip_xml_declaration(&svg)
        )?,
        Some(Err(e)) => writeln!(out, "<p class=\"empty\">{}</p>", escape(&format!("{e:#}")))?,
        None => {}
    }
    if section.def.id == "plan_shapes" {
        return plans(out, &section.grid);
    }
    table(out, &section.grid)
}

fn lock_picture(out: &mut impl Write, locks: Option<&LockPicture>) -> Result<()> {
    match locks {
        Some(LockPicture::Svg(svg)) => {
            writeln!(out, "<h3>Wait-for graph</h3>")?;
            writeln!(
                out,
                "<div class=\"graph\">{}</div>",
                strip_xml_declaration(svg)
            )?;
        }
        Some(LockPicture::Dot { dot, why }) => {
            writeln!(out, "<h3>Wait-for graph</h3>")?;
            writeln!(
                out,
                "<p>{}: render this with <code>dot -Tsvg</code>.</p>",
                escape(why)
            )?;
            writeln!(out, "<pre>{}</pre>", escape(dot))?;
        }
        None => {}
    }
    Ok(())
}

fn plans(out: &mut impl Write, grid: &Grid) -> Result<()> {
    for row in 0..grid.rows.len() {
        writeln!(
            out,
            "<h3>#{} <code>{}</code></h3><p>{} calls, mean {} ms</p>",
            escape(grid.cell(row, "rank").unwrap_or("?")),
            escape(&clip(grid.cell(row, "fingerprint").unwrap_or("NULL"), 200)),
            escape(grid.cell(row, "calls").unwrap_or("?")),
            escape(grid.cell(row, "mean_ms").unwrap_or("?")),
        )?;
        writeln!(
            out,
            "<pre>{}</pre>",
            escape(grid.cell(row, "plan").unwrap_or(""))
        )?;
    }
    Ok(())
}

fn table(out: &mut impl Write, grid: &Grid) -> Result<()> {
    writeln!(out, "<table><thead><tr>")?;
    for h in &grid.headers {
        write!(out, "<th>{}</th>", escape(h))?;
    }
    writeln!(out, "</tr></thead><tbody>")?;
    for row in &grid.rows {
        write!(out, "<tr>")?;
        for ((cell, name), numeric) in row.iter().zip(&grid.headers).zip(&grid.numeric) {
            match cell {
                None => write!(out, "<td class=\"null\">NULL</td>")?,
                Some(v) if is_text_column(name) => write!(
                    out,
                    "<td title=\"{}\">{}</td>",
                    escape(v),
                    escape(&clip(v, TEXT_WIDTH))
                )?,
                Some(v) if *numeric => write!(out, "<td class=\"num\">{}</td>", escape(v))?,
                Some(v) => write!(out, "<td>{}</td>", escape(v))?,
            }
        }
        writeln!(out, "</tr>")?;
    }
    writeln!(out, "</tbody></table>")?;
    Ok(())
}

/// An SVG document's `<svg>` element alone, for inlining into HTML.
fn strip_xml_declaration(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

/// Text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_strips() {
        assert_eq!(
            escape("a<b & 'c' \"d\">"),
            "a&lt;b &amp; &#39;c&#39; &quot;d&quot;&gt;"
        );
        assert_eq!(
            strip_xml_declaration("<?xml version=\"1.0\"?>\n<!DOCTYPE svg>\n<svg x=\"1\"/>"),
            "<svg x=\"1\"/>"
        );
    }
}
