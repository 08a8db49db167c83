//! Attention outliers (paper §3, "attention outliers": attention sinks).
//!
//! On post-softmax probabilities `P` [H, T, K] (causal, masked entries 0; K = T without a cache):
//! - head-averaged `P̄ = (1/H) Σ_h P_h`;
//! - column sums `colsum[j] = Σ_i P̄[i, j]`: the total attention key j receives from the T queries;
//! - key j is an attention-outlier key when `colsum[j] ≥ frac × T` (paper: frac = 0.1);
//! - per-head sink ratio: `Σ_{j outlier} colsum_h[j] / Σ_j colsum_h[j]` with `colsum_h` the column
//!   sums of head h alone (the paper's code hard-codes the keys; here they are the computed keys).

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
}

impl AttentionStats {
    pub fn top1(&self) -> Option<KeyMass> {
        self.top.first().copied()
    }
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

/// Attention-outlier statistics of a [H, T, K] post-softmax pattern with key threshold `frac × T`.
pub fn attention_stats(p: &Tensor, frac: f32) -> AttentionStats {
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
        let s = attention_stats(&p, 0.1);
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
        let s = attention_stats(&p, 0.1);
        assert!(s.outlier_keys.is_empty(), "{:?}", s.top);
        assert_eq!(s.sink_ratio_max, 0.0);
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
