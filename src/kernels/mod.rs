//! The WGSL kernels: one module per op (its shaders, its `impl Kernels` wrapper, its CPU
//! reference and tests), the registry `Kernels::new` compiles. Depends on gpu and tensor only.
//!
//! Adding a kernel: a folder (WGSL + `mod.rs` declaring `SHADERS` and the wrapper) and one line
//! in `REGISTRY`. WGSL functions shared by more than one op live in `common/` and are appended
//! (`concat!`) to the sources that use them.

#![warn(missing_docs)]

use std::collections::HashMap;

use anyhow::Result;

use crate::gpu::GpuContext;

pub mod act;
pub mod attention;
pub mod edit;
pub mod embed;
pub mod fma_peak;
pub mod head_norm;
pub mod head_scale;
pub mod kv_store;
pub mod matmul;
pub mod norm;
pub mod qmatmul;
pub mod quant;
pub mod registry;
pub mod rope;
pub mod scale;

#[cfg(test)]
mod test_util;

pub use crate::gpu::{grid_1d, grid_rows, Bind, Cost, EncodeCache, Graph, Sample};
pub use attention::AttnParams;
pub use embed::EmbedMode;
pub use matmul::{
    autotune_tiles, pack_f16, Epilogue, MatmulKernel, MATMUL_BIAS, MATMUL_B_T, MATMUL_GELU_ERF,
    MATMUL_GELU_TANH, MATMUL_RESID, MATVEC_MAX_ROWS, TILE_SHAPES,
};
pub use quant::qmax;
pub use registry::{Overrides, PipelineKey, Shader, Variant};

/// Every shader of the engine, one line per op module: what `Kernels::new` compiles.
pub const REGISTRY: &[&[Shader]] = &[
    embed::SHADERS,
    norm::SHADERS,
    matmul::SHADERS,
    act::SHADERS,
    kv_store::SHADERS,
    attention::SHADERS,
    rope::SHADERS,
    edit::SHADERS,
    head_scale::SHADERS,
    quant::SHADERS,
    fma_peak::SHADERS,
    head_norm::SHADERS,
    scale::SHADERS,
    qmatmul::SHADERS,
];

/// Every registered shader, in registry order.
pub fn shaders() -> impl Iterator<Item = &'static Shader> {
    REGISTRY.iter().flat_map(|s| s.iter())
}

/// Storage buffers the attention kernel binds (the most of any kernel): the adapter must allow
/// this many per shader stage.
const MAX_STORAGE_BUFFERS: u32 = 10;

/// The compiled pipelines of every registered shader, and the recording of each op's dispatch
/// (the `impl Kernels` block of each op module).
pub struct Kernels {
    /// Bound where a kernel's optional input is unused.
    pub dummy: wgpu::Buffer,
    /// A second placeholder, for an unused writable binding next to `dummy`.
    pub dummy2: wgpu::Buffer,
    /// Whether `MatmulKernel::Matvec` reduces with subgroup shuffles: SUBGROUP granted and
    /// every subgroup 8 to 64 lanes (an 8-lane group inside one subgroup of the 64-lane
    /// workgroup); else it reduces through workgroup memory.
    pub matvec_subgroups: bool,
    /// Benchmarks only: run the engine's few-row matmuls on `MatmulKernel::MatvecPerColumn`
    /// (the kernel before issue 15), for before/after timings of whole passes in one run.
    pub matvec_baseline: std::sync::atomic::AtomicBool,
    /// Which of `matmul::TILE_SHAPES` runs prefill matmuls (index; 0, 8×8 per invocation, until
    /// `autotune_tiles` measures otherwise).
    pub tiles: std::sync::atomic::AtomicU8,
    pipelines: HashMap<PipelineKey, wgpu::ComputePipeline>,
}

impl Kernels {
    /// Compile every shader of `REGISTRY` (all of them now, so that a shader the driver rejects
    /// fails here, at load). Errors: the adapter allows fewer storage buffers per stage than
    /// attention binds; a validation or out-of-memory error while compiling.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let need = MAX_STORAGE_BUFFERS;
        if ctx.limits.max_storage_buffers_per_shader_stage < need {
            anyhow::bail!(
                "the adapter '{}' allows {} storage buffers per shader stage; the attention kernel needs {need}",
                ctx.info.name,
                ctx.limits.max_storage_buffers_per_shader_stage
            );
        }
        ctx.checked("compiling the WGSL kernels", || {
            Ok(Self {
                dummy: ctx.storage("dummy", 16)?,
                dummy2: ctx.storage("dummy2", 16)?,
                matvec_subgroups: ctx.has(wgpu::Features::SUBGROUP)
                    && ctx.info.subgroup_min_size >= 8
                    && ctx.info.subgroup_max_size <= 64,
                matvec_baseline: Default::default(),
                tiles: Default::default(),
                pipelines: registry::compile(ctx, REGISTRY),
            })
        })
    }

    /// The pipeline of `shader`'s `entry` compiled with `overrides`. Panics when the shader is
    /// not in `REGISTRY` (a wrapper naming a shader its module does not list).
    pub(crate) fn pipeline(
        &self,
        shader: &Shader,
        entry: &'static str,
        overrides: Overrides,
    ) -> &wgpu::ComputePipeline {
        let key = shader.key(entry, overrides);
        self.pipelines
            .get(&key)
            .unwrap_or_else(|| panic!("no pipeline {key:?}: is the shader in kernels::REGISTRY?"))
    }

    /// The default pipeline of a single-`main` shader.
    pub(crate) fn main_pipeline(&self, shader: &Shader) -> &wgpu::ComputePipeline {
        self.pipeline(shader, "main", &[])
    }
}

/// The parameter block of most kernels: four u32 words.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct P4 {
    pub a: u32,
    pub b: u32,
    pub c: u32,
    pub d: u32,
}
