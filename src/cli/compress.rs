//! `outlier-probe compress`: the compression study (quantization and pruning schemes, protected
//! outlier channels). Binary only: depends on the library's public API and `cli` helpers.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use outlier_probe::gpu::GpuContext;
use outlier_probe::hub::resolve_model;
use outlier_probe::model::Gpt2;

use super::common::{progress_bar, CorpusArgs, GpuArgs};

/// The options of `compress`.
#[derive(Args)]
pub struct CompressArgs {
    /// Model(s), repeatable: a Hugging Face directory, a .gguf file, or a Hugging Face id
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
}

/// Run `outlier-probe compress`.
pub fn run(gpu: &GpuArgs, args: CompressArgs) -> Result<()> {
    let CompressArgs {
        model,
        text,
        schemes,
        protect,
        protect_ratio,
        protect_max,
        out,
    } = args;
    use outlier_probe::compress;
    if gpu.f16_weights
        || gpu
            .weights
            .is_some_and(|w| w != outlier_probe::model::Weights::F32)
    {
        anyhow::bail!(
            "compress quantizes f32 weights itself: drop --f16-weights / --weights {} (it dequantizes a GGUF's blocks to f32 at load)",
            gpu.weights()
        );
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
    let ctx = GpuContext::new(&gpu.options())?;
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
    Ok(())
}
