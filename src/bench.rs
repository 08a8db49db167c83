//! Measurements behind `examples/bench.rs` and `benches/`: forward-pass throughput (prefill,
//! decode, with and without capture), per-kernel GPU time from timestamp queries, matmul
//! GFLOP/s per shape against the naive kernel, and the device's measured ceilings (matmul
//! GFLOP/s, copy bandwidth) that give each shape its floor.
//! Study layer: uses models, kernels and gpu; never frontends.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::gpu::{GpuContext, Sample};
use crate::hooks::HookFilter;
use crate::kernels::{Epilogue, Graph, Kernels, MatmulKernel};
use crate::model::{ForwardOptions, LogitsMode, Model};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Random token ids (seeded), the same for every run.
pub fn random_tokens(vocab: usize, n: usize, seed: u64) -> Vec<u32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..vocab as u32)).collect()
}

/// Median wall time of a `t`-token prefill (batch 1, last-token logits read back), ms.
pub fn prefill_ms(model: &Model, t: usize, repeats: usize, capture: &HookFilter) -> Result<f64> {
    let toks = random_tokens(model.cfg.vocab_size, t, 1);
    let opts = ForwardOptions {
        logits: LogitsMode::Last,
        capture: capture.clone(),
        ..Default::default()
    };
    let mut times = Vec::new();
    for i in 0..repeats + 1 {
        let mut sess = model.session(1, t)?;
        let t0 = Instant::now();
        model.forward_with(&mut sess, &[&toks], &opts, &mut |_, _, _| {})?;
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(median(times))
}

/// Median wall time of one decode step of `batch` sequences after a 32-token prefill
/// (`steps` timed steps after one warm-up), ms per step.
pub fn decode_ms(model: &Model, batch: usize, steps: usize, capture: &HookFilter) -> Result<f64> {
    let ctx_len = 32
        .min(model.cfg.n_positions.saturating_sub(steps + 1))
        .max(1);
    let cap = (ctx_len + steps + 1).min(model.cfg.n_positions);
    let steps = cap - ctx_len - 1;
    let prompts: Vec<Vec<u32>> = (0..batch)
        .map(|b| random_tokens(model.cfg.vocab_size, ctx_len, 10 + b as u64))
        .collect();
    let mut sess = model.session(batch, cap)?;
    let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    model.forward(&mut sess, &refs, &ForwardOptions::default())?;
    let opts = ForwardOptions {
        logits: LogitsMode::Last,
        capture: capture.clone(),
        ..Default::default()
    };
    let mut times = Vec::new();
    for i in 0..steps + 1 {
        let next: Vec<Vec<u32>> = (0..batch)
            .map(|b| vec![((i * 31 + b * 7) % model.cfg.vocab_size) as u32])
            .collect();
        let refs: Vec<&[u32]> = next.iter().map(Vec::as_slice).collect();
        let t0 = Instant::now();
        model.forward_with(&mut sess, &refs, &opts, &mut |_, _, _| {})?;
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(median(times))
}

/// Benchmarks only: whether `model` runs its few-row matmuls on the per-column matvec of
/// before issue 15 (`MatmulKernel::MatvecPerColumn`) instead of today's matvec.
pub fn set_matvec_baseline(model: &Model, on: bool) {
    model
        .k
        .matvec_baseline
        .store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Dispatches of one decode step of `batch` sequences after a 32-token prefill, per kernel
/// label (`GpuContext::take_dispatch_counts`), plain or with `capture`.
pub fn decode_dispatches(
    model: &Model,
    batch: usize,
    capture: &HookFilter,
) -> Result<BTreeMap<&'static str, u64>> {
    let ctx_len = 32.min(model.cfg.n_positions.saturating_sub(2)).max(1);
    let prompts: Vec<Vec<u32>> = (0..batch)
        .map(|b| random_tokens(model.cfg.vocab_size, ctx_len, 10 + b as u64))
        .collect();
    let mut sess = model.session(batch, ctx_len + 1)?;
    let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    model.forward(&mut sess, &refs, &ForwardOptions::default())?;
    let next: Vec<Vec<u32>> = (0..batch).map(|b| vec![b as u32]).collect();
    let refs: Vec<&[u32]> = next.iter().map(Vec::as_slice).collect();
    let opts = ForwardOptions {
        logits: LogitsMode::Last,
        capture: capture.clone(),
        ..Default::default()
    };
    model.ctx.take_dispatch_counts();
    model.forward_with(&mut sess, &refs, &opts, &mut |_, _, _| {})?;
    Ok(model.ctx.take_dispatch_counts())
}

/// Per-kernel totals of a profile.
#[derive(Clone, Debug, Serialize)]
pub struct KernelRow {
    pub kernel: String,
    pub count: usize,
    pub ms: f64,
    pub share: f64,
    pub gflops: Option<f64>,
    pub gbps: Option<f64>,
}

/// Group timed dispatches by kernel: count, total ms, share, achieved GFLOP/s and GB/s.
pub fn kernel_table(samples: &[Sample]) -> Vec<KernelRow> {
    let total: f64 = samples.iter().map(|s| s.ms).sum();
    let mut by: BTreeMap<&str, (usize, f64, f64, f64)> = BTreeMap::new();
    for s in samples {
        let e = by.entry(s.label).or_default();
        e.0 += 1;
        e.1 += s.ms;
        e.2 += s.cost.flops;
        e.3 += s.cost.bytes;
    }
    let mut rows: Vec<KernelRow> = by
        .into_iter()
        .map(|(k, (count, ms, flops, bytes))| KernelRow {
            kernel: k.to_string(),
            count,
            ms,
            share: ms / total.max(1e-12),
            gflops: (flops > 0.0 && ms > 0.0).then(|| flops / ms / 1e6),
            gbps: (bytes > 0.0 && ms > 0.0).then(|| bytes / ms / 1e6),
        })
        .collect();
    rows.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    rows
}

/// Markdown of `kernel_table`.
pub fn kernel_markdown(rows: &[KernelRow]) -> String {
    let mut s = String::from(
        "| kernel | count | total ms | share | GFLOP/s | GB/s |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let f = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.2}"));
    for r in rows {
        s += &format!(
            "| {} | {} | {:.2} | {:.1}% | {} | {} |\n",
            r.kernel,
            r.count,
            r.ms,
            100.0 * r.share,
            f(r.gflops),
            f(r.gbps)
        );
    }
    let total: f64 = rows.iter().map(|r| r.ms).sum();
    s += &format!(
        "| **all** | {} | {total:.2} | 100% | | |\n",
        rows.iter().map(|r| r.count).sum::<usize>()
    );
    s
}

/// GPU time of one forward pass, per kernel, from timestamp queries; None without them.
pub fn profile_forward(model: &Model, t: usize) -> Result<Option<Vec<Sample>>> {
    let ctx = &model.ctx;
    let toks = random_tokens(model.cfg.vocab_size, t, 2);
    // Warm-up (pipelines, pool), then the profiled pass.
    let mut sess = model.session(1, t)?;
    model.forward(&mut sess, &[&toks], &ForwardOptions::default())?;
    if !ctx.start_profile() {
        ctx.take_profile();
        return Ok(None);
    }
    let mut sess = model.session(1, t)?;
    let r = model.forward(&mut sess, &[&toks], &ForwardOptions::default());
    let samples = ctx.take_profile();
    r?;
    Ok(Some(samples))
}

/// One matmul measurement.
#[derive(Clone, Debug, Serialize)]
pub struct MatmulRun {
    pub name: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub kernel: String,
    pub ms: f64,
    pub gflops: f64,
}

/// Median GPU time of a matmul on random data: timestamp queries when offered, else wall
/// time of submit-and-wait.
pub fn time_matmul(
    ctx: &GpuContext,
    kern: &Kernels,
    kind: MatmulKernel,
    shape: (usize, usize, usize),
    b_t: bool,
    repeats: usize,
) -> Result<f64> {
    time_matmul_weights(ctx, kern, kind, shape, b_t, false, repeats)
}

/// `time_matmul` with the weights stored as f16 pairs (`pack_f16`) when `f16`.
#[allow(clippy::too_many_arguments)]
pub fn time_matmul_weights(
    ctx: &GpuContext,
    kern: &Kernels,
    kind: MatmulKernel,
    (m, n, k): (usize, usize, usize),
    b_t: bool,
    f16: bool,
    repeats: usize,
) -> Result<f64> {
    let a = ctx.storage_init("bench a", bytemuck::cast_slice(&rand_f32(m * k, 3)))?;
    let w = rand_f32(k * n, 4);
    let b = if f16 {
        ctx.storage_init(
            "bench b",
            bytemuck::cast_slice(&crate::kernels::pack_f16(&w)),
        )?
    } else {
        ctx.storage_init("bench b", bytemuck::cast_slice(&w))?
    };
    let c = ctx.storage("bench c", (m * n * 4) as u64)?;
    let epi = Epilogue {
        b_f16: f16,
        ..Default::default()
    };
    let run = |profile: bool| -> Result<f64> {
        let mut g = Graph::default();
        kern.matmul_fused(
            &mut g,
            kind,
            m,
            n,
            k,
            (&a).into(),
            (&b).into(),
            None,
            (&c).into(),
            b_t,
            epi,
        );
        if profile {
            ctx.start_profile();
            g.submit(ctx)?;
            ctx.wait()?;
            let s = ctx.take_profile();
            return Ok(s.iter().map(|s| s.ms).sum());
        }
        let t0 = Instant::now();
        g.submit(ctx)?;
        ctx.wait()?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    };
    let ts = ctx.has(wgpu::Features::TIMESTAMP_QUERY);
    run(false)?;
    let mut v = Vec::new();
    for _ in 0..repeats.max(1) {
        v.push(run(ts)?);
    }
    Ok(median(v))
}

pub fn rand_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The device's copy bandwidth (GB/s): a 64 MiB (or binding-limit) buffer-to-buffer copy,
/// counting bytes read plus written, median of 5.
pub fn copy_bandwidth(ctx: &GpuContext) -> Result<f64> {
    let bytes = (64u64 << 20).min(ctx.max_binding);
    let a = ctx.storage("bw a", bytes)?;
    let b = ctx.storage("bw b", bytes)?;
    let mut v = Vec::new();
    for i in 0..6 {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("bw") });
        enc.copy_buffer_to_buffer(&a, 0, &b, 0, bytes);
        let t0 = Instant::now();
        ctx.queue.submit([enc.finish()]);
        ctx.wait()?;
        if i > 0 {
            v.push(2.0 * bytes as f64 / t0.elapsed().as_secs_f64() / 1e9);
        }
    }
    Ok(median(v))
}

