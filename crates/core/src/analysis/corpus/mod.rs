//! Corpus aggregation: statistics accumulated over many sequences, one sequence at a time, so that a
//! corpus run never holds more than one sequence's captures. Depends on tensor and the analyses only.

mod accumulator;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use super::consistency::ChannelConsistency;
use super::tokens::ClassCounts;

pub use accumulator::{Accumulator, CorpusAnalysis};

/// A channel with a count.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelCount {
    pub channel: usize,
    pub count: usize,
}

/// A layer with a count.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerCount {
    pub layer: usize,
    pub count: usize,
}

/// Per-layer activation statistics over the corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSeries {
    pub layer: usize,
    /// Sequences in which this hook was captured.
    pub n: usize,
    /// Mean and max over sequences of the top-1 `|h|`.
    pub top1_mean: f32,
    pub top1_max: f32,
    /// Mean over sequences of the median `|h|`.
    pub median_mean: f32,
    /// Share of sequences in which the rule holds.
    pub holds_fraction: f32,
    /// The channel most often holding the largest `max_t |h|`, with the number of sequences.
    pub top_channel: Option<ChannelCount>,
}

/// Per-layer attention statistics over the corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionLayerSeries {
    pub layer: usize,
    pub n: usize,
    /// Mean and max over sequences of the top-1 column sum.
    pub top1_colsum_mean: f32,
    pub top1_colsum_max: f32,
    /// Mean over sequences of top-1 column sum / T.
    pub top1_share_mean: f32,
    /// Share of sequences in which key 0 is an outlier key in this layer (paper's rule).
    pub key0_outlier_fraction: f32,
    /// Share of sequences in which key 0 is an attention sink (excess rule) in this layer.
    #[serde(default)]
    pub key0_sink_fraction: f32,
    /// Mean over sequences of the head-mean sink ratio.
    pub sink_ratio_mean: f32,
}

/// Statistics over all sequences of a run (a single prompt is a corpus of one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CorpusSummary {
    pub n_sequences: usize,
    pub n_tokens: usize,
    pub block_output: Vec<LayerSeries>,
    pub mlp: Vec<LayerSeries>,
    pub attention: Vec<AttentionLayerSeries>,
    /// Share of sequences in which key 0 is an attention-outlier key in at least one layer.
    pub key0_outlier_fraction: f32,
    /// Share of sequences in which key 0 is an attention sink (excess over the causal-uniform
    /// baseline ≥ `sink_excess_frac` × T) in at least one layer.
    #[serde(default)]
    pub key0_sink_fraction: f32,
    /// Classes of block-output outlier tokens, each (sequence, position) counted once.
    pub outlier_token_classes: ClassCounts,
    /// Classes of attention-outlier keys, each (sequence, position) counted once.
    pub outlier_key_classes: ClassCounts,
    /// Block-output channels by the number of (sequence, layer) pairs in which they hold an outlier
    /// entry, most frequent first (at most 10).
    pub block_channels: Vec<ChannelCount>,
    /// The same for MLP-intermediate channels.
    pub mlp_channels: Vec<ChannelCount>,
    /// Mean over (sequence, layer) pairs with both sets non-empty of the share of attention-outlier
    /// keys that are outlier tokens of the layer's input.
    pub token_key_share_mean: Option<f32>,
    pub token_key_pairs: usize,
    /// Number of sequences by the layer where block-output outliers first appear.
    pub block_first_layer: Vec<LayerCount>,
    /// Number of sequences by the layer where block-output outliers vanish.
    pub block_vanish_layer: Vec<LayerCount>,
    /// Channel consistency on the per-layer majority channels (when weights were given).
    pub channel_consistency: Option<ChannelConsistency>,
}
