//! The WGSL kernels and their pipelines. The op graph they record into lives in `gpu`
//! (re-exported here).
//!
//! Binding convention for every kernel: binding 0 is a uniform parameter block, bindings 1.. are
//! storage buffers in the order the shader declares them.

use anyhow::Result;

use crate::gpu::GpuContext;
pub use crate::gpu::{grid_1d, grid_rows, Bind, Cost, EncodeCache, Graph, Sample};

/// Every shader of the engine, by file name, as compiled into the binary. epilogue.wgsl,
/// gelu_fn.wgsl and wg_max.wgsl are shared functions, appended to the kernels that use them.
pub const SHADERS: &[(&str, &str)] = &[
    ("embed.wgsl", include_str!("../shaders/embed.wgsl")),
    ("layernorm.wgsl", include_str!("../shaders/layernorm.wgsl")),
    (
        "matmul.wgsl",
        concat!(
            include_str!("../shaders/matmul.wgsl"),
            include_str!("../shaders/epilogue.wgsl"),
            include_str!("../shaders/gelu_fn.wgsl")
        ),
    ),
    (
        "gelu.wgsl",
        concat!(
            include_str!("../shaders/gelu.wgsl"),
            include_str!("../shaders/gelu_fn.wgsl")
        ),
    ),
    ("add.wgsl", include_str!("../shaders/add.wgsl")),
    ("kv_store.wgsl", include_str!("../shaders/kv_store.wgsl")),
    ("attention.wgsl", include_str!("../shaders/attention.wgsl")),
    ("edit.wgsl", include_str!("../shaders/edit.wgsl")),
    ("rmsnorm.wgsl", include_str!("../shaders/rmsnorm.wgsl")),
    ("rope.wgsl", include_str!("../shaders/rope.wgsl")),
    ("swiglu.wgsl", include_str!("../shaders/swiglu.wgsl")),
    (
        "matvec.wgsl",
        concat!(
            include_str!("../shaders/matvec.wgsl"),
            include_str!("../shaders/epilogue.wgsl"),
            include_str!("../shaders/gelu_fn.wgsl")
        ),
    ),
    (
        "head_scale.wgsl",
        include_str!("../shaders/head_scale.wgsl"),
    ),
    (
        "quant_weights.wgsl",
        concat!(
            include_str!("../shaders/quant_weights.wgsl"),
            include_str!("../shaders/wg_max.wgsl")
        ),
    ),
    (
        "quant_acts.wgsl",
        concat!(
            include_str!("../shaders/quant_acts.wgsl"),
            include_str!("../shaders/wg_max.wgsl")
        ),
    ),
    (
        "matmul_naive.wgsl",
        include_str!("../shaders/matmul_naive.wgsl"),
    ),
    ("fma_peak.wgsl", include_str!("../shaders/fma_peak.wgsl")),
];

/// The compute entry points of each shader: `main`, except where one concern takes steps.
pub fn entry_points(name: &str) -> &'static [&'static str] {
    match name {
        "head_scale.wgsl" => &["factor", "apply"],
        "quant_weights.wgsl" => &["absmax_channel", "absmax_tensor", "apply"],
        "quant_acts.wgsl" => &["absmax", "apply"],
        _ => &["main"],
    }
}

/// Up to this many rows a matmul runs as matvec.wgsl (8 rows per block) instead of 64×64 tiles.
pub const MATVEC_MAX_ROWS: usize = 32;

fn source(name: &str) -> &'static str {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .expect("shader listed in SHADERS")
}

/// Largest magnitude of a symmetric `bits`-bit integer: 127 for 8 bits, 7 for 4.
pub fn qmax(bits: u32) -> f32 {
    ((1u32 << (bits - 1)) - 1) as f32
}

/// The three matmul kernels: 64×64 register-blocked tiles, few-row matvec, and the naive
/// one-output-per-invocation baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    Tiled,
    Matvec,
    Naive,
}

impl MatmulKernel {
    /// What the engine runs for `m` rows: matvec up to `MATVEC_MAX_ROWS`, tiles beyond.
    pub fn for_rows(m: usize) -> Self {
        if m <= MATVEC_MAX_ROWS {
            MatmulKernel::Matvec
        } else {
            MatmulKernel::Tiled
        }
    }
}

