//! Convert a checkpoint of the paper's nanoGPT-based code into a model directory this crate loads:
//!
//! `cargo run --release --example convert_nanogpt -- out/ckpt.pt gpt2-attn-bias [--variant attn_bias] [--tokenizer tokenizer.json]`
//!
//! The variant is read from the parameter names where they tell it (context_scale, value_bias);
//! say `--variant` for context_bias vs attn_bias and for sigmoid (whose parameters equal default's).
//! nanoGPT uses the GPT-2 BPE: pass a GPT-2 `tokenizer.json` to copy it into the directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use outlier_probe::config::AttnVariant;

#[derive(Parser)]
struct Args {
    /// The training code's ckpt.pt
    ckpt: PathBuf,
    /// Directory to write config.json and model.safetensors into
    out: PathBuf,
    /// default, value_bias, context_bias, attn_bias, context_scale or sigmoid
    #[arg(long)]
    variant: Option<String>,
    /// A tokenizer.json to copy alongside (GPT-2's for nanoGPT models)
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let variant = a.variant.as_deref().map(AttnVariant::parse).transpose()?;
    let c =
        outlier_probe::convert::convert_nanogpt(&a.ckpt, &a.out, variant, a.tokenizer.as_deref())?;
    println!(
        "wrote {} ({} tensors): variant {}, {} layers, n_embd {}, {} heads, vocab {}, block {}",
        a.out.display(),
        c.tensors,
        c.variant.name(),
        c.n_layer,
        c.n_embd,
        c.n_head,
        c.vocab_size,
        c.block_size
    );
    Ok(())
}
