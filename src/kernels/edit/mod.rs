//! Overwriting channels of a hook at marked positions (interventions): edit.wgsl and its wrapper.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Shader, P4};
use crate::gpu::{grid_1d, Graph};

const EDIT: Shader = Shader::main("edit.wgsl", include_str!("edit.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[EDIT];

impl Kernels {
    /// Overwrite `channels` of the hook occupying columns `offset..` of `x` [rows, width] with
    /// `values`, at the absolute positions marked in `posmask`.
    #[allow(clippy::too_many_arguments)]
    pub fn edit(
        &self,
        g: &mut Graph,
        rows: usize,
        width: usize,
        offset: usize,
        n_ch: usize,
        rowinfo: &wgpu::Buffer,
        posmask: &wgpu::Buffer,
        channels: &wgpu::Buffer,
        values: &wgpu::Buffer,
        x: &wgpu::Buffer,
    ) {
        g.dispatch(
            "edit",
            self.main_pipeline(&EDIT),
            &P4 {
                a: rows as u32,
                b: width as u32,
                c: offset as u32,
                d: n_ch as u32,
            },
            vec![
                rowinfo.into(),
                posmask.into(),
                channels.into(),
                values.into(),
                x.into(),
            ],
            grid_1d(rows * n_ch, 256),
        );
    }
}