/// `flags` bits of matmul.wgsl.
pub const MATMUL_BIAS: u32 = 1;
pub const MATMUL_B_T: u32 = 2;
pub const MATMUL_GELU_TANH: u32 = 4;
pub const MATMUL_GELU_ERF: u32 = 8;
pub const MATMUL_RESID: u32 = 16;

/// What a matmul does to each output after the dot product (epilogue.wgsl): GELU (tanh or erf
/// form) after the bias, then add a residual [m, n].
/// Also carries how B is stored: `b_f16` reads it as f16 pairs packed in u32 words
/// (`model::pack_f16`), with f32 arithmetic.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub gelu: Option<bool>,
    pub resid: Option<&'a wgpu::Buffer>,
    pub b_f16: bool,
}

/// One pipeline per kernel, and the recording of each op's dispatch.
pub struct Kernels {
    /// Bound where a kernel's optional input is unused.
    pub dummy: wgpu::Buffer,
    /// A second placeholder, for an unused writable binding next to `dummy`.
    pub dummy2: wgpu::Buffer,
    pub embed: wgpu::ComputePipeline,
    pub layernorm: wgpu::ComputePipeline,
    pub matmul: wgpu::ComputePipeline,
    pub gelu: wgpu::ComputePipeline,
    pub add: wgpu::ComputePipeline,
    pub kv_store: wgpu::ComputePipeline,
    pub attention: wgpu::ComputePipeline,
    pub edit: wgpu::ComputePipeline,
    pub rmsnorm: wgpu::ComputePipeline,
    pub rope: wgpu::ComputePipeline,
    pub swiglu: wgpu::ComputePipeline,
    pub matvec: wgpu::ComputePipeline,
    /// matmul and matvec reading f16 weights (override W_F16).
    pub matmul_f16: wgpu::ComputePipeline,
    pub matvec_f16: wgpu::ComputePipeline,
    /// One output per invocation: the benchmarks' baseline.
    pub matmul_naive: wgpu::ComputePipeline,
    /// Register-only FMAs: the benchmarks' arithmetic ceiling.
    pub fma_peak: wgpu::ComputePipeline,
    pub head_factor: wgpu::ComputePipeline,
    pub head_apply: wgpu::ComputePipeline,
    /// quant_weights.wgsl: absmax_channel, absmax_tensor, apply.
    pub qw: [wgpu::ComputePipeline; 3],
    /// quant_acts.wgsl: absmax, apply.
    pub qa: [wgpu::ComputePipeline; 2],
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        // attention.wgsl binds 10 storage buffers (the most of any kernel).
        let need = 10;
        if ctx.limits.max_storage_buffers_per_shader_stage < need {
            anyhow::bail!(
                "the adapter '{}' allows {} storage buffers per shader stage; the attention kernel needs {need}",
                ctx.info.name,
                ctx.limits.max_storage_buffers_per_shader_stage
            );
        }
        ctx.checked("compiling the WGSL kernels", || {
            let p = |name: &str| {
                let m = ctx.shader(name, source(name));
                ctx.pipeline(name, &m, "main", &[])
            };
            let steps = |name: &str| -> Vec<wgpu::ComputePipeline> {
                let m = ctx.shader(name, source(name));
                entry_points(name)
                    .iter()
                    .map(|e| ctx.pipeline(&format!("{name}:{e}"), &m, e, &[]))
                    .collect()
            };
            let [qw0, qw1, qw2]: [wgpu::ComputePipeline; 3] = steps("quant_weights.wgsl")
                .try_into()
                .map_err(|_| anyhow::anyhow!("quant_weights.wgsl entry points"))?;
            let [qa0, qa1]: [wgpu::ComputePipeline; 2] = steps("quant_acts.wgsl")
                .try_into()
                .map_err(|_| anyhow::anyhow!("quant_acts.wgsl entry points"))?;
            Ok(Self {
                dummy: ctx.storage("dummy", 16)?,
                dummy2: ctx.storage("dummy2", 16)?,
                embed: p("embed.wgsl"),
                layernorm: p("layernorm.wgsl"),
                matmul: p("matmul.wgsl"),
                gelu: p("gelu.wgsl"),
                add: p("add.wgsl"),
                kv_store: p("kv_store.wgsl"),
                attention: p("attention.wgsl"),
                edit: p("edit.wgsl"),
                rmsnorm: p("rmsnorm.wgsl"),
                rope: p("rope.wgsl"),
                swiglu: p("swiglu.wgsl"),
                matvec: p("matvec.wgsl"),
                matmul_naive: p("matmul_naive.wgsl"),
                fma_peak: p("fma_peak.wgsl"),
                matmul_f16: {
                    let m = ctx.shader("matmul.wgsl", source("matmul.wgsl"));
                    ctx.pipeline("matmul.wgsl (f16 weights)", &m, "main", &[("W_F16", 1.0)])
                },
                matvec_f16: {
                    let m = ctx.shader("matvec.wgsl", source("matvec.wgsl"));
                    ctx.pipeline("matvec.wgsl (f16 weights)", &m, "main", &[("W_F16", 1.0)])
                },
                head_factor: {
                    let m = ctx.shader("head_scale.wgsl", source("head_scale.wgsl"));
                    ctx.pipeline("head_scale.wgsl:factor", &m, "factor", &[])
                },
                head_apply: {
                    let m = ctx.shader("head_scale.wgsl", source("head_scale.wgsl"));
                    ctx.pipeline("head_scale.wgsl:apply", &m, "apply", &[])
                },
                qw: [qw0, qw1, qw2],
                qa: [qa0, qa1],
            })
        })
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct P4 {
    a: u32,
    b: u32,
    c: u32,
    d: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LnParams {
    rows: u32,
    d: u32,
    eps: f32,
    pad: u32,
}

/// Parameters of attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttnParams {
    pub rows: u32,
    pub n_head: u32,
    pub head_dim: u32,
    pub d: u32,
    /// Positions per sequence in the KV cache.
    pub cap: u32,
    /// 1: write scores and probabilities.
    pub capture: u32,
    /// Key stride of the capture buffers.
    pub cap_keys: u32,
    pub scale: f32,
    /// 1: remove the keys marked in the knockout mask from later queries' attention.
    pub knock_on: u32,
    /// Width of the fused q|k|v rows (0: 3 × d).
    pub qkv_width: u32,
    /// Key/value width per cached position (0: d).
    pub kv_dim: u32,
    /// Query heads per key/value head (0: 1).
    pub group: u32,
    /// Attention variant code (see attention.wgsl; 0 = softmax).
    pub variant: u32,
    pub clip_gamma: f32,
    pub clip_eta: f32,
    /// Sigmoid attention's T (0: the number of keys the query sees).
    pub sig_t: u32,
}

impl Kernels {
    /// resid = wte[tok] + wpe[pos] for the tokens inside one vocabulary chunk `[start, start+count)`.
    #[allow(clippy::too_many_arguments)]
    pub fn embed(
        &self,
        g: &mut Graph,
        rows: usize,
        d: usize,
        start: usize,
        count: usize,
        tokens: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        wte_chunk: &wgpu::Buffer,
        wpe: &wgpu::Buffer,
        resid: &wgpu::Buffer,
        tok_emb: &wgpu::Buffer,
        pos_emb: &wgpu::Buffer,
    ) {
        self.embed_opt(
            g,
            rows,
            d,
            start,
            count,
            tokens,
            rowinfo,
            wte_chunk,
            Some(wpe),
            resid,
            tok_emb,
            pos_emb,
        );
    }

