//! The matvec kernels (both reductions, the per-column baseline) and both tile shapes against
//! the CPU on odd and aligned shapes, both layouts, f32 and f16 weights, every epilogue, and
//! the GLU input of the one-row matvec. Test builds only; depends on the kernels' test helpers.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{matmul_ref, pack_f16, Epilogue, MatmulKernel};
use crate::gpu::Graph;
use crate::kernels::test_util::*;

/// Every kernel that runs the engine's linear layers (matvec with either reduction, the
/// per-column baseline, tiles) on odd shapes (N not a multiple of 4 or 32, K not a multiple of
/// 4 and below one 8-lane stride, M = 1 and partial 4-row blocks; and shapes whose rows align
/// to 16 bytes, matvec's vec4 path, for f32 only or for f16 too), both layouts, f32 and f16
/// weights, and each epilogue (bias, GELU tanh / erf, ReLU, residual) against the CPU in f64.
#[test]
fn matvec_kernels_every_layout_weight_type_and_epilogue() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(76);
    let kinds = [
        MatmulKernel::Matvec,
        MatmulKernel::MatvecWorkgroup,
        MatmulKernel::MatvecPerColumn,
        MatmulKernel::Tiled,
        MatmulKernel::Tiled8x8,
    ];
    let mut case = 0usize;
    let shapes = [
        (1usize, 37usize, 29usize),
        (6, 70, 131),
        (1, 131, 6),
        (9, 5, 64),
        (1, 40, 24),
        (5, 72, 36),
        (70, 131, 37),
    ];
    for (m, n, k) in shapes {
        let a = randn(&mut rng, m * k, 1.0);
        let b = randn(&mut rng, k * n, 0.3);
        let bias = randn(&mut rng, n, 0.5);
        let res = randn(&mut rng, m * n, 1.0);
        let (ab, biasb, rb) = (upload(&ctx, &a), upload(&ctx, &bias), upload(&ctx, &res));
        for (bt, f16) in [(false, false), (true, false), (false, true), (true, true)] {
            let wv: Vec<f32> = if f16 {
                b.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
            } else {
                b.clone()
            };
            let bb = if f16 {
                upload(&ctx, &pack_f16(&b))
            } else {
                upload(&ctx, &b)
            };
            for kind in kinds {
                // Epilogues in turn (each kind meets all four): none, bias + GELU tanh,
                // bias + GELU erf + residual, ReLU.
                let act = (case / 5 + case) % 4;
                case += 1;
                let with_bias = act == 1 || act == 2;
                let epi = Epilogue {
                    gelu: match act {
                        1 => Some(false),
                        2 => Some(true),
                        _ => None,
                    },
                    resid: (act == 2).then_some(&rb),
                    relu: act == 3,
                    b_f16: f16,
                    glu: None,
                };
                let dot = matmul_ref(m, n, k, &a, &wv, with_bias.then_some(&bias[..]), bt);
                let want: Vec<f64> = dot
                    .iter()
                    .enumerate()
                    .map(|(i, &s)| match act {
                        1 => {
                            let c = (2.0 / std::f64::consts::PI).sqrt();
                            0.5 * s * (1.0 + (c * (s + 0.044715 * s * s * s)).tanh())
                        }
                        2 => {
                            0.5 * s * (1.0 + libm::erf(s / std::f64::consts::SQRT_2))
                                + res[i] as f64
                        }
                        3 => s.max(0.0),
                        _ => s,
                    })
                    .collect();
                let c = zeros(&ctx, m * n);
                let mut g = Graph::default();
                kern.matmul_fused(
                    &mut g,
                    kind,
                    m,
                    n,
                    k,
                    (&ab).into(),
                    (&bb).into(),
                    with_bias.then_some(&biasb),
                    (&c).into(),
                    bt,
                    epi,
                );
                run(&ctx, g);
                let what = format!("{kind:?} {m}x{n}x{k} b_t {bt} f16 {f16} epilogue {act}");
                check(&what, &read(&ctx, &c, m * n), &want, TOL_MATMUL);
            }
        }
    }
    eprintln!("matvec subgroups: {}", kern.matvec_subgroups);
}

/// The one-row matvec reading a gated MLP's gate | up rows itself (`Epilogue::glu`: SwiGLU,
/// GeGLU) equals swiglu.wgsl's formulas followed by the product, in f64: both reductions, both
/// layouts, f32 and f16 weights, a shape off every alignment and one on the 16-byte path, with
/// and without bias and residual.
#[test]
fn matvec_reads_glu_input() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(77);
    let mut case = 0usize;
    for (n, k) in [(37usize, 29usize), (40, 24)] {
        let gu = randn(&mut rng, 2 * k, 1.5);
        let b = randn(&mut rng, k * n, 0.3);
        let bias = randn(&mut rng, n, 0.5);
        let res = randn(&mut rng, n, 1.0);
        let (gub, biasb, rb) = (upload(&ctx, &gu), upload(&ctx, &bias), upload(&ctx, &res));
        for gelu in [false, true] {
            let post: Vec<f64> = (0..k)
                .map(|i| {
                    let (g, u) = (gu[i] as f64, gu[k + i] as f64);
                    let act = if gelu {
                        let c = (2.0 / std::f64::consts::PI).sqrt();
                        0.5 * g * (1.0 + (c * (g + 0.044715 * g * g * g)).tanh())
                    } else {
                        g / (1.0 + (-g).exp())
                    };
                    act * u
                })
                .collect();
            for (bt, f16) in [(false, false), (true, false), (false, true), (true, true)] {
                let wv: Vec<f32> = if f16 {
                    b.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
                } else {
                    b.clone()
                };
                let bb = if f16 {
                    upload(&ctx, &pack_f16(&b))
                } else {
                    upload(&ctx, &b)
                };
                for kind in [MatmulKernel::Matvec, MatmulKernel::MatvecWorkgroup] {
                    let extras = case % 2 == 1;
                    case += 1;
                    let want: Vec<f64> = (0..n)
                        .map(|j| {
                            let dot: f64 = (0..k)
                                .map(|i| {
                                    let w = if bt { wv[j * k + i] } else { wv[i * n + j] };
                                    post[i] * w as f64
                                })
                                .sum();
                            if extras {
                                dot + bias[j] as f64 + res[j] as f64
                            } else {
                                dot
                            }
                        })
                        .collect();
                    let c = zeros(&ctx, n);
                    let mut g = Graph::default();
                    let epi = Epilogue {
                        resid: extras.then_some(&rb),
                        b_f16: f16,
                        glu: Some(gelu),
                        ..Default::default()
                    };
                    kern.matmul_fused(
                        &mut g,
                        kind,
                        1,
                        n,
                        k,
                        (&gub).into(),
                        (&bb).into(),
                        extras.then_some(&biasb),
                        (&c).into(),
                        bt,
                        epi,
                    );
                    run(&ctx, g);
                    let what = format!("{kind:?} GLU gelu {gelu} n {n} k {k} b_t {bt} f16 {f16}");
                    check(&what, &read(&ctx, &c, n), &want, TOL_MATMUL);
                }
            }
        }
    }
}
