//! Fake quantization in place: of weight matrices (quant_weights.wgsl) and of linear layers'
//! inputs (quant_acts.wgsl), both with wg_max.wgsl; wrappers and CPU references.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Shader};
use crate::gpu::{grid_1d, Graph};

const QUANT_WEIGHTS: Shader = Shader {
    entry_points: &["absmax_channel", "absmax_tensor", "apply"],
    ..Shader::main(
        "quant_weights.wgsl",
        concat!(
            include_str!("quant_weights.wgsl"),
            include_str!("wg_max.wgsl")
        ),
    )
};
const QUANT_ACTS: Shader = Shader {
    entry_points: &["absmax", "apply"],
    ..Shader::main(
        "quant_acts.wgsl",
        concat!(include_str!("quant_acts.wgsl"), include_str!("wg_max.wgsl")),
    )
};

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[QUANT_WEIGHTS, QUANT_ACTS];

/// Largest magnitude of a symmetric `bits`-bit integer: 127 for 8 bits, 7 for 4.
pub fn qmax(bits: u32) -> f32 {
    ((1u32 << (bits - 1)) - 1) as f32
}

impl Kernels {
    /// Fake-quantize in place the matrix at element `offset` of `w`: `[k, n]` (or `[n, k]` with
    /// `b_t`), `bits`-bit symmetric absmax, one scale per output channel or for the whole
    /// matrix; input channels flagged in `protect` (`[k]` u32) stay as they are.
    /// `scales` holds at least max(n, 1) floats.
    #[allow(clippy::too_many_arguments)]
    pub fn quant_weight(
        &self,
        g: &mut Graph,
        w: &wgpu::Buffer,
        offset: usize,
        k: usize,
        n: usize,
        b_t: bool,
        per_channel: bool,
        bits: u32,
        protect: &wgpu::Buffer,
        scales: &wgpu::Buffer,
    ) {
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct Qp {
            k: u32,
            n: u32,
            flags: u32,
            qmax: f32,
            offset: u32,
            pad: [u32; 3],
        }
        let qp = Qp {
            k: k as u32,
            n: n as u32,
            flags: b_t as u32 | (per_channel as u32) << 1,
            qmax: qmax(bits),
            offset: offset as u32,
            pad: [0; 3],
        };
        let binds = || vec![w.into(), protect.into(), scales.into()];
        if per_channel {
            g.dispatch(
                "quant_weights:absmax_channel",
                self.pipeline(&QUANT_WEIGHTS, "absmax_channel", &[]),
                &qp,
                binds(),
                [n.div_ceil(64) as u32, 1, 1],
            );
        } else {
            g.dispatch(
                "quant_weights:absmax_tensor",
                self.pipeline(&QUANT_WEIGHTS, "absmax_tensor", &[]),
                &qp,
                binds(),
                [1, 1, 1],
            );
        }
        g.dispatch(
            "quant_weights:apply",
            self.pipeline(&QUANT_WEIGHTS, "apply", &[]),
            &qp,
            binds(),
            grid_1d(k * n, 256),
        );
    }

    /// Dynamic per-tensor fake quantization of a linear layer's input x `[rows, k]` in place:
    /// one scale per sequence (`seqs` sequences of `tmax` rows, valid rows from `info`),
    /// channels flagged in `protect` (`[k]` u32) kept in f32. `scales` holds `seqs` floats.
    #[allow(clippy::too_many_arguments)]
    pub fn quant_act(
        &self,
        g: &mut Graph,
        rows: usize,
        k: usize,
        tmax: usize,
        seqs: usize,
        bits: u32,
        x: &wgpu::Buffer,
        protect: &wgpu::Buffer,
        info: &wgpu::Buffer,
        scales: &wgpu::Buffer,
    ) {
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct Ap {
            rows: u32,
            k: u32,
            tmax: u32,
            qmax: f32,
        }
        let ap = Ap {
            rows: rows as u32,
            k: k as u32,
            tmax: tmax as u32,
            qmax: qmax(bits),
        };
        let binds = || vec![x.into(), protect.into(), info.into(), scales.into()];
        g.dispatch(
            "quant_acts:absmax",
            self.pipeline(&QUANT_ACTS, "absmax", &[]),
            &ap,
            binds(),
            [seqs as u32, 1, 1],
        );
        g.dispatch(
            "quant_acts:apply",
            self.pipeline(&QUANT_ACTS, "apply", &[]),
            &ap,
            binds(),
            grid_1d(rows * k, 256),
        );
    }
}

/// Fake-quantize one value with scale `s` (absmax / qmax).
pub fn fake_quant(x: f32, s: f32, qmax: f32) -> f32 {
    if s > 0.0 {
        (x / s).round_ties_even().clamp(-qmax, qmax) * s
    } else {
        0.0
    }
}

/// Index of element (input channel `kin`, output channel `col`) of a `[k, n]` matrix, or of an
/// `[n, k]` one with `b_t`.
pub(crate) fn matrix_index(kin: usize, col: usize, k: usize, n: usize, b_t: bool) -> usize {
    if b_t {
        col * k + kin
    } else {
        kin * n + col
    }
}

/// CPU reference of `quant_weight` (quant_weights.wgsl) on the matrix alone.
pub fn quant_weight_ref(
    w: &mut [f32],
    (k, n, b_t): (usize, usize, bool),
    per_channel: bool,
    bits: u32,
    protect: &[bool],
) {
    let q = qmax(bits);
    let absmax = |cols: std::ops::Range<usize>, w: &[f32]| {
        let mut m = 0f32;
        for col in cols {
            for (kin, &p) in protect.iter().enumerate().take(k) {
                if !p {
                    m = m.max(w[matrix_index(kin, col, k, n, b_t)].abs());
                }
            }
        }
        m
    };
    let scales: Vec<f32> = if per_channel {
        (0..n).map(|c| absmax(c..c + 1, w)).collect()
    } else {
        vec![absmax(0..n, w); n]
    };
    for (col, amax) in scales.iter().enumerate() {
        let s = amax / q;
        for (kin, &p) in protect.iter().enumerate().take(k) {
            if !p {
                let i = matrix_index(kin, col, k, n, b_t);
                w[i] = fake_quant(w[i], s, q);
            }
        }
    }
}

/// CPU reference of `quant_act` (quant_acts.wgsl) for one sequence's rows x `[rows, k]`.
pub fn quant_act_ref(x: &mut [f32], k: usize, bits: u32, protect: &[bool]) {
    let q = qmax(bits);
    let mut m = 0f32;
    for (i, v) in x.iter().enumerate() {
        if !protect[i % k] {
            m = m.max(v.abs());
        }
    }
    let s = m / q;
    for (i, v) in x.iter_mut().enumerate() {
        if !protect[i % k] {
            *v = fake_quant(*v, s, q);
        }
    }
}

#[cfg(test)]
mod tests;
