//! Each WGSL kernel alone against a straightforward CPU implementation (f64 where it matters),
//! on seeded random inputs at sizes that are not multiples of the kernels' tiles:
//! matmul 64×64 tiles with a K step of 16, attention chunks of 256 keys over 64 threads,
//! layernorm workgroups of 128 threads, 1-D kernels in workgroups of 256.
//!
//! Every output entry must satisfy |gpu − cpu| ≤ t·(median|cpu| + |cpu|) (numpy's allclose with
//! atol scaled to the median magnitude, `Tensor::allclose`), with t = TOL (1e-5), TOL_MATMUL
//! (5e-6) for the matmul family, or as stated.

mod common;

use std::sync::Arc;

use outlier_probe::gpu::GpuContext;
use outlier_probe::kernels::{AttnParams, Bind, Epilogue, Graph, Kernels, MatmulKernel};
use outlier_probe::tensor::Tensor;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Attention, layernorm, GELU (measured worst 5.5e-6, attention z over 271 keys).
const TOL: f64 = 1e-5;
/// Matmul, matvec, their epilogues, f16 weights, fma_peak (measured worst 9.7e-7).
const TOL_MATMUL: f64 = 5e-6;

fn setup() -> (Arc<GpuContext>, Kernels) {
    let ctx = common::ctx();
    let k = Kernels::new(&ctx).unwrap_or_else(|e| panic!("{e:#}"));
    (ctx, k)
}

/// Encode, submit and wait, turning any wgpu validation error into a panic.
fn run(ctx: &GpuContext, g: Graph) {
    ctx.checked("test graph", || {
        ctx.queue.submit([g.encode(ctx)]);
        ctx.wait()
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

fn upload<T: bytemuck::Pod>(ctx: &GpuContext, data: &[T]) -> wgpu::Buffer {
    ctx.storage_init("test input", bytemuck::cast_slice(data))
        .unwrap()
}

fn zeros(ctx: &GpuContext, n: usize) -> wgpu::Buffer {
    ctx.storage("test output", n as u64 * 4).unwrap()
}

/// The first `n` f32 values of a storage buffer.
fn read(ctx: &GpuContext, buf: &wgpu::Buffer, n: usize) -> Vec<f32> {
    ctx.read_storage(buf, n).unwrap()
}

/// N(0,1) · scale values (Box–Muller), never all zero.
fn randn(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1 = 1.0 - rng.random::<f64>();
            let u2 = rng.random::<f64>();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32 * scale
        })
        .collect()
}

/// Every entry within |got − want| ≤ t·(median|want| + |want|) (the f64 reference rounded to
/// f32); fails on a length mismatch or a NaN/inf, naming the worst entry. Prints and returns the
/// smallest t that would have passed.
fn check(what: &str, got: &[f32], want: &[f64], t: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let got = Tensor::new(vec![got.len()], got.to_vec());
    let want = Tensor::new(vec![want.len()], want.iter().map(|&x| x as f32).collect());
    common::check_close(what, &got, &want, t as f32)
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

// ---------------------------------------------------------------- matmul

/// c = a · b (+ bias); b is [k, n], or [n, k] with `b_t`.
fn matmul_cpu(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    b_t: bool,
) -> Vec<f64> {
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = bias.map_or(0.0, |bs| bs[j] as f64);
            for t in 0..k {
                let bv = if b_t { b[j * k + t] } else { b[t * n + j] };
                s += a[i * k + t] as f64 * bv as f64;
            }
            c[i * n + j] = s;
        }
    }
    c
}

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
            let want = matmul_cpu(m, n, k, &a, &b, with_bias.then_some(&bias[..]), b_t);
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
    let want = matmul_cpu(rn, n, d, &x[r0 * d..], &w, None, true);
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

// ---------------------------------------------------------------- layernorm

fn layernorm_cpu(rows: usize, d: usize, eps: f64, x: &[f32], g: &[f32], b: &[f32]) -> Vec<f64> {
    let mut y = vec![0f64; rows * d];
    for r in 0..rows {
        let row = &x[r * d..(r + 1) * d];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for c in 0..d {
            y[r * d + c] = (row[c] as f64 - mean) * inv * g[c] as f64 + b[c] as f64;
        }
    }
    y
}

