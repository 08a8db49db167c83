//! The report's headline numbers ([`Summary`]): massive channels, outlier tokens, the strongest
//! sink, the largest weight ratios. Depends on the analysis types only; never on wgpu or models.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analysis::causal_uniform_colsum;
use crate::analysis::consistency::{Fraction, Lifecycle};
use crate::analysis::tokens::{normalize_token, TokenClass};
use crate::analysis::weights::{ModuleKind, WeightAnalysis};
use crate::analysis::SequenceAnalysis;

/// A channel with the layers where it holds an outlier entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelLayers {
    pub channel: usize,
    pub layers: Vec<usize>,
    /// Largest `|h|` in this channel over those layers.
    pub max_abs: f32,
}

/// An outlier token of the summarised sequence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutlierToken {
    pub position: usize,
    /// Token string, markers normalised (`Ġ` → space …).
    pub text: String,
    pub class: TokenClass,
    /// Layers whose block output has it as an outlier token.
    pub layers: Vec<usize>,
    /// Largest `|h|` of the token over those layers, and its channel.
    pub max_abs: f32,
    pub channel: usize,
}

/// The strongest attention-outlier key of the summarised sequence (by the paper's rule in
/// [`Summary::top_sink`], by excess over the causal-uniform baseline in
/// [`Summary::top_sink_excess`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopSink {
    pub layer: usize,
    pub key: usize,
    pub text: String,
    /// Head-averaged column sum (out of T).
    pub colsum: f32,
    /// T (queries).
    pub n_queries: usize,
    /// `colsum / T`.
    pub share: f32,
    /// Mean per-head sink ratio of that layer (over the keys the rule flagged there).
    pub sink_ratio_mean: f32,
    /// What uniform causal attention would give the key: `Σ_{i ≥ key} 1/(i+1)` (key 0: H(T)).
    #[serde(default)]
    pub baseline: f32,
    /// `colsum − baseline`.
    #[serde(default)]
    pub excess: f32,
}

/// The largest down-projection ratio of the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DownProjMax {
    pub layer: usize,
    /// Intermediate channel (row of the `[I, D]` weight).
    pub channel: usize,
    pub ratio: f32,
    /// Median row ratio of that layer.
    pub median_ratio: f32,
    /// Residual columns that row writes most strongly into.
    pub columns: Vec<usize>,
}

/// Largest module-comparison ratio of one module kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindMax {
    pub kind: ModuleKind,
    pub max_ratio: f32,
    pub layer: usize,
}

/// The headline numbers, computed from the first detailed sequence, the corpus and the weights.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Index of the sequence summarised (`None` when no sequence was analysed).
    pub sequence: Option<usize>,
    /// Block-output channels holding outlier entries, by number of layers (most first).
    pub massive_channels: Vec<ChannelLayers>,
    /// MLP-intermediate channels holding outlier entries.
    pub mlp_channels: Vec<ChannelLayers>,
    pub outlier_tokens: Vec<OutlierToken>,
    pub block_lifecycle: Lifecycle,
    pub mlp_lifecycle: Lifecycle,
    /// Paper's rule: the outlier key (`colsum ≥ attention_key_frac × T`) with the largest column
    /// sum over layers. On short prompts it can be the causal mask's artefact (see `top_sink_excess`).
    pub top_sink: Option<TopSink>,
    /// Excess rule: the attention sink (`colsum − baseline ≥ sink_excess_frac × T`) with the largest
    /// excess over layers; `None` when no layer has one.
    #[serde(default)]
    pub top_sink_excess: Option<TopSink>,
    pub down_proj_max: Option<DownProjMax>,
    /// Per module kind, the largest `max(row ratio, column ratio)`.
    pub module_max: Vec<KindMax>,
    /// Channel consistency of the summarised sequence: (a) MLP channels vs down-proj rows.
    pub channel_rows: Option<Fraction>,
    /// (b) residual channels vs columns written by the down-proj outlier rows.
    pub channel_columns: Option<Fraction>,
    /// (b) at the appearance layer.
    pub columns_at_appearance: Option<bool>,
    /// Mean share of attention-outlier keys that are activation-outlier tokens of the layer input.
    pub token_key_share: Option<f32>,
}

