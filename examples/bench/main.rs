//! Benchmark one model on this machine's GPU and print Markdown tables: device ceilings,
//! matmul GFLOP/s per shape (tiled and matvec against the naive kernel, with floors), the decode
//! matvec's weight bandwidth against the copy bandwidth (new and old kernel, f32 and f16),
//! dispatches per decode step by kernel, forward
//! throughput (prefill tokens/s, decode ms/token, plain and with every hook captured, peak GPU
//! buffer memory), per-kernel GPU time, and — with `--python` — transformers on the CPU side
//! by side.
//!
//!     cargo run --release --example bench -- --model .cache/gpt2-124m-random \
//!         --python /work/venv/bin/python --json bench.json

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;

use outlier_probe::bench::*;

mod tables;
use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::hooks::HookFilter;
use outlier_probe::kernels::{MatmulKernel, MATVEC_MAX_ROWS, TILE_SHAPES};
use outlier_probe::model::{Model, Weights};
use tables::{decode_matvec_table, dispatch_table};

#[derive(Parser)]
struct Args {
    /// Model directory or .gguf file
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value = "32,128,512")]
    prefill: String,
    #[arg(long, default_value = "1,8")]
    decode_batch: String,
    #[arg(long, default_value_t = 8)]
    decode_tokens: usize,
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// Rows of the prefill matmul shapes and of the profiled forward pass
    #[arg(long, default_value_t = 128)]
    rows: usize,
    /// Also time transformers (PyTorch, CPU) with this Python (tools/bench/hf_bench.py)
    #[arg(long)]
    python: Option<PathBuf>,
    /// Skip the capture runs
    #[arg(long)]
    no_capture: bool,
    #[arg(long)]
    json: Option<PathBuf>,
    /// Load the blocks' matrices as f16 (the f16-weight path; = --weights f16)
    #[arg(long, conflicts_with = "weights")]
    f16_weights: bool,
    /// Only the ceilings, the matmul shapes, the decode matvec table and the dispatch counts
    /// (no forward-pass timing, profile or transformers)
    #[arg(long)]
    kernels_only: bool,
    /// Skip the naive kernel in the matmul-shapes table (slow on a CPU adapter)
    #[arg(long)]
    no_naive: bool,
    /// Add GPT-2 124M's shapes (Conv1D layout) to the decode matvec table
    #[arg(long)]
    gpt2_shapes: bool,
    /// How the blocks' matrices live on the GPU: stored (default; a GGUF's blocks stay
    /// quantized), f32, f16 or q8
    #[arg(long, value_parser = |s: &str| s.parse::<Weights>())]
    weights: Option<Weights>,
}

/// "480 MiB (492 MiB capturing)", or just the first without a capture run.
fn peaks(plain: u64, capture: Option<u64>) -> String {
    let mib = |b: u64| b as f64 / 1048576.0;
    match capture {
        Some(c) => format!("{:.0} MiB ({:.0} MiB capturing)", mib(plain), mib(c)),
        None => format!("{:.0} MiB", mib(plain)),
    }
}

/// How the blocks' matrices are stored, for the header line.
fn weights_note(model: &Model) -> String {
    if model.f16 {
        return "block matrices f16".into();
    }
    if model.quant_bytes > 0 {
        return format!(
            "--weights {}: {:.0} MiB of linear layers in ggml blocks",
            model.weights,
            model.quant_bytes as f64 / 1048576.0
        );
    }
    "f32".into()
}

