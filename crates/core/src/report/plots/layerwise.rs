//! Layer-wise activation charts (top-1/2/3 and median |h| per layer) and the token-class bars.
//! Depends on the report and analysis; never on wgpu or models.

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::*;
use crate::analysis::tokens::TokenClass;
use crate::analysis::SequenceAnalysis;
use crate::report::Report;

/// The charts of the first detailed sequence: block outputs, MLP intermediates, attention
/// column sums and sink ratios (each when its hook was captured).
pub(super) fn write_sequence(
    files: &mut Vec<PathBuf>,
    dir: &Path,
    seq: &SequenceAnalysis,
) -> Result<()> {
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
        let lines = super::attention::colsum_lines(seq);
        both!(files, dir, "attention_colsums", |root| lines_log(
            &root,
            "Attention: head-averaged column sums per layer",
            "column sum (attention received)",
            &lines
        ));
        both!(files, dir, "sink_ratio", |root| {
            super::attention::sink_ratios(&root, seq)
        });
    }
    Ok(())
}

pub(super) fn activation_lines(seq: &SequenceAnalysis, mlp: bool) -> Vec<Line> {
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

/// Counts per token class: activation-outlier tokens and attention-outlier keys.
pub(super) fn class_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &Report,
) -> Result<()> {
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
