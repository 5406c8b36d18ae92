//! `chart`: one scenario's open-loop latency against the offered rate, as an SVG drawn with
//! plotters, for docs/benchmarks.md: p50 and p99 per database, the p99 target as a horizontal
//! line and the scenario's SQL floor as a vertical one, so a regression is seen at a glance.
//!
//! xtask (which uses the standard library only) writes the points it read from the load
//! generator's `result` lines into a small text file; this draws it.

use std::path::Path;

use plotters::prelude::*;

/// One measured point: the offered rate and its latencies.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The database, as the legend names it.
    pub series: String,
    /// Operations per second offered (open loop).
    pub rate: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
}

/// Parses `series rate p50_ms p99_ms` lines (blank lines and `#` comments skipped).
pub fn parse_points(text: &str) -> Result<Vec<Point>, String> {
    let mut points = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let parsed = match fields.as_slice() {
            [series, rate, p50, p99] => (|| {
                Some(Point {
                    series: (*series).to_owned(),
                    rate: rate.parse().ok()?,
                    p50_ms: p50.parse().ok()?,
                    p99_ms: p99.parse().ok()?,
                })
            })(),
            _ => None,
        };
        let point = parsed.ok_or_else(|| {
            format!(
                "line {}: {line:?} is not `series rate p50_ms p99_ms`",
                number + 1
            )
        })?;
        points.push(point);
    }
    Ok(points)
}

/// What to draw besides the points.
#[derive(Debug, Clone)]
pub struct Marks {
    /// The chart's title.
    pub title: String,
    /// The SQL floor's throughput, a vertical line, when measured.
    pub floor: Option<f64>,
    /// The p99 target in milliseconds, a horizontal line.
    pub target_ms: f64,
}

/// Colours by series, in the order they first appear.
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Draws `points` into an SVG file at `out`.
pub fn draw(points: &[Point], marks: &Marks, out: &Path) -> Result<(), String> {
    let latencies = points.iter().flat_map(|p| [p.p50_ms, p.p99_ms]);
    let y_max = latencies
        .chain([marks.target_ms])
        .fold(1.0f64, f64::max)
        .max(1.0)
        * 2.0;
    let y_min = points
        .iter()
        .map(|p| p.p50_ms)
        .filter(|v| *v > 0.0)
        .fold(marks.target_ms, f64::min)
        .min(1.0)
        / 2.0;
    let x_max = points
        .iter()
        .map(|p| p.rate)
        .chain(marks.floor)
        .fold(1.0f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(out, (800, 480)).into_drawing_area();
    let failed = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", out.display());
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&marks.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc("offered rate (operations/s, open loop)")
        .y_desc("latency (ms, log scale)")
        .draw()
        .map_err(|e| failed(&e))?;

    let mut names: Vec<&str> = Vec::new();
    for p in points {
        if !names.contains(&p.series.as_str()) {
            names.push(&p.series);
        }
    }
    for (i, name) in names.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut series: Vec<&Point> = points.iter().filter(|p| p.series == *name).collect();
        series.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let p50: Vec<(f64, f64)> = series
            .iter()
            .map(|p| (p.rate, p.p50_ms.max(y_min)))
            .collect();
        let p99: Vec<(f64, f64)> = series
            .iter()
            .map(|p| (p.rate, p.p99_ms.max(y_min)))
            .collect();
        chart
            .draw_series(LineSeries::new(p50.clone(), colour.stroke_width(2)))
            .map_err(|e| failed(&e))?
            .label(format!("{name} p50"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(DashedLineSeries::new(
                p99.clone(),
                6,
                4,
                colour.stroke_width(2),
            ))
            .map_err(|e| failed(&e))?
            .label(format!("{name} p99 (dashed)"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(1))
            });
        chart
            .draw_series(
                p50.iter()
                    .chain(p99.iter())
                    .map(|&(x, y)| Circle::new((x, y), 3, colour.filled())),
            )
            .map_err(|e| failed(&e))?;
    }
    chart
        .draw_series(LineSeries::new(
            [(0.0, marks.target_ms), (x_max, marks.target_ms)],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| failed(&e))?
        .label(format!("target: p99 < {} ms", marks.target_ms))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    if let Some(floor) = marks.floor {
        chart
            .draw_series(LineSeries::new(
                [(floor, y_min), (floor, y_max)],
                RGBColor(120, 120, 120).stroke_width(2),
            ))
            .map_err(|e| failed(&e))?
            .label(format!("SQL floor: {floor:.0}/s"))
            .legend(|(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 20, y)],
                    RGBColor(120, 120, 120).stroke_width(2),
                )
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_and_bad_lines_are_named() {
        let points = parse_points("# header\nPostgreSQL 100 1.5 4.25\n\nSQLite 50.5 2 9\n")
            .expect("valid points");
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].series, "SQLite");
        assert_eq!(points[1].rate, 50.5);
        let error = parse_points("PostgreSQL 100 x 4\n").expect_err("refused");
        assert!(error.contains("line 1"), "{error}");
    }

    #[test]
    fn a_chart_is_an_svg_with_its_marks() {
        let points = parse_points("PostgreSQL 100 1.5 4\nPostgreSQL 400 3 30\nSQLite 100 2 6\n")
            .expect("valid points");
        let out = std::env::temp_dir().join(format!("chart-test-{}.svg", std::process::id()));
        let marks = Marks {
            title: "patient-by-id".into(),
            floor: Some(800.0),
            target_ms: 10.0,
        };
        draw(&points, &marks, &out).expect("drawn");
        let svg = std::fs::read_to_string(&out).expect("written");
        let _ = std::fs::remove_file(&out);
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for label in [
            "patient-by-id",
            "SQL floor: 800/s",
            "PostgreSQL p50",
            "SQLite p99",
        ] {
            assert!(svg.contains(label), "no {label:?} in the chart");
        }
    }
}
