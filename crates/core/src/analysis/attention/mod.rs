//! Attention outliers (paper §3, "attention outliers": attention sinks).
//!
//! On post-softmax probabilities `P` `[H, T, K]` (causal, masked entries 0; K = T without a cache):
//! - head-averaged `P̄ = (1/H) Σ_h P_h`;
//! - column sums `colsum[j] = Σ_i P̄[i, j]`: the total attention key j receives from the T queries;
//! - key j is an attention-outlier key when `colsum[j] ≥ frac × T` (paper: frac = 0.1);
//! - per-head sink ratio: `Σ_{j outlier} colsum_h[j] / Σ_j colsum_h[j]` with `colsum_h` the column
//!   sums of head h alone (the paper's code hard-codes the keys; here they are the computed keys).
//!
//! The paper's rule is blind to the causal mask: under perfectly uniform causal attention (query i
//! spreads 1/(i+1) over keys 0..=i) key j still receives the *causal-uniform baseline*
//! `b[j] = Σ_{i ≥ j} 1/(i+1)` (0-based query i, key j); for key 0 that is the harmonic number
//! `H(T) ≈ ln T + 0.58`, which is ≥ 0.1 × T for every T ≤ 43, so on short prompts the rule flags
//! key 0 (and with random-init weights, other early keys) of a model that has no sink at all.
//! Beside the paper's rule this module therefore reports each key's *excess* over that baseline,
//! `excess[j] = colsum[j] − b[j]`, and calls key j an **attention sink** when
//! `excess[j] ≥ excess_frac × T` (default `excess_frac` = 0.1: the paper's 0.1 × T applied to the
//! mass the mask alone does not explain). Uniform causal attention has excess 0 for every key, so it
//! is never flagged at any length; at long T the baseline (≤ H(T)) is small next to 0.1 × T and both
//! rules agree. With a KV cache (K > T, query i at absolute position K − T + i) the baseline is that
//! of the visible prefix: query i spreads 1/(K − T + i + 1) over keys 0..=K − T + i.

use serde::{Deserialize, Serialize};

use super::stats::{median, top_k};
use crate::tensor::Tensor;

/// A key with its column sum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyMass {
    pub key: usize,
    /// Head-averaged column sum (out of T).
    pub colsum: f32,
}

/// A key with its column sum, causal-uniform baseline and excess.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyExcess {
    pub key: usize,
    /// Head-averaged column sum (out of T).
    pub colsum: f32,
    /// What uniform causal attention would give this key: `Σ_{i ≥ key} 1/(i+1)` (no cache).
    pub baseline: f32,
    /// `colsum − baseline` (negative when the key gets less than uniform attention would give it).
    pub excess: f32,
}

/// Attention-outlier statistics of one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionStats {
    pub n_heads: usize,
    /// Queries T.
    pub n_queries: usize,
    /// Keys K.
    pub n_keys: usize,
    /// The key threshold used: `frac × T`.
    pub threshold: f32,
    /// The two keys with the largest head-averaged column sums, largest first.
    pub top: Vec<KeyMass>,
    /// Median head-averaged column sum.
    pub median_colsum: f32,
    /// Keys with `colsum ≥ threshold`, ascending.
    pub outlier_keys: Vec<usize>,
    /// Per head: share of the head's column mass held by `outlier_keys` (0 when there are none).
    pub head_sink_ratio: Vec<f32>,
    /// Mean, min and max of `head_sink_ratio`.
    pub sink_ratio_mean: f32,
    pub sink_ratio_min: f32,
    pub sink_ratio_max: f32,
    /// The excess threshold used: `excess_frac × T` (see the module docs).
    #[serde(default)]
    pub excess_threshold: f32,
    /// The two keys with the largest excess over the causal-uniform baseline, largest first.
    #[serde(default)]
    pub top_excess: Vec<KeyExcess>,
    /// Key 0 (the initial token) with its baseline `H(T)` and excess (absent when K = 0).
    #[serde(default)]
    pub key0: Option<KeyExcess>,
    /// Attention sinks: keys with `excess ≥ excess_threshold`, ascending.
    #[serde(default)]
    pub sink_keys: Vec<usize>,
    /// Mean over heads of the share of the head's column mass held by `sink_keys` (0 without any).
    #[serde(default)]
    pub sink_keys_ratio_mean: f32,
}

impl AttentionStats {
    /// The key with the largest head-averaged column sum.
    pub fn top1(&self) -> Option<KeyMass> {
        self.top.first().copied()
    }

    /// The key with the largest excess over the causal-uniform baseline.
    pub fn top1_excess(&self) -> Option<KeyExcess> {
        self.top_excess.first().copied()
    }
}

