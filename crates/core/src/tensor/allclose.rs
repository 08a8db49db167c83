//! Elementwise comparison of a tensor with a reference under numpy's `allclose` rule, with the
//! tolerance scaled to the reference's median: [`Tensor::allclose`] and its outcome types.
//! Depends on std only; never on the analyses, the report, wgpu or models.

use std::fmt;

use super::Tensor;

impl Tensor {
    /// Elementwise comparison with `reference` under numpy's `allclose` rule,
    /// `|a − b| ≤ atol + rtol·|b|`, where `atol = atol_rel_median × median|b|` over the
    /// reference's finite non-zero entries (0 when it has none: then every entry must be equal).
    /// Scaling atol to the median, not the maximum, keeps one outlier (a massive activation
    /// of 10⁴ next to entries of order 1) from licensing errors of order 1 everywhere else.
    /// An entry that is NaN or infinite where the reference is finite fails; an entry where
    /// the reference is ±∞ (masked attention scores) must equal it; a NaN in the reference
    /// always fails. Returns the measured [`Closeness`] (worst entry included) when every entry
    /// passes; otherwise a [`Mismatch`] naming the worst entry by its index.
    pub fn allclose(
        &self,
        reference: &Tensor,
        rtol: f32,
        atol_rel_median: f32,
    ) -> Result<Closeness, Mismatch> {
        if self.shape != reference.shape {
            return Err(Mismatch::Shape {
                got: self.shape.clone(),
                want: reference.shape.clone(),
            });
        }
        let c = closeness(self, reference, rtol, atol_rel_median);
        if c.failing == 0 {
            Ok(c)
        } else {
            Err(Mismatch::Values(c))
        }
    }
}

/// One entry of a comparison: where, the two values, and how far it used its allowance.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Multi-dimensional index (one per axis of the shape).
    pub index: Vec<usize>,
    /// The tested value.
    pub got: f32,
    /// The reference value.
    pub want: f32,
    /// `|got − want| / (atol + rtol·|want|)`: ≤ 1 passes; ∞ for a non-finite mismatch or for
    /// any difference where the allowance is 0.
    pub ratio: f64,
}

/// The outcome of [`Tensor::allclose`]: the tolerances used and the worst entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Closeness {
    /// Shape of both tensors.
    pub shape: Vec<usize>,
    /// Relative tolerance, as given.
    pub rtol: f32,
    /// Absolute tolerance used: `atol_rel_median × median_abs`.
    pub atol: f32,
    /// Median |reference| over its finite non-zero entries (upper middle for an even count;
    /// 0 when there are none).
    pub median_abs: f32,
    /// Entries outside the tolerance.
    pub failing: usize,
    /// Entries compared.
    pub total: usize,
    /// The entry with the largest ratio (the first one on ties); `None` for an empty tensor.
    pub worst: Option<Entry>,
}

impl Closeness {
    /// The worst entry's ratio (0 for an empty tensor): the smallest factor by which both
    /// tolerances could shrink with every entry still passing.
    pub fn worst_ratio(&self) -> f64 {
        self.worst.as_ref().map_or(0.0, |e| e.ratio)
    }
}

/// Why [`Tensor::allclose`] failed.
#[derive(Clone, Debug, PartialEq)]
pub enum Mismatch {
    /// The shapes differ; no entry was compared.
    Shape { got: Vec<usize>, want: Vec<usize> },
    /// At least one entry is outside the tolerance; `worst` names the worst one.
    Values(Closeness),
}

impl std::error::Error for Mismatch {}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {:?}: got {:e}, want {:e}, |diff| {:.3e} = {:.3} × allowed",
            self.index,
            self.got,
            self.want,
            (self.got as f64 - self.want as f64).abs(),
            self.ratio
        )
    }
}

impl fmt::Display for Closeness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} entries outside |a−b| ≤ atol + rtol·|b| (rtol {:.1e}, atol {:.2e} = \
             {:.1e} × median|b| {:.3e})",
            self.failing,
            self.total,
            self.rtol,
            self.atol,
            if self.median_abs > 0.0 {
                self.atol / self.median_abs
            } else {
                0.0
            },
            self.median_abs
        )?;
        match &self.worst {
            Some(e) => write!(f, "; worst {e}"),
            None => write!(f, "; empty tensor"),
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Shape { got, want } => write!(f, "shape {got:?}, reference shape {want:?}"),
            Mismatch::Values(c) => c.fmt(f),
        }
    }
}

/// Median |x| over the finite non-zero entries (upper middle for an even count), 0 if none.
fn median_abs(v: &[f32]) -> f32 {
    let mut m: Vec<f32> = v
        .iter()
        .filter(|x| x.is_finite() && **x != 0.0)
        .map(|x| x.abs())
        .collect();
    if m.is_empty() {
        return 0.0;
    }
    let mid = m.len() / 2;
    *m.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// Row-major multi-dimensional index of flat position `i`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        idx[k] = i % d.max(1);
        i /= d.max(1);
    }
    idx
}

/// Ratio of one entry: |a−b| / (atol + rtol·|b|), with the non-finite rules of `allclose`.
fn ratio(a: f32, b: f32, rtol: f64, atol: f64) -> f64 {
    if b.is_nan() {
        return f64::INFINITY;
    }
    if b.is_infinite() {
        return if a == b { 0.0 } else { f64::INFINITY };
    }
    if !a.is_finite() {
        return f64::INFINITY;
    }
    let d = (a as f64 - b as f64).abs();
    let allowed = atol + rtol * (b as f64).abs();
    if d == 0.0 {
        0.0
    } else if allowed > 0.0 {
        d / allowed
    } else {
        f64::INFINITY
    }
}

fn closeness(got: &Tensor, want: &Tensor, rtol: f32, atol_rel_median: f32) -> Closeness {
    let median = median_abs(&want.data);
    let atol = atol_rel_median * median;
    let (mut failing, mut worst_i, mut worst_r) = (0, None, -1f64);
    for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
        let r = ratio(*a, *b, rtol as f64, atol as f64);
        // NaN never passes (also a NaN tolerance).
        if r.is_nan() || r > 1.0 {
            failing += 1;
        }
        let r = if r.is_nan() { f64::INFINITY } else { r };
        if r > worst_r {
            (worst_i, worst_r) = (Some(i), r);
        }
    }
    Closeness {
        shape: want.shape.clone(),
        rtol,
        atol,
        median_abs: median,
        failing,
        total: want.data.len(),
        worst: worst_i.map(|i| Entry {
            index: unravel(i, &want.shape),
            got: got.data[i],
            want: want.data[i],
            ratio: worst_r,
        }),
    }
}
