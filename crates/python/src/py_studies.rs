//! The studies as functions returning their tables: `probe` (the report dict, the schema of
//! report.json), `ppl` (perplexity rows, plain and under interventions) and `compress` (the
//! compression study, the schema of compress.json). No progress bars: Python stays quiet.
//! Bindings layer: uses the library's public API only.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;

use outlier_probe::analysis::{ActivationRule, Thresholds};
use outlier_probe::model::{Model, Weights};

use crate::py_errors::{detached, json_to_py, to_json, to_py, value_error, Fallback};
use crate::py_inputs::encode;
use crate::py_model::PyModel;

/// Corpus windows of `m`'s tokens (the CLI's --corpus, --seq-len, --seqs, --from): each starts
/// with the BOS unless `prepend_bos` is False.
fn windows(
    m: &Model,
    corpus: &Path,
    seq_len: usize,
    seqs: usize,
    from: f64,
    prepend_bos: Option<bool>,
) -> PyResult<Vec<Vec<u32>>> {
    let tok = m.tokenizer().map_err(|e| to_py(e, Fallback::Input))?;
    outlier_probe::corpus::windows_with(
        tok,
        corpus,
        seq_len,
        seqs,
        from,
        prepend_bos != Some(false),
    )
    .map_err(|e| to_py(e, Fallback::Input))
}

/// A fresh directory for files the caller did not ask to keep; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Scratch(
            std::env::temp_dir().join(format!("outlier-probe-py-{tag}-{}-{n}", std::process::id())),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Find and explain systematic outliers (activation, weight and attention outliers, their
/// consistency and lifecycle), as `outlier-probe probe` does.
///
/// Input: text (default: the paper's "Summer is warm. Winter is cold.\n"), or corpus (a UTF-8
/// text file) cut into `seqs` windows of `seq_len` tokens (default min(n_positions, 128))
/// starting at fraction `from_`. ratio: activation outlier when max |h| > ratio × mean |h| of
/// the token (the paper: 1000); massive=True uses "Massive Activations"' rule instead
/// (|h| > 100 and > 1000 × median). key_frac, sink_excess_frac: attention-outlier and sink
/// thresholds as fractions of T in (0, 1]. out_dir: also write report.json, report.md and the
/// pictures (PNG + SVG) there; None writes nothing.
///
/// Returns the report as a dict with exactly the keys of report.json.
#[pyfunction]
#[pyo3(signature = (model, text=None, corpus=None, out_dir=None, seqs=8, seq_len=None, from_=0.0, ratio=1000.0, massive=false, key_frac=0.1, sink_excess_frac=0.1, prepend_bos=None))]
#[allow(clippy::too_many_arguments)]
pub fn probe<'py>(
    py: Python<'py>,
    model: &PyModel,
    text: Option<String>,
    corpus: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    seqs: usize,
    seq_len: Option<usize>,
    from_: f64,
    ratio: f32,
    massive: bool,
    key_frac: f32,
    sink_excess_frac: f32,
    prepend_bos: Option<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    let m = &model.m;
    for (name, v) in [
        ("key_frac", key_frac),
        ("sink_excess_frac", sink_excess_frac),
    ] {
        if !(v > 0.0 && v <= 1.0) {
            return Err(value_error(format!(
                "{name} must be in (0, 1] (a fraction of the sequence length), got {v}"
            )));
        }
    }
    if !(ratio > 0.0 && ratio.is_finite()) {
        return Err(value_error(format!(
            "ratio must be a positive number, got {ratio}"
        )));
    }
    let mut th = Thresholds::default();
    if massive {
        th.activation = ActivationRule::massive_activations();
    } else {
        th.activation.ratio_to_mean = ratio;
    }
    th.attention_key_frac = key_frac;
    th.sink_excess_frac = sink_excess_frac;
    let (sequences, source) = match (&text, &corpus) {
        (Some(_), Some(_)) => return Err(value_error("give text or corpus, not both")),
        (None, Some(c)) => {
            let len = seq_len.unwrap_or(m.cfg.n_positions.min(128));
            let w = windows(m, c, len, seqs, from_, prepend_bos)?;
            let src = format!(
                "{} ({} windows of {len} tokens from {from_})",
                c.display(),
                w.len()
            );
            (w, src)
        }
        (t, None) => {
            let p = t
                .clone()
                .unwrap_or_else(|| outlier_probe::probe::PROBE_PROMPT.to_string());
            let ids = encode(m, &p, prepend_bos)?;
            (vec![ids], format!("{p:?}"))
        }
    };
    let scratch = Scratch::new("probe");
    let dir = out_dir.clone().unwrap_or_else(|| scratch.0.clone());
    let report = detached(py, || {
        let run = outlier_probe::probe::ProbeRun {
            model: m,
            sequences,
            source,
            thresholds: th,
            out_dir: dir,
        };
        outlier_probe::probe::run(&run, None)
            .map(|(r, _files)| r)
            .map_err(|e| to_py(e, Fallback::Device))
    })?;
    json_to_py(py, &to_json(&report)?)
}

