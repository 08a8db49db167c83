//! Host-side analyses of "Systematic Outliers in Large Language Models" (Wang et al., ICLR 2025):
//! activation, weight and attention outliers, the classes of outlier tokens, their lifecycle across
//! layers and the consistency between the three kinds. Plain Rust over [`Tensor`]s: no GPU types.
//!
//! Entry points:
//! - [`analyze`] on a [`ProbeInput`] (all captures in memory) → [`Report`];
//! - [`Accumulator`] for corpora: `add_weight` / `add_sequence` one at a time, then `finish` → [`Report`].
//!
//! Hooks read per layer l (one sequence of T tokens, no batch axis): `blocks.{l}.hook_resid_post`
//! [T, D], `blocks.{l}.mlp.hook_post` [T, I], `blocks.{l}.attn.hook_pattern` [H, T, K]. A hook
//! that was not captured leaves its analysis out for that layer.

pub mod activation;
pub mod attention;
pub mod consistency;
pub mod corpus;
pub mod stats;
pub mod tokens;
pub mod weights;

#[cfg(test)]
pub(crate) mod testutil;

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub use activation::{activation_stats, ActivationRule, ActivationStats};
pub use attention::{attention_stats, causal_uniform_colsum, AttentionStats, KeyExcess};
pub use consistency::{ChannelConsistency, Lifecycle, TokenKeyConsistency};
pub use corpus::{Accumulator, CorpusSummary};
pub use tokens::{classify_token, ClassCounts, TokenClass};
pub use weights::{ModuleKind, ModuleWeight, WeightAnalysis};

use crate::report::{ModelInfo, Report};
use crate::tensor::Tensor;

/// Hook names the analyses read.
pub mod hook {
    /// `blocks.{l}.hook_resid_post` [T, D]: block output ("layer feat").
    pub fn resid_post(l: usize) -> String {
        format!("blocks.{l}.hook_resid_post")
    }
    /// `blocks.{l}.mlp.hook_post` [T, I]: MLP intermediate after the activation (down-proj input).
    pub fn mlp_post(l: usize) -> String {
        format!("blocks.{l}.mlp.hook_post")
    }
    /// `blocks.{l}.attn.hook_pattern` [H, T, K]: post-softmax attention probabilities.
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

/// Everything the analyses of one model need, all in memory.
#[derive(Clone, Debug, Default)]
pub struct ProbeInput {
    pub model: ModelInfo,
    /// Free text: the probe prompt, or the corpus and how it was cut.
    pub source: String,
    /// Per sequence: the token strings as decoded (`" the"`, `"."`, `"\n"`).
    pub tokens: Vec<Vec<String>>,
    /// Per sequence: hook name → tensor.
    pub captures: Vec<BTreeMap<String, Tensor>>,
    /// Projection weights, [in, out] (may be empty).
    pub weights: Vec<ModuleWeight>,
}

/// Analyses of one layer of one sequence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerAnalysis {
    pub layer: usize,
    /// On `blocks.{l}.hook_resid_post`.
    pub block_output: Option<ActivationStats>,
    /// On `blocks.{l}.mlp.hook_post`.
    pub mlp: Option<ActivationStats>,
    /// On `blocks.{l}.attn.hook_pattern`.
    pub attention: Option<AttentionStats>,
}

/// Full analysis of one sequence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequenceAnalysis {
    /// Index of the sequence in the input.
    pub index: usize,
    pub tokens: Vec<String>,
    pub classes: Vec<TokenClass>,
    pub layers: Vec<LayerAnalysis>,
    /// Lifecycle of block-output outliers.
    pub block_lifecycle: Lifecycle,
    /// Lifecycle of MLP-intermediate outliers.
    pub mlp_lifecycle: Lifecycle,
    /// Classes of the positions that are block-output outlier tokens in at least one layer.
    pub outlier_token_classes: ClassCounts,
    /// Classes of the positions that are attention-outlier keys in at least one layer.
    pub outlier_key_classes: ClassCounts,
    /// Activation-outlier tokens vs attention-outlier keys.
    pub token_key: TokenKeyConsistency,
    /// Weight vs activation channels (when weights were given).
    pub channels: Option<ChannelConsistency>,
}

