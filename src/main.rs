//! `outlier-probe` command line: devices, generate, capture, probe, ppl, compress.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{ArgGroup, Args, Parser, Subcommand};

use outlier_probe::generate::{generate, Sampling};
use outlier_probe::gpu::{list_adapters, GpuContext, GpuOptions};
use outlier_probe::hooks::HookFilter;
use outlier_probe::hub::resolve_model;
use outlier_probe::model::Gpt2;

mod prompt_args;
use prompt_args::{bos_note, prompt_from, prompts_from, window_bos, BosArgs};

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
    /// Store the blocks' linear-layer weights as f16 (half the memory and bandwidth, f32 math;
    /// logits within ~1e-3 of f32). Not for `compress`, which quantizes f32 weights itself.
    #[arg(long, global = true)]
    f16_weights: bool,
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
    #[command(group(ArgGroup::new("prompt_source").required(true).args(["prompt", "prompt_file"])))]
    Generate {
        /// Model directory (config.json, model.safetensors, tokenizer.json) or a Hugging Face id such as gpt2
        #[arg(long)]
        model: String,
        /// Prompt text; repeat --prompt for a batch
        #[arg(long)]
        prompt: Vec<String>,
        /// Read a prompt from FILE, exactly (trailing newlines kept), `-` for stdin; repeat for a
        /// batch, one prompt per file
        #[arg(long, value_name = "FILE")]
        prompt_file: Vec<PathBuf>,
        #[command(flatten)]
        bos: BosArgs,
        /// New tokens to generate
        #[arg(short = 'n', long = "max-new-tokens", default_value_t = 32)]
        n: usize,
        /// 0 = greedy (then --top-k, --top-p and --seed are refused: they would change nothing)
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        /// Keep the K most likely tokens (default: all); sampling only
        #[arg(long)]
        top_k: Option<usize>,
        /// Nucleus sampling mass in (0, 1] (default: 1 = off); sampling only
        #[arg(long)]
        top_p: Option<f32>,
        /// Random seed of the sampler (default: 0); sampling only
        #[arg(long)]
        seed: Option<u64>,
    },
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
    Ppl {
        #[arg(long)]
        model: String,
        #[command(flatten)]
        text: CorpusArgs,
        #[arg(long)]
        intervene: Vec<String>,
        /// Also write the results as JSON
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Find and explain systematic outliers: activation, weight and attention outliers, their
    /// consistency and lifecycle; writes report.json, report.md and pictures (PNG + SVG)
    Probe {
        #[arg(long)]
        model: String,
        /// Probe prompt (default: the paper's "Summer is warm. Winter is cold.\n")
        #[arg(long, conflicts_with_all = ["corpus", "prompt_file"])]
        prompt: Option<String>,
        /// Read the probe prompt from FILE, exactly (trailing newlines kept), `-` for stdin
        #[arg(long, value_name = "FILE", conflicts_with = "corpus")]
        prompt_file: Option<PathBuf>,
        #[command(flatten)]
        bos: BosArgs,
        /// Corpus mode: aggregate over --seqs windows of --seq-len tokens of this text file
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// Number of corpus windows (corpus mode only)
        #[arg(long, default_value_t = 8, requires = "corpus")]
        seqs: usize,
        /// Tokens per window (default: min(n_positions, 128); corpus mode only)
        #[arg(long, requires = "corpus")]
        seq_len: Option<usize>,
        /// Start at this fraction of the corpus (corpus mode only)
        #[arg(long, default_value_t = 0.0, requires = "corpus")]
        from: f64,
        /// Activation-outlier rule: max |h| of a token > RATIO × mean |h| (the paper: 1000)
        #[arg(long, default_value_t = 1000.0, conflicts_with = "massive")]
        ratio: f32,
        /// Use the "Massive Activations" rule instead: |h| > 100 and > 1000 × median |h|
        #[arg(long)]
        massive: bool,
        /// Attention-outlier key (the paper's rule): column sum ≥ FRAC × T, FRAC in (0, 1] (the paper: 0.1)
        #[arg(long, default_value_t = 0.1)]
        key_frac: f32,
        /// Attention sink: column sum minus what uniform causal attention gives the key ≥ FRAC × T,
        /// FRAC in (0, 1]
        #[arg(long, default_value_t = 0.1)]
        sink_excess_frac: f32,
        #[arg(long, default_value = "probe-report")]
        out: PathBuf,
    },
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
    Compress {
        #[arg(long, required = true)]
        model: Vec<String>,
        #[command(flatten)]
        text: CorpusArgs,
        #[arg(long, default_value = "w8,w8t,w4,w4t,a8,w8a8,w4a8,prune50")]
        schemes: String,
        /// auto | none | explicit channels 'd=C1,C2;inner=C3'
        #[arg(long, default_value = "auto")]
        protect: String,
        /// With --protect auto: a channel is an outlier when its max |x| ≥ RATIO × the median
        /// channel's (default 6)
        #[arg(long)]
        protect_ratio: Option<f32>,
        /// With --protect auto: at most MAX channels per input width (default 8)
        #[arg(long)]
        protect_max: Option<usize>,
        /// Output folder for compress.json, compress.md and the bar charts
        #[arg(long, default_value = "compress-report")]
        out: PathBuf,
    },
    /// Capture hook points of one prompt into a safetensors file
    #[command(group(ArgGroup::new("prompt_source").required(true).args(["prompt", "prompt_file"])))]
    Capture {
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
    },
}

