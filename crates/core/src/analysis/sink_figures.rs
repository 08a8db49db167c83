//! Sink and massive-activation figures of a model on a batch of sequences that all start with the
//! same first token (BOS), split by query class (the zoo's trigger tokens vs the rest): the numbers
//! the zoo records per checkpoint and that `tools/zoo/figures.py` computes in PyTorch.
//! Depends on tensor and the analyses' helpers only; never on the report, wgpu or models.
//!
//! Per layer l, over S sequences of T tokens (h = `blocks.{l}.hook_resid_post` `[T, D]`,
//! P = `blocks.{l}.attn.hook_pattern` `[H, T, T]`, `trig[t]` = the token at t is a trigger):
//! - `key0_all` / `key0_nontrigger` / `key0_trigger`: mean of `P[h, t, 0]` over sequences, heads and
//!   queries t ≥ 1 (all / non-trigger / trigger queries); `None` when no query is in the group;
//! - `top_key_share`: mean over sequences of `max_j (1/T) Σ_t (1/H) Σ_h P[h, t, j]`;
//! - `top1` = max |h| over every (sequence, t, c); `median` = median |h| over all of them (the mean
//!   of the two middle values for an even count); `bos_top1` = max_c |h[0, c]| over sequences and
//!   `bos_channel` its channel; `top1_over_median` and `bos_over_median` the ratios;
//! - `scale_nontrigger` / `scale_trigger`: mean of `blocks.{l}.attn.hook_scale` `[T, H]` over
//!   sequences, heads and non-trigger / trigger queries t ≥ 1 (models with a per-head factor).
//!
//! The down-projection ratio comes from [`super::weights`] (`row_ratios`, the paper's column ratio).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::stats::{median_in_place, safe_ratio};
use crate::tensor::Tensor;

/// The figures of one layer (definitions in the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerSinkFigures {
    pub layer: usize,
    pub key0_all: Option<f32>,
    pub key0_nontrigger: Option<f32>,
    pub key0_trigger: Option<f32>,
    pub top_key_share: Option<f32>,
    pub top1: f32,
    pub median: f32,
    pub top1_over_median: f32,
    pub bos_top1: f32,
    pub bos_channel: usize,
    pub bos_over_median: f32,
    pub scale_nontrigger: Option<f32>,
    pub scale_trigger: Option<f32>,
    /// Largest down-projection row ratio `max |w| / (mean |w| + 1e-8)` and its row (filled by the
    /// caller from the weights; 0 when not given).
    pub down_ratio: f32,
    pub down_row: usize,
    pub down_median_ratio: f32,
}

#[derive(Clone, Debug, Default)]
struct LayerAcc {
    key0: [(f64, usize); 3],
    top_share: (f64, usize),
    scale: [(f64, usize); 2],
    abs: Vec<f32>,
    bos: Option<(f32, usize)>,
}

fn mean(x: (f64, usize)) -> Option<f32> {
    (x.1 > 0).then(|| (x.0 / x.1 as f64) as f32)
}

/// Accumulates [`LayerSinkFigures`] over sequences.
#[derive(Clone, Debug, Default)]
pub struct SinkFigureAccumulator {
    layers: Vec<LayerAcc>,
}

impl SinkFigureAccumulator {
    pub fn new(n_layer: usize) -> Self {
        Self {
            layers: vec![LayerAcc::default(); n_layer],
        }
    }

    /// Add one layer of one sequence: `resid` `[T, D]`, `pattern` `[H, T, T]` (or `None`), `scale`
    /// `[T, H]` (or `None`), `trig` one flag per position.
    ///
    /// # Errors
    /// A layer out of range, shapes that disagree, or a non-finite entry (each named).
    pub fn add_layer(
        &mut self,
        layer: usize,
        resid: &Tensor,
        pattern: Option<&Tensor>,
        scale: Option<&Tensor>,
        trig: &[bool],
    ) -> Result<()> {
        let n = self.layers.len();
        let Some(acc) = self.layers.get_mut(layer) else {
            bail!("layer {layer} is out of range (the accumulator has {n} layers)");
        };
        if resid.shape.len() != 2 || resid.shape[0] != trig.len() || resid.shape[0] == 0 {
            bail!(
                "layer {layer}: hook_resid_post must be [T, D] with T = {} flags, got {:?}",
                trig.len(),
                resid.shape
            );
        }
        let (t, d) = (resid.shape[0], resid.shape[1]);
        if let Some(bad) = resid.data.iter().position(|x| !x.is_finite()) {
            bail!("layer {layer}: hook_resid_post entry {bad} is not finite");
        }
        acc.abs.extend(resid.data.iter().map(|x| x.abs()));
        let (bmax, bch) = (0..d).fold((f32::NEG_INFINITY, 0), |(m, c), j| {
            let v = resid.data[j].abs();
            if v > m {
                (v, j)
            } else {
                (m, c)
            }
        });
        if acc.bos.is_none_or(|(m, _)| bmax > m) {
            acc.bos = Some((bmax, bch));
        }
        if let Some(p) = pattern {
            if p.shape.len() != 3 || p.shape[1] != t || p.shape[2] != t {
                bail!(
                    "layer {layer}: hook_pattern must be [H, {t}, {t}], got {:?}",
                    p.shape
                );
            }
            if let Some(bad) = p.data.iter().position(|x| !x.is_finite()) {
                bail!("layer {layer}: hook_pattern entry {bad} is not finite");
            }
            let h = p.shape[0];
            let mut col = vec![0f64; t];
            for hh in 0..h {
                for (i, &is_trig) in trig.iter().enumerate() {
                    let row = &p.data[(hh * t + i) * t..(hh * t + i + 1) * t];
                    for (c, x) in col.iter_mut().zip(row) {
                        *c += *x as f64 / h as f64;
                    }
                    if i >= 1 {
                        let g = if is_trig { 2 } else { 1 };
                        for k in [0, g] {
                            acc.key0[k].0 += row[0] as f64;
                            acc.key0[k].1 += 1;
                        }
                    }
                }
            }
            let top = col.iter().copied().fold(0f64, f64::max);
            acc.top_share.0 += top / t as f64;
            acc.top_share.1 += 1;
        }
        if let Some(s) = scale {
            if s.shape.len() != 2 || s.shape[0] != t {
                bail!(
                    "layer {layer}: hook_scale must be [{t}, H], got {:?}",
                    s.shape
                );
            }
            let h = s.shape[1];
            for (i, &is_trig) in trig.iter().enumerate().skip(1) {
                for hh in 0..h {
                    let x = s.data[i * h + hh];
                    if !x.is_finite() {
                        bail!("layer {layer}: hook_scale[{i}, {hh}] is not finite");
                    }
                    let g = usize::from(is_trig);
                    acc.scale[g].0 += x as f64;
                    acc.scale[g].1 += 1;
                }
            }
        }
        Ok(())
    }

