//! The [`Accumulator`]: per-sequence analyses folded into corpus statistics one sequence at a
//! time, finished into a [`CorpusAnalysis`]. Depends on tensor and the analyses; never on the report.

use std::collections::BTreeMap;

use anyhow::Result;

use super::{AttentionLayerSeries, ChannelCount, CorpusSummary, LayerCount, LayerSeries};
use crate::analysis::consistency::{channel_consistency, LayerChannels};
use crate::analysis::tokens::ClassCounts;
use crate::analysis::weights::{ModuleWeight, WeightAnalysis};
use crate::analysis::{analyze_sequence, ActivationStats, ModelInfo, SequenceAnalysis, Thresholds};
use crate::tensor::Tensor;

/// Everything an analysis run found: what [`Accumulator::finish`] and [`crate::analysis::analyze`]
/// return. `crate::report::build` turns it into the report, adding the summary.
#[derive(Clone, Debug, PartialEq)]
pub struct CorpusAnalysis {
    pub model: ModelInfo,
    /// Free text: the probe prompt, or the corpus and how it was cut.
    pub source: String,
    /// Token count of every sequence added.
    pub tokens_per_sequence: Vec<usize>,
    pub thresholds: Thresholds,
    /// Full analyses of the first `thresholds.detail_sequences` sequences.
    pub sequences: Vec<SequenceAnalysis>,
    pub corpus: CorpusSummary,
    /// Weight outliers (absent when no weights were given).
    pub weights: Option<WeightAnalysis>,
}

#[derive(Clone, Debug, Default)]
struct SeriesAcc {
    n: usize,
    sum_top1: f64,
    max_top1: f32,
    sum_median: f64,
    holds: usize,
    top_votes: BTreeMap<usize, usize>,
}

impl SeriesAcc {
    fn add(&mut self, s: &ActivationStats) {
        self.n += 1;
        self.sum_top1 += s.top1() as f64;
        self.max_top1 = self.max_top1.max(s.top1());
        self.sum_median += s.median_abs as f64;
        self.holds += usize::from(s.holds());
        if let Some(c) = s.top_channels.first() {
            *self.top_votes.entry(c.channel).or_insert(0) += 1;
        }
    }