/// The corpus windows `ppl` and `compress` measure perplexity on.
#[derive(Args, Clone)]
struct CorpusArgs {
    /// UTF-8 text file (Project Gutenberg header and footer are skipped)
    #[arg(long)]
    corpus: PathBuf,
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
    batch: usize,
    #[command(flatten)]
    bos: BosArgs,
}

impl CorpusArgs {
    /// Windows of the corpus in `model`'s tokens.
    fn windows(&self, model: &Gpt2) -> Result<Vec<Vec<u32>>> {
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
fn progress_bar(len: u64) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(len).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>32} [{bar:40}] {pos}/{len} windows {elapsed_precise} (eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    )
}

/// `--top-k`, `--top-p` and `--seed` as the sampler takes them; refused under greedy decoding
/// (temperature 0), where they would change nothing.
fn sampling_options(
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
    seed: Option<u64>,
) -> Result<(usize, f32, u64)> {
    if !(temperature >= 0.0 && temperature.is_finite()) {
        anyhow::bail!("--temperature must be 0 (greedy) or positive, got {temperature}");
    }
    if temperature == 0.0 {
        let given: Vec<&str> = [
            ("--top-k", top_k.is_some()),
            ("--top-p", top_p.is_some()),
            ("--seed", seed.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, on)| on.then_some(f))
        .collect();
        if !given.is_empty() {
            anyhow::bail!(
                "sampling options ({}) act only when sampling: with --temperature 0 (greedy, the default) they would change nothing; give --temperature > 0",
                given.join(", ")
            );
        }
    }
    Ok((top_k.unwrap_or(0), top_p.unwrap_or(1.0), seed.unwrap_or(0)))
}

