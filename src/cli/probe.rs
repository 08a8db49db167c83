//! `outlier-probe probe`: find and explain systematic outliers, writing the report folder.
//! Binary only: depends on the library's public API and `cli` helpers; never on wgpu directly.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::common::{load, GpuArgs};
use super::prompt_args::{bos_note, prompt_from, window_bos, BosArgs};

/// The options of `probe`.
#[derive(Args)]
pub struct ProbeArgs {
    /// Model: a Hugging Face directory (config.json, model.safetensors or its shards, tokenizer.json), a
    /// .gguf file, or a Hugging Face id such as gpt2
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
}

/// Run `outlier-probe probe`.
pub fn run(gpu: &GpuArgs, args: ProbeArgs) -> Result<()> {
    let ProbeArgs {
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
    } = args;
    for (flag, v) in [
        ("--key-frac", key_frac),
        ("--sink-excess-frac", sink_excess_frac),
    ] {
        if !(v > 0.0 && v <= 1.0) {
            anyhow::bail!("{flag} must be in (0, 1] (a fraction of the sequence length), got {v}");
        }
    }
    if !(ratio > 0.0 && ratio.is_finite()) {
        anyhow::bail!("--ratio must be a positive number, got {ratio}");
    }
    let prompt = prompt_from(prompt, prompt_file.as_deref())?;
    let m = load(gpu, &model)?;
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
            let w = outlier_probe::corpus::windows_with(tok, c, len, seqs, from, bos.add())?;
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
            let p = prompt.unwrap_or_else(|| outlier_probe::probe::PROBE_PROMPT.to_string());
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
    let (report, mut files) = outlier_probe::probe::run(
        &outlier_probe::probe::ProbeRun {
            model: &m,
            sequences: sequences.clone(),
            source,
            thresholds: th,
            out_dir: out.clone(),
        },
        Some(&bar),
    )?;
    bar.finish_and_clear();
    println!("{}", outlier_probe::probe::summary_text(&report, &out));
    // The paper's reading of a sink: an implicit context-aware scale 1 − P(sink keys) per head.
    let sc =
        outlier_probe::scale::by_token_class(&m, &sequences, key_frac, &out, "implicit_scale")?;
    println!(
        "implicit scale 1 − P(sink keys), mean over heads and queries t ≥ 1, by token class (sink keys: head-averaged column sum ≥ {key_frac}·T; per head in implicit_scale.json):\n{}",
        sc.table
    );
    files.extend(sc.files);
    eprintln!(
        "[{} files in {} in {:.1} s on {}]",
        files.len(),
        out.display(),
        t0.elapsed().as_secs_f64(),
        m.device_name()
    );
    Ok(())
}
