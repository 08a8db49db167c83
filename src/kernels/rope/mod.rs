//! Rotary position embedding applied in place to the q and k heads: rope.wgsl and its wrapper.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Shader, P4};
use crate::gpu::{grid_1d, Graph};

const ROPE: Shader = Shader::main("rope.wgsl", include_str!("rope.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[ROPE];

impl Kernels {
    /// RoPE in place on the first `heads` heads (query then key heads) of each qkv row.
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &self,
        g: &mut Graph,
        rows: usize,
        heads: usize,
        head_dim: usize,
        qkv_width: usize,
        rowinfo: &wgpu::Buffer,
        cos: &wgpu::Buffer,
        sin: &wgpu::Buffer,
        qkv: &wgpu::Buffer,
    ) {
        g.dispatch(
            "rope",
            self.main_pipeline(&ROPE),
            &P4 {
                a: rows as u32,
                b: heads as u32,
                c: head_dim as u32,
                d: qkv_width as u32,
            },
            vec![rowinfo.into(), cos.into(), sin.into(), qkv.into()],
            grid_1d(rows * heads * (head_dim / 2), 256),
        );
    }
}