fn load(gpu: &GpuArgs, model: &str) -> Result<Gpt2> {
    let dir = resolve_model(model)?;
    let ctx = GpuContext::new(&gpu.options())?;
    let opts = outlier_probe::model::LoadOptions {
        f16_weights: gpu.f16_weights,
    };
    Gpt2::load_with(ctx, &dir, &opts)
        .with_context(|| format!("loading the model in {}", dir.display()))
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
            prompt_file,
            bos,
            n,
            temperature,
            top_k,
            top_p,
            seed,
        } => {
            let prompt = prompts_from(prompt, &prompt_file)?;
            let (top_k, top_p, seed) = sampling_options(temperature, top_k, top_p, seed)?;
            let m = load(&cli.gpu, &model)?;
            let tok = m.tokenizer()?;
            let prompts = prompt
                .iter()
                .map(|p| tok.encode_with_special(p, bos.add()))
                .collect::<Result<Vec<_>>>()?;
            eprintln!("[{}]", tok.describe_special(bos.add()));
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
            // Text is printed once its bytes form whole characters; special tokens never print.
            let mut stream = outlier_probe::tokenizer::TextStream::new(tok);
            let mut stream_err: Option<anyhow::Error> = None;
            let mut first: Option<std::time::Duration> = None;
            let mut steps = 0usize;
            let out = generate(&m, &prompts, &sampling, |b, t| {
                if b == 0 {
                    steps += 1;
                    first.get_or_insert_with(|| t0.elapsed());
                }
                if single && stream_err.is_none() {
                    match stream.push(t) {
                        Ok(text) if !text.is_empty() => {
                            print!("{text}");
                            let _ = std::io::stdout().flush();
                        }
                        Ok(_) => {}
                        Err(e) => stream_err = Some(e),
                    }
                }
            })?;
            let dt = t0.elapsed();
            if single {
                if let Some(e) = stream_err {
                    return Err(e);
                }
                println!("{}", stream.finish()?);
            } else {
                for (p, o) in prompt.iter().zip(&out) {
                    println!("{p}{}", tok.decode(o)?);
                    println!("---");
                }
            }
            for (b, o) in out.iter().enumerate() {
                if o.len() < n && (o.is_empty() || o.last().copied() != eos) {
                    eprintln!(
                        "[sequence {b} stopped after {} of {n} new tokens: the model's context of n_positions = {} tokens is full]",
                        o.len(),
                        m.cfg.n_positions
                    );
                }
            }
            let total: usize = out.iter().map(Vec::len).sum();
            let prefill = first.unwrap_or(dt);
            let decode = if steps > 1 {
                format!(
                    ", decode {:.1} ms/step",
                    (dt - prefill).as_secs_f64() * 1e3 / (steps - 1) as f64
                )
            } else {
                String::new()
            };
            eprintln!(
                "[{} new tokens in {:.2} s on {}: prefill {:.1} ms ({} prompt tokens){decode}]",
                total,
                dt.as_secs_f64(),
                m.device_name(),
                prefill.as_secs_f64() * 1e3,
                prompts.iter().map(Vec::len).sum::<usize>(),
            );
        }
        Cmd::Compress {
            model,
            text,
            schemes,
            protect,
            protect_ratio,
            protect_max,
            out,
        } => {
            use outlier_probe::compress;
            if cli.gpu.f16_weights {
                anyhow::bail!("compress quantizes f32 weights itself: drop --f16-weights");
            }
            let schemes = compress::Scheme::parse_list(&schemes)?;
            if protect != "auto" && (protect_ratio.is_some() || protect_max.is_some()) {
                anyhow::bail!(
                    "--protect-ratio and --protect-max tune --protect auto; with --protect {protect:?} they would change nothing"
                );
            }
            let mode = compress::ProtectMode::parse(
                &protect,
                protect_ratio.unwrap_or(6.0),
                protect_max.unwrap_or(8),
            )?;
            let ctx = GpuContext::new(&cli.gpu.options())?;
            let bar = progress_bar(0);
            // Every model must be there before hours of runs start.
            let dirs = model
                .iter()
                .map(|name| {
                    let dir = resolve_model(name)?;
                    if !dir.is_file() && !dir.join("config.json").is_file() {
                        anyhow::bail!(
                            "{}: neither a .gguf file nor a model directory with config.json",
                            dir.display()
                        );
                    }
                    Ok(dir)
                })
                .collect::<Result<Vec<_>>>()?;
            let mut studies = Vec::new();
            for dir in &dirs {
                let st = compress::study(
                    ctx.clone(),
                    dir,
                    &|m: &Gpt2| text.windows(m),
                    &schemes,
                    &mode,
                    text.batch,
                    Some(&bar),
                )?;
                studies.push(st);
            }
            bar.finish_and_clear();
            print!("{}", compress::markdown(&studies));
            let files = compress::write_outputs(&studies, &out)?;
            eprintln!("wrote {} files to {}", files.len(), out.display());
        }
        Cmd::Ppl {
            model,
            text: corpus,
            intervene,
            json,
        } => {
            let m = load(&cli.gpu, &model)?;
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
        }
        Cmd::Probe {
            model,
            prompt,
            prompt_file,
            bos,
            corpus,
            seqs,
            seq_len,
            from,
            ratio,
            massive,
            key_frac,
            sink_excess_frac,
            out,
        } => {
            for (flag, v) in [
                ("--key-frac", key_frac),
                ("--sink-excess-frac", sink_excess_frac),
            ] {
                if !(v > 0.0 && v <= 1.0) {
                    anyhow::bail!(
                        "{flag} must be in (0, 1] (a fraction of the sequence length), got {v}"
                    );
                }
            }
            if !(ratio > 0.0 && ratio.is_finite()) {
                anyhow::bail!("--ratio must be a positive number, got {ratio}");
            }
            let prompt = prompt_from(prompt, prompt_file.as_deref())?;
            let m = load(&cli.gpu, &model)?;
            let tok = m.tokenizer()?;
            let mut th = outlier_probe::analysis::Thresholds::default();
            if massive {
                th.activation = outlier_probe::analysis::ActivationRule::massive_activations();
            } else {
                th.activation.ratio_to_mean = ratio;
            }
            th.attention_key_frac = key_frac;
            th.sink_excess_frac = sink_excess_frac;
            let (sequences, source) = match &corpus {
                Some(c) => {
                    let len = seq_len.unwrap_or(m.cfg.n_positions.min(128));
                    let w =
                        outlier_probe::corpus::windows_with(tok, c, len, seqs, from, bos.add())?;
                    let n = w.len();
                    eprintln!("[corpus windows: {}]", window_bos(tok, bos.add()));
                    (
                        w,
                        format!(
                            "{} ({n} windows of {len} tokens from {from}{})",
                            c.display(),
                            bos_note(tok, bos.add())
                        ),
                    )
                }
                None => {
                    let p =
                        prompt.unwrap_or_else(|| outlier_probe::probe::PROBE_PROMPT.to_string());
                    let ids = tok.encode_with_special(&p, bos.add())?;
                    eprintln!("[{}]", tok.describe_special(bos.add()));
                    (vec![ids], format!("{p:?}{}", bos_note(tok, bos.add())))
                }
            };
            let bar = indicatif::ProgressBar::new(sequences.len() as u64).with_style(
                indicatif::ProgressStyle::with_template(
                    "probing [{bar:40}] {pos}/{len} sequences {elapsed_precise} (eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            if sequences.len() == 1 {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let t0 = std::time::Instant::now();
            let (report, files) = outlier_probe::probe::run(
                &outlier_probe::probe::ProbeRun {
                    model: &m,
                    sequences,
                    source,
                    thresholds: th,
                    out_dir: out.clone(),
                },
                Some(&bar),
            )?;
            bar.finish_and_clear();
            println!("{}", outlier_probe::probe::summary_text(&report, &out));
            eprintln!(
                "[{} files in {} in {:.1} s on {}]",
                files.len(),
                out.display(),
                t0.elapsed().as_secs_f64(),
                m.device_name()
            );
        }
        Cmd::Capture {
            model,
            prompt,
            prompt_file,
            bos,
            hooks,
            out,
        } => {
            let prompt = prompt_from(prompt, prompt_file.as_deref())?
                .context("give --prompt or --prompt-file")?;
            let m = load(&cli.gpu, &model)?;
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
        }
    }
    Ok(())
}