    /// `embed` with an optional position table (None for RoPE models: resid = wte[tok]).
    #[allow(clippy::too_many_arguments)]
    pub fn embed_opt(
        &self,
        g: &mut Graph,
        rows: usize,
        d: usize,
        start: usize,
        count: usize,
        tokens: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        wte_chunk: &wgpu::Buffer,
        wpe: Option<&wgpu::Buffer>,
        resid: &wgpu::Buffer,
        tok_emb: &wgpu::Buffer,
        pos_emb: &wgpu::Buffer,
    ) {
        g.dispatch(
            "embed",
            &self.embed,
            &[
                rows as u32,
                d as u32,
                start as u32,
                count as u32,
                wpe.is_some() as u32,
                0,
                0,
                0,
            ],
            vec![
                tokens.into(),
                rowinfo.into(),
                wte_chunk.into(),
                wpe.unwrap_or(&self.dummy).into(),
                resid.into(),
                tok_emb.into(),
                pos_emb.into(),
            ],
            grid_1d(rows * d, 256),
        );
    }

    /// y = RMSNorm(x) · weight over rows of width d.
    #[allow(clippy::too_many_arguments)]
    pub fn rmsnorm(
        &self,
        g: &mut Graph,
        rows: usize,
        d: usize,
        eps: f32,
        x: &wgpu::Buffer,
        w: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) {
        g.dispatch(
            "rmsnorm",
            &self.rmsnorm,
            &LnParams {
                rows: rows as u32,
                d: d as u32,
                eps,
                pad: 0,
            },
            vec![x.into(), w.into(), y.into()],
            grid_rows(rows),
        );
        g.cost(4.0 * (rows * d) as f64, 8.0 * (rows * d) as f64);
    }

