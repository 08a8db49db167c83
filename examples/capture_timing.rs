//! Wall time of one forward pass capturing every hook point, from Rust: the work Python's
//! `model.run_with_cache(prompt)` asks for (all logits, every hook, a fresh KV cache), so that
//! `examples/python/capture_timing.py` can be set beside it to show what the binding adds.
//!
//!     cargo run --release --example capture_timing -- [--model PATH] [--repeats 10]
//!
//! Prints the median of `repeats` timed runs after one warm-up, in ms. Frontend: library API only.

use anyhow::Result;
use clap::Parser;

use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::hooks::HookFilter;
use outlier_probe::model::{ForwardOptions, LogitsMode, Model};

#[derive(Parser)]
struct Args {
    /// Model directory or .gguf file (default: SmolLM2-135M-Instruct, fetched as the tests do)
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// Prompt (default: the paper's probe prompt)
    #[arg(long)]
    prompt: Option<String>,
    #[arg(long, default_value_t = 10)]
    repeats: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let path = match args.model {
        Some(p) => p,
        None => outlier_probe::fetch::SMOLLM2
            .ensure(&outlier_probe::fetch::default_cache_dir(), &mut |l| {
                eprintln!("{l}")
            })?,
    };
    let model = Model::load(GpuContext::new(&GpuOptions::from_env())?, &path)?;
    let prompt = args
        .prompt
        .unwrap_or_else(|| outlier_probe::probe::PROBE_PROMPT.to_string());
    let ids = model.tokenizer()?.encode_with_special(&prompt, true)?;
    let opts = ForwardOptions {
        logits: LogitsMode::All,
        capture: HookFilter::all(),
        ..Default::default()
    };
    let mut times = Vec::new();
    let mut hooks = 0;
    for i in 0..=args.repeats {
        let t0 = std::time::Instant::now();
        let mut sess = model.session(1, ids.len())?;
        let out = model.forward(&mut sess, &[&ids], &opts)?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        hooks = out.captures[0].len();
        if i > 0 {
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    let med = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "rust: {} tokens, {hooks} hooks, median {med:.1} ms over {} runs on {} (min {:.1}, max {:.1})",
        ids.len(),
        times.len(),
        model.device_name(),
        times.first().copied().unwrap_or(f64::NAN),
        times.last().copied().unwrap_or(f64::NAN),
    );
    Ok(())
}
