//! What the `outlier-probe` commands share: the global GPU options, the corpus-window options,
//! the progress bar and model loading. Binary only: depends on the library's public API.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::hub::resolve_model;
use outlier_probe::model::{Gpt2, Weights};

use super::prompt_args::{window_bos, BosArgs};

/// The options every command takes (`global`), for the GPU and the weights' precision.
#[derive(Args, Clone)]
pub struct GpuArgs {
    /// Backend: vulkan, metal, dx12 or gl (default: all; also WGPU_BACKEND)
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Adapter index as listed by `outlier-probe devices` (also WGPU_ADAPTER_NAME to match by name)
    #[arg(long, global = true)]
    adapter: Option<usize>,
    /// Store the blocks' linear-layer weights as f16 (half the memory and bandwidth, f32 math;
    /// logits within 1e-2·(median|b| + |b|) of f32, the bound the tests assert). Not for `compress`, which quantizes f32 weights itself.
    #[arg(long, global = true, conflicts_with = "weights")]
    pub f16_weights: bool,
    /// How the blocks' linear-layer weights live on the GPU: stored (default: a GGUF's
    /// Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q5_K/Q6_K blocks stay quantized and are decoded inside the
    /// matmul; other types and safetensors weights become f32), f32 (dequantized at load), f16
    /// (as --f16-weights) or q8 (quantized to Q8_0 blocks of 32 at load). Not for `compress`,
    /// which loads f32 weights.
    #[arg(long, global = true, value_parser = parse_weights)]
    pub weights: Option<Weights>,
}

fn parse_weights(s: &str) -> Result<Weights> {
    s.parse()
}

impl GpuArgs {
    /// The `--weights` choice (`--f16-weights` is `--weights f16`).
    pub fn weights(&self) -> Weights {
        match (self.f16_weights, self.weights) {
            (true, _) => Weights::F16,
            (false, w) => w.unwrap_or_default(),
        }
    }

    pub fn options(&self) -> GpuOptions {
        GpuOptions {
            backend: self.backend.clone(),
            adapter_index: self.adapter,
            ..GpuOptions::from_env()
        }
    }
}

/// The corpus windows `ppl` and `compress` measure perplexity on.
#[derive(Args, Clone)]
pub struct CorpusArgs {
    /// UTF-8 text file (Project Gutenberg header and footer are skipped)
    #[arg(long)]
    pub corpus: PathBuf,
    /// Tokens per window (default: min(n_positions, 256))
    #[arg(long)]
    seq_len: Option<usize>,
    /// Number of windows
    #[arg(long, default_value_t = 8)]
    seqs: usize,
    /// Start at this fraction of the corpus (0.9: the usual held-out last 10%)
    #[arg(long, default_value_t = 0.0)]
    from: f64,
    /// Windows per forward pass
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    #[command(flatten)]
    bos: BosArgs,
}

impl CorpusArgs {
    /// Windows of the corpus in `model`'s tokens.
    pub fn windows(&self, model: &Gpt2) -> Result<Vec<Vec<u32>>> {
        if self.batch == 0 {
            anyhow::bail!("--batch must be at least 1 window per forward pass");
        }
        let seq_len = self.seq_len.unwrap_or(model.cfg.n_positions.min(256));
        let (corpus, seqs, from) = (&self.corpus, self.seqs, self.from);
        let tok = model.tokenizer()?;
        let add = self.bos.add();
        let w = outlier_probe::corpus::windows_with(tok, corpus, seq_len, seqs, from, add)?;
        eprintln!("[corpus windows: {}]", window_bos(tok, add));
        Ok(w)
    }
}

/// Progress over corpus windows, labelled by what is running.
pub fn progress_bar(len: u64) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(len).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>32} [{bar:40}] {pos}/{len} windows {elapsed_precise} (eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    )
}

/// Resolve `model` (a path or a Hugging Face id) and load it on the GPU `gpu` chooses.
pub fn load(gpu: &GpuArgs, model: &str) -> Result<Gpt2> {
    let dir = resolve_model(model)?;
    let ctx = GpuContext::new(&gpu.options())?;
    let opts = outlier_probe::model::LoadOptions {
        weights: gpu.weights(),
    };
    Gpt2::load_with(ctx, &dir, &opts)
        .with_context(|| format!("loading the model in {}", dir.display()))
}
