//! Matrix products with the weights kept in ggml's block quantization (Q8_0, Q4_0, Q4_1, Q5_0,
//! Q5_1, Q4_K, Q5_K, Q6_K), decoded in registers inside the kernel with f32 accumulation
//! (qmatvec.wgsl, with the matmul family's fused epilogue); the repacking of GGUF blocks into the
//! u32 words the kernel reads (`repack.rs`), Q8_0 quantization of f32 weights, the wrapper and the
//! CPU reference. Depends on gpu, the kernels registry and the GGUF block types.

use anyhow::{bail, Result};

use super::matmul::{Epilogue, MATMUL_BIAS, MATMUL_GELU_ERF, MATMUL_GELU_TANH, MATMUL_RESID};
use super::{Kernels, Overrides, Shader, Variant};
use crate::gguf::GgmlType;
use crate::gpu::{Bind, Graph};

mod repack;

pub use repack::{quantize_q8_0, repack, QMatrix};

/// A ggml block type the quantized kernels decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum QType {
    /// 32 × i8 and an f16 scale (34 bytes).
    Q8_0,
    /// 32 × 4 bits, f16 scale, offset −8 (18 bytes).
    Q4_0,
    /// 32 × 4 bits, f16 scale and f16 min (20 bytes).
    Q4_1,
    /// 32 × 5 bits, f16 scale, offset −16 (22 bytes).
    Q5_0,
    /// 32 × 5 bits, f16 scale and f16 min (24 bytes).
    Q5_1,
    /// 256 × 4 bits in 8 sub-blocks with 6-bit scales and mins (144 bytes).
    Q4_K,
    /// 256 × 5 bits in 8 sub-blocks with 6-bit scales and mins (176 bytes).
    Q5_K,
    /// 256 × 6 bits in 16 sub-blocks with i8 scales (210 bytes).
    Q6_K,
}

impl QType {
    /// Every type, in ggml id order.
    pub const ALL: [QType; 8] = [
        QType::Q4_0,
        QType::Q4_1,
        QType::Q5_0,
        QType::Q5_1,
        QType::Q8_0,
        QType::Q4_K,
        QType::Q5_K,
        QType::Q6_K,
    ];

    /// The kernel's type for a ggml type, `None` for types it does not decode (F32, F16, BF16,
    /// Q2_K, Q3_K, …: those are dequantized at load).
    pub fn from_ggml(t: GgmlType) -> Option<Self> {
        QType::ALL.into_iter().find(|q| q.ggml() == t)
    }

    /// The ggml type (also the shader's QTYPE override value).
    pub fn ggml(self) -> GgmlType {
        match self {
            QType::Q8_0 => GgmlType::Q8_0,
            QType::Q4_0 => GgmlType::Q4_0,
            QType::Q4_1 => GgmlType::Q4_1,
            QType::Q5_0 => GgmlType::Q5_0,
            QType::Q5_1 => GgmlType::Q5_1,
            QType::Q4_K => GgmlType::Q4_K,
            QType::Q5_K => GgmlType::Q5_K,
            QType::Q6_K => GgmlType::Q6_K,
        }
    }

    /// Elements per block: 32, or 256 for the K-quants.
    pub fn block_elems(self) -> usize {
        match self {
            QType::Q4_K | QType::Q5_K | QType::Q6_K => 256,
            _ => 32,
        }
    }

    /// Bytes per block in a GGUF file.
    pub fn block_bytes(self) -> usize {
        match self {
            QType::Q8_0 => 34,
            QType::Q4_0 => 18,
            QType::Q4_1 => 20,
            QType::Q5_0 => 22,
            QType::Q5_1 => 24,
            QType::Q4_K => 144,
            QType::Q5_K => 176,
            QType::Q6_K => 210,
        }
    }

    fn index(self) -> usize {
        QType::ALL.iter().position(|&q| q == self).expect("in ALL")
    }
}

const fn variant(label: &'static str, overrides: Overrides) -> Variant {
    Variant { label, overrides }
}

