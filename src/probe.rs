//! The probe: capture what the analyses read, one sequence at a time, add the weight
//! statistics, and write the report with its pictures.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::analysis::{Accumulator, ModuleKind, ModuleWeight, Thresholds};
use crate::config::Arch;
use crate::hooks::HookFilter;
use crate::model::Model;
use crate::report::{ModelInfo, PlotInputs, Report};
use crate::tensor::Tensor;
use crate::weights::{GgufWeights, WeightFile, WeightSource};

/// Hand every projection weight of the model to `f`, one layer at a time, as [in, out] tensors
/// (Llama's nn.Linear [out, in] matrices are transposed; GPT-2's c_attn is split into q | k | v).
/// The weights are read again from the model's file, so nothing stays in host memory.
pub fn for_each_module_weight(model: &Model, mut f: impl FnMut(&ModuleWeight)) -> Result<()> {
    let src = &model.source;
    let source: Box<dyn WeightSource> = if src.is_file() {
        Box::new(GgufWeights::new(crate::gguf::GgufFile::open(src)?))
    } else {
        let st = src.join("model.safetensors");
        Box::new(match model.cfg.arch {
            Arch::Gpt2 => WeightFile::open(
                &st,
                "wte.weight",
                &["", "transformer.", "model.transformer."],
            )?,
            Arch::Llama => WeightFile::open(&st, "embed_tokens.weight", &["model.", ""])?,
        })
    };
    for l in 0..model.cfg.n_layer {
        match model.cfg.arch {
            Arch::Gpt2 => {
                for mw in
                    crate::analysis::weights::gpt2_layer_weights(l, |n| source.tensor(n).ok())?
                {
                    f(&mw);
                }
            }
            Arch::Llama => {
                for (name, kind) in [
                    ("self_attn.q_proj", ModuleKind::Q),
                    ("self_attn.k_proj", ModuleKind::K),
                    ("self_attn.v_proj", ModuleKind::V),
                    ("self_attn.o_proj", ModuleKind::O),
                    ("mlp.gate_proj", ModuleKind::Gate),
                    ("mlp.up_proj", ModuleKind::Up),
                    ("mlp.down_proj", ModuleKind::Down),
                ] {
                    let w = source.tensor(&format!("layers.{l}.{name}.weight"))?;
                    f(&ModuleWeight {
                        layer: l,
                        kind,
                        weight: transpose(&w),
                    });
                }
            }
        }
    }
    Ok(())
}

fn transpose(w: &Tensor) -> Tensor {
    let (r, c) = (w.shape[0], w.shape[1]);
    let mut out = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = w.data[i * c + j];
        }
    }
    Tensor::new(vec![c, r], out)
}

pub fn model_info(model: &Model) -> ModelInfo {
    ModelInfo {
        name: model.source.display().to_string(),
        n_layer: model.cfg.n_layer,
        n_embd: model.cfg.n_embd,
        n_head: model.cfg.n_head,
        vocab_size: model.cfg.vocab_size,
        n_inner: Some(model.cfg.n_inner()),
    }
}

/// The paper's probe prompt.
pub const PROBE_PROMPT: &str = "Summer is warm. Winter is cold.\n";

/// What to probe.
pub struct ProbeRun<'a> {
    pub model: &'a Model,
    /// Token ids of each sequence.
    pub sequences: Vec<Vec<u32>>,
    /// Free text describing the input (the prompt, or the corpus and how it was cut).
    pub source: String,
    pub thresholds: Thresholds,
    pub out_dir: PathBuf,
}