/// Perplexity over corpus windows, plain and under each intervention, as `outlier-probe ppl`.
///
/// corpus: a UTF-8 text file (a Project Gutenberg header and footer are skipped), cut into
/// `seqs` windows of `seq_len` tokens (default min(n_positions, 256)) from fraction `from_`,
/// run `batch` windows per pass. interventions: one row each, the CLI's --intervene grammar
/// (specs joined by ";" act together; ":mean" takes the mean over the same windows).
///
/// Returns a list of dicts {"label", "nll_sum" (nats), "tokens", "ppl"}: the plain model first,
/// then one per intervention (the rows of `outlier-probe ppl --json`).
#[pyfunction]
#[pyo3(signature = (model, corpus, interventions=None, seq_len=None, seqs=8, from_=0.0, batch=4, prepend_bos=None))]
#[allow(clippy::too_many_arguments)]
pub fn ppl<'py>(
    py: Python<'py>,
    model: &PyModel,
    corpus: PathBuf,
    interventions: Option<Vec<String>>,
    seq_len: Option<usize>,
    seqs: usize,
    from_: f64,
    batch: usize,
    prepend_bos: Option<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    let m = &model.m;
    if batch == 0 {
        return Err(value_error(
            "batch must be at least 1 window per forward pass",
        ));
    }
    let rows = interventions.unwrap_or_default();
    let specs = rows
        .iter()
        .map(|r| {
            outlier_probe::intervene::Spec::parse_row(r).map_err(|e| to_py(e, Fallback::Input))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let len = seq_len.unwrap_or(m.cfg.n_positions.min(256));
    let w = windows(m, &corpus, len, seqs, from_, prepend_bos)?;
    let shortest = w.iter().map(Vec::len).min().unwrap_or(0);
    for (row, text) in specs.iter().zip(&rows) {
        outlier_probe::select::check_specs(row, &m.hooks(), shortest)
            .map_err(|e| to_py(e.context(format!("intervention '{text}'")), Fallback::Input))?;
    }
    let results = detached(py, || {
        let run = || {
            let mut out = vec![outlier_probe::ppl::perplexity(
                m,
                &w,
                batch,
                &[],
                None,
                "plain",
                None,
            )?];
            for (spec, text) in specs.iter().zip(&rows) {
                let (edits, knock) = outlier_probe::ppl::resolve(m, spec, &w, batch)?;
                out.push(outlier_probe::ppl::perplexity(
                    m,
                    &w,
                    batch,
                    &edits,
                    knock.as_ref(),
                    text,
                    None,
                )?);
            }
            Ok(out)
        };
        run().map_err(|e| to_py(e, Fallback::Device))
    })?;
    json_to_py(py, &to_json(&results)?)
}

/// The compression study, as `outlier-probe compress`: perplexity of each quantization or
/// pruning scheme next to the uncompressed model, plain and with the outlier channels kept.
///
/// schemes: comma-separated (w8, w4: weights absmax per output channel; w8t, w4t: per tensor;
/// a8: every linear layer's input, dynamic per tensor; w8a8, w4a8; prune50; parts combine,
/// e.g. "prune50+w8"). protect: "auto" (outlier input channels found on the first windows:
/// max |x| ≥ protect_ratio × the median channel's, at most protect_max), "none", or explicit
/// "d=C1,C2;inner=C3". The model is reloaded from its file for each scheme (f32 weights:
/// a model loaded with f16 or q8 weights is refused; the study reloads f32 weights from the model's
/// source, dequantizing a GGUF's blocks). Corpus arguments as for ppl.
/// out_dir: also write compress.json, compress.md and the bar charts there.
///
/// Returns the study as a dict with the keys of one entry of compress.json.
#[pyfunction]
#[pyo3(signature = (model, corpus, schemes="w8,w8t,w4,w4t,a8,w8a8,w4a8,prune50", protect="auto", protect_ratio=None, protect_max=None, out_dir=None, seq_len=None, seqs=8, from_=0.0, batch=4, prepend_bos=None))]
#[allow(clippy::too_many_arguments)]
pub fn compress<'py>(
    py: Python<'py>,
    model: &PyModel,
    corpus: PathBuf,
    schemes: &str,
    protect: &str,
    protect_ratio: Option<f32>,
    protect_max: Option<usize>,
    out_dir: Option<PathBuf>,
    seq_len: Option<usize>,
    seqs: usize,
    from_: f64,
    batch: usize,
    prepend_bos: Option<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    use outlier_probe::compress as c;
    let m = &model.m;
    // The study reloads the model from its source with f32 weights (a GGUF's blocks are
    // dequantized); a model asked for f16 or q8 is refused as the CLI refuses those flags.
    if matches!(m.weights, Weights::F16 | Weights::Q8) || m.f16 {
        return Err(value_error(format!(
            "compress quantizes f32 weights itself: load the model with weights=\"f32\" or \"stored\", not {:?}",
            m.weights.name()
        )));
    }
    if batch == 0 {
        return Err(value_error(
            "batch must be at least 1 window per forward pass",
        ));
    }
    let schemes = c::Scheme::parse_list(schemes).map_err(|e| to_py(e, Fallback::Input))?;
    if protect != "auto" && (protect_ratio.is_some() || protect_max.is_some()) {
        return Err(value_error(format!(
            "protect_ratio and protect_max tune protect=\"auto\"; with protect={protect:?} they would change nothing"
        )));
    }
    let mode = c::ProtectMode::parse(
        protect,
        protect_ratio.unwrap_or(6.0),
        protect_max.unwrap_or(8),
    )
    .map_err(|e| to_py(e, Fallback::Input))?;
    let len = seq_len.unwrap_or(m.cfg.n_positions.min(256));
    // The windows are cut once here, so that a bad corpus is a ValueError before any pass runs.
    let w = windows(m, &corpus, len, seqs, from_, prepend_bos)?;
    let (ctx, path) = (m.device(), m.source.clone());
    let study = detached(py, || {
        let st = c::study(
            ctx,
            &path,
            &|_: &Model| Ok(w.clone()),
            &schemes,
            &mode,
            batch,
            None,
        )
        .map_err(|e| to_py(e, Fallback::Device))?;
        if let Some(out) = &out_dir {
            c::write_outputs(std::slice::from_ref(&st), out)
                .map_err(|e| to_py(e, Fallback::Device))?;
        }
        Ok(st)
    })?;
    json_to_py(py, &to_json(&study)?)
}