/// One compiled variant per type besides the default (Q8_0), in `QType::ALL` order.
const OVERRIDES: [Overrides; 8] = [
    &[("QTYPE", 2.0)],
    &[("QTYPE", 3.0)],
    &[("QTYPE", 6.0)],
    &[("QTYPE", 7.0)],
    &[("QTYPE", 8.0)],
    &[("QTYPE", 12.0)],
    &[("QTYPE", 13.0)],
    &[("QTYPE", 14.0)],
];
const LABELS: [&str; 8] = [
    "qmatvec Q4_0",
    "qmatvec Q4_1",
    "qmatvec Q5_0",
    "qmatvec Q5_1",
    "qmatvec Q8_0",
    "qmatvec Q4_K",
    "qmatvec Q5_K",
    "qmatvec Q6_K",
];
const VARIANTS: &[Variant] = &[
    variant("Q4_0", OVERRIDES[0]),
    variant("Q4_1", OVERRIDES[1]),
    variant("Q5_0", OVERRIDES[2]),
    variant("Q5_1", OVERRIDES[3]),
    variant("Q8_0", OVERRIDES[4]),
    variant("Q4_K", OVERRIDES[5]),
    variant("Q5_K", OVERRIDES[6]),
    variant("Q6_K", OVERRIDES[7]),
];

const QMATVEC: Shader = Shader {
    variants: VARIANTS,
    ..Shader::main(
        "qmatvec.wgsl",
        concat!(
            include_str!("qmatvec.wgsl"),
            include_str!("../matmul/epilogue.wgsl"),
            include_str!("../common/gelu_fn.wgsl")
        ),
    )
};

const QEMBED: Shader = Shader {
    variants: VARIANTS,
    ..Shader::main(
        "qembed.wgsl",
        concat!(include_str!("qembed.wgsl"), include_str!("qdecode.wgsl")),
    )
};
const QDEQUANT: Shader = Shader {
    variants: VARIANTS,
    ..Shader::main(
        "qdequant.wgsl",
        concat!(include_str!("qdequant.wgsl"), include_str!("qdecode.wgsl")),
    )
};

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[QMATVEC, QEMBED, QDEQUANT];

/// Weight rows per workgroup of qmatvec.wgsl.
const WR: usize = 8;
/// Rows of A per workgroup of qmatvec.wgsl.
const RB: usize = 8;

/// Parameter block of qmatvec.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct QParams {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    rows: u32,
    col_off: u32,
    hoff: u32,
    pad: u32,
}

/// A quantized weight matrix on the GPU, as `repack` lays it out: `rows` nn.Linear rows of `k`
/// weights, writing output columns `col_off .. col_off + rows`.
#[derive(Clone, Debug)]
pub struct QWeight {
    /// Block type.
    pub ty: QType,
    /// The repacked words ([`QMatrix::words`]).
    pub buf: wgpu::Buffer,
    /// Weight rows (output columns).
    pub rows: usize,
    /// The output column of row 0.
    pub col_off: usize,
    /// Word offset of the scale region ([`QMatrix::hoff`]).
    pub hoff: usize,
}

impl Kernels {
    /// `c[i, col_off + j] = a[i, :] · W[j, :] (+ bias[col_off + j])` for i < m, j < w.rows, with
    /// `epi` (GELU/ReLU, residual `[m, n]`) fused in; `c` and the residual are `[m, n]`, `a` is
    /// `[m, k]`, W is `w` (nn.Linear layout `[rows, k]`, blocks along k; `k` a multiple of the
    /// type's block). Panics on a `k` the type cannot hold (the uploader checks it first).
    #[allow(clippy::too_many_arguments)]
    pub fn qmatvec(
        &self,
        g: &mut Graph,
        m: usize,
        n: usize,
        k: usize,
        a: Bind,
        w: &QWeight,
        bias: Option<&wgpu::Buffer>,
        c: Bind,
        epi: Epilogue,
    ) {
        assert!(
            k % w.ty.block_elems() == 0,
            "{:?} needs k a multiple of {}",
            w.ty,
            w.ty.block_elems()
        );
        let flags = if bias.is_some() { MATMUL_BIAS } else { 0 }
            | match epi.gelu {
                Some(false) => MATMUL_GELU_TANH,
                Some(true) => MATMUL_GELU_ERF,
                None => 0,
            }
            | if epi.resid.is_some() { MATMUL_RESID } else { 0 }
            | if epi.relu {
                super::matmul::MATMUL_RELU
            } else {
                0
            };
        let params = QParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            flags,
            rows: w.rows as u32,
            col_off: w.col_off as u32,
            hoff: w.hoff as u32,
            pad: 0,
        };
        let binds = vec![
            a,
            (&w.buf).into(),
            bias.unwrap_or(&self.dummy).into(),
            c,
            epi.resid.unwrap_or(&self.dummy2).into(),
        ];
        let i = w.ty.index();
        let pipeline = self.pipeline(&QMATVEC, "main", OVERRIDES[i]);
        let grid = [w.rows.div_ceil(WR) as u32, m.div_ceil(RB) as u32, 1];
        g.dispatch(LABELS[i], pipeline, &params, binds, grid);
        let wbytes = (w.rows * k / w.ty.block_elems() * w.ty.block_bytes()) as f64;
        let (m, r, k) = (m as f64, w.rows as f64, k as f64);
        g.cost(2.0 * m * r * k, 4.0 * (m * k + m * r) + wbytes);
    }
}

