//! What every picture shares: the bundled font, colours, the legend, layer-wise log charts and
//! colour maps. Depends on plotters only; never on wgpu or models.

use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

const FONT_BYTES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/fonts/DejaVuSans.ttf"
));
pub(super) const FONT: &str = "sans-serif";
pub(super) const SIZE: (u32, u32) = (960, 560);

pub(super) const C_TOP1: RGBColor = RGBColor(214, 39, 40);
pub(super) const C_TOP2: RGBColor = RGBColor(255, 127, 14);
pub(super) const C_TOP3: RGBColor = RGBColor(188, 189, 34);
pub(super) const C_MED: RGBColor = RGBColor(31, 119, 180);
pub(super) const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Register the bundled font with plotters (once per process).
pub fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err() {
            eprintln!(
                "warning: the bundled font could not be registered; plot text will be missing"
            );
        }
    });
}

pub(super) fn pe<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}

/// The series legend every chart draws, in one style.
pub(super) fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(pe)
}

/// One line of a layer-wise chart: a value per layer (`None` = not captured, leaves a gap).
pub struct Line {
    pub label: String,
    pub color: RGBColor,
    pub values: Vec<Option<f32>>,
    pub dashed: bool,
}

fn log_bounds(lines: &[Line]) -> (f32, f32) {
    let vals = lines
        .iter()
        .flat_map(|l| l.values.iter().flatten().copied());
    let pos: Vec<f32> = vals.filter(|v| *v > 0.0 && v.is_finite()).collect();
    let lo = pos.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = pos.iter().copied().fold(0f32, f32::max);
    if pos.is_empty() {
        (0.1, 10.0)
    } else if hi / lo < 10.0 {
        (lo / 3.0, hi * 3.0)
    } else {
        (lo / 2.0, hi * 2.0)
    }
}

/// Layer-wise lines on a log y axis.
pub(super) fn lines_log<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    lines: &[Line],
) -> Result<()> {
    let n = lines
        .iter()
        .map(|l| l.values.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let (lo, hi) = log_bounds(lines);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f32..(n as f32 - 0.5), (lo..hi).log_scale())
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc("layer")
        .y_desc(y_desc)
        .x_labels(n.min(33))
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-3 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format_sci(*y))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(pe)?;
    for line in lines {
        let color = line.color;
        let pts: Vec<(f32, f32)> = line
            .values
            .iter()
            .enumerate()
            .filter_map(|(l, v)| v.map(|v| (l as f32, v.max(lo))))
            .collect();
        // Line segments over consecutive layers.
        let mut seg: Vec<(f32, f32)> = Vec::new();
        let mut segs = Vec::new();
        for (l, v) in line.values.iter().enumerate() {
            match v {
                Some(v) => seg.push((l as f32, v.max(lo))),
                None => segs.push(std::mem::take(&mut seg)),
            }
        }
        segs.push(seg);
        for s in segs.into_iter().filter(|s| s.len() > 1) {
            if line.dashed {
                chart
                    .draw_series(DashedLineSeries::new(s, 6, 4, color.stroke_width(2)))
                    .map_err(pe)?;
            } else {
                chart
                    .draw_series(LineSeries::new(s, color.stroke_width(2)))
                    .map_err(pe)?;
            }
        }
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(pe)?
            .label(line.label.clone())
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (20, 0)], color.stroke_width(2))
                    + Circle::new((10, 0), 3, color.filled())
            });
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

pub(super) fn format_sci(y: f32) -> String {
    let a = y.abs();
    if y == 0.0 {
        "0".into()
    } else if (100.0..100_000.0).contains(&a) {
        format!("{y:.0}")
    } else if (0.01..100.0).contains(&a) {
        let s = format!("{y:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{y:.0e}")
    }
}

/// Sequential colour map (dark purple → orange → light yellow) for t in `[0, 1]`.
pub(super) fn heat(t: f32) -> RGBColor {
    const STOPS: [(f32, [f32; 3]); 5] = [
        (0.0, [0.0015, 0.0005, 0.0139]),
        (0.25, [0.2582, 0.0386, 0.4065]),
        (0.5, [0.5783, 0.1480, 0.4044]),
        (0.75, [0.9315, 0.4109, 0.1453]),
        (1.0, [0.9884, 0.9984, 0.6449]),
    ];
    interp(&STOPS, t)
}

/// White → dark blue, for probabilities.
pub(super) fn blues(t: f32) -> RGBColor {
    const STOPS: [(f32, [f32; 3]); 3] = [
        (0.0, [0.969, 0.984, 1.0]),
        (0.5, [0.420, 0.682, 0.839]),
        (1.0, [0.031, 0.188, 0.420]),
    ];
    interp(&STOPS, t)
}

fn interp(stops: &[(f32, [f32; 3])], t: f32) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let i = stops
        .iter()
        .rposition(|s| s.0 <= t)
        .unwrap_or(0)
        .min(stops.len() - 2);
    let (a, b) = (stops[i], stops[i + 1]);
    let u = ((t - a.0) / (b.0 - a.0)).clamp(0.0, 1.0);
    let c = |k: usize| ((a.1[k] + u * (b.1[k] - a.1[k])) * 255.0).round() as u8;
    RGBColor(c(0), c(1), c(2))
}
