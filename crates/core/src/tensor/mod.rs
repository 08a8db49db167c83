//! A plain host tensor: row-major f32 values and a shape. Analyses and tests work on these,
//! and tests compare them with reference tensors elementwise ([`Tensor::allclose`]).
//! Depends on std only; never on the analyses, the report, wgpu or models.

mod allclose;
#[cfg(test)]
mod tests;

pub use allclose::{Closeness, Entry, Mismatch};

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

    /// Row `i` of a tensor seen as `[shape[0], rest]`.
    pub fn row(&self, i: usize) -> &[f32] {
        let w = self.numel() / self.shape[0].max(1);
        &self.data[i * w..(i + 1) * w]
    }

    /// A 2-D tensor `[r, c]` as `[c, r]` (e.g. an nn.Linear weight `[out, in]` as `[in, out]`).
    ///
    /// # Panics
    /// When the tensor is not 2-D.
    pub fn transposed(&self) -> Tensor {
        let [r, c] = self.shape[..] else {
            panic!("transposed: shape {:?} is not 2-D", self.shape)
        };
        let mut out = vec![0f32; r * c];
        for i in 0..r {
            for j in 0..c {
                out[j * r + i] = self.data[i * c + j];
            }
        }
        Tensor::new(vec![c, r], out)
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

    /// Index of the largest value of each row (first one on ties).
    pub fn argmax_rows(&self) -> Vec<usize> {
        (0..self.shape[0]).map(|i| argmax(self.row(i))).collect()
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