/// The device's arithmetic ceiling (GFLOP/s): register-only FMAs over enough invocations to
/// fill it, median of 3 (GPU time from timestamps when offered).
pub fn fma_ceiling(ctx: &GpuContext, kern: &Kernels) -> Result<f64> {
    let n = 64 * 1024;
    let iters = 512;
    let out = ctx.storage("fma out", n as u64 * 4)?;
    let ts = ctx.has(wgpu::Features::TIMESTAMP_QUERY);
    let mut v = Vec::new();
    for i in 0..4 {
        let mut g = Graph::default();
        let flops = kern.fma_peak(&mut g, n, iters, &out);
        if ts {
            ctx.start_profile();
        }
        let t0 = Instant::now();
        g.submit(ctx)?;
        ctx.wait()?;
        let ms = if ts {
            ctx.take_profile().iter().map(|s| s.ms).sum()
        } else {
            t0.elapsed().as_secs_f64() * 1e3
        };
        if i > 0 {
            v.push(flops / ms / 1e6);
        }
    }
    Ok(median(v))
}

/// GPT-2 124M's linear layers at `rows` rows (Conv1D layout; the tied LM head `[50257, 768]`,
/// as many vocabulary rows as one storage binding of `max_binding` bytes holds): the decode
/// shapes of the other weight layout, without loading the model.
pub fn gpt2_shapes(rows: usize, max_binding: u64) -> Vec<(String, usize, usize, usize, bool)> {
    let d = 768;
    let head = 50257.min((max_binding / (4 * d as u64)) as usize);
    [
        ("gpt2 c_attn", 3 * d, d, false),
        ("gpt2 attn c_proj", d, d, false),
        ("gpt2 c_fc", 4 * d, d, false),
        ("gpt2 mlp c_proj", d, 4 * d, false),
        ("gpt2 lm head chunk", head, d, true),
    ]
    .into_iter()
    .map(|(name, n, k, bt)| (name.to_string(), rows, n, k, bt))
    .collect()
}

/// The linear layers of one forward pass at `rows` rows: (name, m, n, k, b_t).
pub fn matmul_shapes(model: &Model, rows: usize) -> Vec<(String, usize, usize, usize, bool)> {
    let mut v: Vec<_> = model
        .block_matmuls()
        .into_iter()
        .map(|(name, n, k, b_t)| (name.to_string(), rows, n, k, b_t))
        .collect();
    // The LM head as the engine runs it: one vocabulary chunk per storage binding, over rows of
    // the embedding width (OPT's word_embed_proj_dim; else the model width).
    let d = model.cfg.embed_dim;
    v.push((
        "lm head chunk".into(),
        rows,
        model.vocab_chunk_rows(),
        d,
        true,
    ));
    v
}
