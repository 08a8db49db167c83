//! Pictures of the report, each written as PNG and SVG with plotters. Text uses DejaVu Sans bundled
//! in `assets/fonts/` (registered with plotters' `ab_glyph` backend): no system font is needed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::Report;
use crate::analysis::activation::{activation_stats, ActivationRule};
use crate::analysis::attention::head_average;
use crate::analysis::tokens::{normalize_token, TokenClass};
use crate::analysis::{hook, SequenceAnalysis};
use crate::tensor::Tensor;

const FONT_BYTES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/fonts/DejaVuSans.ttf"
));
const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (960, 560);

const C_TOP1: RGBColor = RGBColor(214, 39, 40);
const C_TOP2: RGBColor = RGBColor(255, 127, 14);
const C_TOP3: RGBColor = RGBColor(188, 189, 34);
const C_MED: RGBColor = RGBColor(31, 119, 180);
const PALETTE: [RGBColor; 8] = [
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

fn pe<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}

/// The series legend every chart draws, in one style.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
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

/// Full tensors the pictures need beyond the report (the report keeps statistics only).
#[derive(Clone, Debug, Default)]
pub struct PlotInputs {
    /// |h| map of one layer: (layer, hook name, [T, C] tensor, token strings).
    pub magnitude: Option<MagnitudeMap>,
    /// Head-averaged attention of one layer.
    pub attention: Option<AttentionMap>,
}

#[derive(Clone, Debug)]
pub struct MagnitudeMap {
    pub layer: usize,
    pub hook: String,
    /// [T, C].
    pub tensor: Tensor,
    pub tokens: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct AttentionMap {
    pub layer: usize,
    /// Head-averaged probabilities [T, K].
    pub probs: Tensor,
    pub tokens: Vec<String>,
}

impl PlotInputs {
    /// Take the block output and the head-averaged pattern of `layer` from one sequence's captures
    /// (missing hooks leave the picture out).
    pub fn from_captures(
        captures: &std::collections::BTreeMap<String, Tensor>,
        tokens: &[String],
        layer: usize,
    ) -> Self {
        Self {
            magnitude: captures
                .get(&hook::resid_post(layer))
                .map(|t| MagnitudeMap {
                    layer,
                    hook: hook::resid_post(layer),
                    tensor: t.clone(),
                    tokens: tokens.to_vec(),
                }),
            attention: captures.get(&hook::pattern(layer)).map(|p| AttentionMap {
                layer,
                probs: head_average(p),
                tokens: tokens.to_vec(),
            }),
        }
    }

