//! The zoo (`zoo/`, made by `tools/zoo/`): tiny GPT-2s trained on Bigram-Backcopy, one directory
//! per attention variant and seed (`zoo/<attn_variant>_s<seed>/`), some with checkpoints
//! (`ckpt/step_XXXXXX/`); their sink and massive-activation figures on the held-out sequences
//! ([`crate::analysis::sink_figures`]); the implicit vs explicit attention scale of any model is
//! [`crate::scale`] (re-exported here).
//! Study layer: uses the model API and the analyses; never kernels, gpu or frontends.

pub mod show;

use crate::scale::{filter_of, scale_hook};
pub use crate::scale::{implicit_scale, Grouping};

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::analysis::sink_figures::{set_down_ratio, LayerSinkFigures, SinkFigureAccumulator};
use crate::analysis::weights::{row_ratios, ModuleKind};
use crate::forward::{ForwardOptions, LogitsMode};
use crate::model::Model;

/// One trained model of the zoo: `zoo/<variant>_s<seed>/`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ZooEntry {
    /// Directory name, e.g. `default_s0`.
    pub name: String,
    /// `attn_variant` (from the directory name).
    pub variant: String,
    pub seed: u32,
    pub dir: PathBuf,
}

/// The models of a zoo directory (subdirectories `<variant>_s<seed>` holding a config.json),
/// sorted by variant (the paper's order: default, value_bias, context_bias, attn_bias,
/// context_scale, sigmoid, then the others) and seed.
///
/// # Errors
/// An unreadable directory, or one without any model (names the directory).
pub fn models(zoo: &Path) -> Result<Vec<ZooEntry>> {
    let rd =
        std::fs::read_dir(zoo).with_context(|| format!("reading the zoo {}", zoo.display()))?;
    let mut v = Vec::new();
    for e in rd.flatten() {
        let dir = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((variant, seed)) = name.rsplit_once("_s") else {
            continue;
        };
        let Ok(seed) = seed.parse::<u32>() else {
            continue;
        };
        if dir.join("config.json").is_file() {
            v.push(ZooEntry {
                variant: variant.to_string(),
                seed,
                dir,
                name,
            });
        }
    }
    let order =
        |s: &str| crate::config::AttnVariant::parse(s).map_or(usize::MAX, |a| a.code() as usize);
    v.sort_by_key(|a| (order(&a.variant), a.seed));
    if v.is_empty() {
        bail!(
            "{}: no zoo model (expected subdirectories <attn_variant>_s<seed>/ with a config.json)",
            zoo.display()
        );
    }
    Ok(v)
}

/// The checkpoints of one model, `ckpt/step_XXXXXX/`, by step (empty when it has none).
pub fn checkpoints(model_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let d = model_dir.join("ckpt");
    if !d.is_dir() {
        return Ok(Vec::new());
    }
    let mut v = Vec::new();
    for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(step) = name.strip_prefix("step_").and_then(|s| s.parse().ok()) {
            if e.path().join("config.json").is_file() {
                v.push((step, e.path()));
            }
        }
    }
    v.sort();
    Ok(v)
}

/// The task's trigger token ids (`task.json` field `triggers`).
///
/// # Errors
/// A missing or malformed `task.json` (names the file and field).
pub fn trigger_ids(zoo: &Path) -> Result<Vec<u32>> {
    let p = zoo.join("task.json");
    let v: serde_json::Value = read_json(&p, "valid JSON")?;
    v.get("triggers")
        .and_then(|t| t.as_array())
        .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as u32)).collect())
        .with_context(|| {
            format!(
                "{}: field 'triggers' must be a list of token ids",
                p.display()
            )
        })
}

/// The held-out sequences (`heldout.txt`, one per line) encoded by `model`'s tokenizer, which
/// puts BOS first.
///
/// # Errors
/// An unreadable file, no sequence, a sequence that does not start with the model's BOS, or
/// sequences of different lengths (each named with its line).
pub fn heldout(zoo: &Path, model: &Model) -> Result<Vec<Vec<u32>>> {
    let p = zoo.join("heldout.txt");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let tok = model.tokenizer()?;
    let bos = model.cfg.bos_token_id;
    let mut seqs: Vec<Vec<u32>> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let ids = tok.encode(line.trim())?;
        if ids.first().copied() != bos {
            bail!(
                "{} line {}: does not start with BOS {bos:?}",
                p.display(),
                i + 1
            );
        }
        if let Some(f) = seqs.first() {
            if f.len() != ids.len() {
                bail!(
                    "{} line {}: {} tokens, the first line has {}",
                    p.display(),
                    i + 1,
                    ids.len(),
                    f.len()
                );
            }
        }
        seqs.push(ids);
    }
    if seqs.is_empty() {
        bail!("{}: no sequence", p.display());
    }
    Ok(seqs)
}

/// A model's figures on the held-out sequences.
#[derive(Clone, Debug, Serialize)]
pub struct ModelFigures {
    pub layers: Vec<LayerSinkFigures>,
    /// Mean cross-entropy (nats) of every next-token prediction.
    pub heldout_loss: f64,
}