impl SequenceAnalysis {
    pub fn block_series(&self) -> Vec<Option<&ActivationStats>> {
        self.layers
            .iter()
            .map(|l| l.block_output.as_ref())
            .collect()
    }
    pub fn mlp_series(&self) -> Vec<Option<&ActivationStats>> {
        self.layers.iter().map(|l| l.mlp.as_ref()).collect()
    }
    pub fn attention_series(&self) -> Vec<Option<&AttentionStats>> {
        self.layers.iter().map(|l| l.attention.as_ref()).collect()
    }

    /// Positions that are block-output outlier tokens in some layer, with the layers, ascending.
    pub fn outlier_token_layers(&self) -> BTreeMap<usize, Vec<usize>> {
        let mut m: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for la in &self.layers {
            if let Some(b) = &la.block_output {
                for e in &b.outlier_tokens {
                    m.entry(e.token).or_default().push(la.layer);
                }
            }
        }
        m
    }

    /// Positions that are attention-outlier keys in some layer, ascending.
    pub fn outlier_key_positions(&self) -> Vec<usize> {
        stats::sorted_set(
            self.layers
                .iter()
                .filter_map(|l| l.attention.as_ref())
                .flat_map(|a| a.outlier_keys.iter().copied()),
        )
    }

    /// Channel sets per layer, for [`consistency::channel_consistency`].
    pub fn layer_channels(&self) -> Vec<consistency::LayerChannels> {
        self.layers
            .iter()
            .map(|la| consistency::LayerChannels {
                layer: la.layer,
                mlp: la
                    .mlp
                    .as_ref()
                    .map(|s| (consistency::outlier_channel_set(s), s.holds())),
                residual: la
                    .block_output
                    .as_ref()
                    .map(|s| (consistency::outlier_channel_set(s), s.holds())),
            })
            .collect()
    }
}

/// Analyse one sequence: `tokens` (T strings) and its captures for layers `0..n_layer`.
/// Errors name the hook whose shape does not fit.
pub fn analyze_sequence(
    index: usize,
    tokens: &[String],
    captures: &BTreeMap<String, Tensor>,
    n_layer: usize,
    th: &Thresholds,
) -> Result<SequenceAnalysis> {
    let t = tokens.len();
    let check_tokens = |name: &str, x: &Tensor| -> Result<()> {
        if x.shape.len() < 2 || x.shape[0] != t {
            bail!(
                "sequence {index}: '{name}' has shape {:?}, expected [{t}, C] for {t} tokens",
                x.shape
            );
        }
        Ok(())
    };
    let mut layers = Vec::with_capacity(n_layer);
    for l in 0..n_layer {
        let act = |name: String| -> Result<Option<ActivationStats>> {
            match captures.get(&name) {
                None => Ok(None),
                Some(x) => {
                    check_tokens(&name, x)?;
                    Ok(Some(activation_stats(x, &th.activation, th.top_channels)))
                }
            }
        };
        let block_output = act(hook::resid_post(l))?;
        let mlp = act(hook::mlp_post(l))?;
        let attention = match captures.get(&hook::pattern(l)) {
            None => None,
            Some(p) => {
                if p.shape.len() != 3 || p.shape[1] != t {
                    bail!(
                        "sequence {index}: '{}' has shape {:?}, expected [H, {t}, K]",
                        hook::pattern(l),
                        p.shape
                    );
                }
                Some(attention_stats(
                    p,
                    th.attention_key_frac,
                    th.sink_excess_frac,
                ))
            }
        };
        layers.push(LayerAnalysis {
            layer: l,
            block_output,
            mlp,
            attention,
        });
    }
    let mut seq = SequenceAnalysis {
        index,
        tokens: tokens.to_vec(),
        classes: tokens::classify_sequence(tokens),
        layers,
        block_lifecycle: Lifecycle::default(),
        mlp_lifecycle: Lifecycle::default(),
        outlier_token_classes: ClassCounts::default(),
        outlier_key_classes: ClassCounts::default(),
        token_key: TokenKeyConsistency::default(),
        channels: None,
    };
    seq.block_lifecycle = consistency::lifecycle(&seq.block_series());
    seq.mlp_lifecycle = consistency::lifecycle(&seq.mlp_series());
    let tok_positions: Vec<usize> = seq.outlier_token_layers().into_keys().collect();
    seq.outlier_token_classes = tokens::count_classes(tokens, &tok_positions);
    seq.outlier_key_classes = tokens::count_classes(tokens, &seq.outlier_key_positions());
    seq.token_key =
        consistency::token_key_consistency(&seq.block_series(), &seq.attention_series());
    Ok(seq)
}

