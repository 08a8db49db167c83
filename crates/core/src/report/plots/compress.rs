//! The compression study's bar charts: perplexity × fp32 per scheme, plain and protected.
//! Depends on the study's plain types (`crate::study_types`); never on wgpu, models or the study's code.

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::*;

/// Grouped bars on a log axis: one group per label, one bar per series.
pub(super) fn grouped_log_bars<DB: DrawingBackend>(
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