impl Kernels {
    /// Token embedding from a vocabulary chunk kept in ggml blocks (`w`: rows `start ..
    /// start + w.rows` of the `[V, d]` matrix): `resid[r, :] = tok_emb[r, :] = W[tokens[r], :]`
    /// for the `rows` rows whose token falls in the chunk (embed.wgsl's mode 0: no positions).
    #[allow(clippy::too_many_arguments)]
    pub fn qembed(
        &self,
        g: &mut Graph,
        (rows, d): (usize, usize),
        start: usize,
        tokens: &wgpu::Buffer,
        w: &QWeight,
        resid: &wgpu::Buffer,
        tok_emb: &wgpu::Buffer,
    ) {
        let params: [u32; 8] = [
            rows as u32,
            d as u32,
            start as u32,
            w.rows as u32,
            w.hoff as u32,
            0,
            0,
            0,
        ];
        let binds = vec![tokens.into(), (&w.buf).into(), resid.into(), tok_emb.into()];
        let pipeline = self.pipeline(&QEMBED, "main", OVERRIDES[w.ty.index()]);
        g.dispatch(
            "qembed",
            pipeline,
            &params,
            binds,
            super::grid_1d(rows * d, 256),
        );
    }
}

impl Kernels {
    /// `out[(w.col_off + j)·k + c] = W[j, c]`: the quantized matrix `w` (`[w.rows, k]`)
    /// dequantized into rows `w.col_off ..` of an f32 `[n, k]` matrix (the prefill path: a
    /// layer's matrices into one scratch matrix for the tiled matmul). Values bit for bit
    /// `gguf::dequantize`'s.
    pub fn qdequant(&self, g: &mut Graph, k: usize, w: &QWeight, out: &wgpu::Buffer) {
        let params: [u32; 8] = [
            w.rows as u32,
            k as u32,
            w.col_off as u32,
            0,
            w.hoff as u32,
            0,
            0,
            0,
        ];
        let binds = vec![(&w.buf).into(), out.into()];
        let pipeline = self.pipeline(&QDEQUANT, "main", OVERRIDES[w.ty.index()]);
        g.dispatch(
            "qdequant",
            pipeline,
            &params,
            binds,
            super::grid_1d(w.rows * k, 256),
        );
        let wbytes = (w.rows * k / w.ty.block_elems() * w.ty.block_bytes()) as f64;
        g.cost(0.0, wbytes + 4.0 * (w.rows * k) as f64);
    }
}

/// Check that a `[rows, k]` matrix fits type `ty`'s blocks: `k` a multiple of the block size.
///
/// # Errors
/// Names the tensor, its row length and the block size.
pub fn check_shape(ty: QType, name: &str, k: usize) -> Result<()> {
    if k % ty.block_elems() != 0 {
        bail!(
            "{name}: rows of {k} weights are not a whole number of {ty:?} blocks ({} weights each)",
            ty.block_elems()
        );
    }
    Ok(())
}

/// CPU reference of `qmatvec` in f64 over the dequantized weights `w` (`[rows, k]`, as
/// `gguf::dequantize` gives them): `c[i, j] = a[i, :] · w[j, :] (+ bias[j])`, `[m, rows]`.
pub fn qmatvec_ref(
    m: usize,
    rows: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f64> {
    super::matmul::matmul_ref(m, rows, k, a, w, bias, true)
}

#[cfg(test)]
mod tests;