#[test]
fn layernorm_matches_cpu() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(3);
    let rows = 5;
    for d in [333, 1] {
        let mut x = randn(&mut rng, rows * d, 1.0);
        if d > 1 {
            // A row with a large mean and a row with one GPT-2-style outlier channel.
            x[3 * d..4 * d].iter_mut().for_each(|v| *v += 20.0);
            x[4 * d + 7] = 300.0;
        }
        let gamma: Vec<f32> = randn(&mut rng, d, 0.5).iter().map(|v| v + 1.0).collect();
        let beta = randn(&mut rng, d, 1.0);
        let (xb, gb, bb, y) = (
            upload(&ctx, &x),
            upload(&ctx, &gamma),
            upload(&ctx, &beta),
            zeros(&ctx, rows * d),
        );
        let mut g = Graph::default();
        kern.layernorm(&mut g, rows, d, 1e-5, &xb, &gb, &bb, &y);
        run(&ctx, g);
        let want = layernorm_cpu(rows, d, 1e-5, &x, &gamma, &beta);
        check(
            &format!("layernorm rows={rows} d={d}"),
            &read(&ctx, &y, rows * d),
            &want,
            TOL,
        );
    }
}

// ---------------------------------------------------------------- gelu, add

#[test]
fn gelu_matches_tanh_formula() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(4);
    let n = 1000;
    // 200 values evenly over [-30, 30], then N(0, 3²).
    let mut x: Vec<f32> = (0..200).map(|i| -30.0 + 60.0 * i as f32 / 199.0).collect();
    x.extend(randn(&mut rng, n - 200, 3.0));
    let (xb, y) = (upload(&ctx, &x), zeros(&ctx, n));
    let mut g = Graph::default();
    kern.gelu(&mut g, n, &xb, &y);
    run(&ctx, g);
    let got = read(&ctx, &y, n);
    let want: Vec<f64> = f64s(&x)
        .iter()
        .map(|&v| {
            let u = (2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v);
            0.5 * v * (1.0 + u.tanh())
        })
        .collect();
    check("gelu n=1000, |x| <= 30", &got, &want, TOL);
    // The same bound relative to the N(0, 3²) part alone (max|y| ~ 10 rather than 30).
    check("gelu, N(0,3^2) part", &got[200..], &want[200..], TOL);
}

#[test]
fn add_is_exact() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(5);
    let n = 1000;
    let a = randn(&mut rng, n, 1.0);
    let b = randn(&mut rng, n, 100.0);
    let (ab, bb, y) = (upload(&ctx, &a), upload(&ctx, &b), zeros(&ctx, n));
    let mut g = Graph::default();
    kern.add(&mut g, n, &ab, &bb, &y);
    run(&ctx, g);
    let got = read(&ctx, &y, n);
    let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    assert!(want.iter().any(|&v| v != 0.0));
    assert_eq!(got, want, "add is one f32 addition per element");
}

// ---------------------------------------------------------------- embed

#[test]
fn embed_two_vocab_chunks() {
    let (ctx, kern) = setup();
    let mut rng = StdRng::seed_from_u64(6);
    let (vocab, n_pos, d, split) = (10, 20, 37, 6);
    let wte = randn(&mut rng, vocab * d, 1.0);
    let wpe = randn(&mut rng, n_pos * d, 1.0);
    let tokens: Vec<u32> = vec![0, 9, 5, 6, 3, 7, 9];
    let pos: Vec<u32> = vec![0, 19, 3, 3, 11, 1, 0];
    let rows = tokens.len();
    let rowinfo: Vec<[u32; 4]> = pos.iter().map(|&p| [p % 2, p, 1, 0]).collect();
    let (tb, ib, pb) = (
        upload(&ctx, &tokens),
        upload(&ctx, &rowinfo),
        upload(&ctx, &wpe),
    );
    let chunk0 = upload(&ctx, &wte[..split * d]);
    let chunk1 = upload(&ctx, &wte[split * d..]);
    let (resid, te, pe) = (
        zeros(&ctx, rows * d),
        zeros(&ctx, rows * d),
        zeros(&ctx, rows * d),
    );
    let mut g = Graph::default();
    for (start, count, chunk) in [(0, split, &chunk0), (split, vocab - split, &chunk1)] {
        kern.embed(
            &mut g, rows, d, start, count, &tb, &ib, chunk, &pb, &resid, &te, &pe,
        );
    }
    run(&ctx, g);
    let (mut want_r, mut want_t, mut want_p) = (vec![], vec![], vec![]);
    for r in 0..rows {
        let (t, p) = (tokens[r] as usize, pos[r] as usize);
        for c in 0..d {
            let (e, q) = (wte[t * d + c], wpe[p * d + c]);
            want_t.push(e);
            want_p.push(q);
            want_r.push(e + q);
        }
    }
    assert_eq!(read(&ctx, &te, rows * d), want_t, "tok_emb");
    assert_eq!(read(&ctx, &pe, rows * d), want_p, "pos_emb");
    assert_eq!(read(&ctx, &resid, rows * d), want_r, "resid");
}

