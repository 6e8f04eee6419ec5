//! The SVG charts of the HTML report, drawn with plotters' SVG backend:
//! the latency histogram (vertical bars per power-of-two bucket), the top
//! statements by total time and on/off-CPU time per fingerprint
//! (horizontal bars, stacked for CPU). Text stays `<text>` in the SVG, so
//! the browser's fonts draw it: no font files are needed.

use anyhow::{Result, anyhow};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::{Grid, clip};

const WIDTH: u32 = 900;
const ON_CPU: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);
const OFF_CPU: RGBColor = RGBColor(0xe0, 0x8a, 0x2c);
const BAR: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);

/// The label of a category on a segmented axis.
fn category(labels: &[String], v: &SegmentValue<usize>) -> String {
    match v {
        SegmentValue::Exact(i) | SegmentValue::CenterOf(i) => {
            labels.get(*i).cloned().unwrap_or_default()
        }
        SegmentValue::Last => String::new(),
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw a chart: {e:?}")
}

/// `1us`, `512us`, `1ms`, `2s`: a power-of-two bucket's lower bound in microseconds.
fn usecs_label(us: i64) -> String {
    match us {
        0..1_000 => format!("{us}us"),
        1_000..1_000_000 => format!("{}ms", trim(us as f64 / 1e3)),
        _ => format!("{}s", trim(us as f64 / 1e6)),
    }
}

fn trim(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}").trim_end_matches(".0").to_string()
    }
}

