//! Attention charts: column sums per layer and the per-head sink ratios.
//! Depends on the report and analysis; never on wgpu or models.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::*;
use crate::analysis::SequenceAnalysis;

/// The attention chart's lines: head-averaged top-1/top-2/median column sums per layer, the
/// outlier threshold and key 0's causal-uniform baseline (both dashed).
pub(super) fn colsum_lines(seq: &SequenceAnalysis) -> Vec<Line> {
    let att = seq.attention_series();
    let mk =
        |label: &str, color, f: &dyn Fn(&crate::analysis::AttentionStats) -> Option<f32>| Line {
            label: label.into(),
            color,
            values: att.iter().map(|a| a.and_then(f)).collect(),
            dashed: false,
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
    lines
}

/// Per-layer per-head sink ratio: mean with min–max bars.
pub(super) fn sink_ratios<DB: DrawingBackend>(
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
