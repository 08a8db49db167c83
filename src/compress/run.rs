//! The study loop: per model, the uncompressed perplexity, the protected channels and every
//! scheme's perplexity, plain and protected, each run on freshly loaded weights.
//! Depends on the model, the GPU context and ppl; the report never depends on it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::{apply, find_outlier_channels, short_name};
use super::{ModelStudy, Protect, Scheme, SchemeResult, WeightStats};
use crate::finite::NonFinite;
use crate::gpu::GpuContext;
use crate::model::{LoadOptions, Model, Weights};
use crate::ppl::PplOverflow;

/// How the protected channels are chosen.
#[derive(Clone, Debug)]
pub enum ProtectMode {
    None,
    Auto { ratio: f32, max: usize },
    Given(Protect),
}

impl ProtectMode {
    pub fn parse(spec: &str, ratio: f32, max: usize) -> Result<Self> {
        Ok(match spec.trim() {
            "none" => ProtectMode::None,
            "auto" => ProtectMode::Auto { ratio, max },
            other => ProtectMode::Given(Protect::parse(other)?),
        })
    }
}

/// Perplexity of the uncompressed model and of every scheme, plain and protected. Each
/// compressed run starts from freshly loaded weights.
pub fn study(
    ctx: Arc<GpuContext>,
    path: &Path,
    windows_of: &dyn Fn(&Model) -> Result<Vec<Vec<u32>>>,
    schemes: &[Scheme],
    protect_mode: &ProtectMode,
    batch: usize,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<ModelStudy> {
    // The study quantizes f32 weights itself: a GGUF's blocks are dequantized at load.
    const F32: LoadOptions = LoadOptions {
        weights: Weights::F32,
    };
    let load = || {
        Model::load_with(ctx.clone(), path, &F32)
            .with_context(|| format!("loading {}", path.display()))
    };
    let base = load()?;
    let windows = windows_of(&base)?;
    if let Some(p) = progress {
        let runs = 1 + schemes.len()
            * if matches!(protect_mode, ProtectMode::None) {
                1
            } else {
                2
            };
        p.inc_length((runs * windows.len()) as u64);
        p.set_message(format!("{} fp32", short_name(path)));
    }
    // The uncompressed model must give a finite perplexity: every ratio is taken to it.
    let baseline = crate::ppl::perplexity(&base, &windows, batch, &[], None, "fp32", progress)
        .with_context(|| format!("{}: the uncompressed model", path.display()))?;
    let (protect, channel_stats) = match protect_mode {
        ProtectMode::None => (Protect::default(), None),
        ProtectMode::Given(p) => (p.clone(), None),
        ProtectMode::Auto { ratio, max } => {
            // Calibrate on the first windows (at most 4).
            let cal = &windows[..windows.len().min(4)];
            let (p, s) = find_outlier_channels(&base, cal, *ratio, *max)?;
            (p, Some(s))
        }
    };
    protect.check(base.cfg.n_embd, base.cfg.n_inner())?;
    drop(base);
    // Nothing to protect (no outlier channel found): the protected runs would repeat the plain ones.
    let protect_runs = !matches!(protect_mode, ProtectMode::None) && !protect.is_empty();
    let mut results = Vec::new();
    for s in schemes {
        let mut notes = Vec::new();
        let mut run = |prot: &Protect, tag: &str| -> Result<(f64, WeightStats)> {
            if let Some(p) = progress {
                p.set_message(format!("{} {}{tag}", short_name(path), s.name));
            }
            let mut m = load()?;
            let stats = apply(&mut m, s, prot)?;
            match crate::ppl::perplexity(&m, &windows, batch, &[], None, &s.name, progress) {
                Ok(r) => Ok((r.ppl, stats)),
                // The scheme broke the model: a result of the study, recorded as +inf.
                Err(e) if e.is::<NonFinite>() || e.is::<PplOverflow>() => {
                    let what = if tag.is_empty() { "plain" } else { tag.trim() };
                    notes.push(format!("{what}: {e:#}"));
                    Ok((f64::INFINITY, stats))
                }
                Err(e) => Err(e),
            }
        };
        let (ppl, weights) = run(&Protect::default(), "")?;
        let ppl_protected = if !protect_runs {
            if let Some(p) = progress {
                p.inc(windows.len() as u64);
            }
            None
        } else {
            Some(run(&protect, " protected")?.0)
        };
        results.push(SchemeResult {
            scheme: s.clone(),
            ppl,
            ppl_protected,
            weights,
            notes,
        });
    }
    Ok(ModelStudy {
        model: path.display().to_string(),
        device: ctx.info.name.clone(),
        windows: windows.len(),
        tokens: baseline.tokens,
        baseline_ppl: baseline.ppl,
        protect,
        channel_stats,
        results,
    })
}