fn list(s: &str) -> Vec<usize> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let ctx = GpuContext::new(&GpuOptions::from_env())?;
    let opts = outlier_probe::model::LoadOptions {
        weights: if args.f16_weights {
            Weights::F16
        } else {
            args.weights.unwrap_or_default()
        },
    };
    let model = Model::load_with(ctx.clone(), &args.model, &opts)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let cfg = &model.cfg;
    let np = cfg.n_positions;
    let device = format!(
        "{} ({:?}, {:?})",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    println!("# outlier-probe bench\n");
    println!(
        "model `{}`: {:?}, {} layers, d {}, {} heads, vocab {}, {:.0} MiB of weights on the GPU ({})  \ndevice: {device}  \ntimestamps: {}\n",
        args.model.display(),
        cfg.arch,
        cfg.n_layer,
        cfg.n_embd,
        cfg.n_head,
        cfg.vocab_size,
        model.weight_bytes as f64 / 1048576.0,
        weights_note(&model),
        if ctx.has(wgpu::Features::TIMESTAMP_QUERY) {
            "TIMESTAMP_QUERY offered: kernel times are GPU times"
        } else {
            "TIMESTAMP_QUERY not offered: kernel times are wall times of submit + wait, no per-kernel profile"
        }
    );

    // Ceilings.
    let bw = copy_bandwidth(&ctx)?;
    let kern = outlier_probe::kernels::Kernels::new(&ctx)?;
    let sq = 512;
    let ceiling = fma_ceiling(&ctx, &kern)?;
    let sq_ms = time_matmul(&ctx, &kern, MatmulKernel::Tiled, (sq, sq, sq), false, 3)?;
    let sq_gflops = 2.0 * (sq * sq * sq) as f64 / sq_ms / 1e6;
    let r8_ms = time_matmul(&ctx, &kern, MatmulKernel::Tiled8x8, (sq, sq, sq), false, 3)?;
    let r8_gflops = 2.0 * (sq * sq * sq) as f64 / r8_ms / 1e6;
    println!("## Device ceilings (measured)\n");
    println!("| what | value |\n|---|---:|");
    println!("| copy bandwidth (buffer to buffer, read + write) | {bw:.2} GB/s |");
    println!(
        "| arithmetic ceiling (register-only vec4 FMAs, fma_peak.wgsl) | {ceiling:.2} GFLOP/s |"
    );
    println!("| engine's tiled matmul (4×4 per invocation), {sq}×{sq}×{sq} | {sq_gflops:.2} GFLOP/s ({:.0}% of the ceiling) |", 100.0 * sq_gflops / ceiling);
    println!("| tiled matmul, 8×8 per invocation, {sq}×{sq}×{sq} | {r8_gflops:.2} GFLOP/s ({:.0}% of the ceiling) |\n", 100.0 * r8_gflops / ceiling);

    // Matmul shapes.
    // The one-time tile choice for this adapter (the engine's default without it: 8×8).
    let tuned = outlier_probe::kernels::autotune_tiles(&ctx, &kern, (128, 576, 576), 2)?;
    println!("tile autotune (128×576×576, nn.Linear layout, best of 2):");
    for (kind, ms) in &tuned {
        println!("- {kind:?}: {ms:.3} ms");
    }
    println!("- prefill runs on {:?}\n", kern.pick(np.max(33)));
    println!("## Matmul shapes\n");
    println!("floor = max(FLOPs / ceiling, bytes / bandwidth); efficiency = floor / time.\n");
    println!("| shape | m×n×k | kernel | ms | GFLOP/s | × naive | floor ms | efficiency |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    let mut mm = Vec::new();
    for rows in [args.rows.min(np), 1] {
        for (name, m, n, k, bt) in matmul_shapes(&model, rows) {
            let flops = 2.0 * (m * n * k) as f64;
            let bytes = 4.0 * (m * k + k * n + m * n) as f64;
            let floor = (flops / ceiling / 1e6).max(bytes / bw / 1e6);
            let fast_kind = kern.pick(m);
            let fast = time_matmul(&ctx, &kern, fast_kind, (m, n, k), bt, args.repeats)?;
            let naive = if args.no_naive {
                f64::NAN
            } else {
                time_matmul(
                    &ctx,
                    &kern,
                    MatmulKernel::Naive,
                    (m, n, k),
                    bt,
                    args.repeats,
                )?
            };
            // Prefill rows: the other tile shape too.
            let other = TILE_SHAPES.into_iter().find(|&t| t != fast_kind);
            let r8 = if m > MATVEC_MAX_ROWS {
                let kind = other.unwrap_or(MatmulKernel::Tiled);
                time_matmul(&ctx, &kern, kind, (m, n, k), bt, args.repeats)?
            } else {
                f64::NAN
            };
            let runs = [
                (MatmulKernel::Naive, naive),
                (fast_kind, fast),
                (other.unwrap_or(MatmulKernel::Tiled), r8),
            ];
            for (kind, ms) in runs.into_iter().filter(|r| !r.1.is_nan()) {
                println!(
                    "| {name} | {m}×{n}×{k} | {kind:?} | {ms:.3} | {:.2} | {:.2} | {floor:.3} | {:.0}% |",
                    flops / ms / 1e6,
                    naive / ms,
                    100.0 * floor / ms
                );
                mm.push(json!({"shape": name, "m": m, "n": n, "k": k, "kernel": format!("{kind:?}"),
                    "ms": ms, "gflops": flops / ms / 1e6, "vs_naive": naive / ms, "floor_ms": floor}));
            }
        }
    }

    let mv = decode_matvec_table(&ctx, &kern, &model, args.gpt2_shapes, bw, args.repeats)?;
    let dispatch_json = dispatch_table(&model)?;
    if args.kernels_only {
        if let Some(path) = &args.json {
            let j = json!({"model": args.model, "device": device, "copy_gbps": bw,
                "fma_ceiling_gflops": ceiling, "tiled_512_gflops": sq_gflops, "tiled8x8_512_gflops": r8_gflops, "matmul": mm,
                "decode_matvec": mv, "decode_dispatches": dispatch_json});
            std::fs::write(path, serde_json::to_string_pretty(&j)?)?;
        }
        return Ok(());
    }

    // Forward passes (the matmul runs' buffers go first, so they do not count).
    ctx.forget_bind_groups();
    let all = HookFilter::all();
    let none = HookFilter::none();
    let prefill: Vec<usize> = list(&args.prefill).into_iter().map(|t| t.min(np)).collect();
    println!("\n## Forward pass (wall time, batch 1 unless stated)\n");
    println!(
        "| run | plain | tokens/s | all hooks captured | capture / plain | peak GPU buffers |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut fwd = Vec::new();
    ctx.take_peak_memory();
    for &t in &prefill {
        let reps = if t >= 256 { 1 } else { args.repeats };
        let plain = prefill_ms(&model, t, reps, &none)?;
        let peak_plain = ctx.take_peak_memory();
        let cap = if args.no_capture {
            None
        } else {
            Some(prefill_ms(&model, t, 1, &all)?)
        };
        let peak_cap = ctx.take_peak_memory();
        println!(
            "| prefill T={t} | {plain:.1} ms | {:.1} | {} | {} | {} |",
            t as f64 / plain * 1e3,
            cap.map_or("–".into(), |c| format!("{c:.1} ms")),
            cap.map_or("–".into(), |c| format!("{:.2}×", c / plain)),
            peaks(peak_plain, cap.map(|_| peak_cap))
        );
        fwd.push(
            json!({"run": "prefill", "T": t, "ms": plain, "tok_s": t as f64 / plain * 1e3,
            "capture_ms": cap, "peak_bytes": peak_plain, "peak_bytes_capture": peak_cap}),
        );
    }
    for b in list(&args.decode_batch) {
        // The same steps on the per-column matvec first (before/after in one run).
        set_matvec_baseline(&model, true);
        let before = decode_ms(&model, b, args.decode_tokens, &none)?;
        set_matvec_baseline(&model, false);
        println!(
            "| decode batch {b}, per-column matvec (before issue 15) | {before:.2} ms/step | {:.1} | – | – | – |",
            b as f64 / before * 1e3
        );
        ctx.take_peak_memory();
        let plain = decode_ms(&model, b, args.decode_tokens, &none)?;
        let peak_plain = ctx.take_peak_memory();
        let cap = if args.no_capture {
            None
        } else {
            Some(decode_ms(&model, b, args.decode_tokens.min(4), &all)?)
        };
        let peak_cap = ctx.take_peak_memory();
        println!(
            "| decode batch {b} | {plain:.2} ms/step | {:.1} | {} | {} | {} |",
            b as f64 / plain * 1e3,
            cap.map_or("–".into(), |c| format!("{c:.2} ms/step")),
            cap.map_or("–".into(), |c| format!("{:.2}×", c / plain)),
            peaks(peak_plain, cap.map(|_| peak_cap))
        );
        fwd.push(
            json!({"run": "decode", "batch": b, "ms_per_step": plain, "capture_ms": cap,
            "ms_per_step_percol_matvec": before,
            "peak_bytes": peak_plain, "peak_bytes_capture": peak_cap}),
        );
    }
    let (made, reused) = ctx.bind_group_counts();
    println!("\nbind groups: {made} created, {reused} reused from the cache over all runs above.");

    // Per-kernel profile.
    let mut prof_json = json!(null);
    for t in [args.rows.min(np), 1] {
        match profile_forward(&model, t)? {
            Some(samples) => {
                let rows = kernel_table(&samples);
                let total: f64 = rows.iter().map(|r| r.ms).sum();
                let mat: f64 = rows
                    .iter()
                    .filter(|r| r.kernel.starts_with("mat") || r.kernel.starts_with("qmat"))
                    .map(|r| r.ms)
                    .sum();
                println!("\n## GPU time per kernel, one forward pass of T={t} (timestamps)\n");
                print!("{}", kernel_markdown(&rows));
                println!(
                    "\nforward GPU time / matmul GPU time = {:.2}",
                    total / mat.max(1e-9)
                );
                if t != 1 {
                    prof_json =
                        json!({"T": t, "kernels": rows, "total_ms": total, "matmul_ms": mat});
                }
            }
            None => {
                println!("\n(no per-kernel profile: the adapter does not offer TIMESTAMP_QUERY)")
            }
        }
    }

    // transformers side by side.
    let mut py_json = json!(null);
    if let Some(py) = &args.python {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/bench/hf_bench.py");
        let out = Command::new(py)
            .arg(&script)
            .args(["--model", &args.model.to_string_lossy()])
            .args(["--prefill", &args.prefill])
            .args(["--decode-batch", &args.decode_batch])
            .args(["--decode-tokens", &args.decode_tokens.to_string()])
            .args(["--repeats", &args.repeats.to_string()])
            .args(["--logits", "last", "--json", "-"])
            .output()
            .with_context(|| format!("running {}", py.display()))?;
        if !out.status.success() {
            anyhow::bail!(
                "hf_bench.py failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let hf: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        println!(
            "\n## Side by side: transformers (PyTorch) vs outlier-probe, same model, same machine, one run\n"
        );
        println!(
            "transformers: {} on {}  \noutlier-probe: wgpu on {device}\n",
            hf["engine"].as_str().unwrap_or("?"),
            hf["device"].as_str().unwrap_or("?")
        );
        println!("| run | transformers | outlier-probe | outlier-probe speed / transformers |");
        println!("|---|---:|---:|---:|");
        for p in hf["prefill"].as_array().into_iter().flatten() {
            let t = p["T"].as_u64().unwrap_or(0) as usize;
            if let Some(e) = fwd.iter().find(|f| f["run"] == "prefill" && f["T"] == t) {
                let (hm, em) = (
                    p["ms"].as_f64().unwrap_or(f64::NAN),
                    e["ms"].as_f64().unwrap(),
                );
                println!(
                    "| prefill T={t} | {hm:.1} ms | {em:.1} ms | {:.2}× |",
                    hm / em
                );
            }
        }
        for p in hf["decode"].as_array().into_iter().flatten() {
            let b = p["batch"].as_u64().unwrap_or(0) as usize;
            if let Some(e) = fwd.iter().find(|f| f["run"] == "decode" && f["batch"] == b) {
                let (hm, em) = (
                    p["ms_per_token"].as_f64().unwrap_or(f64::NAN),
                    e["ms_per_step"].as_f64().unwrap(),
                );
                println!(
                    "| decode batch {b} | {hm:.2} ms/step | {em:.2} ms/step | {:.2}× |",
                    hm / em
                );
            }
        }
        py_json = hf;
    }

    if let Some(path) = &args.json {
        let j = json!({"model": args.model, "device": device, "copy_gbps": bw, "fma_ceiling_gflops": ceiling,
            "tiled_512_gflops": sq_gflops, "tiled8x8_512_gflops": r8_gflops,
            "matmul": mm, "decode_matvec": mv, "decode_dispatches": dispatch_json, "forward": fwd, "profile": prof_json, "transformers": py_json});
        std::fs::write(path, serde_json::to_string_pretty(&j)?)?;
    }
    Ok(())
}
