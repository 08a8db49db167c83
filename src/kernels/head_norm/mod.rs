//! Per-head RMSNorm of the q and k heads inside the fused q|k|v rows (Gemma 3's and Qwen3's
//! `q_norm` / `k_norm`): head_norm.wgsl, its wrapper, CPU reference and test.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Shader};
use crate::gpu::{grid_rows, Graph};

const HEAD_NORM: Shader = Shader::main("head_norm.wgsl", include_str!("head_norm.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[HEAD_NORM];

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct HnParams {
    rows: u32,
    heads: u32,
    n_q: u32,
    head_dim: u32,
    qkv_width: u32,
    eps: f32,
    p0: u32,
    p1: u32,
}

impl Kernels {
    /// In place on qkv `[rows, qkv_width]`: each of the first `n_q + n_k` heads of width
    /// `head_dim` (queries, then keys) becomes RMSNorm(x)·w, w = `weight[0..Dh]` (q_norm) for the
    /// query heads and `weight[Dh..2Dh]` (k_norm) for the key heads; the values are left alone.
    #[allow(clippy::too_many_arguments)]
    pub fn head_norm(
        &self,
        g: &mut Graph,
        rows: usize,
        (n_q, n_k): (usize, usize),
        head_dim: usize,
        qkv_width: usize,
        eps: f32,
        weight: &wgpu::Buffer,
        qkv: &wgpu::Buffer,
    ) {
        let p = HnParams {
            rows: rows as u32,
            heads: (n_q + n_k) as u32,
            n_q: n_q as u32,
            head_dim: head_dim as u32,
            qkv_width: qkv_width as u32,
            eps,
            p0: 0,
            p1: 0,
        };
        g.dispatch(
            "head_norm",
            self.main_pipeline(&HEAD_NORM),
            &p,
            vec![weight.into(), qkv.into()],
            grid_rows(rows * (n_q + n_k)),
        );
        let n = (rows * (n_q + n_k) * head_dim) as f64;
        g.cost(4.0 * n, 8.0 * n);
    }
}

/// CPU reference of `head_norm` in f64 over qkv `[rows, qkv_width]`: the normalised copy.
pub fn head_norm_ref(
    rows: usize,
    (n_q, n_k): (usize, usize),
    head_dim: usize,
    qkv_width: usize,
    eps: f64,
    weight: &[f32],
    qkv: &[f32],
) -> Vec<f64> {
    let mut y: Vec<f64> = qkv.iter().map(|&v| v as f64).collect();
    for r in 0..rows {
        for h in 0..n_q + n_k {
            let b = r * qkv_width + h * head_dim;
            let x = &qkv[b..b + head_dim];
            let ms = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / head_dim as f64;
            let inv = 1.0 / (ms + eps).sqrt();
            let w = if h < n_q { 0 } else { head_dim };
            for c in 0..head_dim {
                y[b + c] = weight[w + c] as f64 * (x[c] as f64 * inv);
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::head_norm_ref;
    use crate::gpu::Graph;
    use crate::kernels::test_util::*;

    /// Heads wider and narrower than the 64 threads (Gemma-3-270M's 256, odd 12 and 70), 5 query
    /// heads and 2 key heads, values untouched, a row with an outlier entry.
    #[test]
    fn head_norm_matches_cpu() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(91);
        let rows = 7;
        for (hd, nq, nk) in [(12, 5, 1), (70, 5, 2), (256, 4, 1)] {
            let w = nq * hd + 2 * nk * hd;
            let mut x = randn(&mut rng, rows * w, 1.0);
            x[3 * w + 5] = 200.0;
            let weight: Vec<f32> = randn(&mut rng, 2 * hd, 0.5)
                .iter()
                .map(|v| v + 1.0)
                .collect();
            let (wb, xb) = (upload(&ctx, &weight), upload(&ctx, &x));
            let mut g = Graph::default();
            kern.head_norm(&mut g, rows, (nq, nk), hd, w, 1e-6, &wb, &xb);
            run(&ctx, g);
            let want = head_norm_ref(rows, (nq, nk), hd, w, 1e-6, &weight, &x);
            check(
                &format!("head_norm hd={hd} heads {nq}+{nk}"),
                &read(&ctx, &xb, rows * w),
                &want,
                TOL,
            );
        }
    }
}
