//! Matrix products: 64×64 tiles with 4×4 or 8×8 outputs per invocation (matmul.wgsl,
//! matmul_r8.wgsl; `autotune_tiles` picks per adapter), the few-row matvec (matvec.wgsl, lanes
//! splitting K, reduced by subgroup shuffles or workgroup memory), the kernel it replaced
//! (matvec_percol.wgsl) and the naive one, kept as benchmark baselines; all but the naive one
//! with the fused epilogue (epilogue.wgsl) and f16-weight variants; wrappers, CPU reference.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Overrides, Shader, Variant, P4};
use crate::gpu::{Bind, Graph};

mod autotune;
mod host;
pub use autotune::autotune_tiles;
pub use host::{matmul_ref, pack_f16};

/// The override that makes matmul.wgsl and matvec.wgsl read B as packed f16 pairs.
const W_F16: Overrides = &[("W_F16", 1.0)];
const F16_WEIGHTS: &[Variant] = &[Variant {
    label: "f16 weights",
    overrides: W_F16,
}];
/// matvec.wgsl with one row of A per workgroup (a single token) instead of four.
const ROWS1: Overrides = &[("ROWS", 1.0)];
const ROWS1_F16: Overrides = &[("ROWS", 1.0), ("W_F16", 1.0)];
/// matvec.wgsl for one row reading a gated MLP's gate | up rows (SwiGLU, GeGLU), f32 or f16.
const SWIGLU: Overrides = &[("ROWS", 1.0), ("GLU", 1.0)];
const SWIGLU_F16: Overrides = &[("ROWS", 1.0), ("GLU", 1.0), ("W_F16", 1.0)];
const GEGLU: Overrides = &[("ROWS", 1.0), ("GLU", 2.0)];
const GEGLU_F16: Overrides = &[("ROWS", 1.0), ("GLU", 2.0), ("W_F16", 1.0)];
const MATVEC_VARIANTS: &[Variant] = &[
    Variant {
        label: "f16 weights",
        overrides: W_F16,
    },
    Variant {
        label: "1 row",
        overrides: ROWS1,
    },
    Variant {
        label: "1 row, f16 weights",
        overrides: ROWS1_F16,
    },
    Variant {
        label: "SwiGLU input",
        overrides: SWIGLU,
    },
    Variant {
        label: "SwiGLU input, f16 weights",
        overrides: SWIGLU_F16,
    },
    Variant {
        label: "GeGLU input",
        overrides: GEGLU,
    },
    Variant {
        label: "GeGLU input, f16 weights",
        overrides: GEGLU_F16,
    },
];

