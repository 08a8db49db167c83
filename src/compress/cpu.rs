//! CPU references of the compression kernels: fake quantization of weights and activations, and pruning.
//! Plain Rust over slices; the quantization references are kernels::quant's (what its WGSL is tested against).
//! Plain Rust: never wgpu or models.

/// The fake-quantization references live with their kernels (kernels::quant); the study
/// uses them under these names.
pub use crate::kernels::quant::{
    fake_quant, quant_act_ref as quant_act_cpu, quant_weight_ref as quant_weight_cpu,
};

/// Zero exactly ⌊share·n⌋ of the n unprotected weights of a `[k, n]` (or `[n, k]` with `b_t`)
/// matrix: the smallest |w|, ties broken by storage order. Returns how many were zeroed.
pub fn prune_cpu(
    w: &mut [f32],
    (k, n, b_t): (usize, usize, bool),
    share: f32,
    protect: &[bool],
) -> usize {
    let kin_of = |i: usize| if b_t { i % k } else { i / n };
    let mut idx: Vec<usize> = (0..k * n).filter(|&i| !protect[kin_of(i)]).collect();
    let count = (share as f64 * idx.len() as f64).floor() as usize;
    if count == 0 {
        return 0;
    }
    // Total order: |w|, then index.
    idx.select_nth_unstable_by(count - 1, |&a, &b| {
        w[a].abs().total_cmp(&w[b].abs()).then(a.cmp(&b))
    });
    for &i in &idx[..count] {
        w[i] = 0.0;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::qmax;
    use crate::kernels::quant::matrix_index as at;
    use rand::{Rng, SeedableRng};

    fn randn(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let u1 = 1.0 - rng.random::<f64>();
                let u2 = rng.random::<f64>();
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect()
    }

    /// itself exact, idempotent, and 4 bits coarser than 8.
    #[test]
    fn round_trip_error_bounds() {
        let (k, n) = (33, 17);
        let w0 = randn(k * n, 1);
        let none = vec![false; k];
        let mut errs = Vec::new();
        for bits in [8u32, 4] {
            for per_channel in [true, false] {
                for b_t in [false, true] {
                    let mut w = w0.clone();
                    quant_weight_cpu(&mut w, (k, n, b_t), per_channel, bits, &none);
                    let q = qmax(bits);
                    for col in 0..n {
                        let amax = if per_channel {
                            (0..k)
                                .map(|i| w0[at(i, col, k, n, b_t)].abs())
                                .fold(0f32, f32::max)
                        } else {
                            w0.iter().fold(0f32, |m, v| m.max(v.abs()))
                        };
                        let s = amax / q;
                        for kin in 0..k {
                            let i = at(kin, col, k, n, b_t);
                            assert!(
                                (w[i] - w0[i]).abs() <= s * 0.5 * (1.0 + 1e-5),
                                "bits {bits}"
                            );
                        }
                    }
                    let mut again = w.clone();
                    quant_weight_cpu(&mut again, (k, n, b_t), per_channel, bits, &none);
                    assert_eq!(again, w, "quantizing twice changes nothing");
                    let rms = (w.iter().zip(&w0).map(|(a, b)| (a - b).powi(2)).sum::<f32>()
                        / w.len() as f32)
                        .sqrt();
                    errs.push((bits, per_channel, rms));
                }
            }
        }
        let e = |b, pc| errs.iter().find(|x| x.0 == b && x.1 == pc).unwrap().2;
        assert!(e(4, true) > 5.0 * e(8, true), "{errs:?}");
        assert!(
            e(8, true) < e(8, false),
            "per channel is finer than per tensor: {errs:?}"
        );
        // Activations: the same bound with one scale.
        let mut x = randn(5 * 40, 2);
        let x0 = x.clone();
        quant_act_cpu(&mut x, 40, 8, &[false; 40]);
        let s = x0.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        assert!(x
            .iter()
            .zip(&x0)
            .all(|(a, b)| (a - b).abs() <= s * 0.5 * (1.0 + 1e-5)));
    }

    /// Pruning zeroes exactly ⌊p·n⌋ unprotected weights, the smallest ones, and never a
    /// protected one — also with ties.
    #[test]
    fn pruning_keeps_exactly_the_requested_share() {
        let (k, n) = (29, 23);
        let mut w0 = randn(k * n, 3);
        // Ties: a run of equal magnitudes.
        for v in w0.iter_mut().take(60) {
            *v = 0.25f32.copysign(*v);
        }
        let protect: Vec<bool> = (0..k).map(|i| i % 7 == 2).collect();
        for b_t in [false, true] {
            for share in [0.5f32, 0.3, 0.9] {
                let kin_of = |i: usize| if b_t { i % k } else { i / n };
                let mut w = w0.clone();
                let zeroed = prune_cpu(&mut w, (k, n, b_t), share, &protect);
                let unprot = (0..k * n).filter(|&i| !protect[kin_of(i)]).count();
                let want = (share as f64 * unprot as f64).floor() as usize;
                assert_eq!(zeroed, want);
                let now_zero = (0..k * n).filter(|&i| w[i] == 0.0 && w0[i] != 0.0).count();
                assert_eq!(now_zero, want, "share {share}");
                let mut max_cut = 0f32;
                let mut min_kept = f32::MAX;
                for i in 0..k * n {
                    if protect[kin_of(i)] {
                        assert_eq!(w[i], w0[i], "a protected weight changed");
                    } else if w[i] == 0.0 {
                        max_cut = max_cut.max(w0[i].abs());
                    } else {
                        min_kept = min_kept.min(w0[i].abs());
                    }
                }
                assert!(max_cut <= min_kept, "pruned {max_cut} but kept {min_kept}");
            }
        }
    }
}
