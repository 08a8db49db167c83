//! Activation outliers on one captured tensor of a layer (paper §3, "activation outliers").
//! Depends on tensor and the analyses' helpers only; never on the report, wgpu or models.
//!
//! Definitions (Wang et al. 2025, code of `an-yongqi/systematic-outliers` / `massive-activations`):
//! - layer-wise statistics: the top-1, top-2, top-3 of `|h|` over all (token, channel) entries and the
//!   median of `|h|`;
//! - outlier token: `max_c |h[t,c]| > 1000 × mean_{t,c} |h|` (mean over the whole tensor);
//! - outlier channels: the channels with the largest `max_t |h[t,c]|` (top-2 in the paper's code).
//!
//! Sun et al. ("Massive Activations", 2024) use "magnitude > 100 and about 1000× the median" instead;
//! [`ActivationRule`] holds all three thresholds, so either reading (or both at once) can be applied.

use serde::{Deserialize, Serialize};

use super::stats::{median_in_place, safe_ratio, top_k};
use crate::tensor::Tensor;

/// When is an entry `|h[t,c]|` an outlier? When it exceeds [`ActivationRule::threshold`]:
/// `max(ratio_to_mean × mean|h|, ratio_to_median × median|h|, min_abs)` (strictly greater).
/// A zero factor switches its term off.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivationRule {
    /// Factor on the tensor's mean `|h|` (paper: 1000).
    pub ratio_to_mean: f32,
    /// Factor on the tensor's median `|h|` (Sun et al.: about 1000; paper rule: 0 = off).
    pub ratio_to_median: f32,
    /// Absolute floor on `|h|` (Sun et al.: 100; paper rule: 0 = off).
    pub min_abs: f32,
}

impl Default for ActivationRule {
    fn default() -> Self {
        Self::paper()
    }
}

impl ActivationRule {
    /// Wang et al.: `|h| > 1000 × mean |h|`.
    pub fn paper() -> Self {
        Self {
            ratio_to_mean: 1000.0,
            ratio_to_median: 0.0,
            min_abs: 0.0,
        }
    }

    /// Sun et al. ("Massive Activations"): `|h| > 100` and `|h| > 1000 × median |h|`.
    pub fn massive_activations() -> Self {
        Self {
            ratio_to_mean: 0.0,
            ratio_to_median: 1000.0,
            min_abs: 100.0,
        }
    }

    /// The magnitude an entry must exceed, given the tensor's mean and median `|h|`.
    pub fn threshold(&self, mean_abs: f32, median_abs: f32) -> f32 {
        (self.ratio_to_mean * mean_abs)
            .max(self.ratio_to_median * median_abs)
            .max(self.min_abs)
    }
}

/// One entry of the tensor: position and value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub token: usize,
    pub channel: usize,
    /// Signed value `h[token, channel]`.
    pub value: f32,
    /// `|value|`.
    pub abs: f32,
}

/// A channel with its largest magnitude over tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelMax {
    pub channel: usize,
    /// `max_t |h[t, channel]|`.
    pub max_abs: f32,
    /// The token holding that maximum.
    pub token: usize,
}

/// Activation-outlier statistics of one `[T, C]` tensor (any tensor whose first axis is the token axis;
/// the rest is flattened into C).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivationStats {
    /// T.
    pub n_tokens: usize,
    /// C (product of the trailing axes).
    pub n_channels: usize,
    /// Entries that were NaN or infinite; they are left out of every statistic below.
    pub non_finite: usize,
    /// The three largest `|h|` entries, largest first (fewer when the tensor is smaller).
    pub top: Vec<Entry>,
    /// Median of `|h|` over all finite entries.
    pub median_abs: f32,
    /// Mean of `|h|` over all finite entries.
    pub mean_abs: f32,
    /// top-1 / median (finite; `f32::MAX` when the median is 0 and top-1 is not).
    pub top1_over_median: f32,
    /// top-1 / mean.
    pub top1_over_mean: f32,
    /// The magnitude the rule asks an outlier to exceed in this tensor.
    pub threshold: f32,
    /// Outlier tokens: `max_c |h[t,c]| > threshold`, in token order, each with its largest entry.
    pub outlier_tokens: Vec<Entry>,
    /// Channels holding at least one outlier entry (`|h[t,c]| > threshold`), ascending.
    pub outlier_channels: Vec<usize>,
    /// The `top_channels` channels with the largest `max_t |h[t,c]|`, largest first.
    pub top_channels: Vec<ChannelMax>,
}

