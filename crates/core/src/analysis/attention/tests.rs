//! Unit tests of the attention analysis on seeded synthetic data.
//! Test-only; depends on the attention analysis and the test data, never on the report or wgpu.

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

/// `[H, T, K]` pattern whose row i is `alpha · δ_sink + (1 − alpha) · uniform over the visible
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
                let s = attention_stats(&mixed_pattern(3, t, t, j, alpha, &[0, 1, 2]), 0.1, 0.1);
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
