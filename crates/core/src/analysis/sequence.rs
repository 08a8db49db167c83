//! The analysis of one sequence: per layer, activation and attention statistics; over layers,
//! lifecycle, token classes and token/key consistency. Depends on tensor and the analyses only.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::{
    activation_stats, attention_stats, consistency, hook, stats, tokens, ActivationStats,
    AttentionStats, ChannelConsistency, ClassCounts, Lifecycle, Thresholds, TokenClass,
    TokenKeyConsistency,
};
use crate::tensor::Tensor;

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
