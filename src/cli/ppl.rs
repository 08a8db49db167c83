//! `outlier-probe ppl`: perplexity over corpus windows, plain and under each `--intervene` row.
//! Binary only: depends on the library's public API and `cli` helpers; never on wgpu directly.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::common::{load, progress_bar, CorpusArgs, GpuArgs};

/// The options of `ppl`.
#[derive(Args)]
pub struct PplArgs {
    /// Model: a Hugging Face directory (config.json, model.safetensors or its shards, tokenizer.json), a
    /// .gguf file, or a Hugging Face id such as gpt2
    #[arg(long)]
    model: String,
    #[command(flatten)]
    text: CorpusArgs,
    #[arg(long)]
    intervene: Vec<String>,
    /// Also write the results as JSON
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Run `outlier-probe ppl`.
pub fn run(gpu: &GpuArgs, args: PplArgs) -> Result<()> {
    let PplArgs {
        model,
        text: corpus,
        intervene,
        json,
    } = args;
    let m = load(gpu, &model)?;
    let specs = intervene
        .iter()
        .map(|s| outlier_probe::intervene::Spec::parse_row(s))
        .collect::<Result<Vec<_>>>()?;
    let windows = corpus.windows(&m)?;
    // Every row's selectors, before any pass runs.
    let shortest = windows.iter().map(Vec::len).min().unwrap_or(0);
    for (row, text) in specs.iter().zip(&intervene) {
        outlier_probe::select::check_specs(row, &m.hooks(), shortest)
            .with_context(|| format!("--intervene '{text}'"))?;
    }
    let batch = corpus.batch;
    eprintln!(
        "{} windows of {} tokens from {} on {}",
        windows.len(),
        windows.first().map_or(0, Vec::len),
        corpus.corpus.display(),
        m.device_name()
    );
    let runs = 1 + specs.len();
    let bar = progress_bar((windows.len() * runs) as u64);
    let mut results = Vec::new();
    bar.set_message("plain");
    results.push(outlier_probe::ppl::perplexity(
        &m,
        &windows,
        batch,
        &[],
        None,
        "plain",
        Some(&bar),
    )?);
    for (spec, text) in specs.iter().zip(&intervene) {
        bar.set_message("intervention");
        let (edits, knock) = outlier_probe::ppl::resolve(&m, spec, &windows, batch)?;
        results.push(outlier_probe::ppl::perplexity(
            &m,
            &windows,
            batch,
            &edits,
            knock.as_ref(),
            text,
            Some(&bar),
        )?);
    }
    bar.finish_and_clear();
    println!("| run | tokens | perplexity | × plain |");
    println!("|---|---:|---:|---:|");
    let base = results[0].ppl;
    for r in &results {
        println!(
            "| `{}` | {} | {:.3} | {:.3} |",
            r.label,
            r.tokens,
            r.ppl,
            r.ppl / base
        );
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