    /// The layer worth drawing: the peak layer of the block-output outliers of the first detailed
    /// sequence, else the first layer with an attention sink (excess rule), else the middle layer.
    pub fn choose_layer(report: &Report) -> usize {
        let seq = report.sequences.first();
        seq.and_then(|s| s.block_lifecycle.peak_layer)
            .or_else(|| {
                seq.and_then(|s| {
                    s.layers
                        .iter()
                        .find(|l| {
                            l.attention
                                .as_ref()
                                .is_some_and(|a| !a.sink_keys.is_empty())
                        })
                        .map(|l| l.layer)
                })
            })
            .unwrap_or(report.model.n_layer / 2)
    }
}

/// Draw one picture into both a PNG and an SVG file.
macro_rules! both {
    ($files:expr, $dir:expr, $name:expr, |$root:ident| $body:expr) => {{
        let png = $dir.join(format!("{}.png", $name));
        {
            let $root = BitMapBackend::new(&png, SIZE).into_drawing_area();
            $root.fill(&WHITE).map_err(pe)?;
            $body?;
            $root.present().map_err(pe)?;
        }
        $files.push(png);
        let svg = $dir.join(format!("{}.svg", $name));
        {
            let $root = SVGBackend::new(&svg, SIZE).into_drawing_area();
            $root.fill(&WHITE).map_err(pe)?;
            $body?;
            $root.present().map_err(pe)?;
        }
        $files.push(svg);
    }};
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
fn lines_log<DB: DrawingBackend>(
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

fn format_sci(y: f32) -> String {
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

fn activation_lines(seq: &SequenceAnalysis, mlp: bool) -> Vec<Line> {
    let series = if mlp {
        seq.mlp_series()
    } else {
        seq.block_series()
    };
    let mk = |label: &str, color, f: &dyn Fn(&crate::analysis::ActivationStats) -> f32| Line {
        label: label.into(),
        color,
        values: series.iter().map(|s| s.map(f)).collect(),
        dashed: false,
    };
    vec![
        mk("top-1 |h|", C_TOP1, &|s| s.top_n(0)),
        mk("top-2 |h|", C_TOP2, &|s| s.top_n(1)),
        mk("top-3 |h|", C_TOP3, &|s| s.top_n(2)),
        mk("median |h|", C_MED, &|s| s.median_abs),
    ]
}

/// Sequential colour map (dark purple → orange → light yellow) for t in [0, 1].
fn heat(t: f32) -> RGBColor {
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
fn blues(t: f32) -> RGBColor {
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

/// Max-pool a [R, C] matrix of non-negative values into at most `max_r × max_c` cells.
/// Returns (cells, rows per cell, cols per cell, cell rows, cell cols).
fn pool(
    values: &[f32],
    r: usize,
    c: usize,
    max_r: usize,
    max_c: usize,
) -> (Vec<f32>, usize, usize, usize, usize) {
    let wr = r.div_ceil(max_r.max(1)).max(1);
    let wc = c.div_ceil(max_c.max(1)).max(1);
    let (nr, nc) = (r.div_ceil(wr), c.div_ceil(wc));
    let mut out = vec![0f32; nr * nc];
    for i in 0..r {
        for j in 0..c {
            let v = values[i * c + j];
            let o = &mut out[(i / wr) * nc + j / wc];
            if v.is_finite() && v > *o {
                *o = v;
            }
        }
    }
    (out, wr, wc, nr, nc)
}

fn token_axis_label(tokens: &[String], y: f32) -> String {
    let k = y.round();
    if (y - k).abs() > 1e-3 || k < 0.0 {
        return String::new();
    }
    let k = k as usize;
    match tokens.get(k) {
        Some(t) if tokens.len() <= 40 => {
            let s: String = normalize_token(t)
                .escape_debug()
                .to_string()
                .chars()
                .take(12)
                .collect();
            format!("{k} \"{s}\"")
        }
        _ => k.to_string(),
    }
}

/// |h| heatmap (tokens × channels), log colour, outlier entries circled.
fn magnitude_map<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    m: &MagnitudeMap,
    rule: &ActivationRule,
) -> Result<()> {
    let t = m.tensor.shape[0];
    let c = m.tensor.numel() / t.max(1);
    let stats = activation_stats(&m.tensor, rule, 2);
    let abs: Vec<f32> = m.tensor.data.iter().map(|x| x.abs()).collect();
    let (cells, wr, wc, nr, nc) = pool(&abs, t, c, 96, 384);
    let lo = stats.median_abs.max(1e-6).log10() - 0.5;
    let hi = stats.top1().max(1e-6).log10().max(lo + 1e-3);
    let title = format!(
        "|h| at {} (log colour: {} … {})",
        m.hook,
        format_sci(10f32.powf(lo)),
        format_sci(10f32.powf(hi))
    );
    let tokens = m.tokens.clone();
    let fmt = move |y: &f32| token_axis_label(&tokens, *y);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(if t <= 40 { 140 } else { 60 })
        .build_cartesian_2d(-0.5f32..(c as f32 - 0.5), (t as f32 - 0.5)..-0.5f32)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("channel")
        .y_desc("token")
        .y_labels(t.min(40))
        .y_label_formatter(&fmt)
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(pe)?;
    chart
        .draw_series((0..nr).flat_map(|i| {
            let cells = &cells;
            (0..nc).map(move |j| {
                let v = cells[i * nc + j].max(1e-30).log10();
                let x0 = (j * wc) as f32 - 0.5;
                let y0 = (i * wr) as f32 - 0.5;
                Rectangle::new(
                    [(x0, y0), (x0 + wc as f32, y0 + wr as f32)],
                    heat((v - lo) / (hi - lo)).filled(),
                )
            })
        }))
        .map_err(pe)?;
    // Circle the outlier entries (at most 12) and name their channels.
    let mut marked: Vec<(usize, usize)> = Vec::new();
    for tok in 0..t {
        for ch in 0..c {
            if abs[tok * c + ch] > stats.threshold && marked.len() < 12 {
                marked.push((tok, ch));
            }
        }
    }
    let cyan = RGBColor(0, 220, 255);
    chart
        .draw_series(marked.iter().map(|&(tok, ch)| {
            EmptyElement::at((ch as f32, tok as f32))
                + Circle::new((0, 0), 9, cyan.stroke_width(2))
                + Text::new(
                    format!("ch {ch}"),
                    (12, -8),
                    (FONT, 14).into_font().color(&cyan),
                )
        }))
        .map_err(pe)?;
    Ok(())
}

/// Head-averaged attention (lower triangle), sqrt colour scale.
fn attention_map<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    a: &AttentionMap,
) -> Result<()> {
    let (t, k) = (a.probs.shape[0], a.probs.shape[1]);
    let (cells, wr, wc, nr, nc) = pool(&a.probs.data, t, k, 160, 160);
    let mx = cells.iter().copied().fold(0f32, f32::max).max(1e-12);
    let tokens = a.tokens.clone();
    let fmt = move |y: &f32| token_axis_label(&tokens, *y);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Head-averaged attention, layer {} (sqrt colour, max {:.2})",
                a.layer, mx
            ),
            (FONT, 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(if t <= 40 { 140 } else { 60 })
        .build_cartesian_2d(-0.5f32..(k as f32 - 0.5), (t as f32 - 0.5)..-0.5f32)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("key")
        .y_desc("query")
        .y_labels(t.min(40))
        .x_labels(k.min(40))
        .y_label_formatter(&fmt)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-3 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(pe)?;
    chart
        .draw_series((0..nr).flat_map(|i| {
            let cells = &cells;
            (0..nc).filter_map(move |j| {
                // Skip cells entirely above the diagonal (masked).
                let first_key = j * wc;
                let last_query = ((i + 1) * wr).min(t) - 1;
                if k == t && first_key > last_query {
                    return None;
                }
                let x0 = (j * wc) as f32 - 0.5;
                let y0 = (i * wr) as f32 - 0.5;
                Some(Rectangle::new(
                    [(x0, y0), (x0 + wc as f32, y0 + wr as f32)],
                    blues((cells[i * nc + j] / mx).sqrt()).filled(),
                ))
            })
        }))
        .map_err(pe)?;
    Ok(())
}

/// Per-layer per-head sink ratio: mean with min–max bars.
fn sink_ratios<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    seq: &SequenceAnalysis,
) -> Result<()> {
    let n = seq.layers.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption("Per-head sink ratio (mean, min–max over heads)", (FONT, 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f32..(n as f32 - 0.5), 0f32..1.05f32)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc("layer")
        .y_desc("share of the head's column mass on outlier keys")
        .x_labels(n.min(33))
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-3 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(pe)?;
    let pts: Vec<(f32, f32, f32, f32)> = seq
        .layers
        .iter()
        .filter_map(|l| {
            l.attention.as_ref().map(|a| {
                (
                    l.layer as f32,
                    a.sink_ratio_mean,
                    a.sink_ratio_min,
                    a.sink_ratio_max,
                )
            })
        })
        .collect();
    chart
        .draw_series(
            pts.iter().map(|&(x, _, lo, hi)| {
                PathElement::new(vec![(x, lo), (x, hi)], C_MED.stroke_width(2))
            }),
        )
        .map_err(pe)?;
    for &(x, _, lo, hi) in &pts {
        for y in [lo, hi] {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x - 0.15, y), (x + 0.15, y)],
                    C_MED.stroke_width(2),
                )))
                .map_err(pe)?;
        }
    }
    chart
        .draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.1)),
            C_TOP1.stroke_width(1),
        ))
        .map_err(pe)?;
    chart
        .draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.1), 5, C_TOP1.filled())),
        )
        .map_err(pe)?
        .label("mean over heads")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, C_TOP1.filled()));
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// Counts per token class: activation-outlier tokens and attention-outlier keys.
fn class_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Result<()> {
    let a = &r.corpus.outlier_token_classes;
    let b = &r.corpus.outlier_key_classes;
    let ymax = TokenClass::ALL
        .iter()
        .map(|&c| a.get(c).max(b.get(c)))
        .max()
        .unwrap_or(0)
        .max(1) as f32
        * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Classes of outlier tokens and attention-outlier keys ({} sequence(s))",
                r.corpus.n_sequences
            ),
            (FONT, 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f32..3.5f32, 0f32..ymax)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(4)
        .x_label_formatter(&|x| {
            let k = x.round();
            if (x - k).abs() < 1e-3 && (0.0..4.0).contains(&k) {
                TokenClass::ALL[k as usize].label().to_string()
            } else {
                String::new()
            }
        })
        .y_desc("count")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(pe)?;
    for (off, counts, color, label) in [
        (-0.2f32, a, PALETTE[3], "activation-outlier tokens"),
        (0.2f32, b, PALETTE[0], "attention-outlier keys"),
    ] {
        chart
            .draw_series(TokenClass::ALL.iter().enumerate().map(|(i, &c)| {
                let x = i as f32 + off;
                Rectangle::new(
                    [(x - 0.18, 0.0), (x + 0.18, counts.get(c) as f32)],
                    color.filled(),
                )
            }))
            .map_err(pe)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
        chart
            .draw_series(TokenClass::ALL.iter().enumerate().map(|(i, &c)| {
                Text::new(
                    format!("{}", counts.get(c)),
                    (i as f32 + off - 0.05, counts.get(c) as f32 + ymax * 0.01),
                    (FONT, 13),
                )
            }))
            .map_err(pe)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

/// Write every picture the report supports into `dir` (PNG + SVG each). Returns the files written.
pub fn write_plots(r: &Report, extras: &PlotInputs, dir: &Path) -> Result<Vec<PathBuf>> {
    ensure_font();
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(seq) = r.sequences.first() {
        if seq.layers.iter().any(|l| l.block_output.is_some()) {
            let lines = activation_lines(seq, false);
            both!(files, dir, "layerwise_block_output", |root| lines_log(
                &root,
                "Block outputs (hook_resid_post): top-1/2/3 and median |h|",
                "|h|",
                &lines
            ));
        }
        if seq.layers.iter().any(|l| l.mlp.is_some()) {
            let lines = activation_lines(seq, true);
            both!(files, dir, "layerwise_mlp", |root| lines_log(
                &root,
                "MLP intermediates (mlp.hook_post): top-1/2/3 and median |h|",
                "|h|",
                &lines
            ));
        }
        if seq.layers.iter().any(|l| l.attention.is_some()) {
            let att = seq.attention_series();
            let mk =
                |label: &str,
                 color,
                 f: &dyn Fn(&crate::analysis::AttentionStats) -> Option<f32>| {
                    Line {
                        label: label.into(),
                        color,
                        values: att.iter().map(|a| a.and_then(f)).collect(),
                        dashed: false,
                    }
                };
            let mut lines = vec![
                mk("top-1 column sum", C_TOP1, &|a| {
                    a.top.first().map(|k| k.colsum)
                }),
                mk("top-2 column sum", C_TOP2, &|a| {
                    a.top.get(1).map(|k| k.colsum)
                }),
                mk("median column sum", C_MED, &|a| Some(a.median_colsum)),
            ];
            lines.push(mk("outlier threshold (frac × T)", PALETTE[7], &|a| {
                Some(a.threshold)
            }));
            lines.last_mut().unwrap().dashed = true;
            lines.push(mk(
                "key 0 under uniform causal attention",
                PALETTE[5],
                &|a| a.key0.map(|k| k.baseline),
            ));
            lines.last_mut().unwrap().dashed = true;
            both!(files, dir, "attention_colsums", |root| lines_log(
                &root,
                "Attention: head-averaged column sums per layer",
                "column sum (attention received)",
                &lines
            ));
            both!(files, dir, "sink_ratio", |root| sink_ratios(&root, seq));
        }
    }
    if let Some(m) = &extras.magnitude {
        both!(files, dir, format!("magnitude_layer{}", m.layer), |root| {
            magnitude_map(&root, m, &r.thresholds.activation)
        });
    }
    if let Some(a) = &extras.attention {
        both!(files, dir, format!("attention_layer{}", a.layer), |root| {
            attention_map(&root, a)
        });
    }
    if let Some(w) = r.weights.as_ref().filter(|w| !w.down_proj.is_empty()) {
        let n = w.down_proj.iter().map(|d| d.layer + 1).max().unwrap_or(0);
        let val =
            |f: &dyn Fn(&crate::analysis::weights::DownProjStats) -> f32| -> Vec<Option<f32>> {
                (0..n).map(|l| w.down_proj_at(l).map(f)).collect()
            };
        let lines = vec![
            Line {
                label: "max ratio".into(),
                color: C_TOP1,
                values: val(&|d| d.max_ratio),
                dashed: false,
            },
            Line {
                label: "median ratio".into(),
                color: C_MED,
                values: val(&|d| d.median_ratio),
                dashed: false,
            },
        ];
        both!(files, dir, "down_proj_ratio", |root| lines_log(
            &root,
            "Down projection: max|w| / mean|w| per intermediate channel",
            "ratio",
            &lines
        ));
    }
    if let Some(w) = r.weights.as_ref().filter(|w| !w.modules.is_empty()) {
        let n = w.modules.iter().map(|m| m.layer + 1).max().unwrap_or(0);
        let mut kinds: Vec<_> = w.modules.iter().map(|m| m.kind).collect();
        kinds.sort();
        kinds.dedup();
        let lines: Vec<Line> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| Line {
                label: k.label().into(),
                color: PALETTE[i % PALETTE.len()],
                values: (0..n)
                    .map(|l| {
                        w.modules
                            .iter()
                            .find(|m| m.layer == l && m.kind == *k)
                            .map(|m| m.max_ratio)
                    })
                    .collect(),
                dashed: false,
            })
            .collect();
        both!(files, dir, "module_ratio", |root| lines_log(
            &root,
            "Module comparison: max(row ratio, column ratio)",
            "ratio",
            &lines
        ));
    }
    if r.corpus.outlier_token_classes.total() + r.corpus.outlier_key_classes.total() > 0 {
        both!(files, dir, "token_classes", |root| class_bars(&root, r));
    }
    Ok(files)
}