/// Vertical bars of the latency histogram's rows (`usecs_from`, `count`),
/// empty buckets between the first and last included.
pub fn latency_histogram(grid: &Grid) -> Result<String> {
    let mut counts: Vec<(i64, f64)> = (0..grid.rows.len())
        .map(|r| (grid.number(r, "usecs_from") as i64, grid.number(r, "count")))
        .collect();
    counts.sort_by_key(|c| c.0);
    let (Some(first), Some(last)) = (counts.first().map(|c| c.0), counts.last().map(|c| c.0))
    else {
        return Err(anyhow!("no rows to draw"));
    };
    let mut buckets = Vec::new();
    let mut low = first;
    loop {
        let n: f64 = counts.iter().filter(|c| c.0 == low).map(|c| c.1).sum();
        buckets.push((low, n));
        if low >= last {
            break;
        }
        low = if low == 0 { 2 } else { low * 2 };
    }
    let labels: Vec<String> = buckets.iter().map(|b| usecs_label(b.0)).collect();
    let values: Vec<f64> = buckets.iter().map(|b| b.1).collect();
    let max = values.iter().copied().fold(0.0, f64::max).max(1.0);
    let n = labels.len();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Statements per latency bucket", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n).into_segmented(), 0f64..max * 1.1)
            .map_err(plot_err)?;
        let label = |v: &SegmentValue<usize>| category(&labels, v);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(n)
            .x_label_formatter(&label)
            // Whole numbers of statements: one tick per count when there are few.
            .y_labels(((max * 1.1).ceil() as usize + 1).clamp(2, 11))
            .y_label_formatter(&|v| trim(*v))
            .x_desc("latency (bucket from)")
            .y_desc("statements")
            .draw()
            .map_err(plot_err)?;
        // One bar per call, as in horizontal_bars: the same file every run.
        for (i, v) in values.iter().enumerate() {
            chart
                .draw_series(
                    Histogram::vertical(&chart)
                        .style(BAR.filled())
                        .margin(3)
                        .data(std::iter::once((i, *v))),
                )
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// One bar per category, stacked when there are several series: each
/// series is (name, color, values) and bars read left to right.
fn horizontal_bars(
    title: &str,
    labels: &[String],
    series: &[(&str, RGBColor, Vec<f64>)],
    x_desc: &str,
) -> Result<String> {
    let n = labels.len();
    if n == 0 {
        return Err(anyhow!("no rows to draw"));
    }
    let totals: Vec<f64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|s| s.2.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max).max(1e-3);
    let height = 80 + 28 * n as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(330)
            .build_cartesian_2d(0f64..max * 1.05, (0..n).into_segmented())
            .map_err(plot_err)?;
        // Category 0 is drawn at the bottom: the first row goes in the last one.
        let top_down: Vec<String> = labels.iter().rev().cloned().collect();
        let label = |v: &SegmentValue<usize>| category(&top_down, v);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .y_labels(n)
            .y_label_formatter(&label)
            .x_desc(x_desc)
            .draw()
            .map_err(plot_err)?;
        let mut base = vec![0.0; n];
        for (name, color, values) in series {
            let start = base.clone();
            let ends: Vec<f64> = (0..n)
                .map(|i| start[i] + values.get(i).copied().unwrap_or(0.0))
                .collect();
            let color = *color;
            // One bar per call: a Histogram keeps its bars in a hash map, so
            // several in one call come out in another order each run (the
            // same picture, but the file would differ from run to run).
            let mut drawn = None;
            for (i, (&from, &to)) in start.iter().zip(&ends).enumerate() {
                drawn = Some(
                    chart
                        .draw_series(
                            Histogram::horizontal(&chart)
                                .style(color.filled())
                                .margin(4)
                                .baseline_func(move |_: &SegmentValue<usize>| from)
                                .data(std::iter::once((n - 1 - i, to))),
                        )
                        .map_err(plot_err)?,
                );
            }
            if let (Some(drawn), true) = (drawn, series.len() > 1) {
                drawn.label(*name).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
            }
            base = ends;
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// `#1 SELECT ...`: a rank and the start of the fingerprint.
fn ranked(grid: &Grid, rows: usize) -> Vec<String> {
    (0..rows)
        .map(|r| {
            format!(
                "#{} {}",
                r + 1,
                clip(grid.cell(r, "fingerprint").unwrap_or("NULL"), 48)
            )
        })
        .collect()
}

/// Total time of the top 10 fingerprints (`top_statements.sql`).
pub fn top_statements(grid: &Grid) -> Result<String> {
    let n = grid.rows.len().min(10);
    let totals = (0..n).map(|r| grid.number(r, "total_ms")).collect();
    horizontal_bars(
        "Top statements by total time",
        &ranked(grid, n),
        &[("total", BAR, totals)],
        "total time (ms)",
    )
}

/// On-CPU and off-CPU time of the top 10 fingerprints (`cpu_per_statement.sql`).
pub fn cpu(grid: &Grid) -> Result<String> {
    let n = grid.rows.len().min(10);
    let on = (0..n)
        .map(|r| grid.number(r, "on_cpu_ms").max(0.0))
        .collect();
    let off = (0..n).map(|r| grid.number(r, "off_cpu_ms")).collect();
    horizontal_bars(
        "On-CPU vs off-CPU time",
        &ranked(grid, n),
        &[("on CPU", ON_CPU, on), ("off CPU", OFF_CPU, off)],
        "time (ms)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(headers: &[&str], rows: &[&[&str]]) -> Grid {
        Grid {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            numeric: vec![false; headers.len()],
            rows: rows
                .iter()
                .map(|r| r.iter().map(|c| Some(c.to_string())).collect())
                .collect(),
        }
    }

    #[test]
    fn charts_are_svg_with_their_labels() {
        let h = grid(
            &["usecs_from", "usecs_to", "count"],
            &[&["0", "1", "3"], &["8", "15", "5"], &["1024", "2047", "1"]],
        );
        let svg = latency_histogram(&h).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        // 0, 2, 4, 8, ..., 1024: empty buckets between are drawn.
        assert!(svg.contains("\n4us\n") && svg.contains("\n1ms\n"), "{svg}");

        let cpu_grid = grid(
            &["fingerprint", "on_cpu_ms", "off_cpu_ms"],
            &[&["SELECT $1", "60", "40"], &["UPDATE t", "5", "0"]],
        );
        let svg = cpu(&cpu_grid).unwrap();
        assert!(
            svg.contains("#1 SELECT $1") && svg.contains("off CPU"),
            "{svg}"
        );
        assert!(svg.matches("<rect").count() >= 4, "{svg}");

        let top = grid(&["fingerprint", "total_ms"], &[&["SELECT <&>", "12.5"]]);
        let svg = top_statements(&top).unwrap();
        assert!(
            svg.contains("\n#1 SELECT &lt;&amp;&gt;\n"),
            "escaped: {svg}"
        );
        assert!(latency_histogram(&grid(&["usecs_from", "count"], &[])).is_err());
    }

    #[test]
    fn bucket_labels() {
        assert_eq!(usecs_label(0), "0us");
        assert_eq!(usecs_label(512), "512us");
        assert_eq!(usecs_label(1024), "1ms");
        assert_eq!(usecs_label(131072), "131ms");
        assert_eq!(usecs_label(2_097_152), "2.1s");
    }
}
