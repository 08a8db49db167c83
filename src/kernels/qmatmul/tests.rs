//! qmatvec.wgsl against the CPU for every block type: random blocks (random quants, scale
//! fields set to finite random f16), dequantized by `gguf::dequantize` and multiplied in f64;
//! odd row counts (not a multiple of the workgroup's 8), several row blocks of A, bias and the
//! fused epilogue, a column offset into a wider output; and Q8_0 quantization. Test builds only.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{qmatvec_ref, quantize_q8_0, repack, QType, QWeight};
use crate::gguf::dequantize;
use crate::gpu::Graph;
use crate::kernels::act::gelu_erf_ref;
use crate::kernels::test_util::*;
use crate::kernels::Epilogue;

/// `rows × k` weights of type `ty` as GGUF blocks: random bytes with each block's f16 scale
/// (and min) set to random values of magnitude ~0.01.
pub(crate) fn random_blocks(rng: &mut StdRng, ty: QType, rows: usize, k: usize) -> Vec<u8> {
    let (be, bb) = (ty.block_elems(), ty.block_bytes());
    let n = rows * k / be;
    let mut bytes: Vec<u8> = (0..n * bb).map(|_| rng.random::<u8>()).collect();
    let f16_fields: &[usize] = match ty {
        QType::Q8_0 | QType::Q4_0 | QType::Q5_0 => &[0],
        QType::Q4_1 | QType::Q5_1 | QType::Q4_K | QType::Q5_K => &[0, 2],
        QType::Q6_K => &[208],
    };
    for b in bytes.chunks_exact_mut(bb) {
        for &o in f16_fields {
            let v: f32 = rng.random_range(-0.02..0.02);
            b[o..o + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
    }
    bytes
}

#[test]
fn qmatvec_matches_cpu_for_every_type() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(15);
    let mut worst = 0f64;
    for ty in QType::ALL {
        let be = ty.block_elems();
        // (m, rows, k): one row (decode), 11 rows (two row blocks of 8); 37 and 3 weight rows.
        for (m, rows, k) in [(1, 37, 3 * be), (11, 3, be), (1, 9, 2 * be)] {
            let bytes = random_blocks(&mut rng, ty, rows, k);
            let w = dequantize(ty.ggml(), &bytes, rows * k).unwrap();
            let q = repack(ty, rows, k, &bytes).unwrap();
            let a = randn(&mut rng, m * k, 1.0);
            let bias = randn(&mut rng, rows, 1.0);
            let (ab, wb, biasb, c) = (
                upload(&ctx, &a),
                upload(&ctx, &q.words),
                upload(&ctx, &bias),
                zeros(&ctx, m * rows),
            );
            let qw = QWeight {
                ty,
                buf: wb,
                rows,
                col_off: 0,
                hoff: q.hoff,
            };
            let mut g = Graph::default();
            let epi = Epilogue::default();
            kern.qmatvec(
                &mut g,
                m,
                rows,
                k,
                (&ab).into(),
                &qw,
                Some(&biasb),
                (&c).into(),
                epi,
            );
            run(&ctx, g);
            let want = qmatvec_ref(m, rows, k, &a, &w, Some(&bias));
            let what = format!("qmatvec {ty:?} m={m} rows={rows} k={k}");
            worst = worst.max(check(&what, &read(&ctx, &c, m * rows), &want, TOL_MATMUL));
        }
    }
    eprintln!("qmatvec worst: {worst:.3e}");
}

/// Two matrices of different types writing their column ranges of one output (a stacked
/// q|k|v whose parts differ in type), with the fused GELU (erf) and residual add.
#[test]
fn qmatvec_writes_its_columns_with_the_epilogue() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(16);
    let (m, k) = (3, 256);
    let parts = [(QType::Q5_0, 13), (QType::Q6_K, 6)];
    let n: usize = parts.iter().map(|p| p.1).sum();
    let a = randn(&mut rng, m * k, 1.0);
    let resid = randn(&mut rng, m * n, 1.0);
    let (ab, rb, c) = (upload(&ctx, &a), upload(&ctx, &resid), zeros(&ctx, m * n));
    let mut want = vec![0f64; m * n];
    let mut g = Graph::default();
    let mut col = 0;
    let mut keep = Vec::new();
    for (ty, rows) in parts {
        let bytes = random_blocks(&mut rng, ty, rows, k);
        let w = dequantize(ty.ggml(), &bytes, rows * k).unwrap();
        let q = repack(ty, rows, k, &bytes).unwrap();
        let part = qmatvec_ref(m, rows, k, &a, &w, None);
        for i in 0..m {
            for j in 0..rows {
                let v = gelu_erf_ref(part[i * rows + j]);
                want[i * n + col + j] = v + resid[i * n + col + j] as f64;
            }
        }
        let qw = QWeight {
            ty,
            buf: upload(&ctx, &q.words),
            rows,
            col_off: col,
            hoff: q.hoff,
        };
        let epi = Epilogue {
            gelu: Some(true),
            resid: Some(&rb),
            ..Default::default()
        };
        kern.qmatvec(&mut g, m, n, k, (&ab).into(), &qw, None, (&c).into(), epi);
        keep.push(qw);
        col += rows;
    }
    run(&ctx, g);
    check(
        "qmatvec parts + gelu + resid",
        &read(&ctx, &c, m * n),
        &want,
        1e-5,
    );
}

