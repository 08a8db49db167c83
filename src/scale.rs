//! The implicit context-aware scale of a model's attention heads, measured on any model (paper
//! §4: under softmax a sink acts as a context-aware scaling factor; variant (e) makes that factor
//! explicit as `blocks.{l}.attn.hook_scale`). Runs the passes ([`implicit_scale`]), and turns the
//! groups into a per-layer table by token class, a JSON record and a picture ([`by_token_class`]).
//! The arithmetic is [`crate::analysis::scale`]. Study layer: uses the model API, the analyses and
//! the report's plots; never kernels, gpu or frontends.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::analysis::scale::{layer_means, ScaleAccumulator, ScaleGroup};
use crate::analysis::tokens::classify_token;
use crate::hooks::HookFilter;
use crate::model::Model;
use crate::report::plots::{palette, per_layer, Line};

/// Hooks of `model` matching any of `names` (suffixes such as `attn.hook_scale`) as a filter.
pub(crate) fn filter_of(model: &Model, names: &[&str]) -> Result<HookFilter> {
    let hooks: Vec<String> = model
        .hooks()
        .hooks()
        .into_iter()
        .filter(|h| names.iter().any(|n| h.ends_with(n)))
        .collect();
    HookFilter::parse(&hooks.join(","))
}

pub(crate) fn scale_hook(l: usize) -> String {
    format!("blocks.{l}.attn.hook_scale")
}

/// How queries are grouped for [`implicit_scale`].
pub enum Grouping<'a> {
    /// The paper's token classes ([`classify_token`]: strong delimiter, weak semantic, other).
    TokenClass,
    /// "trigger" when the token id is listed, else "non-trigger" (the zoo's task).
    Triggers(&'a [u32]),
}

/// The implicit factor `1 − Σ_{sink keys} P` of every head and query, with the explicit
/// `hook_scale` where the model has one, grouped by `grouping`, over `seqs` (one pass each).
///
/// # Errors
/// `key_frac` outside (0, 1] (the sink-key rule: head-averaged column sum ≥ key_frac·T), a
/// failed pass, or captures of the wrong shape (see [`ScaleAccumulator::add_layer`]).
pub fn implicit_scale(
    model: &Model,
    seqs: &[Vec<u32>],
    grouping: &Grouping,
    key_frac: f32,
) -> Result<Vec<ScaleGroup>> {
    anyhow::ensure!(
        key_frac > 0.0 && key_frac <= 1.0,
        "implicit scale: the sink-key fraction must be in (0, 1], got {key_frac}"
    );
    let filter = filter_of(model, &["attn.hook_pattern", "attn.hook_scale"])?;
    let tok = model.tokenizer()?;
    let mut acc = ScaleAccumulator::new(key_frac);
    for ids in seqs {
        let caps = model.capture(ids, &filter)?;
        let labels: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| match grouping {
                Grouping::TokenClass => classify_token(i, &tok.token_str(id)).label().to_string(),
                Grouping::Triggers(t) if t.contains(&id) => "trigger".to_string(),
                Grouping::Triggers(_) => "non-trigger".to_string(),
            })
            .collect();
        for l in 0..model.cfg.n_layer {
            let Some(p) = caps.get(&crate::analysis::hook::pattern(l)) else {
                continue;
            };
            acc.add_layer(l, p, caps.get(&scale_hook(l)), &labels)?;
        }
    }
    Ok(acc.finish())
}

/// Lines of the per-layer scale picture: `(label, groups, explicit?)` per model.
fn scale_lines(models: &[(&str, &[ScaleGroup], bool)]) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut c = 0;
    for (name, groups, explicit) in models {
        let m = layer_means(groups);
        let n_layer = m.iter().map(|x| x.0 + 1).max().unwrap_or(0);
        let mut labels: Vec<&String> = m.iter().map(|x| &x.1).collect();
        labels.sort();
        labels.dedup();
        for label in labels {
            let mut values = vec![None; n_layer];
            for x in m.iter().filter(|x| &x.1 == label) {
                values[x.0] = if *explicit { x.3 } else { Some(x.2) };
            }
            lines.push(Line {
                label: format!("{name}, {label}"),
                color: palette(c),
                values,
                dashed: *explicit,
            });
            c += 1;
        }
    }
    lines
}

