//! The zoo's pictures: figures against the training step (one line per model and layer), and
//! factors per layer (the implicit scale of softmax heads beside the explicit one).
//! Depends on plotters and the shared chart helpers; never on wgpu, models or the zoo's code.

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::*;
use super::Line;

/// One line of a chart against the training step: `(step, value)` points, ascending steps.
#[derive(Clone, Debug)]
pub struct StepLine {
    pub label: String,
    /// Index into the shared palette.
    pub color: usize,
    pub dashed: bool,
    pub points: Vec<(u64, f32)>,
}

/// The palette colour `i` (wrapping), for [`Line`]s built outside this module.
pub fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn bounds(v: impl Iterator<Item = f32>, log: bool) -> (f32, f32) {
    let v: Vec<f32> = v.filter(|x| x.is_finite() && (!log || *x > 0.0)).collect();
    let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    match (v.is_empty(), log) {
        (true, true) => (0.1, 10.0),
        (true, false) => (0.0, 1.0),
        (false, true) => (lo / 1.5, hi * 1.5),
        (false, false) => (lo.min(0.0), hi * 1.08 + f32::EPSILON),
    }
}

/// A log axis label only at 1, 2 and 5 × 10^k: every log tick labelled runs together.
fn one_two_five(x: &f32) -> String {
    let m = (*x / 10f32.powf(x.log10().floor())).round();
    if [1.0, 2.0, 5.0].contains(&m) {
        format_sci(*x)
    } else {
        String::new()
    }
}

fn draw_steps<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    log_y: bool,
    lines: &[StepLine],
) -> Result<()> {
    // Log step axis from the first non-zero step (step 0, the initialisation, sits at its left edge).
    let smax = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(2) as f32;
    let smin = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .filter(|&s| s > 0)
        .min()
        .unwrap_or(1) as f32;
    let x0 = smin / 2.0;
    let xs = |s: u64| (s as f32).max(x0);
    let (lo, hi) = bounds(
        lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)),
        log_y,
    );
    let mut b = ChartBuilder::on(root);
    b.caption(title, (FONT, 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70);
    macro_rules! body {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("training step (log; the leftmost points are the initialisation)")
                .y_desc(y_desc)
                .x_label_formatter(&one_two_five)
                .y_label_formatter(&|y| {
                    if log_y {
                        one_two_five(y)
                    } else {
                        format_sci(*y)
                    }
                })
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 15))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(pe)?;
            for l in lines {
                let color = palette(l.color);
                let pts: Vec<(f32, f32)> = l
                    .points
                    .iter()
                    .filter(|p| p.1.is_finite() && (!log_y || p.1 > 0.0))
                    .map(|p| (xs(p.0), p.1))
                    .collect();
                if l.dashed {
                    chart
                        .draw_series(DashedLineSeries::new(
                            pts.clone(),
                            6,
                            4,
                            color.stroke_width(2),
                        ))
                        .map_err(pe)?;
                } else {
                    chart
                        .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                        .map_err(pe)?;
                }
                let dashed = l.dashed;
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(pe)?
                    .label(l.label.clone())
                    .legend(move |(x, y)| {
                        let w = if dashed { 8 } else { 20 };
                        EmptyElement::at((x, y))
                            + PathElement::new(vec![(0, 0), (w, 0)], color.stroke_width(2))
                            + Circle::new((10, 0), 3, color.filled())
                    });
            }
            legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }};
    }
    let xr = (x0 * 0.9..smax * 1.2).log_scale();
    if log_y {
        body!(b.build_cartesian_2d(xr, (lo..hi).log_scale()).map_err(pe)?);
    } else {
        body!(b.build_cartesian_2d(xr, lo..hi).map_err(pe)?);
    }
    Ok(())
}

/// Write `<name>.png` and `<name>.svg` into `dir`: `lines` against the training step (log axis),
/// the y axis logarithmic when `log_y`. Returns the two files.
///
/// # Errors
/// A file that cannot be written (plotters' error, named).
pub fn over_training(
    dir: &Path,
    name: &str,
    title: &str,
    y_desc: &str,
    log_y: bool,
    lines: &[StepLine],
) -> Result<Vec<PathBuf>> {
    ensure_font();
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    both!(files, dir, name, |root| draw_steps(
        &root, title, y_desc, log_y, lines
    ));
    Ok(files)
}

/// Write `<name>.png` and `<name>.svg` into `dir`: per-layer `lines` on a log y axis (the layer-wise
/// chart of the report). Returns the two files.
///
/// # Errors
/// A file that cannot be written.
pub fn per_layer(
    dir: &Path,
    name: &str,
    title: &str,
    y_desc: &str,
    lines: &[Line],
) -> Result<Vec<PathBuf>> {
    ensure_font();
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    both!(files, dir, name, |root| lines_log(
        &root, title, y_desc, lines
    ));
    Ok(files)
}
