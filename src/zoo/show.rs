//! What `gpt2_probe` shows of the zoo: the (a)-vs-(e) comparison measured by the engine, the
//! trainer's figures of every zoo model, the implicit vs explicit scale, and the figures against
//! the training step — as text tables and pictures (PNG + SVG).
//! Study layer: uses the zoo's measurements, the analyses and the report's plots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use super::{curve, figures, heldout, implicit_scale, models, trigger_ids, Grouping, ModelFigures};
use crate::analysis::growth::PowerLaw;
use crate::analysis::scale::{layer_means, ScaleGroup};
use crate::gpu::GpuContext;
use crate::model::Model;
use crate::report::plots::{over_training, StepLine};
use crate::scale::scale_picture;

/// A model's checkpoint curve as the charts take it: (label, figures by step, dashed?).
type Curve<'a> = (&'a str, &'a [(u64, ModelFigures)], bool);

fn f2(x: Option<f32>) -> String {
    x.map_or("–".into(), |v| format!("{v:.3}"))
}

/// Per attention layer (1..): `a / b` of a figure.
fn per_attn_layer(f: &ModelFigures, get: impl Fn(usize) -> Option<f32>) -> String {
    (1..f.layers.len())
        .map(|l| f2(get(l)))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// One Markdown row of a model's figures (layers 1.. are the attention layers; layer 0 of the
/// zoo is MLP-only).
pub fn row(name: &str, f: &ModelFigures) -> String {
    let l = &f.layers;
    let max =
        |g: fn(&crate::analysis::LayerSinkFigures) -> f32| l.iter().map(g).fold(0.0, f32::max);
    format!(
        "| {name} | {:.4} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
        f.heldout_loss,
        per_attn_layer(f, |i| l[i].key0_nontrigger),
        per_attn_layer(f, |i| l[i].key0_trigger),
        per_attn_layer(f, |i| l[i]
            .scale_nontrigger
            .zip(l[i].scale_trigger)
            .map(|(a, b)| a / b.max(f32::MIN_POSITIVE))),
        max(|x| x.top1_over_median),
        max(|x| x.bos_over_median),
        max(|x| x.down_ratio),
    )
}

/// The header of [`row`]'s table.
pub const HEADER: &str = "| model | held-out loss | key-0 share, non-trigger queries (L1 / L2) | key-0 share, trigger queries | hook_scale non-trigger ÷ trigger | top-1/median \\|h\\| (max layer) | BOS top-1/median | down-proj max/mean |\n|---|---:|---:|---:|---:|---:|---:|---:|";

/// The scale factors per layer and group as a table: softmax model `a` (implicit) beside the
/// scaled model `e` (explicit, and its implicit one).
pub fn scale_table(a: &[ScaleGroup], e: &[ScaleGroup]) -> String {
    let (ma, me) = (layer_means(a), layer_means(e));
    let mut s = String::from(
        "| layer | queries | (a) implicit 1 − P(sink keys) | (e) explicit hook_scale | (e) implicit |\n|---:|---|---:|---:|---:|\n",
    );
    for (l, label, imp, _) in &ma {
        let ex = me.iter().find(|m| m.0 == *l && &m.1 == label);
        s.push_str(&format!(
            "| {l} | {label} | {imp:.4} | {} | {} |\n",
            f2(ex.and_then(|m| m.3)),
            f2(ex.map(|m| m.2))
        ));
    }
    s
}

/// Step lines of one figure, per layer, for each `(label, curve, dashed)`.
fn step_lines(
    curves: &[Curve],
    layers: &[usize],
    get: fn(&crate::analysis::LayerSinkFigures) -> Option<f32>,
) -> Vec<StepLine> {
    let mut v = Vec::new();
    for (ci, (label, c, dashed)) in curves.iter().enumerate() {
        for &l in layers {
            v.push(StepLine {
                label: format!("{label}, layer {l}"),
                color: ci * 3 + l,
                dashed: *dashed,
                points: c
                    .iter()
                    .filter_map(|(s, f)| f.layers.get(l).and_then(get).map(|y| (*s, y)))
                    .collect(),
            });
        }
    }
    v
}

/// The zoo section of `gpt2_probe`: engine figures of `default_s0` and `context_scale_s0` on the
/// held-out sequences, the recorded figures of every zoo model, the implicit vs explicit scale and
/// the checkpoint curves; pictures into `out`. Returns the text to print and the files written.
///
/// # Errors
/// A zoo without those two models, or any failed load or pass (named).
pub fn comparison(
    ctx: &Arc<GpuContext>,
    zoo: &Path,
    out: &Path,
    curve_seqs: usize,
) -> Result<(String, Vec<PathBuf>)> {
    let entries = models(zoo)?;
    let triggers = trigger_ids(zoo)?;
    let pick = |n: &str| {
        entries
            .iter()
            .find(|e| e.name == n)
            .with_context(|| format!("{}: no model {n}", zoo.display()))
    };
    let (ea, ee) = (pick("default_s0")?, pick("context_scale_s0")?);
    let ma = Model::load(ctx.clone(), &ea.dir)?;
    let me = Model::load(ctx.clone(), &ee.dir)?;
    let seqs = heldout(zoo, &ma)?;
    let (fa, fe) = (
        figures(&ma, &seqs, &triggers)?,
        figures(&me, &seqs, &triggers)?,
    );
    let mut text = vec![format!(
        "engine, {} held-out sequences of {} tokens ({}; triggers {:?}):\n{HEADER}\n{}\n{}",
        seqs.len(),
        seqs[0].len(),
        zoo.join("heldout.txt").display(),
        triggers,
        row("(a) softmax, default_s0", &fa),
        row("(e) context scale, context_scale_s0", &fe)
    )];
    let mut rec = Vec::new();
    for e in &entries {
        if let Ok(f) = super::read_reference(&e.dir.join("figures.json")) {
            rec.push(row(&e.name, &f));
        }
    }
    // Excess over the best possible loss (the true next-token distribution) on log-log axes.
    let bayes = super::heldout_bayes_loss(zoo)?;
    let losses = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let pts = super::loss_curve(&e.dir)?;
            Ok(StepLine {
                label: e.name.clone(),
                color: i,
                dashed: e.variant != "default",
                points: pts.into_iter().map(|(s, l)| (s, l - bayes)).collect(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut files = over_training(
        out,
        "zoo_loss",
        &format!("held-out loss − {bayes:.3} (the Bayes optimum), every zoo model"),
        "excess loss (nats)",
        true,
        &losses,
    )?;
    text.push(format!(
        "every zoo model as its trainer measured it in PyTorch (figures.json; tests/zoo.rs checks the engine gives the same):\n{HEADER}\n{}",
        rec.join("\n")
    ));
    let k = curve_seqs.min(seqs.len());
    // Layer 0 of the zoo is MLP-only (attn.c_proj frozen at zero): its factors act on nothing.
    let mut ga = implicit_scale(&ma, &seqs[..k], &Grouping::Triggers(&triggers), 0.1)?;
    let mut ge = implicit_scale(&me, &seqs[..k], &Grouping::Triggers(&triggers), 0.1)?;
    ga.retain(|g| g.layer >= 1);
    ge.retain(|g| g.layer >= 1);
    text.push(format!(
        "implicit vs explicit scale ({k} sequences; sink keys: head-averaged column sum ≥ 0.1·T; layer 0, MLP-only, left out):\n{}",
        scale_table(&ga, &ge)
    ));
    files.extend(scale_picture(
        out,
        "zoo_scale",
        "(a) implicit scale 1 − P(sink) vs (e) explicit hook_scale",
        &[("(a) implicit", &ga, false), ("(e) explicit", &ge, true)],
    )?);
    let ca = curve(ctx, &ea.dir, &seqs[..k], &triggers)?;
    let ce = curve(ctx, &ee.dir, &seqs[..k], &triggers)?;
    let curves: [Curve; 2] = [("(a)", &ca, false), ("(e)", &ce, true)];
    let n = fa.layers.len();
    let attn: Vec<usize> = (1..n).collect();
    let all: Vec<usize> = (0..n).collect();
    for (name, title, y, log, layers, get) in [
        (
            "zoo_sink_over_training",
            "key-0 share of non-trigger queries",
            "key-0 share",
            false,
            &attn,
            (|x| x.key0_nontrigger) as fn(&crate::analysis::LayerSinkFigures) -> Option<f32>,
        ),
        (
            "zoo_top_key_over_training",
            "attention share of the top key (all queries)",
            "share",
            false,
            &attn,
            |x| x.top_key_share,
        ),
        (
            "zoo_bos_abs_over_training",
            "BOS top-1 |h| (the sink token's largest channel)",
            "|h|",
            true,
            &all,
            |x| Some(x.bos_top1),
        ),
        (
            "zoo_bos_over_training",
            "BOS top-1 |h| / median |h|",
            "ratio",
            true,
            &all,
            |x| Some(x.bos_over_median),
        ),
        (
            "zoo_top1_over_training",
            "top-1 |h| / median |h|",
            "ratio",
            true,
            &all,
            |x| Some(x.top1_over_median),
        ),
        (
            "zoo_down_over_training",
            "down-projection max/mean row ratio",
            "ratio",
            true,
            &all,
            |x| Some(x.down_ratio),
        ),
    ] {
        files.extend(over_training(
            out,
            name,
            title,
            y,
            log,
            &step_lines(&curves, layers, get),
        )?);
    }
    let mut t = String::from("over training (engine, checkpoints; (a) | (e)):\n| step | key-0 non-trigger L1/L2 | BOS top-1/median L0/L1/L2 | down-proj max L0/L1/L2 |\n|---:|---|---|---|\n");
    for (s, f) in ca.iter() {
        let other = ce.iter().find(|c| c.0 == *s).map(|c| &c.1);
        let cell = |f: &ModelFigures,
                    g: &dyn Fn(&crate::analysis::LayerSinkFigures) -> String,
                    from: usize| {
            f.layers[from..].iter().map(g).collect::<Vec<_>>().join("/")
        };
        let both = |g: &dyn Fn(&crate::analysis::LayerSinkFigures) -> String, from: usize| {
            format!(
                "{} \\| {}",
                cell(f, g, from),
                other.map_or("–".into(), |o| cell(o, g, from))
            )
        };
        t.push_str(&format!(
            "| {s} | {} | {} | {} |\n",
            both(&|x| f2(x.key0_nontrigger), 1),
            both(&|x| format!("{:.1}", x.bos_over_median), 0),
            both(&|x| format!("{:.1}", x.down_ratio), 0)
        ));
    }
    text.push(t);
    // The engine's curves (first `curve_seqs` sequences) and every curve the trainer recorded.
    let mut recorded = Vec::new();
    for e in &entries {
        if let Some(c) = super::recorded_curve(&e.dir)? {
            recorded.push((format!("{} (PyTorch, 32 sequences)", e.name), c));
        }
    }
    let mut grow: Vec<(&str, &[(u64, ModelFigures)])> = vec![
        ("(a) default_s0 (engine)", &ca),
        ("(e) context_scale_s0 (engine)", &ce),
    ];
    grow.extend(recorded.iter().map(|(n, c)| (n.as_str(), c.as_slice())));
    text.push(growth_text(&grow));
    Ok((text.join("\n\n"), files))
}

/// The growth of BOS top-1/median |h| over the checkpoints, fitted as a power law from step 500
/// on, and where it would reach 100× and 1000× (massive-activation size): the largest over all
/// layers, and over the layers whose output a later attention layer reads (all but the last; an
/// activation that can make BOS a sink key must be there).
fn growth_text(curves: &[(&str, &[(u64, ModelFigures)])]) -> String {
    let mut s = String::from(
        "growth of BOS top-1/median |h|, power law fitted on log-log axes from step 500 on (all layers | the layers a later attention layer reads):\n",
    );
    let reach = |fit: &PowerLaw, t: f64| {
        fit.step_reaching(t)
            .map_or("never (not growing)".into(), |x| format!("~{x:.1e}"))
    };
    let one = |c: &[(u64, ModelFigures)], read_only: bool| -> String {
        let pts: Vec<(u64, f64)> = c
            .iter()
            .map(|(st, f)| {
                let n = f.layers.len() - usize::from(read_only && f.layers.len() > 1);
                let r = f.layers[..n]
                    .iter()
                    .map(|l| l.bos_over_median)
                    .fold(0.0, f32::max);
                (*st, r as f64)
            })
            .collect();
        let last = pts.last().map_or(0.0, |p| p.1);
        match PowerLaw::fit(&pts, 500) {
            Some(fit) => format!(
                "{last:.1}× at step {}, ∝ step^{:.2} ({} checkpoints from {}), 100× at {} steps, 1000× at {}",
                fit.to,
                fit.exponent,
                fit.n,
                fit.from,
                reach(&fit, 100.0),
                reach(&fit, 1000.0)
            ),
            None => "fewer than 3 checkpoints from step 500 on: no fit".into(),
        }
    };
    for (label, c) in curves {
        s.push_str(&format!(
            "  {label}: {} | {}\n",
            one(c, false),
            one(c, true)
        ));
    }
    s
}
