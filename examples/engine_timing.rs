//! The engine's side of `tools/bench/side_by_side.py`: times one prefill of given token ids and
//! greedy decoding after it, and prints one JSON object on stdout.
//!
//!     cargo run --release --example engine_timing -- --model M.gguf --tokens 1,2,3 \
//!         --decode-tokens 16 --repeats 2
//!
//! - prefill: batch 1, all of `--tokens` in one forward pass, logits of the last position read
//!   back; one warm-up, then the median wall time of `--repeats` runs (ms).
//! - decode: after a prefill of `--tokens`, `--decode-tokens` greedy steps (argmax of the last
//!   logits, fed back), each step timed from submit to logits on the host; the median and every
//!   step (ms/token), and the generated ids, so the caller can check that every engine picked
//!   the same tokens.
//! - memory: peak GPU buffer bytes (wgpu's own accounting) over the runs, and the weights' bytes.
//!
//! Errors (bad model, ids out of the vocabulary, too many tokens for the context) are printed
//! by anyhow on stderr with exit status 1.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::json;

use outlier_probe::bench::random_tokens;
use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::model::{ForwardOptions, LoadOptions, LogitsMode, Model, Weights};

#[derive(Parser)]
struct Args {
    /// Model directory or .gguf file
    #[arg(long)]
    model: PathBuf,
    /// Prompt token ids, comma-separated
    #[arg(long, required_unless_present = "random_tokens")]
    tokens: Option<String>,
    /// Instead of --tokens: this many seeded random ids from the model's vocabulary (seed 0);
    /// they are printed as `prompt_ids`
    #[arg(long, conflicts_with = "tokens")]
    random_tokens: Option<usize>,
    #[arg(long, default_value_t = 16)]
    decode_tokens: usize,
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// How the linear layers live on the GPU: stored (a GGUF's blocks stay quantized), f32,
    /// f16 or q8 (the CLI's --weights)
    #[arg(long, default_value = "stored", value_parser = |s: &str| s.parse::<Weights>())]
    weights: Weights,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn main() -> Result<()> {
    let args = Args::parse();
    let ctx = GpuContext::new(&GpuOptions::from_env())?;
    let t0 = Instant::now();
    let opts = LoadOptions {
        weights: args.weights,
    };
    let model = Model::load_with(ctx.clone(), &args.model, &opts)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let toks: Vec<u32> = match (&args.tokens, args.random_tokens) {
        (Some(t), _) => t
            .split(',')
            .map(|s| s.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--tokens {t:?}: expected comma-separated ids"))?,
        (None, Some(n)) => random_tokens(model.cfg.vocab_size, n, 0),
        (None, None) => bail!("give --tokens or --random-tokens"),
    };
    if toks.is_empty() || args.repeats == 0 {
        bail!("the prompt and --repeats must not be empty or zero");
    }
    let last = ForwardOptions {
        logits: LogitsMode::Last,
        ..Default::default()
    };
    let cap = toks.len() + args.decode_tokens + 1;
    ctx.take_peak_memory();

    let mut pre = Vec::new();
    for i in 0..=args.repeats {
        let mut sess = model.session(1, cap)?;
        let t = Instant::now();
        model.forward(&mut sess, &[&toks], &last)?;
        if i > 0 {
            pre.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }

    let mut sess = model.session(1, cap)?;
    let out = model.forward(&mut sess, &[&toks], &last)?;
    let logits = out.logits[0].as_ref().context("no logits returned")?;
    let vocab = *logits.shape.last().unwrap();
    let mut next = argmax(&logits.data[logits.data.len() - vocab..]);
    let mut generated = vec![next];
    let mut steps = Vec::new();
    for _ in 0..args.decode_tokens {
        let t = Instant::now();
        let out = model.forward(&mut sess, &[&[next]], &last)?;
        steps.push(t.elapsed().as_secs_f64() * 1e3);
        let l = out.logits[0].as_ref().context("no logits returned")?;
        next = argmax(&l.data[l.data.len() - vocab..]);
        generated.push(next);
    }
    let peak = ctx.take_peak_memory();
    let prefill_ms = median(pre.clone());
    let j = json!({
        "engine": format!("outlier-probe {} (wgpu)", env!("CARGO_PKG_VERSION")),
        "device": format!("{} ({:?}, {:?})", ctx.info.name, ctx.info.backend, ctx.info.device_type),
        "weights": format!("--weights {}", model.weights),
        "quant_bytes": model.quant_bytes,
        "weight_bytes": model.weight_bytes,
        "load_ms": load_ms,
        "prompt_ids": toks,
        "prefill_ms": prefill_ms,
        "prefill_runs_ms": pre,
        "prefill_tok_s": toks.len() as f64 / prefill_ms * 1e3,
        "decode_ms_per_token": if steps.is_empty() { f64::NAN } else { median(steps.clone()) },
        "decode_steps_ms": steps,
        "generated": generated,
        "peak_gpu_bytes": peak,
    });
    println!("{}", serde_json::to_string(&j)?);
    Ok(())
}
