//! The fake-quantization kernels against their CPU references, and the planted-outlier check
//! of LLM.int8()'s observation. Test builds only.
//! Test code of the quantization kernels only.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{quant_act_ref, quant_weight_ref};
use crate::gpu::Graph;
use crate::kernels::test_util::*;

/// quant_weights.wgsl against `quant_weight_ref`: both layouts, per channel and per
/// tensor, 8 and 4 bits, protected input channels, a matrix at an element offset inside its
/// buffer (the values around it must stay as they were).
#[test]
fn weight_fake_quant_matches_cpu() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(71);
    let (k, n, off) = (37usize, 70usize, 5usize);
    let protect: Vec<bool> = (0..k).map(|i| i == 3 || i == 20).collect();
    let mask: Vec<u32> = protect.iter().map(|&p| p as u32).collect();
    let mask_buf = upload(&ctx, &mask);
    for b_t in [false, true] {
        for per_channel in [true, false] {
            for bits in [8u32, 4] {
                let what = format!("b_t {b_t} per_channel {per_channel} bits {bits}");
                let mut all = randn(&mut rng, off + k * n + 3, 1.0);
                // A protected row far larger than the rest: it must not set the scales.
                for col in 0..n {
                    let i = if b_t { col * k + 3 } else { 3 * n + col };
                    all[off + i] *= 400.0;
                }
                let buf = upload(&ctx, &all);
                let scales = zeros(&ctx, n);
                let mut g = Graph::default();
                kern.quant_weight(
                    &mut g,
                    &buf,
                    off,
                    k,
                    n,
                    b_t,
                    per_channel,
                    bits,
                    &mask_buf,
                    &scales,
                );
                run(&ctx, g);
                let got = read(&ctx, &buf, all.len());
                let mut want = all.clone();
                quant_weight_ref(
                    &mut want[off..off + k * n],
                    (k, n, b_t),
                    per_channel,
                    bits,
                    &protect,
                );
                assert_eq!(
                    &got[..off],
                    &all[..off],
                    "{what}: values before the matrix changed"
                );
                assert_eq!(
                    &got[off + k * n..],
                    &all[off + k * n..],
                    "{what}: values after the matrix changed"
                );
                // Division on the GPU may differ in the last ulp; allow that, never a whole step.
                check(&what, &got, &f64s(&want), 1e-6);
                let changed = (0..k * n).filter(|&i| got[off + i] != all[off + i]).count();
                assert!(
                    changed > k * n / 2,
                    "{what}: only {changed} values were quantized"
                );
            }
        }
    }
}

/// quant_acts.wgsl against `quant_act_ref`: one scale per sequence, padding rows
/// (filled with huge values) neither counted nor changed, protected channels exact.
#[test]
fn activation_fake_quant_matches_cpu() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(72);
    let (seqs, tmax, k) = (2usize, 13usize, 300usize);
    let lens = [13usize, 9];
    let rows = seqs * tmax;
    let mut x = randn(&mut rng, rows * k, 1.0);
    let mut info = vec![[0u32; 4]; rows];
    for (b, &len) in lens.iter().enumerate() {
        for t in 0..tmax {
            let r = b * tmax + t;
            if t < len {
                info[r] = [b as u32, t as u32, 1, len as u32];
            } else {
                x[r * k..(r + 1) * k].fill(1e6);
            }
        }
    }
    // Sequence 1 is scaled up: its own scale must be used.
    for v in &mut x[tmax * k..] {
        if *v != 1e6 {
            *v *= 30.0;
        }
    }
    let protect: Vec<bool> = (0..k).map(|c| c == 7 || c == 299).collect();
    let mask: Vec<u32> = protect.iter().map(|&p| p as u32).collect();
    let xb = upload(&ctx, &x);
    let (mb, ib, sb) = (upload(&ctx, &mask), upload(&ctx, &info), zeros(&ctx, seqs));
    let mut g = Graph::default();
    kern.quant_act(&mut g, rows, k, tmax, seqs, 8, &xb, &mb, &ib, &sb);
    run(&ctx, g);
    let got = read(&ctx, &xb, rows * k);
    let mut want = x.clone();
    for (b, &len) in lens.iter().enumerate() {
        let r0 = b * tmax;
        quant_act_ref(&mut want[r0 * k..(r0 + len) * k], k, 8, &protect);
    }
    check("a8 per sequence", &got, &f64s(&want), 1e-6);
    assert_eq!(
        &got[(tmax + 9) * k..],
        &x[(tmax + 9) * k..],
        "padding rows changed"
    );
}

/// The LLM.int8() observation on a planted outlier: one channel 500× the others makes a
/// per-tensor A8 scale so coarse that ordinary channels round to zero; keeping that channel
/// in f32 brings the error of the others back to a fraction of a step.
#[test]
fn planted_outlier_channel_breaks_a8_and_protection_fixes_it() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(73);
    let (rows, k, hot) = (20usize, 64usize, 5usize);
    let mut x = randn(&mut rng, rows * k, 1.0);
    for r in 0..rows {
        x[r * k + hot] = 500.0 * if r % 2 == 0 { 1.0 } else { -1.0 };
    }
    let info: Vec<[u32; 4]> = (0..rows).map(|t| [0, t as u32, 1, rows as u32]).collect();
    let ib = upload(&ctx, &info);
    // Relative RMS error over the ordinary channels.
    let err = |protect: &[usize]| -> (f64, Vec<f32>) {
        let mut mask = vec![0u32; k];
        protect.iter().for_each(|&c| mask[c] = 1);
        let xb = upload(&ctx, &x);
        let (mb, sb) = (upload(&ctx, &mask), zeros(&ctx, 1));
        let mut g = Graph::default();
        kern.quant_act(&mut g, rows, k, rows, 1, 8, &xb, &mb, &ib, &sb);
        run(&ctx, g);
        let got = read(&ctx, &xb, rows * k);
        let (mut se, mut ss) = (0f64, 0f64);
        for i in (0..rows * k).filter(|i| i % k != hot) {
            se += (got[i] as f64 - x[i] as f64).powi(2);
            ss += (x[i] as f64).powi(2);
        }
        ((se / ss).sqrt(), got)
    };
    let (plain, _) = err(&[]);
    let (protected, got) = err(&[hot]);
    eprintln!("A8 relative RMS error of the ordinary channels: {plain:.3} plain, {protected:.5} with channel {hot} protected");
    assert!(
        plain > 0.5,
        "the outlier should ruin per-tensor A8, error {plain}"
    );
    assert!(
        protected < 0.02,
        "protection should fix it, error {protected}"
    );
    for r in 0..rows {
        assert_eq!(
            got[r * k + hot],
            x[r * k + hot],
            "the protected channel changed"
        );
    }
}
