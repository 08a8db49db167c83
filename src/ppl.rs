//! Perplexity over corpus windows, plain or under interventions (the massive-activation
//! ablation: outlier channels set to zero versus to their mean).
//! Study layer: uses the model API; never kernels, gpu or frontends.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use crate::corpus::nll;
use crate::hooks::HookFilter;
use crate::intervene::{constant_edits, expand, Action, HookEdit, Knockout, Spec};
use crate::model::{ForwardOptions, Gpt2, LogitsMode};

/// Perplexity of one configuration.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PplResult {
    pub label: String,
    pub nll_sum: f64,
    pub tokens: usize,
    pub ppl: f64,
}

/// Run `windows` through the model in batches of `batch`, with the given edits and knockout.
/// Errors: `finite::NonFinite` (naming the first hook) when the forward pass yields non-finite
/// values, `PplOverflow` when the logits are finite but the perplexity is not.
pub fn perplexity(
    model: &Gpt2,
    windows: &[Vec<u32>],
    batch: usize,
    edits: &[HookEdit],
    knockout: Option<&Knockout>,
    label: &str,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<PplResult> {
    let opts = ForwardOptions {
        logits: LogitsMode::All,
        capture: HookFilter::none(),
        edits: edits.to_vec(),
        knockout: knockout.cloned(),
    };
    let (mut sum, mut n) = (0.0, 0);
    for group in windows.chunks(batch.max(1)) {
        let cap = group.iter().map(Vec::len).max().unwrap_or(1);
        let mut sess = model.session(group.len(), cap)?;
        let refs: Vec<&[u32]> = group.iter().map(Vec::as_slice).collect();
        let out = model
            .forward(&mut sess, &refs, &opts)
            .with_context(|| format!("perplexity of {label}"))?;
        for (w, l) in group.iter().zip(out.logits) {
            let (s, k) = nll(&l.expect("logits requested"), w);
            sum += s;
            n += k;
        }
        if let Some(p) = progress {
            p.inc(group.len() as u64);
        }
    }
    let mean = sum / n.max(1) as f64;
    let ppl = mean.exp();
    if !ppl.is_finite() {
        return Err(PplOverflow {
            label: label.to_string(),
            mean_nll: mean,
        }
        .into());
    }
    Ok(PplResult {
        label: label.to_string(),
        nll_sum: sum,
        tokens: n,
        ppl,
    })
}

/// A perplexity that is not a finite number although every logit was (the forward pass checks
/// those): the mean negative log-likelihood is over ln(f64::MAX) ≈ 709.8 nats, or not a number.
#[derive(Clone, Debug, PartialEq)]
pub struct PplOverflow {
    pub label: String,
    /// Mean negative log-likelihood, nats per predicted token.
    pub mean_nll: f64,
}

impl std::fmt::Display for PplOverflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "perplexity of {} is not finite: mean negative log-likelihood {:.1} nats per token (e^x overflows f64 above 709.8)",
            self.label, self.mean_nll
        )
    }
}

impl std::error::Error for PplOverflow {}

/// Turn parsed specs, acting together, into concrete edits and a knockout. `mean` edits take
/// the mean of each edited channel at the spec's positions over `windows` (one capture pass,
/// reduced on the fly), with the specs before it applied. Knockout specs add up per layer, each
/// keeping its own `layers=`.
///
/// Errors, before any pass: a hook glob matching nothing, a channel beyond the hook's width, a
/// layer beyond the model's, a position not in every window (≥ the shortest window's length),
/// a knocked-out key without a later query in every window (≥ the shortest length − 1).
pub fn resolve(
    model: &Gpt2,
    specs: &[Spec],
    windows: &[Vec<u32>],
    batch: usize,
) -> Result<(Vec<HookEdit>, Option<Knockout>)> {
    let space = model.hooks();
    let shortest = windows.iter().map(Vec::len).min().unwrap_or(0);
    crate::select::check_specs(specs, &space, shortest)?;
    let mut edits = Vec::new();
    let mut knockout: Option<Knockout> = None;
    for spec in specs {
        match spec {
            Spec::Knockout { keys, layers } => knockout
                .get_or_insert_with(Knockout::default)
                .add(keys.clone(), layers.clone()),
            Spec::Edit {
                hook,
                channels,
                positions,
                action: Action::Mean,
            } => {
                let hooks = expand(hook, &space)?;
                let filter = HookFilter::parse(&hooks.join(","))?;
                // (hook) -> per-channel sums and count.
                let mut acc: BTreeMap<String, (Vec<f64>, usize)> = BTreeMap::new();
                let mut err = None;
                for group in windows.chunks(batch.max(1)) {
                    let cap = group.iter().map(Vec::len).max().unwrap_or(1);
                    let mut sess = model.session(group.len(), cap)?;
                    let refs: Vec<&[u32]> = group.iter().map(Vec::as_slice).collect();
                    let opts = ForwardOptions {
                        logits: LogitsMode::None,
                        capture: filter.clone(),
                        // Earlier edits act on what later means see.
                        edits: edits.clone(),
                        knockout: knockout.clone(),
                    };
                    model.forward_with(&mut sess, &refs, &opts, &mut |_, name, t| {
                        let rows = t.shape[0];
                        let width = t.numel() / rows.max(1);
                        let e = acc
                            .entry(name.clone())
                            .or_insert_with(|| (vec![0.0; channels.len()], 0));
                        // Positions are below every window's length (check_specs).
                        let pos: Vec<usize> = match positions {
                            Some(p) => p.clone(),
                            None => (0..rows).collect(),
                        };
                        for p in pos {
                            for (k, &c) in channels.iter().enumerate() {
                                if c >= width {
                                    err = Some(anyhow::anyhow!(
                                        "{name} has {width} channels; channel {c} does not exist"
                                    ));
                                    return;
                                }
                                e.0[k] += t.row(p)[c] as f64;
                            }
                            e.1 += 1;
                        }
                    })?;
                }
                if let Some(e) = err {
                    return Err(e);
                }
                for h in hooks {
                    let (sums, n) = acc.remove(&h).unwrap_or_default();
                    if n == 0 {
                        anyhow::bail!(
                            "mean of {h}: no token at the requested positions in the corpus"
                        );
                    }
                    edits.push(HookEdit {
                        hook: h,
                        channels: channels.clone(),
                        positions: positions.clone(),
                        values: sums.iter().map(|s| (s / n as f64) as f32).collect(),
                    });
                }
            }
            other => edits.extend(constant_edits(other, &space)?),
        }
    }
    Ok((edits, knockout))
}