const MATMUL: Shader = Shader {
    variants: F16_WEIGHTS,
    ..Shader::main(
        "matmul.wgsl",
        concat!(
            include_str!("matmul.wgsl"),
            include_str!("tile_load.wgsl"),
            include_str!("epilogue.wgsl"),
            include_str!("../common/gelu_fn.wgsl")
        ),
    )
};
/// matmul_r8.wgsl: 64×64 tiles, 8×8 outputs per invocation.
const MATMUL_R8: Shader = Shader {
    variants: F16_WEIGHTS,
    ..Shader::main(
        "matmul_r8.wgsl",
        concat!(
            include_str!("matmul_r8.wgsl"),
            include_str!("tile_load.wgsl"),
            include_str!("epilogue.wgsl"),
            include_str!("../common/gelu_fn.wgsl")
        ),
    )
};
/// matvec.wgsl reduced through workgroup memory (every adapter).
const MATVEC: Shader = Shader {
    variants: MATVEC_VARIANTS,
    ..Shader::main(
        "matvec.wgsl",
        concat!(
            include_str!("matvec.wgsl"),
            include_str!("matvec_reduce_wg.wgsl"),
            include_str!("epilogue.wgsl"),
            include_str!("../common/gelu_fn.wgsl")
        ),
    )
};
/// matvec.wgsl reduced with subgroup shuffles (compiled where SUBGROUP is granted).
const MATVEC_SG: Shader = Shader {
    variants: MATVEC_VARIANTS,
    needs: wgpu::Features::SUBGROUP,
    ..Shader::main(
        "matvec.wgsl (subgroups)",
        concat!(
            include_str!("matvec.wgsl"),
            include_str!("matvec_reduce_sg.wgsl"),
            include_str!("epilogue.wgsl"),
            include_str!("../common/gelu_fn.wgsl")
        ),
    )
};
const MATVEC_PERCOL: Shader = Shader {
    variants: F16_WEIGHTS,
    ..Shader::main(
        "matvec_percol.wgsl",
        concat!(
            include_str!("matvec_percol.wgsl"),
            include_str!("epilogue.wgsl"),
            include_str!("../common/gelu_fn.wgsl")
        ),
    )
};
const NAIVE: Shader = Shader::main("matmul_naive.wgsl", include_str!("matmul_naive.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[MATMUL, MATMUL_R8, MATVEC, MATVEC_SG, MATVEC_PERCOL, NAIVE];

/// Up to this many rows a matmul runs as matvec.wgsl (4 rows per workgroup) instead of 64×64 tiles.
pub const MATVEC_MAX_ROWS: usize = 32;

/// The matmul kernels: 64×64 register-blocked tiles, the few-row matvec (with the reduction
/// the adapter allows, or forced to workgroup memory), and two benchmark baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// matmul.wgsl: 64×64 output tiles, 4×4 outputs per invocation (256 invocations).
    Tiled,
    /// matmul_r8.wgsl: 64×64 output tiles, 8×8 outputs per invocation (64 invocations): twice
    /// the FMAs per tile read.
    Tiled8x8,
    /// matvec.wgsl: 8 lanes split K per 4 output columns, 1 or 4 rows per workgroup, reduced
    /// with subgroup shuffles where the adapter offers them (see `Kernels::matvec_subgroups`).
    Matvec,
    /// matvec.wgsl reduced through workgroup memory even where subgroups are offered.
    MatvecWorkgroup,
    /// matvec_percol.wgsl, the matvec before issue 15: one invocation per output column walks
    /// all of K for up to 8 rows (benchmark baseline).
    MatvecPerColumn,
    /// matmul_naive.wgsl: one output per invocation (benchmark baseline).
    Naive,
}

impl MatmulKernel {
    /// The kind of kernel for `m` rows: matvec up to `MATVEC_MAX_ROWS`, tiles beyond (`Tiled`
    /// stands for either tile shape; `Kernels::pick` says which one runs).
    pub fn for_rows(m: usize) -> Self {
        if m <= MATVEC_MAX_ROWS {
            MatmulKernel::Matvec
        } else {
            MatmulKernel::Tiled
        }
    }
}

/// The tile shapes a prefill matmul can run on, in `Kernels::tiles` order.
pub const TILE_SHAPES: [MatmulKernel; 2] = [MatmulKernel::Tiled8x8, MatmulKernel::Tiled];

/// `flags` bits of matmul.wgsl.
pub const MATMUL_BIAS: u32 = 1;
/// B is `[n, k]` (transposed).
pub const MATMUL_B_T: u32 = 2;
/// GELU, tanh form, after the bias.
pub const MATMUL_GELU_TANH: u32 = 4;
/// GELU, erf form, after the bias.
pub const MATMUL_GELU_ERF: u32 = 8;
/// Add the residual binding to the output.
pub const MATMUL_RESID: u32 = 16;
/// ReLU after the bias (OPT's fc1), when no GELU is asked for.
pub const MATMUL_RELU: u32 = 32;
/// matvec.wgsl only: rows of B start on 16-byte boundaries; read through the vec4 bindings.
const MATVEC_VEC: u32 = 64;

/// What a matmul does to each output after the dot product (epilogue.wgsl): GELU (tanh or erf
/// form) after the bias, then add a residual `[m, n]`.
/// Also carries how B is stored: `b_f16` reads it as f16 pairs packed in u32 words
/// (`pack_f16`), with f32 arithmetic.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// GELU after the bias: `Some(false)` tanh form, `Some(true)` erf form.
    pub gelu: Option<bool>,
    /// Residual `[m, n]` added last.
    pub resid: Option<&'a wgpu::Buffer>,
    /// ReLU after the bias (with `gelu` None).
    pub relu: bool,
    /// B holds f16 pairs packed in u32 words.
    pub b_f16: bool,
    /// A prologue rather than an epilogue: A is a gated MLP's gate | up rows `[m, 2k]` and the
    /// product reads silu(gate)·up (`Some(false)`, SwiGLU) or gelu_tanh(gate)·up (`Some(true)`,
    /// GeGLU) — swiglu.wgsl fused into the down projection. Matvec kinds with one row only
    /// (`Kernels::glu_fusable`).
    pub glu: Option<bool>,
}

