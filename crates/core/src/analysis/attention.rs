//! Attention outliers (paper §3, "attention outliers": attention sinks).
//!
//! On post-softmax probabilities `P` [H, T, K] (causal, masked entries 0; K = T without a cache):
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

/// Column sums [K] of uniform causal attention with T queries over K keys (K ≥ T: query i sits at
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

/// Head-averaged probabilities [T, K] of a [H, T, K] pattern.
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

/// Attention-outlier statistics of a [H, T, K] post-softmax pattern: the paper's rule with key
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
mod tests {
    use super::*;
    use crate::analysis::testutil::{causal_pattern, Rng};

    #[test]
    fn planted_sink_column_is_found() {
        // 4 heads, 32 tokens; heads 0..3 send 60% of every row to key 0, head 3 is uniform.
        let mut rng = Rng::new(21);
        let p = causal_pattern(
            4,
            32,
            &mut rng,
            |h, _i| if h < 3 { vec![(0, 0.6)] } else { vec![] },
        );
        let s = attention_stats(&p, 0.1, 0.1);
        assert_eq!(s.outlier_keys, vec![0]);
        assert_eq!(s.top[0].key, 0);
        assert!(s.top[0].colsum > 0.45 * 32.0);
        assert!(
            s.head_sink_ratio[0] > 0.6 && s.head_sink_ratio[3] < 0.3,
            "{:?}",
            s.head_sink_ratio
        );
        assert!(s.sink_ratio_min <= s.sink_ratio_mean && s.sink_ratio_mean <= s.sink_ratio_max);
        assert!(s.median_colsum < 1.0);
    }

    #[test]
    fn uniform_causal_attention_has_no_sink_beyond_the_causal_head_start() {
        // Uniform causal attention: colsum[j] = Σ_{i≥j} 1/(i+1) — key 0 gets H_T ≈ ln T + 0.58,
        // which for T = 256 is ≈ 6.1 < 0.1 × 256: no outlier key.
        let mut rng = Rng::new(22);
        let p = causal_pattern(2, 256, &mut rng, |_, _| vec![]);
        let s = attention_stats(&p, 0.1, 0.1);
        assert!(s.outlier_keys.is_empty(), "{:?}", s.top);
        assert_eq!(s.sink_ratio_max, 0.0);
    }

    /// [H, T, K] pattern whose row i is `alpha · δ_sink + (1 − alpha) · uniform over the visible
    /// keys` (query i at absolute position K − T + i), in every head listed by `sink_heads`, and
    /// plain uniform causal attention in the other heads.
    fn mixed_pattern(
        h: usize,
        t: usize,
        k: usize,
        sink: usize,
        alpha: f32,
        sink_heads: &[usize],
    ) -> Tensor {
        let mut data = vec![0f32; h * t * k];
        for hh in 0..h {
            for i in 0..t {
                let n = k - t + i + 1;
                let row = &mut data[(hh * t + i) * k..(hh * t + i + 1) * k];
                let a = if sink_heads.contains(&hh) && sink < n {
                    alpha
                } else {
                    0.0
                };
                row[..n].iter_mut().for_each(|x| *x = (1.0 - a) / n as f32);
                if a > 0.0 {
                    row[sink] += a;
                }
            }
        }
        Tensor::new(vec![h, t, k], data)
    }

    fn harmonic(n: usize) -> f64 {
        (1..=n).map(|i| 1.0 / i as f64).sum()
    }

    #[test]
    fn causal_uniform_baseline_is_the_harmonic_tail() {
        for t in 1..=40 {
            let b = causal_uniform_colsum(t, t);
            for (j, bj) in b.iter().enumerate() {
                let want: f64 = (j..t).map(|i| 1.0 / (i + 1) as f64).sum();
                assert!((bj - want).abs() < 1e-12, "T={t} key {j}: {bj} vs {want}");
            }
            assert!((b[0] - harmonic(t)).abs() < 1e-12);
            // Every query spreads exactly 1: the baseline's total is T.
            assert!((b.iter().sum::<f64>() - t as f64).abs() < 1e-9);
        }
        // With a cache of 5 earlier keys, 3 queries see 6, 7 and 8 keys.
        let b = causal_uniform_colsum(3, 8);
        let brute = |j: usize| {
            (6..=8)
                .filter(|&n| n > j)
                .map(|n| 1.0 / n as f64)
                .sum::<f64>()
        };
        for (j, bj) in b.iter().enumerate() {
            assert!((bj - brute(j)).abs() < 1e-12, "key {j}");
        }
    }