    /// The figures of every layer (down-projection fields 0: the caller fills them).
    pub fn finish(mut self) -> Vec<LayerSinkFigures> {
        self.layers
            .iter_mut()
            .enumerate()
            .map(|(l, a)| {
                let top1 = a.abs.iter().copied().fold(0f32, f32::max);
                let median = median_in_place(&mut a.abs);
                let (bos_top1, bos_channel) = a.bos.unwrap_or((0.0, 0));
                LayerSinkFigures {
                    layer: l,
                    key0_all: mean(a.key0[0]),
                    key0_nontrigger: mean(a.key0[1]),
                    key0_trigger: mean(a.key0[2]),
                    top_key_share: mean(a.top_share),
                    top1,
                    median,
                    top1_over_median: safe_ratio(top1, median),
                    bos_top1,
                    bos_channel,
                    bos_over_median: safe_ratio(bos_top1, median),
                    scale_nontrigger: mean(a.scale[0]),
                    scale_trigger: mean(a.scale[1]),
                    ..Default::default()
                }
            })
            .collect()
    }
}

/// Fill the down-projection fields of `fig` from the row ratios of layer `fig.layer`'s down
/// projection (`[I, D]`, see [`super::weights::row_ratios`]).
pub fn set_down_ratio(fig: &mut LayerSinkFigures, ratios: &[f32]) {
    let (row, r) =
        ratios
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |(i, m), (j, v)| {
                    if v > m {
                        (j, v)
                    } else {
                        (i, m)
                    }
                },
            );
    fig.down_ratio = r.max(0.0);
    fig.down_row = row;
    fig.down_median_ratio = super::stats::median(ratios);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_tiny_batch() {
        // T = 3, D = 2, one head; position 2 is a trigger.
        let resid = Tensor::new(vec![3, 2], vec![10.0, -1.0, 1.0, 2.0, -3.0, 1.0]);
        let p = Tensor::new(
            vec![1, 3, 3],
            vec![1.0, 0.0, 0.0, 0.8, 0.2, 0.0, 0.1, 0.3, 0.6],
        );
        let s = Tensor::new(vec![3, 1], vec![1.0, 0.01, 1.9]);
        let mut acc = SinkFigureAccumulator::new(2);
        acc.add_layer(1, &resid, Some(&p), Some(&s), &[false, false, true])
            .unwrap();
        let mut f = acc.finish();
        assert_eq!(f[0].key0_all, None, "layer 0 was not given");
        let g = &f[1];
        assert!((g.key0_all.unwrap() - 0.45).abs() < 1e-6);
        assert!((g.key0_nontrigger.unwrap() - 0.8).abs() < 1e-6);
        assert!((g.key0_trigger.unwrap() - 0.1).abs() < 1e-6);
        assert!((g.top_key_share.unwrap() - 1.9 / 3.0).abs() < 1e-6);
        assert_eq!(
            (g.top1, g.median, g.bos_top1, g.bos_channel),
            (10.0, 1.5, 10.0, 0)
        );
        assert!((g.top1_over_median - 10.0 / 1.5).abs() < 1e-5);
        assert!((g.scale_nontrigger.unwrap() - 0.01).abs() < 1e-6);
        assert!((g.scale_trigger.unwrap() - 1.9).abs() < 1e-6);
        set_down_ratio(&mut f[1], &[3.0, 7.0, 5.0]);
        assert_eq!(
            (f[1].down_ratio, f[1].down_row, f[1].down_median_ratio),
            (7.0, 1, 5.0)
        );
    }

    #[test]
    fn bad_input_is_named() {
        let mut acc = SinkFigureAccumulator::new(1);
        let r = Tensor::new(vec![2, 1], vec![1.0, f32::NAN]);
        let e = acc
            .add_layer(0, &r, None, None, &[false, false])
            .unwrap_err();
        assert!(e.to_string().contains("hook_resid_post entry 1"), "{e}");
        let r = Tensor::new(vec![2, 1], vec![1.0, 1.0]);
        assert!(acc.add_layer(3, &r, None, None, &[false, false]).is_err());
        assert!(acc.add_layer(0, &r, None, None, &[false]).is_err());
        let p = Tensor::new(vec![1, 2, 3], vec![0.0; 6]);
        let e = acc
            .add_layer(0, &r, Some(&p), None, &[false, false])
            .unwrap_err();
        assert!(e.to_string().contains("hook_pattern"), "{e}");
    }
}