impl Kernels {
    /// Whether a matmul of `m` rows can read a GLU input itself (`Epilogue::glu`): one row (a
    /// decode step of one sequence) on the matvec `matmul_epi` picks (not while
    /// `matvec_baseline` runs the pre-issue-15 kernel, which has no GLU input).
    pub fn glu_fusable(&self, m: usize) -> bool {
        m == 1
            && MatmulKernel::for_rows(m) == MatmulKernel::Matvec
            && !self
                .matvec_baseline
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the engine runs for `m` rows: matvec up to `MATVEC_MAX_ROWS`, else the tile shape
    /// chosen for this adapter (`TILE_SHAPES[Kernels::tiles]`: 8×8 per invocation unless
    /// `autotune_tiles` found the other faster).
    pub fn pick(&self, m: usize) -> MatmulKernel {
        match MatmulKernel::for_rows(m) {
            MatmulKernel::Tiled => {
                TILE_SHAPES[self.tiles.load(std::sync::atomic::Ordering::Relaxed) as usize]
            }
            kind => kind,
        }
    }

    /// `c[m, n] = a[m, k] · b[k, n] (+ bias[n])`; with `b_t`, b is `[n, k]`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        g: &mut Graph,
        m: usize,
        n: usize,
        k: usize,
        a: Bind,
        b: Bind,
        bias: Option<&wgpu::Buffer>,
        c: Bind,
        b_t: bool,
    ) {
        self.matmul_epi(g, m, n, k, a, b, bias, c, b_t, Epilogue::default());
    }

