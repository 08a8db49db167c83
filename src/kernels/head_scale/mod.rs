//! Per-head output scaling in two steps (factor, apply): head_scale.wgsl and its wrapper.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Shader};
use crate::gpu::{grid_1d, Graph};

const HEAD_SCALE: Shader = Shader {
    entry_points: &["factor", "apply"],
    ..Shader::main("head_scale.wgsl", include_str!("head_scale.wgsl"))
};

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[HEAD_SCALE];

impl Kernels {
    /// Per-head scale: logits `[rows, H]` become mult·σ(logits) in place, then z `[rows, H, Dh]` *= them.
    #[allow(clippy::too_many_arguments)]
    pub fn head_scale(
        &self,
        g: &mut Graph,
        rows: usize,
        n_head: usize,
        head_dim: usize,
        mult: f32,
        fac: &wgpu::Buffer,
        z: &wgpu::Buffer,
    ) {
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct Hp {
            rows: u32,
            n_head: u32,
            head_dim: u32,
            mult: f32,
        }
        let hp = Hp {
            rows: rows as u32,
            n_head: n_head as u32,
            head_dim: head_dim as u32,
            mult,
        };
        g.dispatch(
            "head_scale:factor",
            self.pipeline(&HEAD_SCALE, "factor", &[]),
            &hp,
            vec![fac.into()],
            grid_1d(rows * n_head, 256),
        );
        g.dispatch(
            "head_scale:apply",
            self.pipeline(&HEAD_SCALE, "apply", &[]),
            &hp,
            vec![fac.into(), z.into()],
            grid_1d(rows * n_head * head_dim, 256),
        );
    }
}

/// CPU reference of `head_scale` in f64: the factors mult·σ(logit) `[rows, H]` and z
/// `[rows, H, Dh]` scaled by them.
pub fn head_scale_ref(head_dim: usize, mult: f64, fac: &[f32], z: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let f: Vec<f64> = fac
        .iter()
        .map(|&l| mult / (1.0 + (-(l as f64)).exp()))
        .collect();
    let z = z
        .iter()
        .enumerate()
        .map(|(i, &v)| v as f64 * f[i / head_dim])
        .collect();
    (f, z)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::head_scale_ref;
    use crate::gpu::Graph;
    use crate::kernels::test_util::*;

    /// head_scale.wgsl, both steps: the factors written in place over the logits, then z scaled
    /// (context scale, mult 2), at sizes that are not multiples of 256.
    #[test]
    fn head_scale_matches_cpu() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(83);
        let (rows, n_head, head_dim) = (37, 3, 70);
        let logits = randn(&mut rng, rows * n_head, 2.0);
        let z = randn(&mut rng, rows * n_head * head_dim, 1.0);
        let (fb, zb) = (upload(&ctx, &logits), upload(&ctx, &z));
        let mut g = Graph::default();
        kern.head_scale(&mut g, rows, n_head, head_dim, 2.0, &fb, &zb);
        run(&ctx, g);
        let (want_f, want_z) = head_scale_ref(head_dim, 2.0, &logits, &z);
        check(
            "head_scale factors",
            &read(&ctx, &fb, rows * n_head),
            &want_f,
            TOL,
        );
        check("head_scale z", &read(&ctx, &zb, z.len()), &want_z, TOL);
    }
}
