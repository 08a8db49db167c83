//! kv_store then attention against the CPU: prefill across the 256-key chunk with padding rows
//! and shuffled rows, then a decode step; capture on and off. Test builds only.
//! Test code of the attention kernel only.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{attention_head_ref, AttnParams};
use crate::gpu::{GpuContext, Graph};
use crate::kernels::kv_store::kv_store_ref;
use crate::kernels::test_util::*;
use crate::kernels::Kernels;

// ---------------------------------------------------------------- kv_store + attention

const SEQS: usize = 2;
const CAP: usize = 300;
const N_HEAD: usize = 3;

struct Attn {
    ctx: Arc<GpuContext>,
    kern: Kernels,
    hd: usize,
    d: usize,
    /// Sliding window (0: none): a query at position i sees keys j with i − j < window.
    window: usize,
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
            window: 0,
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
        p.window = self.window as u32;
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
        kv_store_ref(d, d, CAP, qkv, info, &mut self.kc, &mut self.vc);
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
                // Keys before `lo` are outside the sliding window: −inf scores, 0 weights.
                let lo = match self.window {
                    0 => 0,
                    w => (pos as usize + 1).saturating_sub(w),
                };
                assert!(
                    out.scores[cb..cb + lo]
                        .iter()
                        .all(|&v| v == f32::NEG_INFINITY)
                        && out.probs[cb..cb + lo].iter().all(|&v| v == 0.0),
                    "{what}: row {r} head {h}: a key outside the window is seen"
                );
                let cb = cb + lo;
                let keys: Vec<&[f32]> = (lo..=pos as usize)
                    .map(|j| &self.kc[key(j)..][..hd])
                    .collect();
                let values: Vec<&[f32]> = (lo..=pos as usize)
                    .map(|j| &self.vc[key(j)..][..hd])
                    .collect();
                let (s, p, z) = attention_head_ref(q, &keys, &values, scale);
                want_z[r * d + h * hd..][..hd].copy_from_slice(&z);
                let ps = &out.probs[cb..cb + s.len()];
                let total: f64 = ps.iter().map(|&v| v as f64).sum();
                assert!(
                    (total - 1.0).abs() < 1e-5,
                    "{what}: row {r} head {h}: probabilities sum to {total}"
                );
                got_s.extend_from_slice(&out.scores[cb..cb + s.len()]);
                got_p.extend_from_slice(ps);
                want_s.extend(s);
                want_p.extend(p);
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
    kv_attention_window(hd, 0, seed)
}

/// `kv_attention` with a sliding window (0: none).
fn kv_attention_window(hd: usize, window: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = Attn::new(hd, &mut rng);
    t.window = window;
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
    t.verify(
        &format!("prefill hd={hd} window={window}"),
        &qkv,
        &info,
        &out,
    );

    let info = vec![[1, 10, 1, 0], [0, 290, 0, 0], [0, 271, 1, 0], [1, 11, 1, 0]];
    let qkv = randn(&mut rng, info.len() * 3 * d, 2.0);
    let out = t.call(&qkv, &info);
    t.verify(
        &format!("decode hd={hd} window={window}"),
        &qkv,
        &info,
        &out,
    );
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

/// Sliding windows (Gemma 3): 37 keys (the window of the row at 270 straddles the 256-key
/// chunk boundary; seq 1's rows see all their keys), and 1 (each query sees only itself).
#[test]
fn kv_store_and_attention_sliding_window() {
    kv_attention_window(36, 37, 9);
    kv_attention_window(12, 1, 10);
}

/// head_dim 256 (Gemma 3), the widest the kernel takes: four output dimensions per thread.
#[test]
fn kv_store_and_attention_head_dim_256() {
    kv_attention_window(256, 512, 11);
}
