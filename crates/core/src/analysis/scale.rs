//! The implicit context-aware scale of softmax heads next to an explicit one (paper §4: the sink
//! acts as a context-aware scaling factor; variant (e) makes that factor explicit).
//! Depends on tensor and the analyses' helpers only; never on the report, wgpu or models.
//!
//! Per layer l, head h and query t of one sequence (P = `blocks.{l}.attn.hook_pattern` `[H, T, K]`):
//! - sink keys S_l: the paper's attention-outlier keys of that layer and sequence, head-averaged
//!   column sum `colsum[j] = Σ_t (1/H) Σ_h P[h, t, j] ≥ frac × T` (paper: frac = 0.1; the same rule
//!   as [`super::attention`]'s `outlier_keys`);
//! - implicit factor `1 − Σ_{k ∈ S_l} P[h, t, k]`: the share of the head's attention that reaches
//!   the non-sink keys. Sink keys carry small values (the paper's lifecycle), so the head's output is
//!   about this factor times a softmax over the other keys. 1 where the layer has no sink key;
//! - explicit factor: `blocks.{l}.attn.hook_scale` `[T, H]` (context_scale: 2σ(W x + b); gated:
//!   σ(G x + c)) when the model has one.
//!
//! Queries are grouped by a label per position (a token class, or "trigger" / "non-trigger" on the
//! zoo's task); position 0 is left out (it can only attend to itself). Per (layer, head, label) the
//! accumulator keeps the count, mean and standard deviation of both factors over all sequences.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::tensor::Tensor;

/// Mean and spread of one factor in one group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FactorStats {
    pub mean: f32,
    /// Population standard deviation.
    pub std: f32,
    pub min: f32,
    pub max: f32,
}

/// Both factors of one (layer, head, label) group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleGroup {
    pub layer: usize,
    pub head: usize,
    pub label: String,
    /// Queries counted.
    pub n: usize,
    /// `1 − Σ_{sink keys} P[h, t, k]`.
    pub implicit: FactorStats,
    /// `hook_scale[t, h]`, when the model has it.
    pub explicit: Option<FactorStats>,
}

#[derive(Clone, Debug)]
struct Moments {
    n: usize,
    sum: f64,
    sumsq: f64,
    min: f32,
    max: f32,
}

impl Default for Moments {
    fn default() -> Self {
        Self {
            n: 0,
            sum: 0.0,
            sumsq: 0.0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        }
    }
}

impl Moments {
    fn add(&mut self, x: f32) {
        self.n += 1;
        self.sum += x as f64;
        self.sumsq += (x as f64) * (x as f64);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }
    fn stats(&self) -> FactorStats {
        let n = self.n.max(1) as f64;
        let mean = self.sum / n;
        FactorStats {
            mean: mean as f32,
            std: (self.sumsq / n - mean * mean).max(0.0).sqrt() as f32,
            min: if self.n == 0 { 0.0 } else { self.min },
            max: if self.n == 0 { 0.0 } else { self.max },
        }
    }
}

/// Sink keys of one layer by the paper's rule: head-averaged column sum `≥ frac × T`, ascending.
/// `pattern` is `[H, T, K]`.
pub fn sink_keys(pattern: &Tensor, frac: f32) -> Vec<usize> {
    let (h, t, k) = (pattern.shape[0], pattern.shape[1], pattern.shape[2]);
    let mut col = vec![0f64; k];
    for hh in 0..h {
        for i in 0..t {
            let row = &pattern.data[(hh * t + i) * k..(hh * t + i + 1) * k];
            for (c, p) in col.iter_mut().zip(row) {
                *c += *p as f64 / h as f64;
            }
        }
    }
    let thr = frac as f64 * t as f64;
    (0..k).filter(|&j| col[j] >= thr).collect()
}

/// Accumulates [`ScaleGroup`]s over sequences.
#[derive(Clone, Debug)]
pub struct ScaleAccumulator {
    frac: f32,
    groups: BTreeMap<(usize, usize, String), (Moments, Option<Moments>)>,
}

impl ScaleAccumulator {
    /// `frac`: the attention-outlier key fraction (paper: 0.1).
    pub fn new(frac: f32) -> Self {
        Self {
            frac,
            groups: BTreeMap::new(),
        }
    }

    /// Add one layer of one sequence: `pattern` `[H, T, K]` (K = T, no cache), `scale` `[T, H]`
    /// (or `None`), `labels` one per position (`labels.len() == T`).
    ///
    /// # Errors
    /// Shapes that disagree (names the layer and both shapes) or a non-finite entry.
    pub fn add_layer(
        &mut self,
        layer: usize,
        pattern: &Tensor,
        scale: Option<&Tensor>,
        labels: &[String],
    ) -> Result<()> {
        if pattern.shape.len() != 3 || pattern.shape[1] != pattern.shape[2] {
            bail!(
                "layer {layer}: hook_pattern must be [H, T, T] (no cache), got {:?}",
                pattern.shape
            );
        }
        let (h, t) = (pattern.shape[0], pattern.shape[1]);
        if labels.len() != t {
            bail!("layer {layer}: {} labels for {t} positions", labels.len());
        }
        if let Some(s) = scale {
            if s.shape != [t, h] {
                bail!(
                    "layer {layer}: hook_scale must be [T, H] = [{t}, {h}], got {:?}",
                    s.shape
                );
            }
        }
        if let Some(bad) = pattern.data.iter().position(|x| !x.is_finite()) {
            bail!("layer {layer}: hook_pattern entry {bad} is not finite");
        }
        let sinks = sink_keys(pattern, self.frac);
        for hh in 0..h {
            for (i, label) in labels.iter().enumerate().skip(1) {
                let row = &pattern.data[(hh * t + i) * t..(hh * t + i + 1) * t];
                let to_sinks: f32 = sinks.iter().map(|&k| row[k]).sum();
                let g = self
                    .groups
                    .entry((layer, hh, label.clone()))
                    .or_insert_with(|| (Moments::default(), scale.map(|_| Moments::default())));
                g.0.add(1.0 - to_sinks);
                if let (Some(s), Some(m)) = (scale, g.1.as_mut()) {
                    let x = s.data[i * h + hh];
                    if !x.is_finite() {
                        bail!("layer {layer}: hook_scale[{i}, {hh}] is not finite");
                    }
                    m.add(x);
                }
            }
        }
        Ok(())
    }

