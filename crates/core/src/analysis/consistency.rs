//! Lifecycle of activation outliers across layers, and the paper's consistency claims:
//! weight-outlier channels coincide with activation-outlier channels, and activation-outlier tokens
//! coincide with attention-outlier keys. Everything is computed from the statistics; nothing is assumed.
//! Depends on the other analyses only; never on the report, wgpu or models.

use serde::{Deserialize, Serialize};

use super::activation::ActivationStats;
use super::attention::AttentionStats;
use super::stats::{intersect, sorted_set};
use super::weights::WeightAnalysis;

/// Where activation outliers live across layers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Layers where the rule holds (at least one outlier token), ascending.
    pub layers_holding: Vec<usize>,
    /// First layer where the rule holds (appearance).
    pub first_layer: Option<usize>,
    /// Holding layer with the largest top-1 `|h|` (first on ties).
    pub peak_layer: Option<usize>,
    /// Last layer where the rule holds.
    pub last_layer: Option<usize>,
    /// First layer after the peak where the rule no longer holds (vanishing); `None` when it holds
    /// through the last analysed layer.
    pub vanish_layer: Option<usize>,
}

/// Lifecycle of a per-layer series (index = layer; `None` = not captured, counted as not holding).
pub fn lifecycle(series: &[Option<&ActivationStats>]) -> Lifecycle {
    let holds: Vec<bool> = series
        .iter()
        .map(|s| s.is_some_and(|s| s.holds()))
        .collect();
    let layers_holding: Vec<usize> = (0..holds.len()).filter(|&l| holds[l]).collect();
    let mut peak: Option<(usize, f32)> = None;
    for &l in &layers_holding {
        let v = series[l].map_or(0.0, |s| s.top1());
        if peak.is_none_or(|(_, p)| v > p) {
            peak = Some((l, v));
        }
    }
    let peak_layer = peak.map(|p| p.0);
    Lifecycle {
        first_layer: layers_holding.first().copied(),
        last_layer: layers_holding.last().copied(),
        vanish_layer: peak_layer.and_then(|p| (p + 1..holds.len()).find(|&l| !holds[l])),
        peak_layer,
        layers_holding,
    }
}

/// The channels that stand for a layer's activation outliers: the channels holding outlier entries
/// when the rule holds, else the top channels by `max_t |h|`.
pub fn outlier_channel_set(s: &ActivationStats) -> Vec<usize> {
    if s.holds() {
        s.outlier_channels.clone()
    } else {
        sorted_set(s.top_channel_indices())
    }
}

/// Channel consistency of one layer (needs that layer's down projection).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelConsistencyLayer {
    pub layer: usize,
    /// (a) MLP-intermediate activation channels (I side), see [`outlier_channel_set`].
    pub mlp_channels: Vec<usize>,
    /// Does the MLP-intermediate rule hold in this layer?
    pub mlp_holds: bool,
    /// Down-projection outlier rows (I side), largest ratio first.
    pub weight_rows: Vec<usize>,
    /// `mlp_channels ∩ weight_rows`.
    pub common_rows: Vec<usize>,
    /// (b) Residual (block output) activation channels (D side).
    pub residual_channels: Vec<usize>,
    /// Does the block-output rule hold in this layer?
    pub residual_holds: bool,
    /// Residual columns the outlier rows write most strongly into (D side).
    pub written_columns: Vec<usize>,
    /// `residual_channels ∩ written_columns`.
    pub common_columns: Vec<usize>,
}

/// hits / of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fraction {
    pub hits: usize,
    pub of: usize,
}

impl Fraction {
    pub fn value(&self) -> Option<f32> {
        (self.of > 0).then(|| self.hits as f32 / self.of as f32)
    }
}

/// Do weight-outlier channels coincide with activation-outlier channels?
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelConsistency {
    pub layers: Vec<ChannelConsistencyLayer>,
    /// (a) Over layers where the MLP rule holds: how many have a common channel between the MLP
    /// outlier channels and the down-projection outlier rows.
    pub rows: Fraction,
    /// (b) Over layers where the block-output rule holds: how many have a residual outlier channel among
    /// the columns written by that layer's down-projection outlier rows. Massive residual channels
    /// persist after the layer that writes them, so expect this to hold at appearance, not everywhere.
    pub columns: Fraction,
    /// First layer where the block-output rule holds.
    pub appearance_layer: Option<usize>,
    /// (b) at the appearance layer: is a residual outlier channel written by that layer's (or, failing
    /// that, the previous layer's) down-projection outlier rows?
    pub columns_at_appearance: Option<bool>,
}

