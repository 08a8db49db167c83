//! `outlier-probe` command line: devices, generate, capture, probe, ppl, compress.
//! The binary's entry: parses the command line and hands each command to its module in `cli`.
//! Frontend: uses the library's public API; nothing in the library uses it.

use anyhow::Result;
use clap::{ArgGroup, Parser, Subcommand};

mod cli;
use cli::common::GpuArgs;
use cli::{capture, compress, devices, generate, ppl, probe};

#[derive(Parser)]
#[command(
    name = "outlier-probe",
    version,
    about = "Transformer models (GPT-2, Llama, Qwen2/3, Gemma 3, GPT-NeoX, OPT; Hugging Face or GGUF) on any GPU through wgpu, with capture of what flows through them"
)]
struct Cli {
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List GPU adapters with backend, driver, key limits and features
    Devices,
    /// Generate text from a prompt, printing tokens as they are produced
    #[command(group(ArgGroup::new("prompt_source").required(true).args(["prompt", "prompt_file"])))]
    Generate(generate::GenerateArgs),
    /// Perplexity over a text corpus, plain and under interventions
    ///
    /// Each --intervene gives one more row, compared with the plain model. Grammar:
    ///   HOOK:ch=C1,C2[:pos=P1,P2]:zero | :value=X | :mean   (mean over the same corpus windows)
    ///   knockout:keys=K1,K2[:layers=L1,L2]
    ///   SPEC;SPEC…   several specs acting together in one row
    /// Every selector must select something: a HOOK glob matching no hook point, a channel,
    /// layer or position out of range, a key with no later query in a window is an error.
    /// e.g. --intervene 'blocks.*.hook_resid_post:ch=447:pos=0:zero' --intervene 'blocks.*.hook_resid_post:ch=447:pos=0:mean'
    #[command(verbatim_doc_comment)]
    Ppl(ppl::PplArgs),
    /// Find and explain systematic outliers: activation, weight and attention outliers, their
    /// consistency and lifecycle; writes report.json, report.md and pictures (PNG + SVG)
    Probe(probe::ProbeArgs),
    /// Compression study: perplexity of each quantization or pruning scheme next to the
    /// uncompressed model, plain and with the outlier channels protected
    ///
    /// Schemes (comma-separated; parts may be combined, e.g. prune50+w8):
    ///   w8, w4       weights, absmax per output channel     w8t, w4t   per tensor
    ///   a8           every linear layer's input, dynamic per tensor (one scale per sequence)
    ///   w8a8, w4a8   both                                    prune50    50% magnitude pruning per tensor
    /// --protect auto finds the outlier input channels on the first windows (max |x| ≥ RATIO ×
    /// the median channel's, at most MAX); they stay f32 and unpruned, LLM.int8()-style.
    /// Repeat --model to compare models (e.g. the zoo's attention variants).
    #[command(verbatim_doc_comment)]
    Compress(compress::CompressArgs),
    /// Capture hook points of one prompt into a safetensors file
    #[command(group(ArgGroup::new("prompt_source").required(true).args(["prompt", "prompt_file"])))]
    Capture(capture::CaptureArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Devices => devices::run(&cli.gpu),
        Cmd::Generate(args) => generate::run(&cli.gpu, args),
        Cmd::Compress(args) => compress::run(&cli.gpu, args),
        Cmd::Ppl(args) => ppl::run(&cli.gpu, args),
        Cmd::Probe(args) => probe::run(&cli.gpu, args),
        Cmd::Capture(args) => capture::run(&cli.gpu, args),
    }
}
