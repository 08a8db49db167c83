//! Weight outliers (paper §3, "weight outliers").
//! Depends on tensor and the analyses' helpers only; never on the report, wgpu or models.
//!
//! For a weight stored as `[in, out]` (Hugging Face GPT-2 `Conv1D` layout; transpose an `nn.Linear`
//! `[out, in]` weight before passing it), the ratio of a channel is `max |w| / (mean |w| + 1e-8)` over
//! that channel's weights:
//! - input channel = a ROW of the `[in, out]` tensor. For the down projection (`[I, D]`) an input channel
//!   is one MLP intermediate channel: the paper's "column" of the down-projection;
//! - output channel = a COLUMN of the `[in, out]` tensor (for the down projection: a residual channel).
//!
//! Per layer the paper reports, for the down projection, the largest and the median input-channel
//! ratio and the top-3 channel indices; the module comparison uses
//! `max(max row ratio, max column ratio)` for q, k, v, o, fc (up / gate) and down.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::stats::{median, top_k};
use crate::tensor::Tensor;

/// `1e-8` in the paper's ratio `max / (mean + 1e-8)`.
pub const RATIO_EPS: f32 = 1e-8;

/// Which projection a weight belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    Q,
    K,
    V,
    /// Attention output projection (GPT-2 `attn.c_proj`, Llama `o_proj`).
    O,
    /// MLP input projection without a gate (GPT-2 `mlp.c_fc`).
    Fc,
    /// Llama `gate_proj`.
    Gate,
    /// Llama `up_proj`.
    Up,
    /// MLP output projection (GPT-2 `mlp.c_proj`, Llama `down_proj`), `[I, D]`.
    Down,
}

impl ModuleKind {
    pub fn label(self) -> &'static str {
        match self {
            ModuleKind::Q => "q",
            ModuleKind::K => "k",
            ModuleKind::V => "v",
            ModuleKind::O => "o",
            ModuleKind::Fc => "fc",
            ModuleKind::Gate => "gate",
            ModuleKind::Up => "up",
            ModuleKind::Down => "down",
        }
    }
}

/// One projection weight of one layer, stored `[in, out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModuleWeight {
    pub layer: usize,
    pub kind: ModuleKind,
    /// `[in, out]`.
    pub weight: Tensor,
}

/// Ratio `max |w| / (mean |w| + 1e-8)` of every row (input channel) of a `[in, out]` weight.
pub fn row_ratios(w: &Tensor) -> Vec<f32> {
    let (n_in, n_out) = dims(w);
    (0..n_in)
        .map(|r| {
            let row = &w.data[r * n_out..(r + 1) * n_out];
            let (mx, sum) = row.iter().fold((0f32, 0f64), |(m, s), x| {
                (m.max(x.abs()), s + x.abs() as f64)
            });
            ratio(mx, sum, n_out)
        })
        .collect()
}

/// Ratio `max |w| / (mean |w| + 1e-8)` of every column (output channel) of a `[in, out]` weight.
pub fn col_ratios(w: &Tensor) -> Vec<f32> {
    let (n_in, n_out) = dims(w);
    let mut mx = vec![0f32; n_out];
    let mut sum = vec![0f64; n_out];
    for r in 0..n_in {
        for (c, x) in w.data[r * n_out..(r + 1) * n_out].iter().enumerate() {
            mx[c] = mx[c].max(x.abs());
            sum[c] += x.abs() as f64;
        }
    }
    (0..n_out).map(|c| ratio(mx[c], sum[c], n_in)).collect()
}

fn dims(w: &Tensor) -> (usize, usize) {
    assert_eq!(
        w.shape.len(),
        2,
        "weight must be [in, out], got {:?}",
        w.shape
    );
    (w.shape[0], w.shape[1])
}

fn ratio(max: f32, sum: f64, n: usize) -> f32 {
    let mean = if n == 0 { 0.0 } else { sum / n as f64 };
    (max as f64 / (mean + RATIO_EPS as f64)).min(f32::MAX as f64) as f32
}

/// One channel with its ratio.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelRatio {
    pub channel: usize,
    pub ratio: f32,
}

