//! The matmul family against the CPU: tiled, matvec and naive kernels, byte-range bindings,
//! the fused epilogue, f16 weights. Test builds only; depends on the kernels' test helpers.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{matmul_ref, pack_f16, Epilogue, MatmulKernel};
use crate::gpu::{Bind, Graph};
use crate::kernels::test_util::*;
use crate::kernels::Kernels;

#[test]
fn matmul_matches_cpu() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(1);
    let mut worst = 0f64;
    for (m, n, k) in [
        (1, 70, 53),
        (37, 70, 53),
        (130, 129, 17),
        (65, 1, 200),
        (70, 65, 33),
    ] {
        let a = randn(&mut rng, m * k, 1.0);
        let b = randn(&mut rng, k * n, 1.0);
        let bias = randn(&mut rng, n, 1.0);
        for (with_bias, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
            let (ab, bb, biasb, c) = (
                upload(&ctx, &a),
                upload(&ctx, &b),
                upload(&ctx, &bias),
                zeros(&ctx, m * n),
            );
            let mut g = Graph::default();
            let bias_bind = with_bias.then_some(&biasb);
            kern.matmul(
                &mut g,
                m,
                n,
                k,
                (&ab).into(),
                (&bb).into(),
                bias_bind,
                (&c).into(),
                b_t,
            );
            run(&ctx, g);
            let want = matmul_ref(m, n, k, &a, &b, with_bias.then_some(&bias[..]), b_t);
            let what = format!("matmul m={m} n={n} k={k} bias={with_bias} b_t={b_t}");
            worst = worst.max(check(&what, &read(&ctx, &c, m * n), &want, TOL_MATMUL));
        }
    }
    eprintln!("matmul worst: {worst:.3e}");
}

/// The LM head's bindings: a row block of x at a byte offset, written into a byte range of a
/// larger output, with b = [n, k]; bytes outside the output range stay as they were.
#[test]
fn matmul_with_byte_offset_bindings() {
    let (ctx, kern) = setup();
    let align = ctx.limits.min_storage_buffer_offset_alignment as usize;
    let mut rng = StdRng::seed_from_u64(2);
    let (rows, d, n) = (100, 37, 70);
    // Row block 64..100: the byte offset 64·37·4 is a multiple of 256.
    let (r0, rn) = (64, 36);
    assert_eq!((r0 * d * 4) % align, 0);
    let x = randn(&mut rng, rows * d, 1.0);
    let w = randn(&mut rng, n * d, 1.0);
    let out_off = 2 * 256usize.max(align); // bytes
    let total = out_off / 4 + rn * n + 50;
    let sentinel = vec![-7.25f32; total];
    let (xb, wb, ob) = (upload(&ctx, &x), upload(&ctx, &w), upload(&ctx, &sentinel));
    let mut g = Graph::default();
    kern.matmul(
        &mut g,
        rn,
        n,
        d,
        Bind::range(&xb, (r0 * d * 4) as u64, (rn * d * 4) as u64),
        (&wb).into(),
        None,
        Bind::range(&ob, out_off as u64, (rn * n * 4) as u64),
        true,
    );
    run(&ctx, g);
    let got = read(&ctx, &ob, total);
    let want = matmul_ref(rn, n, d, &x[r0 * d..], &w, None, true);
    check(
        "matmul via Bind::range",
        &got[out_off / 4..out_off / 4 + rn * n],
        &want,
        TOL_MATMUL,
    );
    let outside = got[..out_off / 4]
        .iter()
        .chain(&got[out_off / 4 + rn * n..]);
    assert!(
        outside.into_iter().all(|&v| v == -7.25),
        "matmul wrote outside its output binding"
    );
}

/// The few-rows path (matvec.wgsl) and the tiled path give the same products on every shape
/// that either may be chosen for.
#[test]
fn matvec_tiled_and_naive_kernels_agree() {
    use rand::{Rng, SeedableRng};
    let ctx = ctx();
    let kern = Kernels::new(&ctx).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    for (m, n, k, bt) in [
        (1, 130, 77, false),
        (8, 65, 33, true),
        (9, 200, 64, false),
        (32, 70, 129, true),
        (3, 1, 5, false),
    ] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut want = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias[j] as f64;
                for kk in 0..k {
                    let w = if bt { b[j * k + kk] } else { b[kk * n + j] };
                    s += a[i * k + kk] as f64 * w as f64;
                }
                want[i * n + j] = s as f32;
            }
        }
        let (ab, bb, biasb) = (
            ctx.storage_init("a", bytemuck::cast_slice(&a)).unwrap(),
            ctx.storage_init("b", bytemuck::cast_slice(&b)).unwrap(),
            ctx.storage_init("bias", bytemuck::cast_slice(&bias))
                .unwrap(),
        );
        for kind in [
            MatmulKernel::Matvec,
            MatmulKernel::Tiled,
            MatmulKernel::Naive,
        ] {
            let c = ctx.storage("c", (m * n * 4) as u64).unwrap();
            let rb = ctx.readback("rb", (m * n * 4) as u64).unwrap();
            let mut g = Graph::default();
            kern.matmul_fused(
                &mut g,
                kind,
                m,
                n,
                k,
                (&ab).into(),
                (&bb).into(),
                Some(&biasb),
                (&c).into(),
                bt,
                Epilogue::default(),
            );
            g.copy(&c, 0, &rb, 0, (m * n * 4) as u64);
            ctx.queue.submit([g.encode(&ctx)]);
            let got = ctx.read_f32(&[(&rb, m * n)]).unwrap().pop().unwrap();
            check(
                &format!("({m},{n},{k}, b_t {bt}, {kind:?})"),
                &got,
                &f64s(&want),
                TOL_MATMUL,
            );
        }
    }
}