/// Q8_0 quantization round-trips through `gguf::dequantize` within half a step per block.
#[test]
fn quantize_q8_0_is_within_half_a_step() {
    let mut rng = StdRng::seed_from_u64(17);
    let x = randn(&mut rng, 32 * 9, 3.0);
    let bytes = quantize_q8_0(&x);
    assert_eq!(bytes.len(), 9 * 34);
    let y = dequantize(QType::Q8_0.ggml(), &bytes, x.len()).unwrap();
    for (blk, (xs, ys)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let step = amax / 127.0;
        for (i, (a, b)) in xs.iter().zip(ys).enumerate() {
            assert!(
                (a - b).abs() <= 0.5 * step * 1.01 + amax * 1e-3,
                "block {blk} element {i}: {a} → {b} (step {step})"
            );
        }
    }
}

/// Shapes a type cannot hold are refused by name.
#[test]
fn repack_refuses_partial_blocks() {
    let e = repack(QType::Q4_K, 2, 96, &[0u8; 2 * 144]).unwrap_err();
    assert!(format!("{e}").contains("96"), "{e}");
    let e = super::check_shape(QType::Q6_K, "blk.0.ffn_down.weight", 640).unwrap_err();
    assert!(format!("{e}").contains("blk.0.ffn_down.weight"), "{e}");
}

/// The embedding gather decodes every element exactly as `gguf::dequantize` (same f32 operations
/// in the same order), for tokens inside and outside the chunk.
#[test]
fn qembed_gathers_dequantized_rows() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(18);
    for ty in QType::ALL {
        let (v, d, start) = (13, 2 * ty.block_elems(), 100);
        let bytes = random_blocks(&mut rng, ty, v, d);
        let w = dequantize(ty.ggml(), &bytes, v * d).unwrap();
        let q = repack(ty, v, d, &bytes).unwrap();
        let tokens: Vec<u32> = vec![100, 112, 5, 107, 100 + 13];
        let rows = tokens.len();
        let sentinel = vec![-3.5f32; rows * d];
        let (tb, resid, emb) = (
            upload(&ctx, &tokens),
            upload(&ctx, &sentinel),
            upload(&ctx, &sentinel),
        );
        let qw = QWeight {
            ty,
            buf: upload(&ctx, &q.words),
            rows: v,
            col_off: 0,
            hoff: q.hoff,
        };
        let mut g = Graph::default();
        kern.qembed(&mut g, (rows, d), start, &tb, &qw, &resid, &emb);
        run(&ctx, g);
        let (got_r, got_e) = (read(&ctx, &resid, rows * d), read(&ctx, &emb, rows * d));
        for (r, &t) in tokens.iter().enumerate() {
            for c in 0..d {
                let want = if (start..start + v).contains(&(t as usize)) {
                    w[(t as usize - start) * d + c]
                } else {
                    -3.5
                };
                let i = r * d + c;
                assert!(
                    got_r[i].to_bits() == want.to_bits() && got_e[i].to_bits() == want.to_bits(),
                    "{ty:?} token {t} [{c}]: got {} / {}, want {want}",
                    got_r[i],
                    got_e[i]
                );
            }
        }
    }
}

/// Dequantizing into a row offset of a wider f32 matrix gives `gguf::dequantize`'s values bit
/// for bit and leaves the other rows alone.
#[test]
fn qdequant_writes_its_rows_exactly() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(19);
    for ty in QType::ALL {
        let (rows, k, off, total) = (7, 2 * ty.block_elems(), 3, 12);
        let bytes = random_blocks(&mut rng, ty, rows, k);
        let w = dequantize(ty.ggml(), &bytes, rows * k).unwrap();
        let q = repack(ty, rows, k, &bytes).unwrap();
        let out = upload(&ctx, &vec![-3.5f32; total * k]);
        let qw = QWeight {
            ty,
            buf: upload(&ctx, &q.words),
            rows,
            col_off: off,
            hoff: q.hoff,
        };
        let mut g = Graph::default();
        kern.qdequant(&mut g, k, &qw, &out);
        run(&ctx, g);
        let got = read(&ctx, &out, total * k);
        for (i, v) in got.iter().enumerate() {
            let r = i / k;
            let want = if (off..off + rows).contains(&r) {
                w[i - off * k]
            } else {
                -3.5
            };
            assert_eq!(
                v.to_bits(),
                want.to_bits(),
                "{ty:?} [{r}, {}]: {v} vs {want}",
                i % k
            );
        }
    }
}
