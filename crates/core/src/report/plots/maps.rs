//! Heat maps of one layer: |h| over tokens × channels and the head-averaged attention pattern.
//! Depends on the report, analysis and tensor; never on wgpu or models.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::*;
use super::{AttentionMap, MagnitudeMap};
use crate::analysis::activation::{activation_stats, ActivationRule};
use crate::analysis::tokens::normalize_token;

/// Max-pool a `[R, C]` matrix of non-negative values into at most `max_r × max_c` cells.
/// Returns (cells, rows per cell, cols per cell, cell rows, cell cols).
pub(super) fn pool(
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

pub(super) fn token_axis_label(tokens: &[String], y: f32) -> String {
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
pub(super) fn magnitude_map<DB: DrawingBackend>(
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
pub(super) fn attention_map<DB: DrawingBackend>(
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