/// Run the probe: weight statistics, then each sequence's captures through the analyses;
/// writes report.json, report.md and the pictures into `out_dir`. Returns the report and files.
pub fn run(
    run: &ProbeRun,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<(Report, Vec<PathBuf>)> {
    let model = run.model;
    let tok = model
        .tokenizer
        .as_ref()
        .context("the model has no tokenizer")?;
    let mut acc = Accumulator::new(
        model_info(model),
        run.source.clone(),
        run.thresholds.clone(),
    );
    for_each_module_weight(model, |w| acc.add_weight(w))?;
    let filter = HookFilter::parse(crate::analysis::hook::ALL_PATTERNS)?;
    let mut first: Option<(std::collections::BTreeMap<String, Tensor>, Vec<String>)> = None;
    for ids in &run.sequences {
        let caps = model.capture(ids, &filter)?;
        let strs: Vec<String> = ids.iter().map(|&t| tok.token_str(t)).collect();
        acc.add_sequence(&strs, &caps)?;
        if first.is_none() {
            first = Some((caps, strs));
        }
        if let Some(p) = progress {
            p.inc(1);
        }
    }
    let report = acc.finish();
    let plots = match &first {
        Some((caps, strs)) => {
            PlotInputs::from_captures(caps, strs, PlotInputs::choose_layer(&report))
        }
        None => PlotInputs::default(),
    };
    let files = crate::report::write_all(&report, &plots, &run.out_dir)?;
    Ok((report, files))
}

fn layers(v: &[usize]) -> String {
    match (v.first(), v.last()) {
        (Some(a), Some(b)) if a != b => format!("layers {a}–{b} ({} layers)", v.len()),
        (Some(a), _) => format!("layer {a}"),
        _ => "no layer".into(),
    }
}

fn opt(x: Option<usize>) -> String {
    x.map_or("–".into(), |v| v.to_string())
}

/// A short plain-text summary of a report (what the CLI and the example print).
pub fn summary_text(r: &Report, out: &Path) -> String {
    let s = &r.summary;
    let mut t = Vec::new();
    t.push(format!(
        "model: {} ({} layers, d={}, {} heads)",
        r.model.name, r.model.n_layer, r.model.n_embd, r.model.n_head
    ));
    t.push(format!(
        "input: {} ({} sequence(s))",
        r.input.source, r.input.n_sequences
    ));
    if s.massive_channels.is_empty() {
        t.push("activation outliers (block output): none by the rule".into());
    } else {
        for c in s.massive_channels.iter().take(3) {
            t.push(format!(
                "activation-outlier channel {} in {}, max |h| = {:.1}",
                c.channel,
                layers(&c.layers),
                c.max_abs
            ));
        }
    }
    for o in s.outlier_tokens.iter().take(5) {
        t.push(format!(
            "outlier token at position {} {:?} ({:?}), channel {}, max |h| = {:.1}, {}",
            o.position,
            o.text,
            o.class,
            o.channel,
            o.max_abs,
            layers(&o.layers)
        ));
    }
    let lc = &s.block_lifecycle;
    t.push(format!(
        "lifecycle: first layer {}, peak {}, last {}, vanishes at {}",
        opt(lc.first_layer),
        opt(lc.peak_layer),
        opt(lc.last_layer),
        opt(lc.vanish_layer)
    ));
    if let Some(k) = &s.top_sink {
        t.push(format!(
            "top attention sink: key {} {:?} at layer {} receives {:.2} of {} queries ({:.0}%), mean head sink ratio {:.2}",
            k.key, k.text, k.layer, k.colsum, k.n_queries, 100.0 * k.share, k.sink_ratio_mean
        ));
    }
    if let Some(w) = &s.down_proj_max {
        t.push(format!(
            "down-projection: layer {} channel {} has max/mean ratio {:.1} (median ratio {:.1}); writes most into residual channels {:?}",
            w.layer, w.channel, w.ratio, w.median_ratio, w.columns
        ));
    }
    if let Some(x) = s.token_key_share {
        t.push(format!(
            "share of attention-outlier keys that are activation-outlier tokens: {x:.2}"
        ));
    }
    t.push(format!("report: {}", out.join("report.md").display()));
    t.join("\n")
}
