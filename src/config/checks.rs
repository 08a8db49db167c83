//! The value checks every config parser shares: sizes that must fit the GPU's `u32` indices and
//! float settings that must be finite. Plain data: never wgpu, GGUF, models or studies.

use anyhow::{bail, Result};

/// Every size must fit the `u32` the GPU kernels index with.
pub fn check_u32_sizes(sizes: &[(&str, usize)]) -> Result<()> {
    for &(name, v) in sizes {
        if v > u32::MAX as usize {
            bail!(
                "{name} {v} is over the supported {} (sizes are u32 on the GPU)",
                u32::MAX
            );
        }
    }
    Ok(())
}

/// A float setting that must be finite (NaN or infinity would reach every output).
pub fn check_finite(name: &str, v: Option<f64>) -> Result<()> {
    match v {
        Some(x) if !x.is_finite() => bail!("{name} is {x}, not a finite number"),
        _ => Ok(()),
    }
}