/// Sink and massive-activation figures of `model` on `seqs` (one batched pass; trigger queries
/// are those whose token is in `triggers`), with the down-projection ratios and held-out loss.
///
/// # Errors
/// A failed pass, or captures the figures cannot use (see [`SinkFigureAccumulator::add_layer`]).
pub fn figures(model: &Model, seqs: &[Vec<u32>], triggers: &[u32]) -> Result<ModelFigures> {
    let filter = filter_of(
        model,
        &["hook_resid_post", "attn.hook_pattern", "attn.hook_scale"],
    )?;
    let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
    let mut sess = model.session(seqs.len(), t)?;
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let opts = ForwardOptions {
        logits: LogitsMode::All,
        capture: filter,
        ..Default::default()
    };
    let out = model.forward(&mut sess, &refs, &opts)?;
    let n_layer = model.cfg.n_layer;
    let mut acc = SinkFigureAccumulator::new(n_layer);
    let (mut nll, mut n) = (0f64, 0usize);
    for (b, ids) in seqs.iter().enumerate() {
        let caps = &out.captures[b];
        let trig: Vec<bool> = ids.iter().map(|i| triggers.contains(i)).collect();
        for l in 0..n_layer {
            let resid = caps
                .get(&crate::analysis::hook::resid_post(l))
                .with_context(|| format!("layer {l}: hook_resid_post was not captured"))?;
            let pat = caps.get(&crate::analysis::hook::pattern(l));
            acc.add_layer(l, resid, pat, caps.get(&scale_hook(l)), &trig)?;
        }
        let logits = out.logits[b].as_ref().context("no logits")?;
        for (i, next) in ids.iter().skip(1).enumerate() {
            nll += cross_entropy(logits.row(i), *next as usize);
            n += 1;
        }
    }
    let mut layers = acc.finish();
    model.for_each_module_weight(|w| {
        if w.kind == ModuleKind::Down {
            if let Some(f) = layers.get_mut(w.layer) {
                set_down_ratio(f, &row_ratios(&w.weight));
            }
        }
    })?;
    Ok(ModelFigures {
        layers,
        heldout_loss: nll / n.max(1) as f64,
    })
}

/// `−log softmax(logits)[target]` in f64.
fn cross_entropy(logits: &[f32], target: usize) -> f64 {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = logits
        .iter()
        .map(|&x| (x as f64 - m).exp())
        .sum::<f64>()
        .ln()
        + m;
    lse - logits[target] as f64
}

/// Figures of every checkpoint of a model directory, by step (each checkpoint loaded, measured
/// and dropped).
pub fn curve(
    ctx: &std::sync::Arc<crate::gpu::GpuContext>,
    model_dir: &Path,
    seqs: &[Vec<u32>],
    triggers: &[u32],
) -> Result<Vec<(u64, ModelFigures)>> {
    checkpoints(model_dir)?
        .into_iter()
        .map(|(step, d)| {
            let m =
                Model::load(ctx.clone(), &d).with_context(|| format!("loading {}", d.display()))?;
            Ok((step, figures(&m, seqs, triggers)?))
        })
        .collect()
}

/// Read a figures.json written by `tools/zoo/figures.py` (the PyTorch side) into the engine's
/// types, for comparisons.
///
/// # Errors
/// An unreadable or malformed file (names it).
pub fn read_reference(path: &Path) -> Result<ModelFigures> {
    #[derive(serde::Deserialize)]
    struct F {
        layers: Vec<LayerSinkFigures>,
        heldout_loss: f64,
    }
    let f: F = read_json(path, "the figures.py layout")?;
    Ok(ModelFigures {
        layers: f.layers,
        heldout_loss: f.heldout_loss,
    })
}

/// The held-out loss curve a zoo model's trainer recorded (nats, every 100 steps, from step 0):
/// `train_log_long.json` when the run went on past the packaged model, else `train_log.json`.
///
/// # Errors
/// A missing or malformed log (named).
pub fn loss_curve(model_dir: &Path) -> Result<Vec<(u64, f32)>> {
    #[derive(serde::Deserialize)]
    struct Point {
        step: u64,
        loss: f32,
    }
    #[derive(serde::Deserialize)]
    struct Log {
        heldout: Vec<Point>,
    }
    let long = model_dir.join("train_log_long.json");
    let path = if long.is_file() {
        long
    } else {
        model_dir.join("train_log.json")
    };
    let log: Log = read_json(&path, "a log with a \"heldout\" list of {step, loss}")?;
    Ok(log.heldout.into_iter().map(|p| (p.step, p.loss)).collect())
}

/// `path` read and parsed as JSON into `T`; errors name the file and `what` it should hold.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not {what}", path.display()))
}

/// The best possible mean loss on the held-out sequences (nats; the true next-token
/// distribution), `heldout_bayes_loss` of `task.json`.
///
/// # Errors
/// A missing or malformed `task.json` (named).
pub fn heldout_bayes_loss(zoo: &Path) -> Result<f32> {
    let path = zoo.join("task.json");
    let v: serde_json::Value = read_json(&path, "JSON")?;
    v["heldout_bayes_loss"]
        .as_f64()
        .map(|x| x as f32)
        .with_context(|| format!("{}: no number heldout_bayes_loss", path.display()))
}

/// The figures over training the trainer recorded in PyTorch (`curve.json`, all 32 held-out
/// sequences), by step; `None` when the model has no curve.
///
/// # Errors
/// A malformed `curve.json` (named).
pub fn recorded_curve(model_dir: &Path) -> Result<Option<Vec<(u64, ModelFigures)>>> {
    #[derive(serde::Deserialize)]
    struct Point {
        step: u64,
        layers: Vec<LayerSinkFigures>,
        heldout_loss: f64,
    }
    let path = model_dir.join("curve.json");
    if !path.is_file() {
        return Ok(None);
    }
    let pts: Vec<Point> = read_json(&path, "the package.py curve layout")?;
    Ok(Some(
        pts.into_iter()
            .map(|p| {
                (
                    p.step,
                    ModelFigures {
                        layers: p.layers,
                        heldout_loss: p.heldout_loss,
                    },
                )
            })
            .collect(),
    ))
}