/// The implicit context-aware scale of every head (the paper's reading of a sink, §4): per
/// layer l, head h and query t ≥ 1, `1 − Σ_{k ∈ S} P[h, t, k]` where S are the layer's
/// attention-outlier keys (head-averaged column sum ≥ key_frac·T), beside the explicit
/// `blocks.{l}.attn.hook_scale` of a context-scaled (variant (e)) or gated model; as the CLI's
/// `probe` writes to implicit_scale.json.
///
/// Input: text_or_tokens (a str, token ids, or a batch of either; default: the paper's probe
/// prompt), or corpus windows (as in `probe`). Queries are grouped by the paper's token class
/// ("strong delimiter", "weak semantic", "other"), or, given `triggers` (token ids), into
/// "trigger" / "non-trigger".
///
/// Returns a list of dicts {"layer", "head", "label", "n" (queries), "implicit": {"mean", "std",
/// "min", "max"}, "explicit": the same or None}.
#[pyfunction]
#[pyo3(signature = (model, text_or_tokens=None, corpus=None, seqs=8, seq_len=None, from_=0.0, key_frac=0.1, triggers=None, prepend_bos=None))]
#[allow(clippy::too_many_arguments)]
pub fn implicit_scale<'py>(
    py: Python<'py>,
    model: &PyModel,
    text_or_tokens: Option<&Bound<'py, PyAny>>,
    corpus: Option<PathBuf>,
    seqs: usize,
    seq_len: Option<usize>,
    from_: f64,
    key_frac: f32,
    triggers: Option<Vec<u32>>,
    prepend_bos: Option<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    let m = &model.m;
    if !(key_frac > 0.0 && key_frac <= 1.0) {
        return Err(value_error(format!(
            "key_frac must be in (0, 1] (a fraction of the sequence length), got {key_frac}"
        )));
    }
    let sequences = match (text_or_tokens, &corpus) {
        (Some(_), Some(_)) => return Err(value_error("give text_or_tokens or corpus, not both")),
        (None, Some(c)) => {
            let len = seq_len.unwrap_or(m.cfg.n_positions.min(128));
            windows(m, c, len, seqs, from_, prepend_bos)?
        }
        (Some(t), None) => crate::py_inputs::prompts(m, t, prepend_bos)?.ids,
        (None, None) => vec![encode(m, outlier_probe::probe::PROBE_PROMPT, prepend_bos)?],
    };
    let groups = detached(py, || {
        let grouping = match &triggers {
            Some(t) => outlier_probe::scale::Grouping::Triggers(t),
            None => outlier_probe::scale::Grouping::TokenClass,
        };
        outlier_probe::scale::implicit_scale(m, &sequences, &grouping, key_frac)
            .map_err(|e| to_py(e, Fallback::Device))
    })?;
    json_to_py(py, &to_json(&groups)?)
}
