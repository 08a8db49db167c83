//! Scaling a buffer in place by a constant (Gemma's √d embedding scale): scale.wgsl, its
//! wrapper and test. Depends on gpu and the kernels registry only.

use super::{Kernels, Shader};
use crate::gpu::{grid_1d, Graph};

const SCALE: Shader = Shader::main("scale.wgsl", include_str!("scale.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[SCALE];

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScaleParams {
    n: u32,
    s: f32,
    p0: u32,
    p1: u32,
}

impl Kernels {
    /// x `[n]` ← x · s in place (one f32 multiplication per value).
    pub fn scale(&self, g: &mut Graph, n: usize, s: f32, x: &wgpu::Buffer) {
        let p = ScaleParams {
            n: n as u32,
            s,
            p0: 0,
            p1: 0,
        };
        g.dispatch(
            "scale",
            self.main_pipeline(&SCALE),
            &p,
            vec![x.into()],
            grid_1d(n, 256),
        );
        g.cost(n as f64, 8.0 * n as f64);
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use crate::gpu::Graph;
    use crate::kernels::test_util::*;

    /// Exactly one f32 product per value (the reference is the same product on the CPU), over a
    /// size that is not a multiple of 256.
    #[test]
    fn scale_is_one_multiplication() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(92);
        let n = 1001;
        let x = randn(&mut rng, n, 3.0);
        let s = (640f64).sqrt() as f32;
        let xb = upload(&ctx, &x);
        let mut g = Graph::default();
        kern.scale(&mut g, n, s, &xb);
        run(&ctx, g);
        let want: Vec<f32> = x.iter().map(|v| v * s).collect();
        assert!(want.iter().any(|&v| v != 0.0));
        assert_eq!(read(&ctx, &xb, n), want);
    }
}