/// Per-layer channel sets from one sequence (or from corpus votes).
pub struct LayerChannels {
    pub layer: usize,
    pub mlp: Option<(Vec<usize>, bool)>,
    pub residual: Option<(Vec<usize>, bool)>,
}

/// Compare activation channel sets with the down-projection outliers layer by layer.
pub fn channel_consistency(
    per_layer: &[LayerChannels],
    weights: &WeightAnalysis,
    appearance_layer: Option<usize>,
) -> ChannelConsistency {
    let mut out = ChannelConsistency {
        appearance_layer,
        ..Default::default()
    };
    for lc in per_layer {
        let Some(down) = weights.down_proj_at(lc.layer) else {
            continue;
        };
        let weight_rows = down.top_row_indices();
        let rows_sorted = sorted_set(weight_rows.iter().copied());
        let written_columns = down.written_columns();
        let (mlp_channels, mlp_holds) = lc.mlp.clone().unwrap_or_default();
        let (residual_channels, residual_holds) = lc.residual.clone().unwrap_or_default();
        let common_rows = intersect(&mlp_channels, &rows_sorted);
        let common_columns = intersect(&residual_channels, &written_columns);
        if mlp_holds {
            out.rows.of += 1;
            out.rows.hits += usize::from(!common_rows.is_empty());
        }
        if residual_holds {
            out.columns.of += 1;
            out.columns.hits += usize::from(!common_columns.is_empty());
        }
        out.layers.push(ChannelConsistencyLayer {
            layer: lc.layer,
            mlp_channels,
            mlp_holds,
            weight_rows,
            common_rows,
            residual_channels,
            residual_holds,
            written_columns,
            common_columns,
        });
    }
    if let Some(a) = appearance_layer {
        let residual = per_layer
            .iter()
            .find(|lc| lc.layer == a)
            .and_then(|lc| lc.residual.clone())
            .map(|r| r.0)
            .unwrap_or_default();
        let written = |l: usize| weights.down_proj_at(l).map(|d| d.written_columns());
        let here = written(a);
        let before = a.checked_sub(1).and_then(written);
        if here.is_some() || before.is_some() {
            let hit =
                |w: Option<Vec<usize>>| w.is_some_and(|w| !intersect(&residual, &w).is_empty());
            out.columns_at_appearance = Some(hit(here) || hit(before));
        }
    }
    out
}

/// Activation-outlier tokens vs attention-outlier keys in one layer. The attention of layer l reads
/// the block output of layer l − 1, so the tokens are those of the block output of layer l − 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenKeyLayer {
    /// The attention layer l.
    pub layer: usize,
    /// Outlier tokens of block output l − 1.
    pub outlier_tokens: Vec<usize>,
    /// Attention-outlier keys of layer l.
    pub outlier_keys: Vec<usize>,
    pub common: Vec<usize>,
    /// |common| / |outlier_keys| (0 when there are no keys).
    pub share_of_keys: f32,
    /// |common| / |outlier_tokens| (0 when there are no tokens).
    pub share_of_tokens: f32,
}

/// Token/key coincidence over the layers of one sequence.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenKeyConsistency {
    /// Layers where both the attention and the previous block output were captured.
    pub layers: Vec<TokenKeyLayer>,
    /// Mean `share_of_keys` over the layers where both sets are non-empty (`None` if there is none).
    pub mean_share_of_keys: Option<f32>,
    /// Number of those layers.
    pub n_compared: usize,
}

/// Compare activation-outlier tokens with attention-outlier keys (index = layer).
pub fn token_key_consistency(
    block: &[Option<&ActivationStats>],
    attention: &[Option<&AttentionStats>],
) -> TokenKeyConsistency {
    let mut out = TokenKeyConsistency::default();
    let mut sum = 0f32;
    for l in 1..attention.len().min(block.len() + 1) {
        let (Some(b), Some(a)) = (block[l - 1], attention[l]) else {
            continue;
        };
        let tokens = sorted_set(b.outlier_token_positions());
        let keys = a.outlier_keys.clone();
        let common = intersect(&tokens, &keys);
        let share = |n: usize| {
            if n == 0 {
                0.0
            } else {
                common.len() as f32 / n as f32
            }
        };
        if !tokens.is_empty() && !keys.is_empty() {
            out.n_compared += 1;
            sum += share(keys.len());
        }
        out.layers.push(TokenKeyLayer {
            layer: l,
            share_of_keys: share(keys.len()),
            share_of_tokens: share(tokens.len()),
            outlier_tokens: tokens,
            outlier_keys: keys,
            common,
        });
    }
    out.mean_share_of_keys = (out.n_compared > 0).then(|| sum / out.n_compared as f32);
    out
}