// ---------------------------------------------------------------- kv_store + attention

const SEQS: usize = 2;
const CAP: usize = 300;
const N_HEAD: usize = 3;

struct Attn {
    ctx: Arc<GpuContext>,
    kern: Kernels,
    hd: usize,
    d: usize,
    kbuf: wgpu::Buffer,
    vbuf: wgpu::Buffer,
    /// What the caches must hold: their initial random contents, plus every valid row stored.
    kc: Vec<f32>,
    vc: Vec<f32>,
}

/// One call's results.
struct AttnOut {
    z: Vec<f32>,
    z_nocap: Vec<f32>,
    scores: Vec<f32>,
    probs: Vec<f32>,
    cap_keys: usize,
}

const UNTOUCHED: f32 = -1234.5;

impl Attn {
    fn new(hd: usize, rng: &mut StdRng) -> Self {
        let (ctx, kern) = setup();
        let d = N_HEAD * hd;
        // Random initial contents, so that a write by a padding row would show.
        let kc = randn(rng, SEQS * CAP * d, 1.0);
        let vc = randn(rng, SEQS * CAP * d, 1.0);
        let (kbuf, vbuf) = (upload(&ctx, &kc), upload(&ctx, &vc));
        Attn {
            ctx,
            kern,
            hd,
            d,
            kbuf,
            vbuf,
            kc,
            vc,
        }
    }

    /// kv_store then attention (capture on), and attention again with capture off.
    fn call(&mut self, qkv: &[f32], info: &[[u32; 4]]) -> AttnOut {
        let (ctx, d, rows) = (&*self.ctx, self.d, info.len());
        let cap_keys = info.iter().map(|i| i[1] as usize + 1).max().unwrap();
        let nc = rows * N_HEAD * cap_keys;
        let (qb, ib) = (upload(ctx, qkv), upload(ctx, info));
        let (z, z_nocap) = (zeros(ctx, rows * d), zeros(ctx, rows * d));
        let scores = upload(ctx, &vec![UNTOUCHED; nc]);
        let probs = upload(ctx, &vec![UNTOUCHED; nc]);
        let (no_s, no_p) = (zeros(ctx, 4), zeros(ctx, 4));
        let mut p: AttnParams = bytemuck::Zeroable::zeroed();
        p.rows = rows as u32;
        p.n_head = N_HEAD as u32;
        p.head_dim = self.hd as u32;
        p.d = d as u32;
        p.cap = CAP as u32;
        p.cap_keys = cap_keys as u32;
        p.scale = 1.0 / (self.hd as f32).sqrt();
        let mut g = Graph::default();
        let (k, v) = (&self.kbuf, &self.vbuf);
        self.kern.kv_store(&mut g, rows, d, CAP, &qb, &ib, k, v);
        p.capture = 1;
        self.kern
            .attention(&mut g, p, &qb, &ib, k, v, &z, &scores, &probs);
        p.capture = 0;
        self.kern
            .attention(&mut g, p, &qb, &ib, k, v, &z_nocap, &no_s, &no_p);
        run(ctx, g);
        for (r, i) in info.iter().enumerate() {
            if i[2] != 0 {
                let dst = (i[0] as usize * CAP + i[1] as usize) * d;
                self.kc[dst..dst + d].copy_from_slice(&qkv[r * 3 * d + d..r * 3 * d + 2 * d]);
                self.vc[dst..dst + d].copy_from_slice(&qkv[r * 3 * d + 2 * d..(r + 1) * 3 * d]);
            }
        }
        let n = SEQS * CAP * d;
        assert_eq!(read(ctx, &self.kbuf, n), self.kc, "K cache after kv_store");
        assert_eq!(read(ctx, &self.vbuf, n), self.vc, "V cache after kv_store");
        AttnOut {
            z: read(ctx, &z, rows * d),
            z_nocap: read(ctx, &z_nocap, rows * d),
            scores: read(ctx, &scores, nc),
            probs: read(ctx, &probs, nc),
            cap_keys,
        }
    }