    /// RoPE in place on the first `heads` heads (query then key heads) of each qkv row.
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &self,
        g: &mut Graph,
        rows: usize,
        heads: usize,
        head_dim: usize,
        qkv_width: usize,
        rowinfo: &wgpu::Buffer,
        cos: &wgpu::Buffer,
        sin: &wgpu::Buffer,
        qkv: &wgpu::Buffer,
    ) {
        g.dispatch(
            "rope",
            &self.rope,
            &P4 {
                a: rows as u32,
                b: heads as u32,
                c: head_dim as u32,
                d: qkv_width as u32,
            },
            vec![rowinfo.into(), cos.into(), sin.into(), qkv.into()],
            grid_1d(rows * heads * (head_dim / 2), 256),
        );
    }

    /// post = silu(gate) · up from the fused [rows, 2I] gate|up buffer.
    pub fn swiglu(
        &self,
        g: &mut Graph,
        rows: usize,
        inner: usize,
        gu: &wgpu::Buffer,
        post: &wgpu::Buffer,
    ) {
        g.dispatch(
            "swiglu",
            &self.swiglu,
            &P4 {
                a: rows as u32,
                b: inner as u32,
                c: 0,
                d: 0,
            },
            vec![gu.into(), post.into()],
            grid_1d(rows * inner, 256),
        );
        g.cost(6.0 * (rows * inner) as f64, 12.0 * (rows * inner) as f64);
    }

    /// y = LayerNorm(x) · gamma + beta over rows of width d.
    #[allow(clippy::too_many_arguments)]
    pub fn layernorm(
        &self,
        g: &mut Graph,
        rows: usize,
        d: usize,
        eps: f32,
        x: &wgpu::Buffer,
        gamma: &wgpu::Buffer,
        beta: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) {
        g.dispatch(
            "layernorm",
            &self.layernorm,
            &LnParams {
                rows: rows as u32,
                d: d as u32,
                eps,
                pad: 0,
            },
            vec![x.into(), gamma.into(), beta.into(), y.into()],
            grid_rows(rows),
        );
        g.cost(8.0 * (rows * d) as f64, 8.0 * (rows * d) as f64);
    }