/// Max, median and top channels of a list of per-channel ratios.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatioSummary {
    pub max: f32,
    pub median: f32,
    /// Largest ratios, largest first.
    pub top: Vec<ChannelRatio>,
}

/// Summary of per-channel ratios keeping the `k` largest.
pub fn summarize_ratios(ratios: &[f32], k: usize) -> RatioSummary {
    let top: Vec<ChannelRatio> = top_k(ratios, k)
        .into_iter()
        .map(|c| ChannelRatio {
            channel: c,
            ratio: ratios[c],
        })
        .collect();
    RatioSummary {
        max: top.first().map_or(0.0, |c| c.ratio),
        median: median(ratios),
        top,
    }
}

/// A residual (output) column that an outlier row writes into.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnWeight {
    pub column: usize,
    /// Signed `w[row, column]`.
    pub weight: f32,
}

/// The output columns an input row writes most strongly into (largest `|w[row, c]|`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowWrites {
    pub row: usize,
    pub columns: Vec<ColumnWeight>,
}

/// The `k` output columns with the largest `|w[row, c]|`.
pub fn row_writes(w: &Tensor, row: usize, k: usize) -> RowWrites {
    let (_, n_out) = dims(w);
    let r = &w.data[row * n_out..(row + 1) * n_out];
    let abs: Vec<f32> = r.iter().map(|x| x.abs()).collect();
    RowWrites {
        row,
        columns: top_k(&abs, k)
            .into_iter()
            .map(|c| ColumnWeight {
                column: c,
                weight: r[c],
            })
            .collect(),
    }
}

/// Down-projection statistics of one layer (input channel = intermediate channel = row).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DownProjStats {
    pub layer: usize,
    /// I (intermediate width, rows).
    pub n_in: usize,
    /// D (residual width, columns).
    pub n_out: usize,
    /// Largest row ratio.
    pub max_ratio: f32,
    /// Median row ratio.
    pub median_ratio: f32,
    /// The rows (intermediate channels) with the largest ratios, largest first (top-3 by default).
    pub top_rows: Vec<ChannelRatio>,
    /// For each of `top_rows`, the residual columns it writes most strongly into.
    pub writes: Vec<RowWrites>,
}

impl DownProjStats {
    pub fn top_row_indices(&self) -> Vec<usize> {
        self.top_rows.iter().map(|c| c.channel).collect()
    }

    /// Union of the residual columns written most strongly by the top rows, ascending.
    pub fn written_columns(&self) -> Vec<usize> {
        super::stats::sorted_set(
            self.writes
                .iter()
                .flat_map(|w| w.columns.iter().map(|c| c.column)),
        )
    }
}

/// Down-projection statistics of `w` (`[I, D]`) keeping the `top_rows` rows with the largest ratio
/// and, for each, the `top_columns` columns it writes most strongly into.
pub fn down_proj_stats(
    layer: usize,
    w: &Tensor,
    top_rows: usize,
    top_columns: usize,
) -> DownProjStats {
    let (n_in, n_out) = dims(w);
    let s = summarize_ratios(&row_ratios(w), top_rows);
    let writes = s
        .top
        .iter()
        .map(|c| row_writes(w, c.channel, top_columns))
        .collect();
    DownProjStats {
        layer,
        n_in,
        n_out,
        max_ratio: s.max,
        median_ratio: s.median,
        top_rows: s.top,
        writes,
    }
}

/// Row and column ratio summaries of one module, for the module comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleRatio {
    pub layer: usize,
    pub kind: ModuleKind,
    /// `[in, out]`.
    pub shape: [usize; 2],
    /// Input-channel (row) ratios.
    pub rows: RatioSummary,
    /// Output-channel (column) ratios.
    pub cols: RatioSummary,
    /// `max(rows.max, cols.max)`: the number the paper compares across modules.
    pub max_ratio: f32,
}

/// Module-comparison entry of one weight.
pub fn module_ratio(m: &ModuleWeight, top: usize) -> ModuleRatio {
    let (n_in, n_out) = dims(&m.weight);
    let rows = summarize_ratios(&row_ratios(&m.weight), top);
    let cols = summarize_ratios(&col_ratios(&m.weight), top);
    ModuleRatio {
        layer: m.layer,
        kind: m.kind,
        shape: [n_in, n_out],
        max_ratio: rows.max.max(cols.max),
        rows,
        cols,
    }
}

