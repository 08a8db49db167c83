//! Tensor comparisons: `rel_err` and `allclose` on NaN, infinities, masked entries and outliers.
//! Test-only; depends on the tensor module only.

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
