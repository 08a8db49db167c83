//! The library's tensors as numpy arrays: one tensor as it is (no copy of the data), or the
//! tensors of a batch stacked along a new first axis, padded with NaN where sequences are shorter.
//! Bindings layer: uses the library's public API only.

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use outlier_probe::tensor::Tensor;

/// `t` as a float32 numpy array of the same shape; the data moves, it is not copied.
pub fn array<'py>(py: Python<'py>, t: Tensor) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let a = ArrayD::from_shape_vec(IxDyn(&t.shape), t.data)
        .map_err(|e| PyRuntimeError::new_err(format!("tensor of shape {:?}: {e}", t.shape)))?;
    Ok(a.into_pyarray(py))
}

/// Tensors of one hook for each sequence of a batch, stacked: `[B, ...]`, each axis as long as
/// the longest sequence's (e.g. `[B, T_max, d]`, `[B, H, T_max, T_max]`); entries beyond a
/// shorter sequence's own shape are NaN, so that they can never pass for values.
///
/// # Errors
/// RuntimeError when the tensors differ in rank (never for one hook of one model).
pub fn stack<'py>(py: Python<'py>, ts: Vec<Tensor>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let rank = ts.first().map_or(0, |t| t.shape.len());
    if ts.iter().any(|t| t.shape.len() != rank) {
        return Err(PyRuntimeError::new_err(
            "stacking tensors of different ranks",
        ));
    }
    let mut shape = vec![0usize; rank];
    for t in &ts {
        for (s, &n) in shape.iter_mut().zip(&t.shape) {
            *s = (*s).max(n);
        }
    }
    let per: usize = shape.iter().product();
    let mut out = vec![f32::NAN; ts.len() * per];
    for (b, t) in ts.iter().enumerate() {
        if t.shape == shape {
            out[b * per..(b + 1) * per].copy_from_slice(&t.data);
            continue;
        }
        // Rows of the last axis are contiguous in both: copy them one by one.
        let last = t.shape.last().copied().unwrap_or(1);
        let rows = t.data.len() / last.max(1);
        for r in 0..rows {
            // Multi-index of row r in t's shape (all axes but the last), then its place in `shape`.
            let (mut rem, mut dst) = (r, 0usize);
            let mut stride = shape.last().copied().unwrap_or(1);
            for ax in (0..rank.saturating_sub(1)).rev() {
                let i = rem % t.shape[ax];
                rem /= t.shape[ax];
                dst += i * stride;
                stride *= shape[ax];
            }
            let src = &t.data[r * last..(r + 1) * last];
            out[b * per + dst..b * per + dst + last].copy_from_slice(src);
        }
    }
    let mut full = vec![ts.len()];
    full.extend(shape);
    array(py, Tensor::new(full, out))
}

/// Logits of a pass as one array: [T, vocab], or [B, T_max, vocab] for a batch.
pub fn logits_array<'py>(
    py: Python<'py>,
    logits: Vec<Option<outlier_probe::tensor::Tensor>>,
    batch: bool,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let ts = logits
        .into_iter()
        .map(|l| l.ok_or_else(|| PyRuntimeError::new_err("logits missing for a sequence")))
        .collect::<PyResult<Vec<_>>>()?;
    if batch {
        stack(py, ts)
    } else {
        array(py, ts.into_iter().next().expect("one sequence"))
    }
}