/// Write the implicit-vs-explicit picture. `models`: `(label, groups, explicit?)`.
pub fn scale_picture(
    out: &Path,
    name: &str,
    title: &str,
    models: &[(&str, &[ScaleGroup], bool)],
) -> Result<Vec<PathBuf>> {
    per_layer(out, name, title, "mean factor", &scale_lines(models))
}

/// The implicit scale of a model by the paper's token classes: the groups (per layer, head and
/// class), a per-layer table of the means over heads and queries, and the picture.
pub struct ClassScale {
    /// Per (layer, head, token class): count, mean/std/min/max of `1 − P(sink keys)` and of
    /// `hook_scale` where the model has it.
    pub groups: Vec<ScaleGroup>,
    /// Markdown: one row per layer, one column per token class (mean over heads and queries),
    /// and the explicit `hook_scale` columns when the model has one.
    pub table: String,
    /// `<name>.png`, `<name>.svg` and `<name>.json` (the groups) in the output directory.
    pub files: Vec<PathBuf>,
}

/// Class labels in the order the table shows them.
const CLASSES: [&str; 3] = ["strong delimiter", "weak semantic", "other"];

/// Measure [`implicit_scale`] on `seqs` grouped by token class (queries t ≥ 1; sink keys: the
/// paper's rule, head-averaged column sum ≥ `key_frac`·T), and write `<name>.json` (the groups),
/// `<name>.png` and `<name>.svg` (per-layer means by class; dashed: explicit `hook_scale`) into
/// `out`.
///
/// # Errors
/// No sequences, `key_frac` outside (0, 1] (see [`implicit_scale`]), a failed pass, or a file
/// that cannot be written (named).
pub fn by_token_class(
    model: &Model,
    seqs: &[Vec<u32>],
    key_frac: f32,
    out: &Path,
    name: &str,
) -> Result<ClassScale> {
    anyhow::ensure!(!seqs.is_empty(), "implicit scale: no sequences to measure");
    let groups = implicit_scale(model, seqs, &Grouping::TokenClass, key_frac)?;
    let means = layer_means(&groups);
    let explicit = means.iter().any(|m| m.3.is_some());
    let mut head = "| layer | ".to_string() + &CLASSES.join(" | ") + " |";
    let mut rule = "|---:|".to_string() + &"---:|".repeat(CLASSES.len());
    if explicit {
        for c in CLASSES {
            head.push_str(&format!(" hook_scale, {c} |"));
        }
        rule.push_str(&"---:|".repeat(CLASSES.len()));
    }
    let mut rows = vec![head, rule];
    for l in 0..model.cfg.n_layer {
        let find = |c: &str| means.iter().find(|m| m.0 == l && m.1 == c);
        let mut r = format!("| {l} |");
        for c in CLASSES {
            r.push_str(&find(c).map_or(" – |".into(), |m| format!(" {:.3} |", m.2)));
        }
        if explicit {
            for c in CLASSES {
                let v = find(c).and_then(|m| m.3);
                r.push_str(&v.map_or(" – |".into(), |v| format!(" {v:.3} |")));
            }
        }
        rows.push(r);
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join(format!("{name}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(&groups)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let mut models: Vec<(&str, &[ScaleGroup], bool)> = vec![("implicit", &groups, false)];
    if explicit {
        models.push(("explicit hook_scale", &groups, true));
    }
    let title = if explicit {
        "implicit scale 1 − P(sink keys) and explicit hook_scale by token class"
    } else {
        "implicit scale 1 − P(sink keys) by token class"
    };
    let mut files = scale_picture(out, name, title, &models)?;
    files.push(json);
    let table = if groups.iter().all(|g| g.n == 0) {
        "(no query after position 0 — one-token inputs: nothing to measure)".to_string()
    } else {
        rows.join("\n")
    };
    Ok(ClassScale {
        groups,
        table,
        files,
    })
}