    /// Every group, by layer, head and label.
    pub fn finish(&self) -> Vec<ScaleGroup> {
        self.groups
            .iter()
            .map(|((layer, head, label), (imp, exp))| ScaleGroup {
                layer: *layer,
                head: *head,
                label: label.clone(),
                n: imp.n,
                implicit: imp.stats(),
                explicit: exp.as_ref().map(Moments::stats),
            })
            .collect()
    }
}

/// Per (layer, label): the head-averaged means of both factors (the explicit one when present),
/// weighted by each head's count. Returns `(layer, label, implicit mean, explicit mean)`.
pub fn layer_means(groups: &[ScaleGroup]) -> Vec<(usize, String, f32, Option<f32>)> {
    let mut m: BTreeMap<(usize, String), (f64, f64, usize, bool)> = BTreeMap::new();
    for g in groups {
        let e = m.entry((g.layer, g.label.clone())).or_default();
        e.0 += g.implicit.mean as f64 * g.n as f64;
        if let Some(x) = g.explicit {
            e.1 += x.mean as f64 * g.n as f64;
            e.3 = true;
        }
        e.2 += g.n;
    }
    m.into_iter()
        .map(|((l, label), (si, se, n, has))| {
            let n = n.max(1) as f64;
            (l, label, (si / n) as f32, has.then_some((se / n) as f32))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sink_takes_attention_from_the_rest() {
        // One head, T = 4: queries 1..3 put 0.9, 0.5 and 0.8 on key 0.
        let p = Tensor::new(
            vec![1, 4, 4],
            vec![
                1.0, 0.0, 0.0, 0.0, //
                0.9, 0.1, 0.0, 0.0, //
                0.5, 0.25, 0.25, 0.0, //
                0.8, 0.1, 0.05, 0.05,
            ],
        );
        assert_eq!(sink_keys(&p, 0.1), vec![0, 1], "key 1 gets 0.45 ≥ 0.1·4");
        assert_eq!(sink_keys(&p, 0.5), vec![0]);
        let scale = Tensor::new(vec![4, 1], vec![1.0, 0.1, 1.9, 0.2]);
        let mut acc = ScaleAccumulator::new(0.5);
        acc.add_layer(2, &p, Some(&scale), &labels(&["bos", "x", "trig", "x"]))
            .unwrap();
        let g = acc.finish();
        assert_eq!(g.len(), 2);
        let trig = g.iter().find(|g| g.label == "trig").unwrap();
        assert_eq!((trig.layer, trig.head, trig.n), (2, 0, 1));
        assert!((trig.implicit.mean - 0.5).abs() < 1e-6);
        assert!((trig.explicit.unwrap().mean - 1.9).abs() < 1e-6);
        let x = g.iter().find(|g| g.label == "x").unwrap();
        assert_eq!(x.n, 2);
        assert!((x.implicit.mean - 0.15).abs() < 1e-6, "{:?}", x.implicit);
        assert!((x.implicit.std - 0.05).abs() < 1e-6);
        assert!((x.explicit.unwrap().mean - 0.15).abs() < 1e-6);
        let lm = layer_means(&g);
        assert_eq!(lm[0].0, 2);
        assert_eq!(lm[0].1, "trig");
    }

    #[test]
    fn no_sink_means_factor_one_and_bad_shapes_are_named() {
        let p = Tensor::new(vec![1, 2, 2], vec![1.0, 0.0, 0.5, 0.5]);
        let mut acc = ScaleAccumulator::new(0.9);
        acc.add_layer(0, &p, None, &labels(&["a", "b"])).unwrap();
        let g = acc.finish();
        assert_eq!(g[0].implicit.mean, 1.0);
        assert!(g[0].explicit.is_none());
        let e = acc.add_layer(3, &p, None, &labels(&["a"])).unwrap_err();
        assert!(e.to_string().contains("layer 3"), "{e}");
        let s = Tensor::new(vec![1, 2], vec![1.0, 1.0]);
        let e = acc
            .add_layer(1, &p, Some(&s), &labels(&["a", "b"]))
            .unwrap_err();
        assert!(e.to_string().contains("hook_scale"), "{e}");
        let nan = Tensor::new(vec![1, 2, 2], vec![1.0, 0.0, f32::NAN, 0.5]);
        assert!(acc.add_layer(0, &nan, None, &labels(&["a", "b"])).is_err());
    }
}