    #[test]
    fn uniform_causal_attention_is_no_sink_at_any_length() {
        for t in 2..=64usize {
            let p = mixed_pattern(3, t, t, 0, 0.0, &[]);
            let s = attention_stats(&p, 0.1, 0.1);
            assert!(s.sink_keys.is_empty(), "T={t}: {:?}", s.top_excess);
            assert_eq!(s.sink_keys_ratio_mean, 0.0);
            let k0 = s.key0.unwrap();
            assert!((k0.baseline as f64 - harmonic(t)).abs() < 1e-5, "T={t}");
            assert!(s.top_excess.iter().all(|x| x.excess.abs() < 1e-5), "T={t}");
            assert!((s.excess_threshold - 0.1 * t as f32).abs() < 1e-6);
            // The paper's rule alone flags key 0 exactly while H(T) ≥ 0.1 T (T ≤ 43): the artefact.
            assert_eq!(
                s.outlier_keys.first() == Some(&0),
                harmonic(t) >= 0.1 * t as f64,
                "T={t}: {:?}",
                s.outlier_keys
            );
        }
        assert!(harmonic(43) >= 4.3 && harmonic(44) < 4.4);
        // The same with a KV cache (K = T + 7).
        for t in 2..=40usize {
            let s = attention_stats(&mixed_pattern(2, t, t + 7, 0, 0.0, &[]), 0.1, 0.1);
            assert!(s.sink_keys.is_empty(), "cached T={t}: {:?}", s.top_excess);
        }
    }

    #[test]
    fn planted_sinks_of_every_strength_are_flagged_by_their_excess() {
        // Row i = alpha · δ_j + (1 − alpha) · uniform: colsum_j = alpha (T − j) + (1 − alpha) b_j,
        // so excess_j = alpha (T − j − b_j), flagged iff ≥ 0.1 T.
        let mut flagged = 0;
        for t in 2..=64usize {
            let b = causal_uniform_colsum(t, t);
            for j in [0, 1, t / 3, t - 1] {
                for alpha in [0.05f32, 0.25, 0.5, 1.0] {
                    let s =
                        attention_stats(&mixed_pattern(3, t, t, j, alpha, &[0, 1, 2]), 0.1, 0.1);
                    let want = alpha as f64 * (t as f64 - j as f64 - b[j]);
                    let got = s.top_excess[0];
                    let expect_flag = want >= 0.1 * t as f64 + 1e-4;
                    let expect_clear = want < 0.1 * t as f64 - 1e-4;
                    if expect_flag {
                        assert_eq!(s.sink_keys, vec![j], "T={t} key {j} alpha {alpha}");
                        assert_eq!(got.key, j);
                        assert!(
                            (got.excess as f64 - want).abs() < 1e-4,
                            "T={t} {got:?} {want}"
                        );
                        flagged += 1;
                    } else if expect_clear {
                        assert!(
                            s.sink_keys.is_empty(),
                            "T={t} key {j} alpha {alpha}: {got:?}"
                        );
                    }
                    // A key-0 sink of a quarter of every row is a sink from T = 8 on; 5% never is.
                    if j == 0 && alpha >= 0.25 && t >= 8 {
                        assert!(expect_flag, "T={t} alpha {alpha}");
                    }
                    if alpha == 0.05 {
                        assert!(!expect_flag);
                    }
                }
            }
        }
        assert!(flagged > 300, "{flagged}");
        // Two of four heads sink into key 5 with all their mass: the head average halves it.
        let s = attention_stats(&mixed_pattern(4, 32, 32, 5, 1.0, &[0, 2]), 0.1, 0.1);
        assert_eq!(s.sink_keys, vec![5]);
        let b5 = causal_uniform_colsum(32, 32)[5];
        assert!((s.top_excess[0].excess as f64 - 0.5 * (27.0 - b5)).abs() < 1e-4);
        assert!(s.sink_keys_ratio_mean > 0.4 && s.sink_keys_ratio_mean < 0.5);
        // A planted sink behind a KV cache (K = 40, T = 16) is found at its absolute key.
        let s = attention_stats(&mixed_pattern(2, 16, 40, 3, 0.6, &[0, 1]), 0.1, 0.1);
        assert_eq!(s.sink_keys, vec![3]);
    }

    #[test]
    fn rows_sum_to_one_and_head_average() {
        let mut rng = Rng::new(23);
        let p = causal_pattern(3, 8, &mut rng, |_, _| vec![(2, 0.5)]);
        let avg = head_average(&p);
        for i in 0..8 {
            let s: f32 = avg.row(i).iter().sum();
            assert!((s - 1.0).abs() < 1e-5);
            assert!(avg.row(i)[i + 1..].iter().all(|&x| x == 0.0), "causal");
        }
    }
}