/// The matmul epilogue (epilogue.wgsl): bias, then GELU (tanh and erf forms) or ReLU, then a
/// residual add, on the tiled and the matvec kernel, against the CPU.
#[test]
fn matmul_epilogue_gelu_and_residual() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(74);
    for (m, n, k) in [(70usize, 65usize, 33usize), (5, 130, 77)] {
        let a = randn(&mut rng, m * k, 1.0);
        let b = randn(&mut rng, k * n, 0.3);
        let bias = randn(&mut rng, n, 0.5);
        let res = randn(&mut rng, m * n, 1.0);
        let (ab, bb, biasb, rb) = (
            upload(&ctx, &a),
            upload(&ctx, &b),
            upload(&ctx, &bias),
            upload(&ctx, &res),
        );
        for act in 0..3 {
            let (exact, relu) = (act == 1, act == 2);
            let mut want = vec![0f64; m * n];
            for i in 0..m {
                for j in 0..n {
                    let mut s = bias[j] as f64;
                    for kk in 0..k {
                        s += a[i * k + kk] as f64 * b[kk * n + j] as f64;
                    }
                    let g = if relu {
                        s.max(0.0)
                    } else if exact {
                        0.5 * s * (1.0 + libm::erf(s / std::f64::consts::SQRT_2))
                    } else {
                        0.5 * s
                            * (1.0
                                + ((2.0 / std::f64::consts::PI).sqrt()
                                    * (s + 0.044715 * s * s * s))
                                    .tanh())
                    };
                    want[i * n + j] = g + res[i * n + j] as f64;
                }
            }
            let c = zeros(&ctx, m * n);
            let mut g = Graph::default();
            let epi = Epilogue {
                gelu: (!relu).then_some(exact),
                resid: Some(&rb),
                relu,
                ..Default::default()
            };
            kern.matmul_epi(
                &mut g,
                m,
                n,
                k,
                (&ab).into(),
                (&bb).into(),
                Some(&biasb),
                (&c).into(),
                false,
                epi,
            );
            run(&ctx, g);
            check(
                &format!("{m}x{n}x{k} gelu erf {exact} relu {relu} + residual"),
                &read(&ctx, &c, m * n),
                &want,
                TOL_MATMUL,
            );
        }
    }
}

/// f16 weights (packed pairs, `pack_f16`) on the tiled and matvec kernels, both
/// layouts, odd sizes: equal to the f32 kernel on the f16-rounded weights.
#[test]
fn f16_weights_match_rounded_f32() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(75);
    for (m, n, k, bt) in [
        (70usize, 65usize, 33usize, false),
        (3, 131, 77, true),
        (40, 9, 129, true),
    ] {
        let a = randn(&mut rng, m * k, 1.0);
        let b = randn(&mut rng, k * n, 0.3);
        let rounded: Vec<f32> = b.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
        let mut want = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = (0..k)
                    .map(|kk| {
                        let w = if bt {
                            rounded[j * k + kk]
                        } else {
                            rounded[kk * n + j]
                        };
                        a[i * k + kk] as f64 * w as f64
                    })
                    .sum();
            }
        }
        let (ab, bb) = (upload(&ctx, &a), upload(&ctx, &pack_f16(&b)));
        let c = zeros(&ctx, m * n);
        let mut g = Graph::default();
        let epi = Epilogue {
            b_f16: true,
            ..Default::default()
        };
        kern.matmul_epi(
            &mut g,
            m,
            n,
            k,
            (&ab).into(),
            (&bb).into(),
            None,
            (&c).into(),
            bt,
            epi,
        );
        run(&ctx, g);
        check(
            &format!("f16 {m}x{n}x{k} b_t {bt}"),
            &read(&ctx, &c, m * n),
            &want,
            TOL_MATMUL,
        );
    }
}