fn channel_layers<'a>(
    it: impl Iterator<Item = (usize, &'a crate::analysis::ActivationStats)>,
) -> Vec<ChannelLayers> {
    let mut m: BTreeMap<usize, (Vec<usize>, f32)> = BTreeMap::new();
    for (layer, s) in it {
        // max |h| per outlier channel in this layer, from the outlier tokens and top channels.
        for &c in &s.outlier_channels {
            let e = m.entry(c).or_insert((Vec::new(), 0.0));
            e.0.push(layer);
            let mx = s
                .top_channels
                .iter()
                .find(|x| x.channel == c)
                .map(|x| x.max_abs)
                .or_else(|| {
                    s.outlier_tokens
                        .iter()
                        .filter(|t| t.channel == c)
                        .map(|t| t.abs)
                        .reduce(f32::max)
                })
                .unwrap_or(s.threshold);
            e.1 = e.1.max(mx);
        }
    }
    let mut v: Vec<ChannelLayers> = m
        .into_iter()
        .map(|(channel, (layers, max_abs))| ChannelLayers {
            channel,
            layers,
            max_abs,
        })
        .collect();
    v.sort_by(|a, b| {
        b.layers
            .len()
            .cmp(&a.layers.len())
            .then(b.max_abs.total_cmp(&a.max_abs))
    });
    v
}

pub(super) fn summarize(
    seq: Option<&SequenceAnalysis>,
    weights: Option<&WeightAnalysis>,
) -> Summary {
    let mut s = Summary::default();
    if let Some(w) = weights {
        if let Some(d) = w
            .down_proj
            .iter()
            .max_by(|a, b| a.max_ratio.total_cmp(&b.max_ratio))
        {
            s.down_proj_max = d.top_rows.first().map(|r| DownProjMax {
                layer: d.layer,
                channel: r.channel,
                ratio: r.ratio,
                median_ratio: d.median_ratio,
                columns: d
                    .writes
                    .first()
                    .map(|w| w.columns.iter().map(|c| c.column).collect())
                    .unwrap_or_default(),
            });
        }
        s.module_max = w
            .max_by_kind()
            .into_iter()
            .map(|(kind, (max_ratio, layer))| KindMax {
                kind,
                max_ratio,
                layer,
            })
            .collect();
    }
    let Some(seq) = seq else {
        return s;
    };
    s.sequence = Some(seq.index);
    s.massive_channels = channel_layers(
        seq.layers
            .iter()
            .filter_map(|l| l.block_output.as_ref().map(|b| (l.layer, b))),
    );
    s.mlp_channels = channel_layers(
        seq.layers
            .iter()
            .filter_map(|l| l.mlp.as_ref().map(|b| (l.layer, b))),
    );
    for (pos, layers) in seq.outlier_token_layers() {
        let (mut max_abs, mut channel) = (0f32, 0usize);
        for la in &seq.layers {
            if let Some(e) = la
                .block_output
                .as_ref()
                .and_then(|b| b.outlier_tokens.iter().find(|e| e.token == pos))
            {
                if e.abs > max_abs {
                    (max_abs, channel) = (e.abs, e.channel);
                }
            }
        }
        s.outlier_tokens.push(OutlierToken {
            position: pos,
            text: normalize_token(&seq.tokens[pos]),
            class: seq.classes[pos],
            layers,
            max_abs,
            channel,
        });
    }
    s.block_lifecycle = seq.block_lifecycle.clone();
    s.mlp_lifecycle = seq.mlp_lifecycle.clone();
    let text =
        |key: usize| normalize_token(&seq.tokens[key.min(seq.tokens.len().saturating_sub(1))]);
    s.top_sink = seq
        .layers
        .iter()
        .filter_map(|l| {
            l.attention
                .as_ref()
                .and_then(|a| a.top1().map(|k| (l.layer, a, k)))
        })
        .filter(|(_, a, k)| a.outlier_keys.contains(&k.key))
        .max_by(|x, y| x.2.colsum.total_cmp(&y.2.colsum))
        .map(|(layer, a, k)| {
            let baseline = causal_uniform_colsum(a.n_queries, a.n_keys)[k.key] as f32;
            TopSink {
                layer,
                key: k.key,
                text: text(k.key),
                colsum: k.colsum,
                n_queries: a.n_queries,
                share: k.colsum / a.n_queries.max(1) as f32,
                sink_ratio_mean: a.sink_ratio_mean,
                baseline,
                excess: k.colsum - baseline,
            }
        });
    s.top_sink_excess = seq
        .layers
        .iter()
        .filter_map(|l| {
            l.attention
                .as_ref()
                .and_then(|a| a.top1_excess().map(|k| (l.layer, a, k)))
        })
        .filter(|(_, a, k)| a.sink_keys.contains(&k.key))
        .max_by(|x, y| x.2.excess.total_cmp(&y.2.excess))
        .map(|(layer, a, k)| TopSink {
            layer,
            key: k.key,
            text: text(k.key),
            colsum: k.colsum,
            n_queries: a.n_queries,
            share: k.colsum / a.n_queries.max(1) as f32,
            sink_ratio_mean: a.sink_keys_ratio_mean,
            baseline: k.baseline,
            excess: k.excess,
        });
    if let Some(c) = &seq.channels {
        s.channel_rows = Some(c.rows);
        s.channel_columns = Some(c.columns);
        s.columns_at_appearance = c.columns_at_appearance;
    }
    s.token_key_share = seq.token_key.mean_share_of_keys;
    s
}