    /// c[m, n] = a[m, k] · b[k, n] (+ bias[n]); with `b_t`, b is [n, k].
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
        let kind = MatmulKernel::for_rows(m);
        self.matmul_fused(g, kind, m, n, k, a, b, bias, c, b_t, epi);
    }

    /// A matmul on a named kernel (the benchmarks compare all three) with an epilogue (GELU,
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
                || (epi.gelu.is_none() && epi.resid.is_none() && !epi.b_f16),
            "the naive matmul has no epilogue and reads f32 only"
        );
        let flags = if bias.is_some() { MATMUL_BIAS } else { 0 }
            | if b_t { MATMUL_B_T } else { 0 }
            | match epi.gelu {
                Some(false) => MATMUL_GELU_TANH,
                Some(true) => MATMUL_GELU_ERF,
                None => 0,
            }
            | if epi.resid.is_some() { MATMUL_RESID } else { 0 };
        let params = P4 {
            a: m as u32,
            b: n as u32,
            c: k as u32,
            d: flags,
        };
        let mut binds = vec![a, b, bias.unwrap_or(&self.dummy).into(), c];
        if kind != MatmulKernel::Naive {
            binds.push(epi.resid.unwrap_or(&self.dummy2).into());
        }
        let (label, pipeline, groups) = match (kind, epi.b_f16) {
            (MatmulKernel::Matvec, false) => ("matvec", &self.matvec, [64, 8]),
            (MatmulKernel::Matvec, true) => ("matvec f16", &self.matvec_f16, [64, 8]),
            (MatmulKernel::Tiled, false) => ("matmul", &self.matmul, [64, 64]),
            (MatmulKernel::Tiled, true) => ("matmul f16", &self.matmul_f16, [64, 64]),
            (MatmulKernel::Naive, _) => ("matmul_naive", &self.matmul_naive, [16, 16]),
        };
        let grid = [
            n.div_ceil(groups[0]) as u32,
            m.div_ceil(groups[1]) as u32,
            1,
        ];
        g.dispatch(label, pipeline, &params, binds, grid);
        let wb = if epi.b_f16 { 2.0 } else { 4.0 };
        let (m, n, k) = (m as f64, n as f64, k as f64);
        g.cost(2.0 * m * n * k, 4.0 * (m * k + m * n) + wb * k * n);
    }

    /// y = gelu_new(x) over n values.
    pub fn gelu(&self, g: &mut Graph, n: usize, x: &wgpu::Buffer, y: &wgpu::Buffer) {
        self.gelu_mode(g, n, false, x, y);
    }

    /// GELU: the tanh form (`exact` false, GPT-2's gelu_new) or the erf form (torch nn.GELU()).
    pub fn gelu_mode(
        &self,
        g: &mut Graph,
        n: usize,
        exact: bool,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) {
        g.dispatch(
            "gelu",
            &self.gelu,
            &P4 {
                a: n as u32,
                b: exact as u32,
                c: 0,
                d: 0,
            },
            vec![x.into(), y.into()],
            grid_1d(n, 256),
        );
        g.cost(10.0 * n as f64, 8.0 * n as f64);
    }

    /// y = a + b over n values.
    pub fn add(
        &self,
        g: &mut Graph,
        n: usize,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) {
        g.dispatch(
            "add",
            &self.add,
            &P4 {
                a: n as u32,
                b: 0,
                c: 0,
                d: 0,
            },
            vec![a.into(), b.into(), y.into()],
            grid_1d(n, 256),
        );
        g.cost(n as f64, 12.0 * n as f64);
    }

    /// Append the k and v parts of the qkv rows (3 × d wide) to the cache at each valid row's (seq, pos).
    #[allow(clippy::too_many_arguments)]
    pub fn kv_store(
        &self,
        g: &mut Graph,
        rows: usize,
        d: usize,
        cap: usize,
        qkv: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
    ) {
        self.kv_store_gqa(g, rows, d, d, cap, qkv, rowinfo, k, v);
    }

    /// `kv_store` for rows `[q (q_dim) | k (kv_dim) | v (kv_dim)]`; the cache holds kv_dim per position.
    #[allow(clippy::too_many_arguments)]
    pub fn kv_store_gqa(
        &self,
        g: &mut Graph,
        rows: usize,
        q_dim: usize,
        kv_dim: usize,
        cap: usize,
        qkv: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
    ) {
        g.dispatch(
            "kv_store",
            &self.kv_store,
            &P4 {
                a: rows as u32,
                b: kv_dim as u32,
                c: cap as u32,
                d: q_dim as u32,
            },
            vec![qkv.into(), rowinfo.into(), k.into(), v.into()],
            grid_1d(rows * kv_dim, 256),
        );
    }

    /// z = softmax(q·kᵀ·scale, causal) · v per (row, head) against the cache;
    /// with `p.capture`, also the scores and probabilities.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        g: &mut Graph,
        p: AttnParams,
        qkv: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
        z: &wgpu::Buffer,
        scores: &wgpu::Buffer,
        probs: &wgpu::Buffer,
    ) {
        self.attention_knockout(g, p, qkv, rowinfo, k, v, z, scores, probs, None);
    }

    /// `attention` with every optional input: knockout mask, k′|v′ [2, H, Dh] and the p′ capture [rows, H].
    #[allow(clippy::too_many_arguments)]
    pub fn attention_full(
        &self,
        g: &mut Graph,
        p: AttnParams,
        qkv: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
        z: &wgpu::Buffer,
        scores: &wgpu::Buffer,
        probs: &wgpu::Buffer,
        knock: Option<&wgpu::Buffer>,
        prime: Option<&wgpu::Buffer>,
        extra: &wgpu::Buffer,
    ) {
        self.attention_dispatch(
            g,
            p,
            [qkv, rowinfo, k, v, z, scores, probs],
            knock,
            prime,
            extra,
        );
    }

    /// Per-head scale: logits [rows, H] become mult·σ(logits) in place, then z [rows, H, Dh] *= them.
    #[allow(clippy::too_many_arguments)]
    pub fn head_scale(
        &self,
        g: &mut Graph,
        rows: usize,
        n_head: usize,
        head_dim: usize,
        mult: f32,
        fac: &wgpu::Buffer,
        z: &wgpu::Buffer,
    ) {
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct Hp {
            rows: u32,
            n_head: u32,
            head_dim: u32,
            mult: f32,
        }
        let hp = Hp {
            rows: rows as u32,
            n_head: n_head as u32,
            head_dim: head_dim as u32,
            mult,
        };
        g.dispatch(
            "head_scale:factor",
            &self.head_factor,
            &hp,
            vec![fac.into()],
            grid_1d(rows * n_head, 256),
        );
        g.dispatch(
            "head_scale:apply",
            &self.head_apply,
            &hp,
            vec![fac.into(), z.into()],
            grid_1d(rows * n_head * head_dim, 256),
        );
    }

    /// Fake-quantize in place the matrix at element `offset` of `w`: [k, n] (or [n, k] with
    /// `b_t`), `bits`-bit symmetric absmax, one scale per output channel or for the whole
    /// matrix; input channels flagged in `protect` ([k] u32) stay as they are.
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
                &self.qw[0],
                &qp,
                binds(),
                [n.div_ceil(64) as u32, 1, 1],
            );
        } else {
            g.dispatch(
                "quant_weights:absmax_tensor",
                &self.qw[1],
                &qp,
                binds(),
                [1, 1, 1],
            );
        }
        g.dispatch(
            "quant_weights:apply",
            &self.qw[2],
            &qp,
            binds(),
            grid_1d(k * n, 256),
        );
    }

    /// Dynamic per-tensor fake quantization of a linear layer's input x [rows, k] in place:
    /// one scale per sequence (`seqs` sequences of `tmax` rows, valid rows from `info`),
    /// channels flagged in `protect` ([k] u32) kept in f32. `scales` holds `seqs` floats.
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
            &self.qa[0],
            &ap,
            binds(),
            [seqs as u32, 1, 1],
        );
        g.dispatch(
            "quant_acts:apply",
            &self.qa[1],
            &ap,
            binds(),
            grid_1d(rows * k, 256),
        );
    }

    /// `n` invocations of `iters` rounds of 8 vec4 FMAs each (fma_peak.wgsl) into out [n].
    /// Returns the FLOPs it does.
    pub fn fma_peak(&self, g: &mut Graph, n: usize, iters: u32, out: &wgpu::Buffer) -> f64 {
        let flops = n as f64 * iters as f64 * 64.0;
        g.dispatch(
            "fma_peak",
            &self.fma_peak,
            &P4 {
                a: iters,
                b: n as u32,
                c: 0,
                d: 0,
            },
            vec![out.into()],
            [n.div_ceil(64) as u32, 1, 1],
        );
        g.cost(flops, 4.0 * n as f64);
        flops
    }

    /// `attention` with a knockout mask over absolute key positions (`p.knock_on` is set from it).
    #[allow(clippy::too_many_arguments)]
    pub fn attention_knockout(
        &self,
        g: &mut Graph,
        p: AttnParams,
        qkv: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
        z: &wgpu::Buffer,
        scores: &wgpu::Buffer,
        probs: &wgpu::Buffer,
        knock: Option<&wgpu::Buffer>,
    ) {
        self.attention_dispatch(
            g,
            p,
            [qkv, rowinfo, k, v, z, scores, probs],
            knock,
            None,
            &self.dummy2,
        );
    }

    fn attention_dispatch(
        &self,
        g: &mut Graph,
        mut p: AttnParams,
        b: [&wgpu::Buffer; 7],
        knock: Option<&wgpu::Buffer>,
        prime: Option<&wgpu::Buffer>,
        extra: &wgpu::Buffer,
    ) {
        let rows = p.rows as usize;
        let gx = rows.clamp(1, 65535);
        p.knock_on = knock.is_some() as u32;
        if p.qkv_width == 0 {
            p.qkv_width = 3 * p.d;
        }
        if p.kv_dim == 0 {
            p.kv_dim = p.d;
        }
        if p.group == 0 {
            p.group = 1;
        }
        let mut binds: Vec<Bind> = b.iter().map(|x| (*x).into()).collect();
        binds.push(knock.unwrap_or(&self.dummy).into());
        binds.push(prime.unwrap_or(&self.dummy).into());
        binds.push(extra.into());
        g.dispatch(
            "attention",
            &self.attention,
            &p,
            binds,
            [gx as u32, p.n_head, rows.div_ceil(gx).max(1) as u32],
        );
        {
            // Causal: on average half the keys; K and V read once (the floor), q and z once.
            let (r, h, hd, keys) = (
                rows as f64,
                p.n_head as f64,
                p.head_dim as f64,
                p.cap_keys.max(1) as f64,
            );
            let kv = 2.0 * keys * p.kv_dim as f64 * 4.0;
            g.cost(2.0 * r * h * hd * keys, kv + 8.0 * r * h * hd);
        }
    }

    /// Overwrite `channels` of the hook occupying columns `offset..` of `x` [rows, width] with
    /// `values`, at the absolute positions marked in `posmask`.
    #[allow(clippy::too_many_arguments)]
    pub fn edit(
        &self,
        g: &mut Graph,
        rows: usize,
        width: usize,
        offset: usize,
        n_ch: usize,
        rowinfo: &wgpu::Buffer,
        posmask: &wgpu::Buffer,
        channels: &wgpu::Buffer,
        values: &wgpu::Buffer,
        x: &wgpu::Buffer,
    ) {
        g.dispatch(
            "edit",
            &self.edit,
            &P4 {
                a: rows as u32,
                b: width as u32,
                c: offset as u32,
                d: n_ch as u32,
            },
            vec![
                rowinfo.into(),
                posmask.into(),
                channels.into(),
                values.into(),
                x.into(),
            ],
            grid_1d(rows * n_ch, 256),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::SHADERS;

    /// Every shader parses and validates with naga (all validation flags, default capabilities:
    /// no f16, no subgroups) and has exactly one entry point, the compute `main`.
    #[test]
    fn shaders_validate_with_naga() {
        use naga::valid::{Capabilities, ValidationFlags, Validator};
        // unpack2x16float (f16 weights) is a downlevel capability every Vulkan, Metal, DX12
        // and GL ES 3 device has; nothing else beyond the defaults (no f16 type, no subgroups).
        let caps = Capabilities::default() | Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        assert!(!SHADERS.is_empty());
        let mut failures = Vec::new();
        for (name, src) in SHADERS {
            let module = match naga::front::wgsl::parse_str(src) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!(
                        "{name}: parse error:\n{}",
                        e.emit_to_string_with_path(src, name)
                    ));
                    continue;
                }
            };
            if let Err(e) = Validator::new(ValidationFlags::all(), caps).validate(&module) {
                failures.push(format!(
                    "{name}: validation error:\n{}",
                    e.emit_to_string_with_path(src, name)
                ));
            }
            let eps: Vec<_> = module
                .entry_points
                .iter()
                .map(|e| (e.name.as_str(), e.stage))
                .collect();
            // Every kernel has one `main`, except the steps of one concern (head scale, quantization).
            let want: Vec<&str> = super::entry_points(name).to_vec();
            let got: Vec<&str> = eps.iter().map(|e| e.0).collect();
            if got.as_slice() != &want[..] || eps.iter().any(|e| e.1 != naga::ShaderStage::Compute)
            {
                failures.push(format!(
                    "{name}: expected the compute entry points {want:?}, found {eps:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}