    fn finish(&self, layer: usize) -> LayerSeries {
        let n = self.n.max(1) as f64;
        LayerSeries {
            layer,
            n: self.n,
            top1_mean: (self.sum_top1 / n) as f32,
            top1_max: self.max_top1,
            median_mean: (self.sum_median / n) as f32,
            holds_fraction: self.holds as f32 / self.n.max(1) as f32,
            top_channel: top_counts(&self.top_votes, 1).first().copied(),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct AttnAcc {
    n: usize,
    sum_top1: f64,
    max_top1: f32,
    sum_share: f64,
    key0: usize,
    key0_sink: usize,
    sum_sink: f64,
}

fn top_counts(m: &BTreeMap<usize, usize>, k: usize) -> Vec<ChannelCount> {
    let mut v: Vec<ChannelCount> = m
        .iter()
        .map(|(&channel, &count)| ChannelCount { channel, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.channel.cmp(&b.channel)));
    v.truncate(k);
    v
}

fn layer_counts(m: &BTreeMap<usize, usize>) -> Vec<LayerCount> {
    m.iter()
        .map(|(&layer, &count)| LayerCount { layer, count })
        .collect()
}

/// Incremental analysis: add weights and sequences one at a time, then [`Accumulator::finish`].
/// The first `thresholds.detail_sequences` sequences keep their full analysis; every sequence enters
/// the corpus aggregates. Weights may be added before or after the sequences.
#[derive(Clone, Debug)]
pub struct Accumulator {
    model: ModelInfo,
    source: String,
    th: Thresholds,
    weights: WeightAnalysis,
    detailed: Vec<SequenceAnalysis>,
    tokens_per_sequence: Vec<usize>,
    block: Vec<SeriesAcc>,
    mlp: Vec<SeriesAcc>,
    attn: Vec<AttnAcc>,
    key0_any: usize,
    key0_sink_any: usize,
    token_classes: ClassCounts,
    key_classes: ClassCounts,
    block_channels: BTreeMap<usize, usize>,
    mlp_channels: BTreeMap<usize, usize>,
    tk_sum: f64,
    tk_n: usize,
    first_layer: BTreeMap<usize, usize>,
    vanish_layer: BTreeMap<usize, usize>,
}

impl Accumulator {
    /// `source` describes the input (the prompt, or the corpus and how it was cut).
    pub fn new(model: ModelInfo, source: String, thresholds: Thresholds) -> Self {
        let n = model.n_layer;
        Self {
            model,
            source,
            th: thresholds,
            weights: WeightAnalysis::default(),
            detailed: Vec::new(),
            tokens_per_sequence: Vec::new(),
            block: vec![SeriesAcc::default(); n],
            mlp: vec![SeriesAcc::default(); n],
            attn: vec![AttnAcc::default(); n],
            key0_any: 0,
            key0_sink_any: 0,
            token_classes: ClassCounts::default(),
            key_classes: ClassCounts::default(),
            block_channels: BTreeMap::new(),
            mlp_channels: BTreeMap::new(),
            tk_sum: 0.0,
            tk_n: 0,
            first_layer: BTreeMap::new(),
            vanish_layer: BTreeMap::new(),
        }
    }

    /// Analyse one projection weight (`[in, out]`); the tensor is not kept.
    pub fn add_weight(&mut self, w: &ModuleWeight) {
        self.weights
            .add(w, self.th.weight_top_rows, self.th.weight_top_columns);
    }

    /// Analyse one sequence (token strings + its captures); the captures are not kept.
    /// Returns that sequence's analysis.
    pub fn add_sequence(
        &mut self,
        tokens: &[String],
        captures: &BTreeMap<String, Tensor>,
    ) -> Result<SequenceAnalysis> {
        let index = self.tokens_per_sequence.len();
        let seq = analyze_sequence(index, tokens, captures, self.model.n_layer, &self.th)?;
        self.tokens_per_sequence.push(tokens.len());
        let mut key0 = false;
        let mut key0_sink = false;
        for la in &seq.layers {
            let l = la.layer;
            if let Some(b) = &la.block_output {
                self.block[l].add(b);
                for &c in &b.outlier_channels {
                    *self.block_channels.entry(c).or_insert(0) += 1;
                }
            }
            if let Some(m) = &la.mlp {
                self.mlp[l].add(m);
                for &c in &m.outlier_channels {
                    *self.mlp_channels.entry(c).or_insert(0) += 1;
                }
            }
            if let Some(a) = &la.attention {
                let acc = &mut self.attn[l];
                let top1 = a.top1().map_or(0.0, |k| k.colsum);
                acc.n += 1;
                acc.sum_top1 += top1 as f64;
                acc.max_top1 = acc.max_top1.max(top1);
                acc.sum_share += (top1 / a.n_queries.max(1) as f32) as f64;
                let k0 = a.outlier_keys.first() == Some(&0);
                acc.key0 += usize::from(k0);
                key0 |= k0;
                let s0 = a.sink_keys.first() == Some(&0);
                acc.key0_sink += usize::from(s0);
                key0_sink |= s0;
                acc.sum_sink += a.sink_ratio_mean as f64;
            }
        }
        self.key0_any += usize::from(key0);
        self.key0_sink_any += usize::from(key0_sink);
        self.token_classes.merge(&seq.outlier_token_classes);
        self.key_classes.merge(&seq.outlier_key_classes);
        for x in seq.token_key.layers.iter() {
            if !x.outlier_keys.is_empty() && !x.outlier_tokens.is_empty() {
                self.tk_sum += x.share_of_keys as f64;
                self.tk_n += 1;
            }
        }
        if let Some(f) = seq.block_lifecycle.first_layer {
            *self.first_layer.entry(f).or_insert(0) += 1;
        }
        if let Some(v) = seq.block_lifecycle.vanish_layer {
            *self.vanish_layer.entry(v).or_insert(0) += 1;
        }
        if self.detailed.len() < self.th.detail_sequences {
            self.detailed.push(seq.clone());
        }
        Ok(seq)
    }

    /// Number of sequences added so far.
    pub fn n_sequences(&self) -> usize {
        self.tokens_per_sequence.len()
    }

    /// Corpus statistics so far (without channel consistency).
    pub fn corpus_summary(&self) -> CorpusSummary {
        let n_seq = self.n_sequences();
        CorpusSummary {
            n_sequences: n_seq,
            n_tokens: self.tokens_per_sequence.iter().sum(),
            block_output: series(&self.block),
            mlp: series(&self.mlp),
            attention: self
                .attn
                .iter()
                .enumerate()
                .filter(|(_, a)| a.n > 0)
                .map(|(layer, a)| {
                    let n = a.n as f64;
                    AttentionLayerSeries {
                        layer,
                        n: a.n,
                        top1_colsum_mean: (a.sum_top1 / n) as f32,
                        top1_colsum_max: a.max_top1,
                        top1_share_mean: (a.sum_share / n) as f32,
                        key0_outlier_fraction: (a.key0 as f64 / n) as f32,
                        key0_sink_fraction: (a.key0_sink as f64 / n) as f32,
                        sink_ratio_mean: (a.sum_sink / n) as f32,
                    }
                })
                .collect(),
            key0_outlier_fraction: if n_seq == 0 {
                0.0
            } else {
                self.key0_any as f32 / n_seq as f32
            },
            key0_sink_fraction: if n_seq == 0 {
                0.0
            } else {
                self.key0_sink_any as f32 / n_seq as f32
            },
            outlier_token_classes: self.token_classes.clone(),
            outlier_key_classes: self.key_classes.clone(),
            block_channels: top_counts(&self.block_channels, 10),
            mlp_channels: top_counts(&self.mlp_channels, 10),
            token_key_share_mean: (self.tk_n > 0).then(|| (self.tk_sum / self.tk_n as f64) as f32),
            token_key_pairs: self.tk_n,
            block_first_layer: layer_counts(&self.first_layer),
            block_vanish_layer: layer_counts(&self.vanish_layer),
            channel_consistency: None,
        }
    }

    /// Finish: channel consistency (needs weights) on the detailed sequences and the corpus.
    pub fn finish(mut self) -> CorpusAnalysis {
        let mut corpus = self.corpus_summary();
        if !self.weights.down_proj.is_empty() {
            for seq in &mut self.detailed {
                seq.channels = Some(channel_consistency(
                    &seq.layer_channels(),
                    &self.weights,
                    seq.block_lifecycle.first_layer,
                ));
            }
            // Corpus: the majority top channel of each layer; "holds" = in at least half the sequences.
            let majority = |s: &LayerSeries| {
                s.top_channel
                    .map(|c| (vec![c.channel], s.holds_fraction >= 0.5))
            };
            let per_layer: Vec<LayerChannels> = (0..self.model.n_layer)
                .map(|l| LayerChannels {
                    layer: l,
                    mlp: corpus.mlp.iter().find(|s| s.layer == l).and_then(majority),
                    residual: corpus
                        .block_output
                        .iter()
                        .find(|s| s.layer == l)
                        .and_then(majority),
                })
                .collect();
            let appearance = corpus
                .block_output
                .iter()
                .find(|s| s.holds_fraction >= 0.5)
                .map(|s| s.layer);
            corpus.channel_consistency =
                Some(channel_consistency(&per_layer, &self.weights, appearance));
        }
        let weights = (!self.weights.is_empty()).then_some(self.weights);
        CorpusAnalysis {
            model: self.model,
            source: self.source,
            tokens_per_sequence: self.tokens_per_sequence,
            thresholds: self.th,
            sequences: self.detailed,
            corpus,
            weights,
        }
    }
}

fn series(acc: &[SeriesAcc]) -> Vec<LayerSeries> {
    acc.iter()
        .enumerate()
        .filter(|(_, a)| a.n > 0)
        .map(|(l, a)| a.finish(l))
        .collect()
}
