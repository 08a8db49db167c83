//! Register-only FMAs, the benchmarks' arithmetic ceiling: fma_peak.wgsl, its wrapper and CPU twin.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Shader, P4};
use crate::gpu::Graph;

const FMA_PEAK: Shader = Shader::main("fma_peak.wgsl", include_str!("fma_peak.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[FMA_PEAK];

impl Kernels {
    /// `n` invocations of `iters` rounds of 8 vec4 FMAs each (fma_peak.wgsl) into out `[n]`.
    /// Returns the FLOPs it does.
    pub fn fma_peak(&self, g: &mut Graph, n: usize, iters: u32, out: &wgpu::Buffer) -> f64 {
        let flops = n as f64 * iters as f64 * 64.0;
        g.dispatch(
            "fma_peak",
            self.main_pipeline(&FMA_PEAK),
            &P4 {
                a: iters,
                b: n as u32,
                c: 0,
                d: 0,
            },
            vec![out.into()],
            [n.div_ceil(64) as u32, 1, 1],
        );
        g.cost(flops, 4.0 * n as f64);
        flops
    }
}

/// CPU twin of `fma_peak`: what each of the `n` invocations writes, in f64.
pub fn fma_peak_ref(n: usize, iters: u32) -> Vec<f64> {
    (0..n)
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
        .collect()
}

#[cfg(test)]
mod tests {
    use super::fma_peak_ref;
    use crate::gpu::Graph;
    use crate::kernels::test_util::*;

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
        let want = fma_peak_ref(n, iters);
        check("fma_peak", &read(&ctx, &out, n), &want, TOL_MATMUL);
    }
}
