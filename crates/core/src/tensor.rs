//! A plain host tensor: row-major f32 values and a shape. Analyses and tests work on these,
//! and tests compare them with reference tensors elementwise ([`Tensor::allclose`]).

use std::fmt;

/// Row-major f32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "shape {shape:?} does not match {} values",
            data.len()
        );
        Self { shape, data }
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Row `i` of a tensor seen as [shape[0], rest].
    pub fn row(&self, i: usize) -> &[f32] {
        let w = self.numel() / self.shape[0].max(1);
        &self.data[i * w..(i + 1) * w]
    }

    /// max |a - b| / max |b| over the finite entries of `reference`: a coarse size of a
    /// difference (e.g. "did this edit change the logits at all"), not a correctness check —
    /// use [`Tensor::allclose`] for that. Infinite when `self` is NaN or infinite where the
    /// reference is finite, or differs where the reference is infinite (masked scores), or a
    /// NaN sits in the reference. Panics on a shape mismatch.
    pub fn rel_err(&self, reference: &Tensor) -> f32 {
        assert_eq!(self.shape, reference.shape, "shape mismatch");
        let mut scale = 0f32;
        let mut diff = 0f32;
        for (a, b) in self.data.iter().zip(&reference.data) {
            if b.is_finite() && a.is_finite() {
                scale = scale.max(b.abs());
                diff = diff.max((a - b).abs());
            } else if !(b.is_infinite() && a == b) {
                return f32::INFINITY;
            }
        }
        if diff == 0.0 {
            0.0
        } else {
            diff / scale.max(f32::MIN_POSITIVE)
        }
    }

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

    /// Index of the largest value of each row (first one on ties).
    pub fn argmax_rows(&self) -> Vec<usize> {
        (0..self.shape[0]).map(|i| argmax(self.row(i))).collect()
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

/// Index of the largest value (first one on ties); NaN never wins.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] || v[best].is_nan() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), v.to_vec())
    }

    #[test]
    fn rel_err_fails_on_nan_and_inf() {
        let want = t(&[3], &[1.0, -2.0, 3.0]);
        assert_eq!(t(&[3], &[f32::NAN; 3]).rel_err(&want), f32::INFINITY);
        assert_eq!(
            t(&[3], &[1.0, f32::INFINITY, 3.0]).rel_err(&want),
            f32::INFINITY
        );
        assert_eq!(want.rel_err(&want), 0.0);
        let masked = t(&[2], &[f32::NEG_INFINITY, 1.0]);
        assert_eq!(masked.rel_err(&masked), 0.0);
        assert_eq!(t(&[2], &[0.0, 1.0]).rel_err(&masked), f32::INFINITY);
    }

    #[test]
    fn allclose_passes_within_tolerance_and_reports_the_worst_entry() {
        let want = t(&[2, 2], &[1.0, 2.0, 4.0, 8.0]);
        let got = t(&[2, 2], &[1.0, 2.0 + 1e-4, 4.0, 8.0]);
        // median|b| = 4 (upper middle of 1, 2, 4, 8): atol = 1e-5 × 4.
        let c = got.allclose(&want, 1e-4, 1e-5).unwrap();
        assert_eq!((c.median_abs, c.failing, c.total), (4.0, 0, 4));
        let w = c.worst.as_ref().unwrap();
        assert_eq!(w.index, vec![0, 1]);
        let allowed = 4e-5 + 1e-4 * 2.0;
        assert!((w.ratio - 1e-4 / allowed).abs() < 1e-3, "{}", w.ratio);
        assert!(c.worst_ratio() < 1.0);
    }

    #[test]
    fn allclose_fails_on_nan_and_inf_where_the_reference_is_finite() {
        let want = t(&[2, 3], &[0.5, 1.0, 2.0, 3.0, 4.0, 5.0]);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut got = want.clone();
            got.data[4] = bad;
            let e = got.allclose(&want, 1.0, 1.0).unwrap_err();
            let Mismatch::Values(c) = &e else {
                panic!("{e}")
            };
            assert_eq!(c.failing, 1);
            let w = c.worst.as_ref().unwrap();
            assert_eq!((w.index.clone(), w.ratio), (vec![1, 1], f64::INFINITY));
            assert!(e.to_string().contains("[1, 1]"), "{e}");
        }
        // An all-NaN output fails every entry, however loose the tolerance.
        let nan = t(&[2, 3], &[f32::NAN; 6]);
        let Err(Mismatch::Values(c)) = nan.allclose(&want, 1e9, 1e9) else {
            panic!("all-NaN passed")
        };
        assert_eq!(c.failing, 6);
        // A NaN tolerance passes exact equality only.
        assert!(want.allclose(&want, f32::NAN, f32::NAN).is_ok());
        let mut off = want.clone();
        off.data[0] += 0.1;
        assert!(off.allclose(&want, f32::NAN, f32::NAN).is_err());
    }

    #[test]
    fn allclose_masked_entries_must_be_equal() {
        let ninf = f32::NEG_INFINITY;
        let want = t(&[2, 2], &[1.0, ninf, 0.5, 0.25]);
        assert!(want.allclose(&want, 0.0, 0.0).is_ok());
        for bad in [-1e30, f32::INFINITY, f32::NAN] {
            let mut got = want.clone();
            got.data[1] = bad;
            let Err(Mismatch::Values(c)) = got.allclose(&want, 1.0, 1.0) else {
                panic!("{bad} passed for a masked entry")
            };
            assert_eq!(c.worst.unwrap().index, vec![0, 1]);
        }
        // A NaN in the reference fails even against NaN.
        let r = t(&[1], &[f32::NAN]);
        assert!(r.allclose(&r, 1.0, 1.0).is_err());
    }

    #[test]
    fn an_outlier_does_not_loosen_the_small_entries() {
        // One entry of 23000 (a massive activation) among entries of order 1.
        let mut v = vec![1.0f32; 100];
        v[7] = 23000.0;
        let want = t(&[10, 10], &v);
        // The max-scaled rule accepts an error of 2 on an ordinary entry...
        let mut got = want.clone();
        got.data[50] += 2.0;
        assert!(got.rel_err(&want) <= 1e-4);
        // ...the median-scaled one does not, and names the entry.
        let Err(Mismatch::Values(c)) = got.allclose(&want, 1e-4, 1e-4) else {
            panic!("error of 2 on an entry of 1 passed")
        };
        assert_eq!(c.median_abs, 1.0);
        let w = c.worst.unwrap();
        assert_eq!((w.index, w.got, w.want), (vec![5, 0], 3.0, 1.0));
        // The outlier itself may be off by rtol·23000.
        let mut got = want.clone();
        got.data[7] += 1.0;
        assert!(got.allclose(&want, 1e-4, 1e-4).is_ok());
        got.data[7] += 2.0;
        assert!(got.allclose(&want, 1e-4, 1e-4).is_err());
    }

    #[test]
    fn all_zero_reference_demands_exact_zeros() {
        let want = t(&[4], &[0.0; 4]);
        let c = want.allclose(&want, 1e-3, 1e-3).unwrap();
        assert_eq!((c.median_abs, c.atol, c.worst_ratio()), (0.0, 0.0, 0.0));
        let got = t(&[4], &[0.0, 0.0, 1e-30, 0.0]);
        let e = got.allclose(&want, 1e-3, 1e-3).unwrap_err();
        assert!(e.to_string().contains("[2]"), "{e}");
    }

    #[test]
    fn shape_mismatch_is_an_error_not_a_panic() {
        let e = t(&[2, 3], &[0.0; 6])
            .allclose(&t(&[3, 2], &[0.0; 6]), 1.0, 1.0)
            .unwrap_err();
        assert_eq!(e.to_string(), "shape [2, 3], reference shape [3, 2]");
    }

    #[test]
    fn mismatch_message_names_counts_tolerances_and_values() {
        let want = t(&[3], &[1.0, 2.0, 3.0]);
        let got = t(&[3], &[1.0, 2.5, 3.0]);
        let msg = got.allclose(&want, 1e-3, 1e-3).unwrap_err().to_string();
        for needle in [
            "1 of 3 entries",
            "rtol 1.0e-3",
            "median|b| 2.000e0",
            "[1]",
            "2.5e0",
        ] {
            assert!(msg.contains(needle), "{needle:?} not in {msg}");
        }
    }
}