    /// Compare one call against causal softmax attention over the expected cache, in f64.
    fn verify(&self, what: &str, qkv: &[f32], info: &[[u32; 4]], out: &AttnOut) {
        let (d, hd, ck) = (self.d, self.hd, out.cap_keys);
        let scale = 1.0 / (hd as f32).sqrt() as f64;
        let rows = info.len();
        let mut want_z = vec![0f64; rows * d];
        let (mut got_s, mut want_s, mut got_p, mut want_p) = (vec![], vec![], vec![], vec![]);
        for (r, &[seq, pos, valid, _]) in info.iter().enumerate() {
            for h in 0..N_HEAD {
                let cb = (r * N_HEAD + h) * ck;
                let written = if valid != 0 { pos as usize + 1 } else { 0 };
                assert!(
                    out.scores[cb + written..cb + ck]
                        .iter()
                        .chain(&out.probs[cb + written..cb + ck])
                        .all(|&v| v == UNTOUCHED),
                    "{what}: row {r} head {h}: capture written past key {written}"
                );
                if valid == 0 {
                    continue;
                }
                let q = &qkv[r * 3 * d + h * hd..][..hd];
                let key = |j: usize| (seq as usize * CAP + j) * d + h * hd;
                let s: Vec<f64> = (0..=pos as usize)
                    .map(|j| {
                        let k = &self.kc[key(j)..][..hd];
                        q.iter()
                            .zip(k)
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
                let sum: f64 = e.iter().sum();
                for (j, ej) in e.iter().enumerate() {
                    let pj = ej / sum;
                    for t in 0..hd {
                        want_z[r * d + h * hd + t] += pj * self.vc[key(j) + t] as f64;
                    }
                }
                let ps = &out.probs[cb..cb + s.len()];
                let total: f64 = ps.iter().map(|&v| v as f64).sum();
                assert!(
                    (total - 1.0).abs() < 1e-5,
                    "{what}: row {r} head {h}: probabilities sum to {total}"
                );
                got_s.extend_from_slice(&out.scores[cb..cb + s.len()]);
                got_p.extend_from_slice(ps);
                want_s.extend(s);
                want_p.extend(e.iter().map(|x| x / sum));
            }
        }
        for (r, i) in info.iter().enumerate() {
            if i[2] == 0 {
                assert!(
                    out.z[r * d..(r + 1) * d].iter().all(|&v| v == 0.0),
                    "{what}: padding row {r}: z is not 0"
                );
            }
        }
        check(&format!("{what}: z"), &out.z, &want_z, TOL);
        check(&format!("{what}: scores"), &got_s, &want_s, TOL);
        check(&format!("{what}: probs"), &got_p, &want_p, TOL);
        assert!(
            out.z
                .iter()
                .zip(&out.z_nocap)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{what}: z with capture differs from z without"
        );
    }
}

/// Prefill (seq 0: positions 0..=270, crossing the 256-key chunk; seq 1: 0..=9; two padding rows
/// with stale (seq, pos)), rows shuffled; then a decode-style step attending to the cached keys.
fn kv_attention(hd: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = Attn::new(hd, &mut rng);
    let d = t.d;
    let mut info: Vec<[u32; 4]> = (0..271).map(|p| [0, p, 1, 0]).collect();
    info.extend((0..10).map(|p| [1, p, 1, 0]));
    info.extend([[1, 250, 0, 0], [0, 280, 0, 0]]);
    info.shuffle(&mut rng);
    // q with std 2 for sharper softmaxes than N(0,1) would give.
    let mut qkv = randn(&mut rng, info.len() * 3 * d, 1.0);
    qkv.chunks_mut(3 * d)
        .for_each(|r| r[..d].iter_mut().for_each(|v| *v *= 2.0));
    let out = t.call(&qkv, &info);
    t.verify(&format!("prefill hd={hd}"), &qkv, &info, &out);

    let info = vec![[1, 10, 1, 0], [0, 290, 0, 0], [0, 271, 1, 0], [1, 11, 1, 0]];
    let qkv = randn(&mut rng, info.len() * 3 * d, 2.0);
    let out = t.call(&qkv, &info);
    t.verify(&format!("decode hd={hd}"), &qkv, &info, &out);
}

#[test]
fn kv_store_and_attention_head_dim_36() {
    kv_attention(36, 7);
}

/// head_dim > 64: each thread accumulates two output dimensions.
#[test]
fn kv_store_and_attention_head_dim_100() {
    kv_attention(100, 8);
}

/// The few-rows path (matvec.wgsl) and the tiled path give the same products on every shape
/// that either may be chosen for.
#[test]
fn matvec_tiled_and_naive_kernels_agree() {
    use rand::{Rng, SeedableRng};
    let ctx = common::ctx();
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

/// The exact (erf) GELU of nanoGPT against f64 erf, over ±30 and N(0, 3²).
#[test]
fn exact_gelu_matches_erf() {
    use rand::{Rng, SeedableRng};
    let ctx = common::ctx();
    let kern = Kernels::new(&ctx).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut x: Vec<f32> = (0..201).map(|i| -30.0 + 0.3 * i as f32).collect();
    x.extend((0..800).map(|_| rng.random_range(-9.0f32..9.0)));
    let n = x.len();
    let xb = ctx.storage_init("x", bytemuck::cast_slice(&x)).unwrap();
    let yb = ctx.storage("y", (n * 4) as u64).unwrap();
    let rb = ctx.readback("rb", (n * 4) as u64).unwrap();
    let mut g = Graph::default();
    kern.gelu_mode(&mut g, n, true, &xb, &yb);
    g.copy(&yb, 0, &rb, 0, (n * 4) as u64);
    ctx.queue.submit([g.encode(&ctx)]);
    let y = ctx.read_f32(&[(&rb, n)]).unwrap().pop().unwrap();
    let mut worst = 0f64;
    for (a, b) in x.iter().zip(&y) {
        let a = *a as f64;
        let want = 0.5 * a * (1.0 + libm::erf(a / std::f64::consts::SQRT_2));
        assert!(b.is_finite());
        worst = worst.max((*b as f64 - want).abs() / want.abs().max(1.0));
    }
    assert!(worst < 5e-6, "exact GELU: error {worst:.2e}");
}

/// quant_weights.wgsl against `compress::quant_weight_cpu`: both layouts, per channel and per
/// tensor, 8 and 4 bits, protected input channels, a matrix at an element offset inside its
/// buffer (the values around it must stay as they were).
#[test]
fn weight_fake_quant_matches_cpu() {
    use outlier_probe::compress::quant_weight_cpu;
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
                quant_weight_cpu(
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

/// quant_acts.wgsl against `compress::quant_act_cpu`: one scale per sequence, padding rows
/// (filled with huge values) neither counted nor changed, protected channels exact.
#[test]
fn activation_fake_quant_matches_cpu() {
    use outlier_probe::compress::quant_act_cpu;
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
        quant_act_cpu(&mut want[r0 * k..(r0 + len) * k], k, 8, &protect);
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

/// The matmul epilogue (epilogue.wgsl): bias, then GELU (tanh and erf forms), then a residual
/// add, on the tiled and the matvec kernel, against the CPU.
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
        for exact in [false, true] {
            let mut want = vec![0f64; m * n];
            for i in 0..m {
                for j in 0..n {
                    let mut s = bias[j] as f64;
                    for kk in 0..k {
                        s += a[i * k + kk] as f64 * b[kk * n + j] as f64;
                    }
                    let g = if exact {
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
                gelu: Some(exact),
                resid: Some(&rb),
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
                &format!("{m}x{n}x{k} gelu erf {exact} + residual"),
                &read(&ctx, &c, m * n),
                &want,
                TOL_MATMUL,
            );
        }
    }
}

/// f16 weights (packed pairs, `model::pack_f16`) on the tiled and matvec kernels, both
/// layouts, odd sizes: equal to the f32 kernel on the f16-rounded weights.
#[test]
fn f16_weights_match_rounded_f32() {
    use outlier_probe::model::pack_f16;
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

/// fma_peak.wgsl (the benchmarks' ceiling) computes what its CPU twin computes.
#[test]
fn fma_peak_matches_cpu() {
    let (ctx, kern) = setup();
    let (n, iters) = (130usize, 37u32);
    let out = zeros(&ctx, n);
    let mut g = Graph::default();
    let flops = kern.fma_peak(&mut g, n, iters, &out);
    assert_eq!(flops, n as f64 * iters as f64 * 64.0);
    run(&ctx, g);
    let want: Vec<f64> = (0..n)
        .map(|i| {
            let s = (i % 97) as f32 * 1e-3;
            let mut total = 0f64;
            for r in 0..8 {
                for lane in 0..4 {
                    let mut v = s + 0.1 * lane as f32 + 0.01 * r as f32;
                    for _ in 0..iters {
                        v = v.mul_add(0.999, 0.001);
                    }
                    total += v as f64;
                }
            }
            total
        })
        .collect();
    check("fma_peak", &read(&ctx, &out, n), &want, TOL_MATMUL);
}
