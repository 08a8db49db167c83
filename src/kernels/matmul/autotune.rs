//! The one-time choice of the prefill tile shape for an adapter: time each of `TILE_SHAPES` on
//! one prefill-sized matmul and keep the fastest in `Kernels::tiles` (in-process, per device;
//! without it the engine runs 8×8 per invocation). Depends on gpu and the matmul wrappers.

use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Result;

use super::{Epilogue, MatmulKernel, TILE_SHAPES};
use crate::gpu::{GpuContext, Graph};
use crate::kernels::Kernels;

/// Time every tile shape on a `rows`×`n`×`k` matmul (nn.Linear layout, f32, values ±1; best of
/// `repeats` after a warm-up; GPU timestamps where offered, else wall time of submit + wait),
/// make the fastest the one `Kernels::pick` returns for prefill, and return (shape, ms) per
/// shape. Every shape computes the same product (tested alike), so the choice changes speed
/// only, never results beyond f32 summation order. Errors: buffer allocation, device loss.
pub fn autotune_tiles(
    ctx: &GpuContext,
    kern: &Kernels,
    (rows, n, k): (usize, usize, usize),
    repeats: usize,
) -> Result<Vec<(MatmulKernel, f64)>> {
    let vals = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    };
    let a = ctx.storage_init("autotune a", bytemuck::cast_slice(&vals(rows * k)))?;
    let b = ctx.storage_init("autotune b", bytemuck::cast_slice(&vals(n * k)))?;
    let c = ctx.storage("autotune c", (rows * n * 4) as u64)?;
    let timestamps = ctx.has(wgpu::Features::TIMESTAMP_QUERY);
    let mut times = Vec::new();
    for kind in TILE_SHAPES {
        let mut best = f64::INFINITY;
        for i in 0..repeats.max(1) + 1 {
            let mut g = Graph::default();
            let (ab, bb, cb) = ((&a).into(), (&b).into(), (&c).into());
            let epi = Epilogue::default();
            kern.matmul_fused(&mut g, kind, rows, n, k, ab, bb, None, cb, true, epi);
            if timestamps {
                ctx.start_profile();
            }
            let t0 = Instant::now();
            g.submit(ctx)?;
            ctx.wait()?;
            let ms = if timestamps {
                ctx.take_profile().iter().map(|s| s.ms).sum()
            } else {
                t0.elapsed().as_secs_f64() * 1e3
            };
            if i > 0 {
                best = best.min(ms);
            }
        }
        times.push((kind, best));
    }
    let fastest = (0..times.len())
        .min_by(|&i, &j| times[i].1.total_cmp(&times[j].1))
        .unwrap_or(0);
    kern.tiles.store(fastest as u8, Ordering::Relaxed);
    Ok(times)
}
