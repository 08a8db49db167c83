//! Helpers of the kernel tests (test builds only): a GPU context that fails loudly without an
//! adapter, upload/run/read, seeded inputs and the elementwise comparison. Depends on gpu, tensor.
//!
//! Each kernel runs alone against a straightforward CPU implementation (f64 where it matters), on
//! seeded random inputs at sizes that are not multiples of the kernels' tiles: matmul 64×64 tiles
//! with a K step of 16, attention chunks of 256 keys over 64 threads, layernorm workgroups of 128
//! threads, 1-D kernels in workgroups of 256.
//!
//! Every output entry must satisfy |gpu − cpu| ≤ t·(median|cpu| + |cpu|) (numpy's allclose with
//! atol scaled to the median magnitude, `Tensor::allclose`), with t = TOL (1e-5), TOL_MATMUL
//! (5e-6) for the matmul family, or as stated.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::Rng;

use super::Kernels;
use crate::gpu::{GpuContext, GpuOptions, Graph};
use crate::tensor::Tensor;

/// Attention, layernorm, GELU (measured worst 5.5e-6, attention z over 271 keys); also
/// rmsnorm, swiglu, rope and head scale (measured worst 1.9e-7).
pub const TOL: f64 = 1e-5;
/// Matmul, matvec, their epilogues, f16 weights, fma_peak (measured worst 9.7e-7).
pub const TOL_MATMUL: f64 = 5e-6;

/// A GPU context; panics with install instructions when there is none (tests never skip).
pub fn ctx() -> Arc<GpuContext> {
    match GpuContext::new(&GpuOptions::default()) {
        Ok(c) => c,
        Err(e) => panic!(
            "these tests need a GPU adapter and found none: {e:#}\n\
             (on Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1)"
        ),
    }
}

pub fn setup() -> (Arc<GpuContext>, Kernels) {
    let ctx = ctx();
    let k = Kernels::new(&ctx).unwrap_or_else(|e| panic!("{e:#}"));
    (ctx, k)
}

/// Encode, submit and wait, turning any wgpu validation error into a panic.
pub fn run(ctx: &GpuContext, g: Graph) {
    ctx.checked("test graph", || {
        ctx.queue.submit([g.encode(ctx)]);
        ctx.wait()
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

pub fn upload<T: bytemuck::Pod>(ctx: &GpuContext, data: &[T]) -> wgpu::Buffer {
    ctx.storage_init("test input", bytemuck::cast_slice(data))
        .unwrap()
}

pub fn zeros(ctx: &GpuContext, n: usize) -> wgpu::Buffer {
    ctx.storage("test output", n as u64 * 4).unwrap()
}

/// The first `n` f32 values of a storage buffer.
pub fn read(ctx: &GpuContext, buf: &wgpu::Buffer, n: usize) -> Vec<f32> {
    ctx.read_storage(buf, n).unwrap()
}

/// N(0,1) · scale values (Box–Muller), never all zero.
pub fn randn(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1 = 1.0 - rng.random::<f64>();
            let u2 = rng.random::<f64>();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32 * scale
        })
        .collect()
}

/// Every entry within |got − want| ≤ t·(median|want| + |want|) (the f64 reference rounded to
/// f32); fails on a length mismatch or a NaN/inf, naming the worst entry. Prints and returns the
/// smallest t that would have passed.
pub fn check(what: &str, got: &[f32], want: &[f64], t: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let got = Tensor::new(vec![got.len()], got.to_vec());
    let want = Tensor::new(vec![want.len()], want.iter().map(|&x| x as f32).collect());
    let t = t as f32;
    let c = match got.allclose(&want, t, t) {
        Ok(c) => c,
        Err(e) => panic!("{what}: {e}"),
    };
    if let Some(w) = &c.worst {
        eprintln!("{what}: worst {w} (rtol {t:.0e}, atol {t:.0e}·median|b|)");
    }
    let need = c.worst_ratio() * t as f64;
    eprintln!("{what}: needs t {need:.2e} (bound {t:.0e})");
    need
}

pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}
