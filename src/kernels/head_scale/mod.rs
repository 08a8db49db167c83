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