    /// `matmul` with an epilogue fused in, on the kernel the row count calls for.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_epi(
        &self,
        g: &mut Graph,
        m: usize,
        n: usize,
        k: usize,
        a: Bind,
        b: Bind,
        bias: Option<&wgpu::Buffer>,
        c: Bind,
        b_t: bool,
        epi: Epilogue,
    ) {
        let mut kind = self.pick(m);
        let baseline = self
            .matvec_baseline
            .load(std::sync::atomic::Ordering::Relaxed);
        if kind == MatmulKernel::Matvec && baseline {
            kind = MatmulKernel::MatvecPerColumn;
        }
        self.matmul_fused(g, kind, m, n, k, a, b, bias, c, b_t, epi);
    }

    /// A matmul on a named kernel (the benchmarks compare them) with an epilogue (GELU,
    /// residual add) fused into the output write. The naive kernel has no epilogue.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_fused(
        &self,
        g: &mut Graph,
        kind: MatmulKernel,
        m: usize,
        n: usize,
        k: usize,
        a: Bind,
        b: Bind,
        bias: Option<&wgpu::Buffer>,
        c: Bind,
        b_t: bool,
        epi: Epilogue,
    ) {
        assert!(
            kind != MatmulKernel::Naive
                || (epi.gelu.is_none() && epi.resid.is_none() && !epi.b_f16 && !epi.relu),
            "the naive matmul has no epilogue and reads f32 only"
        );
        assert!(
            epi.glu.is_none()
                || (m == 1 && matches!(kind, MatmulKernel::Matvec | MatmulKernel::MatvecWorkgroup)),
            "a GLU input is read by the one-row matvec only"
        );
        let flags = if bias.is_some() { MATMUL_BIAS } else { 0 }
            | if b_t { MATMUL_B_T } else { 0 }
            | match epi.gelu {
                Some(false) => MATMUL_GELU_TANH,
                Some(true) => MATMUL_GELU_ERF,
                None => 0,
            }
            | if epi.resid.is_some() { MATMUL_RESID } else { 0 }
            | if epi.relu { MATMUL_RELU } else { 0 };
        let matvec = matches!(kind, MatmulKernel::Matvec | MatmulKernel::MatvecWorkgroup);
        // matvec.wgsl's 16-byte loads: rows of B (and of A for [N, K]) start on 16 bytes.
        let vec_align = if epi.b_f16 { 8 } else { 4 };
        let vec = matvec
            && if b_t {
                k % vec_align == 0
            } else {
                n % vec_align == 0
            };
        let flags = flags | if vec { MATVEC_VEC } else { 0 };
        let params = P4 {
            a: m as u32,
            b: n as u32,
            c: k as u32,
            d: flags,
        };
        let (a4, b4) = if vec {
            (a.clone(), b.clone())
        } else {
            ((&self.dummy).into(), (&self.dummy2).into())
        };
        let mut binds = vec![a, b, bias.unwrap_or(&self.dummy).into(), c];
        if kind != MatmulKernel::Naive {
            binds.push(epi.resid.unwrap_or(&self.dummy2).into());
        }
        if matvec {
            binds.extend([a4, b4]);
        }
        let f16 = epi.b_f16;
        let (label, pipeline, grid) = match kind {
            MatmulKernel::Matvec | MatmulKernel::MatvecWorkgroup => {
                let sg = kind == MatmulKernel::Matvec && self.matvec_subgroups;
                let shader = if sg { &MATVEC_SG } else { &MATVEC };
                let label = if f16 { "matvec f16" } else { "matvec" };
                let overrides = match (epi.glu, m == 1, f16) {
                    (Some(false), _, false) => SWIGLU,
                    (Some(false), _, true) => SWIGLU_F16,
                    (Some(true), _, false) => GEGLU,
                    (Some(true), _, true) => GEGLU_F16,
                    (None, true, true) => ROWS1_F16,
                    (None, true, false) => ROWS1,
                    (None, false, true) => W_F16,
                    (None, false, false) => &[],
                };
                // 32 columns per workgroup over x (and z), row blocks of 1 or 4 over y.
                let [x, z, _] = crate::gpu::grid_1d(n.div_ceil(32), 1);
                let y = if m == 1 { 1 } else { m.div_ceil(4) as u32 };
                (label, self.pipeline(shader, "main", overrides), [x, y, z])
            }
            MatmulKernel::MatvecPerColumn => {
                let ov = if f16 { W_F16 } else { &[] };
                let grid = [n.div_ceil(64) as u32, m.div_ceil(8) as u32, 1];
                (
                    "matvec_percol",
                    self.pipeline(&MATVEC_PERCOL, "main", ov),
                    grid,
                )
            }
            MatmulKernel::Tiled => {
                let ov = if f16 { W_F16 } else { &[] };
                let label = if f16 { "matmul f16" } else { "matmul" };
                let grid = [n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1];
                (label, self.pipeline(&MATMUL, "main", ov), grid)
            }
            MatmulKernel::Tiled8x8 => {
                let ov = if f16 { W_F16 } else { &[] };
                let label = if f16 { "matmul 8x8 f16" } else { "matmul 8x8" };
                let grid = [n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1];
                (label, self.pipeline(&MATMUL_R8, "main", ov), grid)
            }
            MatmulKernel::Naive => {
                let grid = [n.div_ceil(16) as u32, m.div_ceil(16) as u32, 1];
                ("matmul_naive", self.main_pipeline(&NAIVE), grid)
            }
        };
        g.dispatch(label, pipeline, &params, binds, grid);
        let wb = if epi.b_f16 { 2.0 } else { 4.0 };
        let a_width = if epi.glu.is_some() { 2.0 } else { 1.0 };
        let (m, n, k) = (m as f64, n as f64, k as f64);
        g.cost(
            2.0 * m * n * k,
            4.0 * (a_width * m * k + m * n) + wb * k * n,
        );
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_matvec;