impl ActivationStats {
    /// Does the layer have at least one outlier token under the rule?
    pub fn holds(&self) -> bool {
        !self.outlier_tokens.is_empty()
    }

    /// top-1 `|h|` (0 for an empty tensor).
    pub fn top1(&self) -> f32 {
        self.top.first().map_or(0.0, |e| e.abs)
    }

    /// The i-th largest `|h|` (0-based), 0 if absent.
    pub fn top_n(&self, i: usize) -> f32 {
        self.top.get(i).map_or(0.0, |e| e.abs)
    }

    /// Positions of the outlier tokens.
    pub fn outlier_token_positions(&self) -> Vec<usize> {
        self.outlier_tokens.iter().map(|e| e.token).collect()
    }

    /// Channel indices of `top_channels`.
    pub fn top_channel_indices(&self) -> Vec<usize> {
        self.top_channels.iter().map(|c| c.channel).collect()
    }
}

/// Activation-outlier statistics of `h` ([T, ...], first axis = tokens) under `rule`, keeping the
/// `top_channels` channels with the largest `max_t |h[t,c]|`.
pub fn activation_stats(h: &Tensor, rule: &ActivationRule, top_channels: usize) -> ActivationStats {
    let t_len = h.shape.first().copied().unwrap_or(0);
    let c_len = h.numel().checked_div(t_len).unwrap_or(0);

    let mut abs: Vec<f32> = Vec::with_capacity(h.numel());
    let mut sum = 0f64;
    let mut non_finite = 0usize;
    let mut top: Vec<Entry> = Vec::with_capacity(4);
    let mut token_max = vec![(-1f32, 0usize, 0f32); t_len]; // (|h|, channel, value)
    let mut channel_max = vec![(-1f32, 0usize); c_len]; // (|h|, token)

    let rows = h
        .data
        .chunks_exact(c_len.max(1))
        .take(if c_len == 0 { 0 } else { t_len });
    for (t, (row, tm)) in rows.zip(token_max.iter_mut()).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            if !v.is_finite() {
                non_finite += 1;
                continue;
            }
            let a = v.abs();
            abs.push(a);
            sum += a as f64;
            if a > tm.0 {
                *tm = (a, c, v);
            }
            if a > channel_max[c].0 {
                channel_max[c] = (a, t);
            }
            if top.len() < 3 || a > top[top.len() - 1].abs {
                let e = Entry {
                    token: t,
                    channel: c,
                    value: v,
                    abs: a,
                };
                let pos = top.iter().position(|x| a > x.abs).unwrap_or(top.len());
                top.insert(pos, e);
                top.truncate(3);
            }
        }
    }

    let n = abs.len();
    let mean_abs = if n == 0 { 0.0 } else { (sum / n as f64) as f32 };
    let median_abs = median_in_place(&mut abs);
    drop(abs);
    let threshold = rule.threshold(mean_abs, median_abs);
    let top1 = top.first().map_or(0.0, |e| e.abs);

    let outlier_tokens: Vec<Entry> = token_max
        .iter()
        .enumerate()
        .filter(|(_, m)| m.0 > threshold)
        .map(|(t, &(a, c, v))| Entry {
            token: t,
            channel: c,
            value: v,
            abs: a,
        })
        .collect();
    let outlier_channels: Vec<usize> = channel_max
        .iter()
        .enumerate()
        .filter(|(_, m)| m.0 > threshold)
        .map(|(c, _)| c)
        .collect();
    let cmax: Vec<f32> = channel_max.iter().map(|m| m.0).collect();
    let top_channels = top_k(&cmax, top_channels)
        .into_iter()
        .filter(|&c| channel_max[c].0 >= 0.0)
        .map(|c| ChannelMax {
            channel: c,
            max_abs: channel_max[c].0,
            token: channel_max[c].1,
        })
        .collect();

    ActivationStats {
        n_tokens: t_len,
        n_channels: c_len,
        non_finite,
        top,
        median_abs,
        mean_abs,
        top1_over_median: safe_ratio(top1, median_abs),
        top1_over_mean: safe_ratio(top1, mean_abs),
        threshold,
        outlier_tokens,
        outlier_channels,
        top_channels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::testutil::normal_tensor;

    #[test]
    fn finds_planted_entries() {
        // 16 384 entries: mean |h| ≈ 0.8 + 12000 / 16384 ≈ 1.5, threshold ≈ 1500.
        let mut h = normal_tensor(&[16, 1024], 1);
        h.data[7] = 5000.0; // (0, 7)
        h.data[3 * 1024 + 7] = -4000.0; // (3, 7)
        h.data[5 * 1024 + 20] = 3000.0; // (5, 20)
        let s = activation_stats(&h, &ActivationRule::paper(), 2);
        assert_eq!(s.top.len(), 3);
        assert_eq!(
            (s.top[0].token, s.top[0].channel, s.top[0].abs),
            (0, 7, 5000.0)
        );
        assert_eq!(
            (s.top[1].token, s.top[1].channel, s.top[1].value),
            (3, 7, -4000.0)
        );
        assert_eq!((s.top[2].token, s.top[2].channel), (5, 20));
        assert_eq!(s.outlier_token_positions(), vec![0, 3, 5]);
        assert_eq!(s.outlier_channels, vec![7, 20]);
        assert_eq!(s.top_channel_indices(), vec![7, 20]);
        assert!(
            s.median_abs > 0.5 && s.median_abs < 0.9,
            "N(0,1) median |h| ≈ 0.674"
        );
        assert!(s.holds());
    }

    #[test]
    fn clean_data_has_no_outliers() {
        let h = normal_tensor(&[16, 64], 2);
        let s = activation_stats(&h, &ActivationRule::paper(), 2);
        assert!(!s.holds());
        assert!(s.outlier_channels.is_empty());
        assert_eq!(
            s.top_channels.len(),
            2,
            "top channels exist even without outliers"
        );
        let s = activation_stats(&h, &ActivationRule::massive_activations(), 2);
        assert!(!s.holds());
    }

    #[test]
    fn rules_differ_on_a_moderate_spike() {
        // Background N(0,1) on 1024 entries: mean |h| ≈ 0.8, median |h| ≈ 0.67.
        let mut h = normal_tensor(&[16, 64], 3);
        // 150: passes "100 × mean" (≈ 94) but not Sun et al. (needs > 1000 × median ≈ 674).
        h.data[5] = 150.0;
        assert!(!activation_stats(&h, &ActivationRule::massive_activations(), 2).holds());
        let lax = ActivationRule {
            ratio_to_mean: 100.0,
            ratio_to_median: 0.0,
            min_abs: 0.0,
        };
        assert!(activation_stats(&h, &lax, 2).holds());
        // 800: passes Sun et al. but not the paper's 1000 × mean (mean ≈ 1.58 → 1580).
        h.data[5] = 800.0;
        assert!(activation_stats(&h, &ActivationRule::massive_activations(), 2).holds());
        assert!(!activation_stats(&h, &ActivationRule::paper(), 2).holds());
    }

    #[test]
    fn non_finite_entries_are_counted_and_skipped() {
        let mut h = normal_tensor(&[4, 8], 4);
        h.data[3] = f32::NAN;
        h.data[9] = f32::INFINITY;
        let s = activation_stats(&h, &ActivationRule::paper(), 2);
        assert_eq!(s.non_finite, 2);
        assert!(s.mean_abs.is_finite() && s.median_abs.is_finite());
        assert!(s.top.iter().all(|e| e.abs.is_finite()));
    }

    #[test]
    fn three_axis_tensor_flattens_trailing_axes() {
        let mut h = normal_tensor(&[5, 2, 4], 5); // [T, H, Dh]
        h.data[2 * 8 + 4 + 1] = 9000.0; // token 2, head 1, dim 1 → channel 5
        let s = activation_stats(&h, &ActivationRule::paper(), 1);
        assert_eq!(s.n_channels, 8);
        assert_eq!((s.top[0].token, s.top[0].channel), (2, 5));
    }
}