/// Column sums `[K]` of uniform causal attention with T queries over K keys (K ≥ T: query i sits at
/// absolute position K − T + i and spreads `1/(K − T + i + 1)` over keys `0..=K − T + i`; with
/// K = T, `b[j] = Σ_{i ≥ j} 1/(i+1)`, `b[0] = H(T)`). K < T is read as a cache-less pattern whose
/// last T − K queries see all K keys. Computed in f64 in O(T + K).
pub fn causal_uniform_colsum(t: usize, k: usize) -> Vec<f64> {
    let offset = k.saturating_sub(t);
    // w[n]: total weight of queries that see exactly n keys, each giving 1/n to keys 0..n.
    let mut w = vec![0f64; k + 1];
    for i in 0..t {
        let n = (offset + i + 1).min(k);
        if n > 0 {
            w[n] += 1.0 / n as f64;
        }
    }
    // b[j] = Σ_{n > j} w[n]: a suffix sum.
    let mut b = vec![0f64; k];
    let mut acc = 0f64;
    for j in (0..k).rev() {
        acc += w[j + 1];
        b[j] = acc;
    }
    b
}

/// Head-averaged probabilities `[T, K]` of a `[H, T, K]` pattern.
pub fn head_average(p: &Tensor) -> Tensor {
    let (h, t, k) = dims(p);
    let mut avg = vec![0f32; t * k];
    for hh in 0..h {
        for (a, x) in avg.iter_mut().zip(&p.data[hh * t * k..(hh + 1) * t * k]) {
            *a += x;
        }
    }
    let inv = 1.0 / h.max(1) as f32;
    avg.iter_mut().for_each(|a| *a *= inv);
    Tensor::new(vec![t, k], avg)
}

fn dims(p: &Tensor) -> (usize, usize, usize) {
    assert_eq!(
        p.shape.len(),
        3,
        "attention pattern must be [H, T, K], got {:?}",
        p.shape
    );
    (p.shape[0], p.shape[1], p.shape[2])
}

/// Attention-outlier statistics of a `[H, T, K]` post-softmax pattern: the paper's rule with key
/// threshold `frac × T`, and attention sinks by excess over the causal-uniform baseline with
/// threshold `excess_frac × T` (module docs). Non-finite probabilities count as 0.
/// Panics when `p` is not 3-D (callers check hook shapes first).
pub fn attention_stats(p: &Tensor, frac: f32, excess_frac: f32) -> AttentionStats {
    let (h, t, k) = dims(p);
    // Per-head column sums [H, K]; non-finite probabilities count as 0.
    let mut head_col = vec![0f64; h * k];
    for hh in 0..h {
        for i in 0..t {
            let row = &p.data[(hh * t + i) * k..(hh * t + i + 1) * k];
            for (j, x) in row.iter().enumerate() {
                if x.is_finite() {
                    head_col[hh * k + j] += *x as f64;
                }
            }
        }
    }
    let colsum: Vec<f32> = (0..k)
        .map(|j| ((0..h).map(|hh| head_col[hh * k + j]).sum::<f64>() / h.max(1) as f64) as f32)
        .collect();
    let threshold = frac * t as f32;
    let outlier_keys: Vec<usize> = (0..k).filter(|&j| colsum[j] >= threshold).collect();
    let head_sink_ratio: Vec<f32> = (0..h)
        .map(|hh| {
            let col = &head_col[hh * k..(hh + 1) * k];
            let total: f64 = col.iter().sum();
            let sink: f64 = outlier_keys.iter().map(|&j| col[j]).sum();
            if total > 0.0 {
                (sink / total) as f32
            } else {
                0.0
            }
        })
        .collect();
    let base = causal_uniform_colsum(t, k);
    let excess: Vec<f32> = (0..k)
        .map(|j| (colsum[j] as f64 - base[j]) as f32)
        .collect();
    let excess_threshold = excess_frac * t as f32;
    let sink_keys: Vec<usize> = (0..k).filter(|&j| excess[j] >= excess_threshold).collect();
    let key_excess = |j: usize| KeyExcess {
        key: j,
        colsum: colsum[j],
        baseline: base[j] as f32,
        excess: excess[j],
    };
    let sink_keys_ratio_mean = if h == 0 || sink_keys.is_empty() {
        0.0
    } else {
        let per_head = (0..h).map(|hh| {
            let col = &head_col[hh * k..(hh + 1) * k];
            let total: f64 = col.iter().sum();
            let sink: f64 = sink_keys.iter().map(|&j| col[j]).sum();
            if total > 0.0 {
                sink / total
            } else {
                0.0
            }
        });
        (per_head.sum::<f64>() / h as f64) as f32
    };
    let (mean, min, max) = if head_sink_ratio.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            head_sink_ratio.iter().sum::<f32>() / h as f32,
            head_sink_ratio
                .iter()
                .copied()
                .fold(f32::INFINITY, f32::min),
            head_sink_ratio
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max),
        )
    };
    AttentionStats {
        n_heads: h,
        n_queries: t,
        n_keys: k,
        threshold,
        top: top_k(&colsum, 2)
            .into_iter()
            .map(|j| KeyMass {
                key: j,
                colsum: colsum[j],
            })
            .collect(),
        median_colsum: median(&colsum),
        outlier_keys,
        head_sink_ratio,
        sink_ratio_mean: mean,
        sink_ratio_min: min,
        sink_ratio_max: max,
        excess_threshold,
        top_excess: top_k(&excess, 2).into_iter().map(key_excess).collect(),
        key0: (k > 0).then(|| key_excess(0)),
        sink_keys,
        sink_keys_ratio_mean,
    }
}

#[cfg(test)]
mod tests;