/// Run every analysis on an in-memory input (equivalent to feeding an [`Accumulator`]).
pub fn analyze(input: &ProbeInput, th: &Thresholds) -> Result<Report> {
    if input.tokens.len() != input.captures.len() {
        bail!(
            "{} token sequences but {} capture sets",
            input.tokens.len(),
            input.captures.len()
        );
    }
    let mut acc = Accumulator::new(input.model.clone(), input.source.clone(), th.clone());
    for w in &input.weights {
        acc.add_weight(w);
    }
    for (tokens, caps) in input.tokens.iter().zip(&input.captures) {
        acc.add_sequence(tokens, caps)?;
    }
    Ok(acc.finish())
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    fn planted_report(weights: bool) -> Report {
        let p = planted_sequence(1);
        let mut ws = Vec::new();
        if weights {
            for l in 0..p.n_layer {
                ws.push(ModuleWeight {
                    layer: l,
                    kind: ModuleKind::Down,
                    weight: planted_down_proj(l, p.i, p.d),
                });
            }
        }
        let input = ProbeInput {
            model: ModelInfo {
                name: "planted".into(),
                n_layer: p.n_layer,
                n_embd: p.d,
                n_head: p.h,
                vocab_size: 0,
                n_inner: Some(p.i),
            },
            source: "planted test".into(),
            tokens: vec![p.tokens.clone()],
            captures: vec![p.captures],
            weights: ws,
        };
        analyze(&input, &Thresholds::default()).unwrap()
    }

    #[test]
    fn planted_block_output_outliers_channels_tokens_lifecycle() {
        let r = planted_report(false);
        let s = &r.sequences[0];
        for la in &s.layers {
            let b = la.block_output.as_ref().unwrap();
            if PLANT_LAYERS.contains(&la.layer) {
                assert_eq!(
                    b.outlier_token_positions(),
                    vec![0, 3],
                    "layer {}",
                    la.layer
                );
                assert_eq!(b.outlier_channels, vec![PLANT_CHANNEL]);
                assert_eq!(b.top_channels[0].channel, PLANT_CHANNEL);
                assert_eq!(b.top1(), 5000.0);
            } else {
                assert!(!b.holds(), "layer {} holds", la.layer);
            }
        }
        assert_eq!(s.block_lifecycle.first_layer, Some(2));
        assert_eq!(s.block_lifecycle.last_layer, Some(4));
        assert_eq!(s.block_lifecycle.vanish_layer, Some(5));
        assert_eq!(s.block_lifecycle.peak_layer, Some(2));
        assert_eq!(s.mlp_lifecycle.first_layer, Some(2));
        assert_eq!(s.outlier_token_classes.initial, 1);
        assert_eq!(s.outlier_token_classes.strong_delimiter, 1);
        assert_eq!(s.outlier_token_classes.total(), 2);
    }

    #[test]
    fn planted_sink_and_token_key_coincidence() {
        let r = planted_report(false);
        let s = &r.sequences[0];
        let a0 = s.layers[0].attention.as_ref().unwrap();
        assert!(
            a0.outlier_keys.is_empty() && a0.sink_keys.is_empty(),
            "no sink in layer 0: {:?} {:?}",
            a0.top,
            a0.top_excess
        );
        for la in &s.layers[1..] {
            let a = la.attention.as_ref().unwrap();
            assert_eq!(a.outlier_keys, vec![0], "layer {}", la.layer);
            assert_eq!(a.sink_keys, vec![0], "layer {}", la.layer);
            let k0 = a.key0.unwrap();
            assert!(k0.excess > 0.3 * 16.0 && k0.excess == a.top_excess[0].excess);
            assert!(
                a.sink_ratio_max > 0.65 && a.sink_ratio_min < 0.4,
                "{:?}",
                a.head_sink_ratio
            );
        }
        // Attention layers 3..=5 read block outputs 2..=4: tokens {0, 3}, keys {0}.
        let tk = &s.token_key;
        assert_eq!(tk.n_compared, 3);
        assert_eq!(tk.mean_share_of_keys, Some(1.0));
        let l3 = tk.layers.iter().find(|x| x.layer == 3).unwrap();
        assert_eq!(l3.common, vec![0]);
        assert_eq!(l3.share_of_tokens, 0.5);
        assert_eq!(r.corpus.key0_outlier_fraction, 1.0);
        assert_eq!(r.corpus.key0_sink_fraction, 1.0);
        assert_eq!(s.outlier_key_classes.initial, 1);
        let top = r.summary.top_sink_excess.as_ref().unwrap();
        assert_eq!(top.key, 0);
        assert!(top.excess > 0.3 * 16.0 && top.baseline > 3.3 && top.baseline < 3.4);
    }

    #[test]
    fn planted_weight_and_activation_channels_coincide() {
        let r = planted_report(true);
        let w = r.weights.as_ref().unwrap();
        for d in &w.down_proj {
            if PLANT_LAYERS.contains(&d.layer) {
                assert_eq!(d.top_rows[0].channel, PLANT_ROW);
                assert_eq!(d.writes[0].columns[0].column, PLANT_CHANNEL);
                assert!(d.max_ratio > 20.0, "{}", d.max_ratio);
            } else {
                assert!(d.max_ratio < 8.0, "layer {} {}", d.layer, d.max_ratio);
            }
        }
        let c = r.sequences[0].channels.as_ref().unwrap();
        assert_eq!((c.rows.hits, c.rows.of), (3, 3));
        assert_eq!((c.columns.hits, c.columns.of), (3, 3));
        assert_eq!(c.columns_at_appearance, Some(true));
        assert_eq!(r.summary.down_proj_max.as_ref().unwrap().channel, PLANT_ROW);
    }

    #[test]
    fn clean_model_finds_nothing() {
        let mut p = planted_sequence(2);
        for l in 0..p.n_layer {
            p.captures.insert(
                hook::resid_post(l),
                normal_tensor(&[16, p.d], 900 + l as u64),
            );
            p.captures
                .insert(hook::mlp_post(l), normal_tensor(&[16, p.i], 950 + l as u64));
            let mut rng = Rng::new(l as u64);
            let local = causal_pattern(p.h, 16, &mut rng, |_, i| vec![(i, 0.9)]);
            p.captures.insert(hook::pattern(l), local);
        }
        let input = ProbeInput {
            tokens: vec![p.tokens],
            captures: vec![p.captures],
            model: ModelInfo {
                n_layer: p.n_layer,
                ..Default::default()
            },
            ..Default::default()
        };
        let r = analyze(&input, &Thresholds::default()).unwrap();
        let s = &r.sequences[0];
        assert_eq!(s.block_lifecycle.first_layer, None);
        assert_eq!(s.mlp_lifecycle.first_layer, None);
        assert_eq!(s.outlier_token_classes.total(), 0);
        // Local attention: no key collects 0.1 × T. (Uniform causal attention would: key 0 gets
        // H_T ≈ ln T + 0.58, above 0.1 × T for T ≤ 43 — a short-sequence artefact of the rule,
        // which the excess rule does not share: see attention.rs.)
        assert!(s.outlier_key_positions().is_empty());
        assert_eq!(r.corpus.key0_outlier_fraction, 0.0);
        assert_eq!(r.corpus.key0_sink_fraction, 0.0);
        assert!(r.summary.top_sink_excess.is_none() && r.summary.top_sink.is_none());
        assert!(r.summary.massive_channels.is_empty());
    }

    #[test]
    fn shape_errors_name_the_hook() {
        let mut p = planted_sequence(3);
        p.captures
            .insert(hook::resid_post(1), Tensor::new(vec![3, 2], vec![0.0; 6]));
        let err = analyze_sequence(0, &p.tokens, &p.captures, p.n_layer, &Thresholds::default())
            .unwrap_err();
        assert!(
            err.to_string().contains("blocks.1.hook_resid_post"),
            "{err}"
        );
    }
}
