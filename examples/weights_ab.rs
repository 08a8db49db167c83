//! How the blocks' weights are stored, side by side in one run: the same model loaded once per
//! `--weights` value onto one GPU, then decode steps and a prefill timed in alternating rounds
//! (so machine load hits every variant alike), with the weights' bytes and the peak GPU buffer
//! memory of each. Run:
//! `cargo run --release --example weights_ab -- --model FILE.gguf --weights stored,f32`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use outlier_probe::bench::{decode_ms, prefill_ms};
use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::hooks::HookFilter;
use outlier_probe::model::{LoadOptions, Model, Weights};

#[derive(Parser)]
struct Args {
    /// Model directory or .gguf file
    #[arg(long)]
    model: PathBuf,
    /// The --weights values to compare, comma-separated (stored, f32, f16, q8)
    #[arg(long, default_value = "stored,f32")]
    weights: String,
    /// Timed decode steps (batch 1, after a 32-token prefill) per round
    #[arg(long, default_value_t = 8)]
    decode_tokens: usize,
    /// Prefill length (0: none)
    #[arg(long, default_value_t = 126)]
    prefill: usize,
    /// Alternating rounds
    #[arg(long, default_value_t = 2)]
    rounds: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let ctx = GpuContext::new(&GpuOptions::from_env())?;
    let modes: Vec<Weights> = args
        .weights
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_>>()?;
    let mut models = Vec::new();
    for &w in &modes {
        let m = Model::load_with(ctx.clone(), &args.model, &LoadOptions { weights: w })
            .with_context(|| format!("loading {} with --weights {w}", args.model.display()))?;
        models.push(m);
    }
    let none = HookFilter::none();
    let n = modes.len();
    let (mut dec, mut pre, mut peak) = (vec![vec![]; n], vec![vec![]; n], vec![0u64; n]);
    ctx.take_peak_memory();
    for _ in 0..args.rounds {
        for (i, m) in models.iter().enumerate() {
            dec[i].push(decode_ms(m, 1, args.decode_tokens, &none)?);
            if args.prefill > 0 {
                pre[i].push(prefill_ms(
                    m,
                    args.prefill.min(m.cfg.n_positions),
                    1,
                    &none,
                )?);
            }
            peak[i] = peak[i].max(ctx.take_peak_memory());
        }
    }
    println!(
        "model `{}` on {}; {} rounds, median\n",
        args.model.display(),
        ctx.info.name,
        args.rounds
    );
    println!("| --weights | weights on the GPU | of them in ggml blocks | decode ms/token | prefill {} tokens | peak GPU buffers (all models loaded) |", args.prefill);
    println!("|---|---:|---:|---:|---:|---:|");
    let mib = |b: u64| b as f64 / 1048576.0;
    for (i, m) in models.iter().enumerate() {
        println!(
            "| {} | {:.0} MiB | {:.0} MiB | {:.1} | {} | {:.0} MiB |",
            modes[i],
            mib(m.weight_bytes),
            mib(m.quant_bytes),
            median(dec[i].clone()),
            if pre[i].is_empty() {
                "–".to_string()
            } else {
                format!("{:.0} ms", median(pre[i].clone()))
            },
            mib(peak[i])
        );
    }
    Ok(())
}
