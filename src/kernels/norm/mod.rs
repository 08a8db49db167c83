//! Row normalizations: layernorm.wgsl and rmsnorm.wgsl, their wrappers and CPU reference.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Shader};
use crate::gpu::{grid_rows, Graph};

const LAYERNORM: Shader = Shader::main("layernorm.wgsl", include_str!("layernorm.wgsl"));
const RMSNORM: Shader = Shader::main("rmsnorm.wgsl", include_str!("rmsnorm.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[LAYERNORM, RMSNORM];

/// Parameters of layernorm.wgsl and rmsnorm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LnParams {
    rows: u32,
    d: u32,
    eps: f32,
    pad: u32,
}

impl Kernels {
    /// y = LayerNorm(x) · gamma + beta over rows of width d.
    #[allow(clippy::too_many_arguments)]
    pub fn layernorm(
        &self,
        g: &mut Graph,
        rows: usize,
        d: usize,
        eps: f32,
        x: &wgpu::Buffer,
        gamma: &wgpu::Buffer,
        beta: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) {
        g.dispatch(
            "layernorm",
            self.main_pipeline(&LAYERNORM),
            &LnParams {
                rows: rows as u32,
                d: d as u32,
                eps,
                pad: 0,
            },
            vec![x.into(), gamma.into(), beta.into(), y.into()],
            grid_rows(rows),
        );
        g.cost(8.0 * (rows * d) as f64, 8.0 * (rows * d) as f64);
    }

    /// y = RMSNorm(x) · weight over rows of width d.
    #[allow(clippy::too_many_arguments)]
    pub fn rmsnorm(
        &self,
        g: &mut Graph,
        rows: usize,
        d: usize,
        eps: f32,
        x: &wgpu::Buffer,
        w: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) {
        g.dispatch(
            "rmsnorm",
            self.main_pipeline(&RMSNORM),
            &LnParams {
                rows: rows as u32,
                d: d as u32,
                eps,
                pad: 0,
            },
            vec![x.into(), w.into(), y.into()],
            grid_rows(rows),
        );
        g.cost(4.0 * (rows * d) as f64, 8.0 * (rows * d) as f64);
    }
}

/// CPU reference of `layernorm` in f64: x `[rows, d]`, gamma and beta `[d]`.
pub fn layernorm_ref(rows: usize, d: usize, eps: f64, x: &[f32], g: &[f32], b: &[f32]) -> Vec<f64> {
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

/// CPU reference of `rmsnorm` in f64: x `[rows, d]`, weight `[d]`.
pub fn rmsnorm_ref(rows: usize, d: usize, eps: f64, x: &[f32], w: &[f32]) -> Vec<f64> {
    let mut y = vec![0f64; rows * d];
    for r in 0..rows {
        let row = &x[r * d..(r + 1) * d];
        let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        for c in 0..d {
            y[r * d + c] = w[c] as f64 * (row[c] as f64 * inv);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::layernorm_ref;
    use super::rmsnorm_ref;
    use crate::gpu::Graph;
    use crate::kernels::test_util::*;

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
            let want = layernorm_ref(rows, d, 1e-5, &x, &gamma, &beta);
            check(
                &format!("layernorm rows={rows} d={d}"),
                &read(&ctx, &y, rows * d),
                &want,
                TOL,
            );
        }
    }

    /// rmsnorm.wgsl: rows wider than its 128 threads, a row with a large mean and one with an
    /// outlier channel, and d = 1.
    #[test]
    fn rmsnorm_matches_cpu() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(80);
        let rows = 5;
        for d in [333, 1] {
            let mut x = randn(&mut rng, rows * d, 1.0);
            if d > 1 {
                x[3 * d..4 * d].iter_mut().for_each(|v| *v += 20.0);
                x[4 * d + 7] = 300.0;
            }
            let w: Vec<f32> = randn(&mut rng, d, 0.5).iter().map(|v| v + 1.0).collect();
            let (xb, wb, y) = (upload(&ctx, &x), upload(&ctx, &w), zeros(&ctx, rows * d));
            let mut g = Graph::default();
            kern.rmsnorm(&mut g, rows, d, 1e-5, &xb, &wb, &y);
            run(&ctx, g);
            check(
                &format!("rmsnorm rows={rows} d={d}"),
                &read(&ctx, &y, rows * d),
                &rmsnorm_ref(rows, d, 1e-5, &x, &w),
                TOL,
            );
        }
    }
}