/// Weight-outlier results of a model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightAnalysis {
    /// Per layer, ascending.
    pub down_proj: Vec<DownProjStats>,
    /// Per (layer, kind), ascending.
    pub modules: Vec<ModuleRatio>,
}

impl WeightAnalysis {
    /// Add one weight (analysed at once; the tensor can be dropped afterwards).
    pub fn add(&mut self, m: &ModuleWeight, top_rows: usize, top_columns: usize) {
        if m.kind == ModuleKind::Down {
            self.down_proj.retain(|d| d.layer != m.layer);
            self.down_proj
                .push(down_proj_stats(m.layer, &m.weight, top_rows, top_columns));
            self.down_proj.sort_by_key(|d| d.layer);
        }
        self.modules
            .retain(|r| !(r.layer == m.layer && r.kind == m.kind));
        self.modules.push(module_ratio(m, top_rows));
        self.modules.sort_by_key(|r| (r.layer, r.kind));
    }

    pub fn down_proj_at(&self, layer: usize) -> Option<&DownProjStats> {
        self.down_proj.iter().find(|d| d.layer == layer)
    }

    pub fn is_empty(&self) -> bool {
        self.down_proj.is_empty() && self.modules.is_empty()
    }

    /// Largest `max_ratio` of each module kind over all layers, with the layer holding it.
    pub fn max_by_kind(&self) -> BTreeMap<ModuleKind, (f32, usize)> {
        let mut m: BTreeMap<ModuleKind, (f32, usize)> = BTreeMap::new();
        for r in &self.modules {
            let e = m.entry(r.kind).or_insert((r.max_ratio, r.layer));
            if r.max_ratio > e.0 {
                *e = (r.max_ratio, r.layer);
            }
        }
        m
    }
}

/// Columns `[start, end)` of a 2-D tensor, as a new tensor.
pub fn slice_columns(w: &Tensor, start: usize, end: usize) -> Tensor {
    let (n_in, n_out) = dims(w);
    assert!(
        start <= end && end <= n_out,
        "columns {start}..{end} of {n_out}"
    );
    let mut data = Vec::with_capacity(n_in * (end - start));
    for r in 0..n_in {
        data.extend_from_slice(&w.data[r * n_out + start..r * n_out + end]);
    }
    Tensor::new(vec![n_in, end - start], data)
}

/// The weights of one GPT-2 layer as [`ModuleWeight`]s, from Hugging Face tensor names
/// (`h.{l}.attn.c_attn.weight` `[D, 3D]` is split into q | k | v on the out axis).
/// `get` returns a tensor by name (e.g. a closure over a safetensors file).
pub fn gpt2_layer_weights(
    layer: usize,
    mut get: impl FnMut(&str) -> Option<Tensor>,
) -> Result<Vec<ModuleWeight>> {
    let mut need = |suffix: &str| {
        let name = format!("h.{layer}.{suffix}");
        get(&name)
            .or_else(|| get(&format!("transformer.{name}")))
            .ok_or_else(|| anyhow::anyhow!("weight '{name}' not found"))
    };
    let c_attn = need("attn.c_attn.weight")?;
    if c_attn.shape.len() != 2 || c_attn.shape[1] != 3 * c_attn.shape[0] {
        bail!(
            "h.{layer}.attn.c_attn.weight has shape {:?}, expected [D, 3D]",
            c_attn.shape
        );
    }
    let d = c_attn.shape[0];
    let mw = |kind, weight| ModuleWeight {
        layer,
        kind,
        weight,
    };
    Ok(vec![
        mw(ModuleKind::Q, slice_columns(&c_attn, 0, d)),
        mw(ModuleKind::K, slice_columns(&c_attn, d, 2 * d)),
        mw(ModuleKind::V, slice_columns(&c_attn, 2 * d, 3 * d)),
        mw(ModuleKind::O, need("attn.c_proj.weight")?),
        mw(ModuleKind::Fc, need("mlp.c_fc.weight")?),
        mw(ModuleKind::Down, need("mlp.c_proj.weight")?),
    ])
}

#[cfg(test)]
mod tests;
