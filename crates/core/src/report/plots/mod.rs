//! Pictures of the report, each written as PNG and SVG with plotters (bundled font: no system font).
//! Depends on the report, analysis and tensor (and the study's plain types); never on wgpu or models.

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::prelude::*;

use super::Report;
use crate::analysis::attention::head_average;
use crate::analysis::hook;
use crate::tensor::Tensor;
use common::{pe, SIZE};

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

mod attention;
mod common;
mod compress;
mod layerwise;
mod maps;
mod weights;
mod zoo;

pub use common::{ensure_font, Line};
pub use compress::compress_bars;
pub use zoo::{over_training, palette, per_layer, StepLine};

/// Full tensors the pictures need beyond the report (the report keeps statistics only).
#[derive(Clone, Debug, Default)]
pub struct PlotInputs {
    /// |h| map of one layer: (layer, hook name, `[T, C]` tensor, token strings).
    pub magnitude: Option<MagnitudeMap>,
    /// Head-averaged attention of one layer.
    pub attention: Option<AttentionMap>,
}

#[derive(Clone, Debug)]
pub struct MagnitudeMap {
    pub layer: usize,
    pub hook: String,
    /// `[T, C]`.
    pub tensor: Tensor,
    pub tokens: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct AttentionMap {
    pub layer: usize,
    /// Head-averaged probabilities `[T, K]`.
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

/// Write every picture the report supports into `dir` (PNG + SVG each). Returns the files written.
pub fn write_plots(r: &Report, extras: &PlotInputs, dir: &Path) -> Result<Vec<PathBuf>> {
    ensure_font();
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(seq) = r.sequences.first() {
        layerwise::write_sequence(&mut files, dir, seq)?;
    }
    if let Some(m) = &extras.magnitude {
        both!(files, dir, format!("magnitude_layer{}", m.layer), |root| {
            maps::magnitude_map(&root, m, &r.thresholds.activation)
        });
    }
    if let Some(a) = &extras.attention {
        both!(files, dir, format!("attention_layer{}", a.layer), |root| {
            maps::attention_map(&root, a)
        });
    }
    weights::write_weights(&mut files, dir, r.weights.as_ref())?;
    if r.corpus.outlier_token_classes.total() + r.corpus.outlier_key_classes.total() > 0 {
        both!(files, dir, "token_classes", |root| layerwise::class_bars(
            &root, r
        ));
    }
    Ok(files)
}
