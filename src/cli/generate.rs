//! `outlier-probe generate`: text from one prompt or a batch, streamed as it is produced.
//! Binary only: depends on the library's public API and `cli` helpers; never on wgpu directly.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use outlier_probe::generate::{generate, Sampling};

use super::common::{load, GpuArgs};
use super::prompt_args::{prompts_from, BosArgs};

/// The options of `generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// Model: a Hugging Face directory (config.json, model.safetensors or its shards, tokenizer.json), a
    /// .gguf file, or a Hugging Face id such as gpt2
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
}

/// Run `outlier-probe generate`.
pub fn run(gpu: &GpuArgs, args: GenerateArgs) -> Result<()> {
    let GenerateArgs {
        model,
        prompt,
        prompt_file,
        bos,
        n,
        temperature,
        top_k,
        top_p,
        seed,
    } = args;
    let prompt = prompts_from(prompt, &prompt_file)?;
    let (top_k, top_p, seed) = sampling_options(temperature, top_k, top_p, seed)?;
    let m = load(gpu, &model)?;
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
    Ok(())
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
