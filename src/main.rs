//! `outlier-probe` command line: devices, generate, capture.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use outlier_probe::generate::{generate, Sampling};
use outlier_probe::gpu::{list_adapters, GpuContext, GpuOptions};
use outlier_probe::hooks::HookFilter;
use outlier_probe::hub::resolve_model;
use outlier_probe::model::Gpt2;

#[derive(Parser)]
#[command(
    name = "outlier-probe",
    version,
    about = "GPT-2 on any GPU through wgpu, with capture of what flows through it"
)]
struct Cli {
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct GpuArgs {
    /// Backend: vulkan, metal, dx12 or gl (default: all; also WGPU_BACKEND)
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Adapter index as listed by `outlier-probe devices` (also WGPU_ADAPTER_NAME to match by name)
    #[arg(long, global = true)]
    adapter: Option<usize>,
}

impl GpuArgs {
    fn options(&self) -> GpuOptions {
        GpuOptions {
            backend: self.backend.clone(),
            adapter_index: self.adapter,
            ..GpuOptions::from_env()
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// List GPU adapters with backend, driver, key limits and features
    Devices,
    /// Generate text from a prompt, printing tokens as they are produced
    Generate {
        /// Model directory (config.json, model.safetensors, tokenizer.json) or a Hugging Face id such as gpt2
        #[arg(long)]
        model: String,
        /// Prompt text; repeat --prompt for a batch
        #[arg(long, required = true)]
        prompt: Vec<String>,
        /// New tokens to generate
        #[arg(short = 'n', long = "max-new-tokens", default_value_t = 32)]
        n: usize,
        /// 0 = greedy
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        /// Keep the K most likely tokens (0 = all)
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Nucleus sampling mass (1 = off)
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Capture hook points of one prompt into a safetensors file
    Capture {
        #[arg(long)]
        model: String,
        #[arg(long)]
        prompt: String,
        /// Comma-separated globs, e.g. 'blocks.*.attn.hook_pattern,logits'
        #[arg(long)]
        hooks: String,
        #[arg(long)]
        out: PathBuf,
    },
}

fn load(gpu: &GpuArgs, model: &str) -> Result<Gpt2> {
    let dir = resolve_model(model)?;
    let ctx = GpuContext::new(&gpu.options())?;
    Gpt2::load(ctx, &dir).with_context(|| format!("loading the model in {}", dir.display()))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Devices => {
            let list = list_adapters(&cli.gpu.options())?;
            if list.is_empty() {
                // Same wording as model loading uses.
                GpuContext::new(&cli.gpu.options())?;
            }
            for a in list {
                println!("{a}");
            }
        }
        Cmd::Generate {
            model,
            prompt,
            n,
            temperature,
            top_k,
            top_p,
            seed,
        } => {
            let m = load(&cli.gpu, &model)?;
            let tok = m
                .tokenizer
                .as_ref()
                .context("the model directory has no tokenizer.json")?;
            let prompts = prompt
                .iter()
                .map(|p| tok.encode(p))
                .collect::<Result<Vec<_>>>()?;
            let eos = m
                .cfg
                .eos_token_id
                .or_else(|| tok.token_to_id("<|endoftext|>"));
            let sampling = Sampling {
                temperature,
                top_k,
                top_p,
                seed,
                max_new_tokens: n,
                eos,
            };
            let single = prompts.len() == 1;
            if single {
                print!("{}", prompt[0]);
                std::io::stdout().flush()?;
            }
            let t0 = std::time::Instant::now();
            let mut streamed: Vec<u32> = Vec::new();
            let mut shown = String::new();
            let out = generate(&m, &prompts, &sampling, |_, t| {
                if single {
                    // Decode the whole continuation so multi-byte characters print whole.
                    streamed.push(t);
                    if let Ok(text) = tok.decode(&streamed) {
                        if let Some(rest) = text.strip_prefix(shown.as_str()) {
                            print!("{rest}");
                            let _ = std::io::stdout().flush();
                        }
                        shown = text;
                    }
                }
            })?;
            let dt = t0.elapsed();
            if single {
                println!();
            } else {
                for (p, o) in prompt.iter().zip(&out) {
                    println!("{p}{}", tok.decode(o)?);
                    println!("---");
                }
            }
            let total: usize = out.iter().map(Vec::len).sum();
            eprintln!(
                "[{} new tokens in {:.2} s on {}]",
                total,
                dt.as_secs_f64(),
                m.ctx().info.name
            );
        }
        Cmd::Capture {
            model,
            prompt,
            hooks,
            out,
        } => {
            let m = load(&cli.gpu, &model)?;
            let tok = m
                .tokenizer
                .as_ref()
                .context("the model directory has no tokenizer.json")?;
            let ids = tok.encode(&prompt)?;
            let filter = HookFilter::parse(&hooks)?;
            let names = filter.resolve(m.cfg.n_layer)?;
            let caps = m.capture(&ids, &filter)?;
            outlier_probe::capture_file::write(&out, &ids, &caps)?;
            eprintln!(
                "wrote {} hook tensors ({} selected) and `tokens` for {} tokens to {}",
                caps.len(),
                names.len(),
                ids.len(),
                out.display()
            );
        }
    }
    Ok(())
}
