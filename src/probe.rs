//! The probe: capture what the analyses read, one sequence at a time, add the weight
//! statistics, and write the report with its pictures.
//! Study layer: uses the model API, analysis and report; never kernels, gpu or frontends.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::analysis::{Accumulator, ModuleWeight, Thresholds};
use crate::hooks::HookFilter;
use crate::model::Model;
use crate::report::{ModelInfo, PlotInputs, Report};
use crate::tensor::Tensor;

/// Hand every projection weight of the model to `f`, one layer at a time, as [in, out] tensors
/// (see [`Model::for_each_module_weight`]).
pub fn for_each_module_weight(model: &Model, f: impl FnMut(&ModuleWeight)) -> Result<()> {
    model.for_each_module_weight(f)
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
    let report = crate::report::build(acc.finish());
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
    if let Some(f) = crate::report::cross_model::f16_overflow(r) {
        t.push(format!(
            "beyond the f16 range: |h| up to {:.1} (> 65504) in layers {}: half-precision inference overflows to inf there",
            f.max_abs,
            crate::report::cross_model::layers_text(&f.layers)
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
    let th = &r.thresholds;
    match &s.top_sink_excess {
        Some(k) => t.push(format!(
            "top attention sink: key {} {:?} at layer {} receives {:.2} of {} queries ({:.0}%), {:.2} above uniform causal attention ({:.2}; sink: excess ≥ {}·T), mean head share {:.2}",
            k.key, k.text, k.layer, k.colsum, k.n_queries, 100.0 * k.share, k.excess, k.baseline,
            th.sink_excess_frac, k.sink_ratio_mean
        )),
        None => t.push(format!(
            "attention sinks: none (no key gets ≥ {}·T more than uniform causal attention would give it)",
            th.sink_excess_frac
        )),
    }
    match &s.top_sink {
        Some(k) if k.excess < th.sink_excess_frac * k.n_queries as f32 => t.push(format!(
            "paper's rule (column sum ≥ {}·T) flags key {} {:?} at layer {} ({:.2} of {} queries), but uniform causal attention alone would give it {:.2}: its excess {:.2} is below the sink threshold {:.2}",
            th.attention_key_frac, k.key, k.text, k.layer, k.colsum, k.n_queries, k.baseline,
            k.excess, th.sink_excess_frac * k.n_queries as f32
        )),
        Some(k) => t.push(format!(
            "paper's rule (column sum ≥ {}·T): top key {} at layer {} ({:.2} of {} queries), also a sink by its excess; mean head sink ratio {:.2}",
            th.attention_key_frac, k.key, k.layer, k.colsum, k.n_queries, k.sink_ratio_mean
        )),
        None => t.push(format!(
            "paper's rule (column sum ≥ {}·T): no outlier key",
            th.attention_key_frac
        )),
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

/// One model's row in a side-by-side comparison (the zoo: default vs context-aware scaling, …).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ComparisonRow {
    pub name: String,
    /// Largest block-output |h| over layers and sequences.
    pub top1_max: f32,
    /// Largest per-layer ratio of the mean top-1 |h| to the mean median |h|.
    pub top1_over_median: f32,
    /// Largest per-layer mean share of the queries' attention held by the top key.
    pub top_key_share: f32,
    /// Largest per-layer mean share of attention going to key 0 (queries 1..T-1, head-averaged).
    pub key0_share: f32,
    /// Largest down-projection max/mean weight ratio over layers.
    pub down_proj_ratio: f32,
    pub ppl: f64,
}

/// Probe each model on the same windows and measure its perplexity on them.
pub fn compare(models: &[(String, &Model)], windows: &[Vec<u32>]) -> Result<Vec<ComparisonRow>> {
    let mut rows = Vec::new();
    for (name, m) in models {
        let tmp = std::env::temp_dir().join(format!(
            "outlier-probe-compare-{}-{name}",
            std::process::id()
        ));
        let (report, _) = run(
            &ProbeRun {
                model: m,
                sequences: windows.to_vec(),
                source: format!("{} windows", windows.len()),
                thresholds: Thresholds::default(),
                out_dir: tmp.clone(),
            },
            None,
        )?;
        let _ = std::fs::remove_dir_all(&tmp);
        let c = &report.corpus;
        let top1_max = c
            .block_output
            .iter()
            .map(|l| l.top1_max)
            .fold(0.0, f32::max);
        let ratio = c
            .block_output
            .iter()
            .map(|l| l.top1_mean / l.median_mean.max(f32::MIN_POSITIVE))
            .fold(0.0, f32::max);
        let share = c
            .attention
            .iter()
            .map(|a| a.top1_share_mean)
            .fold(0.0, f32::max);
        // Key-0 share straight from the patterns.
        let filter = HookFilter::parse("blocks.*.attn.hook_pattern")?;
        let mut per_layer = vec![(0f64, 0usize); m.cfg.n_layer];
        for w in windows {
            let caps = m.capture(w, &filter)?;
            for (l, acc) in per_layer.iter_mut().enumerate() {
                let p = &caps[&format!("blocks.{l}.attn.hook_pattern")];
                let (h, t) = (p.shape[0], p.shape[1]);
                for hh in 0..h {
                    for i in 1..t {
                        acc.0 += p.data[(hh * t + i) * t] as f64;
                        acc.1 += 1;
                    }
                }
            }
        }
        let key0 = per_layer
            .iter()
            .map(|(s, n)| (*s / (*n).max(1) as f64) as f32)
            .fold(0.0, f32::max);
        let down = report
            .summary
            .down_proj_max
            .as_ref()
            .map_or(0.0, |d| d.ratio);
        let ppl = crate::ppl::perplexity(m, windows, 4, &[], None, name, None)?.ppl;
        rows.push(ComparisonRow {
            name: name.clone(),
            top1_max,
            top1_over_median: ratio,
            top_key_share: share,
            key0_share: key0,
            down_proj_ratio: down,
            ppl,
        });
    }
    Ok(rows)
}

/// The comparison as a Markdown table.
pub fn comparison_table(rows: &[ComparisonRow]) -> String {
    let mut s = String::from(
        "| model | max \\|h\\| | max top-1/median | top-key share | key-0 share | down-proj max/mean | held-out ppl |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.1} | {:.2} |\n",
            r.name,
            r.top1_max,
            r.top1_over_median,
            r.top_key_share,
            r.key0_share,
            r.down_proj_ratio,
            r.ppl
        ));
    }
    s
}
