//! `outlier-probe capture`: hook-point tensors of one prompt into a safetensors file.
//! Binary only: depends on the library's public API and `cli` helpers; never on wgpu directly.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use outlier_probe::hooks::HookFilter;

use super::common::{load, GpuArgs};
use super::prompt_args::{prompt_from, BosArgs};

/// The options of `capture`.
#[derive(Args)]
pub struct CaptureArgs {
    /// Model: a Hugging Face directory (config.json, model.safetensors or its shards, tokenizer.json), a
    /// .gguf file, or a Hugging Face id such as gpt2
    #[arg(long)]
    model: String,
    #[arg(long)]
    prompt: Option<String>,
    /// Read the prompt from FILE, exactly (trailing newlines kept), `-` for stdin
    #[arg(long, value_name = "FILE")]
    prompt_file: Option<PathBuf>,
    #[command(flatten)]
    bos: BosArgs,
    /// Comma-separated globs, e.g. 'blocks.*.attn.hook_pattern,logits'
    #[arg(long)]
    hooks: String,
    #[arg(long)]
    out: PathBuf,
}

/// Run `outlier-probe capture`.
pub fn run(gpu: &GpuArgs, args: CaptureArgs) -> Result<()> {
    let CaptureArgs {
        model,
        prompt,
        prompt_file,
        bos,
        hooks,
        out,
    } = args;
    let prompt =
        prompt_from(prompt, prompt_file.as_deref())?.context("give --prompt or --prompt-file")?;
    let m = load(gpu, &model)?;
    let tok = m.tokenizer()?;
    let ids = tok.encode_with_special(&prompt, bos.add())?;
    eprintln!("[{}]", tok.describe_special(bos.add()));
    let filter = HookFilter::parse(&hooks)?;
    let names = filter.resolve(&m.hooks())?;
    let caps = m.capture(&ids, &filter)?;
    outlier_probe::capture_file::write(&out, &ids, &caps)?;
    eprintln!(
        "wrote {} hook tensors ({} selected) and `tokens` for {} tokens to {}",
        caps.len(),
        names.len(),
        ids.len(),
        out.display()
    );
    Ok(())
}
