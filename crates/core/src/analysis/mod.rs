//! Host-side analyses of "Systematic Outliers in Large Language Models" (Wang et al., ICLR 2025):
//! activation, weight and attention outliers, the classes of outlier tokens, their lifecycle across
//! layers and the consistency between the three kinds. Plain Rust over [`Tensor`]s: no GPU types.
//! Depends on [`crate::tensor`] only; never on the report, wgpu, models or studies.
//!
//! Entry points:
//! - [`analyze`] on a [`ProbeInput`] (all captures in memory) → [`CorpusAnalysis`];
//! - [`Accumulator`] for corpora: `add_weight` / `add_sequence` one at a time, then `finish` →
//!   [`CorpusAnalysis`].
//!
//! `crate::report::build` turns a [`CorpusAnalysis`] into the report (adding its summary).
//!
//! Hooks read per layer l (one sequence of T tokens, no batch axis): `blocks.{l}.hook_resid_post`
//! `[T, D]`, `blocks.{l}.mlp.hook_post` `[T, I]`, `blocks.{l}.attn.hook_pattern` `[H, T, K]`. A hook
//! that was not captured leaves its analysis out for that layer.

pub mod activation;
pub mod attention;
pub mod consistency;
pub mod corpus;
pub mod growth;
mod input;
pub mod scale;
mod sequence;
pub mod sink_figures;
pub mod stats;
pub mod tokens;
pub mod weights;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

use serde::{Deserialize, Serialize};

pub use activation::{activation_stats, ActivationRule, ActivationStats};
pub use attention::{attention_stats, causal_uniform_colsum, AttentionStats, KeyExcess};
pub use consistency::{ChannelConsistency, Lifecycle, TokenKeyConsistency};
pub use corpus::{Accumulator, CorpusAnalysis, CorpusSummary};
pub use input::{analyze, ModelInfo, ProbeInput};
pub use scale::{ScaleAccumulator, ScaleGroup};
pub use sequence::{analyze_sequence, LayerAnalysis, SequenceAnalysis};
pub use sink_figures::{LayerSinkFigures, SinkFigureAccumulator};
pub use tokens::{classify_token, ClassCounts, TokenClass};
pub use weights::{ModuleKind, ModuleWeight, WeightAnalysis};

#[cfg(doc)]
use crate::tensor::Tensor;

/// Hook names the analyses read.
pub mod hook {
    /// `blocks.{l}.hook_resid_post` `[T, D]`: block output ("layer feat").
    pub fn resid_post(l: usize) -> String {
        format!("blocks.{l}.hook_resid_post")
    }
    /// `blocks.{l}.mlp.hook_post` `[T, I]`: MLP intermediate after the activation (down-proj input).
    pub fn mlp_post(l: usize) -> String {
        format!("blocks.{l}.mlp.hook_post")
    }
    /// `blocks.{l}.attn.hook_pattern` `[H, T, K]`: post-softmax attention probabilities.
    pub fn pattern(l: usize) -> String {
        format!("blocks.{l}.attn.hook_pattern")
    }
    /// Glob patterns selecting every hook the analyses read (for the capture filter).
    pub const ALL_PATTERNS: &str =
        "blocks.*.hook_resid_post,blocks.*.mlp.hook_post,blocks.*.attn.hook_pattern";
}

/// Every threshold the analyses use; recorded in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Activation-outlier rule (paper: `|h| > 1000 × mean |h|`).
    pub activation: ActivationRule,
    /// Number of channels kept by largest `max_t |h[t,c]|` (paper code: 2).
    pub top_channels: usize,
    /// Attention-outlier key: `colsum ≥ attention_key_frac × T` (paper: 0.1).
    pub attention_key_frac: f32,
    /// Attention sink: `colsum − causal-uniform baseline ≥ sink_excess_frac × T` (0.1: the paper's
    /// fraction applied to the excess; see [`attention`]). Absent in older reports: 0.1.
    #[serde(default = "default_sink_excess_frac")]
    pub sink_excess_frac: f32,
    /// Number of down-projection rows (and module channels) kept by largest ratio (paper: 3).
    pub weight_top_rows: usize,
    /// Number of residual columns kept per outlier row (largest `|w|`).
    pub weight_top_columns: usize,
    /// Number of sequences (the first ones) whose full per-layer analysis is kept in the report;
    /// all sequences enter the corpus aggregates.
    pub detail_sequences: usize,
}

fn default_sink_excess_frac() -> f32 {
    0.1
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            activation: ActivationRule::paper(),
            top_channels: 2,
            attention_key_frac: 0.1,
            sink_excess_frac: default_sink_excess_frac(),
            weight_top_rows: 3,
            weight_top_columns: 3,
            detail_sequences: 1,
        }
    }
}
