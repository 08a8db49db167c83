//! `outlier-probe devices`: the GPU adapters wgpu sees, with backend, driver, limits and features.
//! Binary only: depends on the library's public API and `cli` helpers; never on wgpu directly.

use anyhow::Result;

use outlier_probe::gpu::{list_adapters, GpuContext};

use super::common::GpuArgs;

/// Run `outlier-probe devices`.
pub fn run(gpu: &GpuArgs) -> Result<()> {
    let list = list_adapters(&gpu.options())?;
    if list.is_empty() {
        // Same wording as model loading uses.
        GpuContext::new(&gpu.options())?;
    }
    for a in list {
        println!("{a}");
    }
    Ok(())
}