/// Grouped bars on a log axis: one group per label, one bar per series.
fn grouped_log_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[(String, Vec<f32>)],
) -> Result<()> {
    let vals = series.iter().flat_map(|s| s.1.iter().copied());
    let (lo, hi) = vals
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo > hi {
        (0.5, 2.0)
    } else {
        (lo.min(1.0) / 1.3, hi.max(1.0) * 1.6)
    };
    let n = groups.len().max(1) as f32;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f32..n - 0.5, (lo..hi).log_scale())
        .map_err(pe)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() + 1)
        .x_label_formatter(&|x| {
            let k = x.round();
            if (x - k).abs() < 1e-3 && k >= 0.0 && (k as usize) < groups.len() {
                groups[k as usize].clone()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.3}"))
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(pe)?;
    let k = series.len().max(1) as f32;
    let w = 0.8 / k;
    for (si, (label, v)) in series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let off = -0.4 + w * (si as f32 + 0.5);
        chart
            .draw_series(
                v.iter()
                    .enumerate()
                    .filter(|(_, y)| y.is_finite() && **y > 0.0)
                    .map(|(i, &y)| {
                        let x = i as f32 + off;
                        Rectangle::new([(x - w * 0.45, lo), (x + w * 0.45, y)], color.filled())
                    }),
            )
            .map_err(pe)?
            .label(label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart
        .draw_series(LineSeries::new(
            [(-0.5f32, 1.0f32), (n - 0.5, 1.0)],
            BLACK.mix(0.6),
        ))
        .map_err(pe)?;
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// Bar charts of the compression study: per model, perplexity × fp32 of each scheme, plain
/// and with the outlier channels protected; for several models, one chart comparing them.
pub fn compress_bars(
    studies: &[crate::study_types::ModelStudy],
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    ensure_font();
    let mut files = Vec::new();
    let names = crate::study_types::labels(studies);
    for (st, label) in studies.iter().zip(&names) {
        let name = label.replace('/', "_");
        let groups: Vec<String> = st.results.iter().map(|r| r.scheme.name.clone()).collect();
        let mut series = vec![(
            "plain".to_string(),
            st.results
                .iter()
                .map(|r| (r.ppl / st.baseline_ppl) as f32)
                .collect(),
        )];
        if st.results.iter().any(|r| r.ppl_protected.is_some()) {
            series.push((
                format!(
                    "outlier channels protected (d {:?}, inner {:?})",
                    st.protect.d, st.protect.inner
                ),
                st.results
                    .iter()
                    .map(|r| {
                        r.ppl_protected
                            .map_or(f32::NAN, |p| (p / st.baseline_ppl) as f32)
                    })
                    .collect(),
            ));
        }
        let title = format!(
            "{name}: perplexity after compression (fp32 = {:.2})",
            st.baseline_ppl
        );
        both!(files, dir, format!("compress_{name}"), |root| {
            grouped_log_bars(&root, &title, "perplexity × fp32", &groups, &series)
        });
    }
    if studies.len() > 1 {
        let groups: Vec<String> = studies[0]
            .results
            .iter()
            .map(|r| r.scheme.name.clone())
            .collect();
        let series: Vec<(String, Vec<f32>)> = studies
            .iter()
            .zip(&names)
            .map(|(st, label)| {
                (
                    label.clone(),
                    st.results
                        .iter()
                        .map(|r| (r.ppl / st.baseline_ppl) as f32)
                        .collect(),
                )
            })
            .collect();
        both!(files, dir, "compress_models", |root| grouped_log_bars(
            &root,
            "Perplexity × fp32 after compression, per model (no channel protected)",
            "perplexity × fp32",
            &groups,
            &series
        ));
    }
    Ok(files)
}
