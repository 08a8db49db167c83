//! One forward pass being recorded, and the op vocabulary the architecture files call in the
//! order of their figure: norms, linear layers (fake input quantization and residual/GELU/ReLU
//! fusion decided here), projections outside the blocks, RoPE, SwiGLU, attention, and `hook_point`
//! (the embedding ops are in `pass_embed.rs`). Never names an architecture.

use anyhow::Result;

use super::head::Embedding;
use super::hook_point::HookPoints;
use super::session::Session;
use super::upload::{InputWidth, Linear};
use crate::config::ModelConfig;
use crate::hooks::{HookSpace, Src};
use crate::kernels::{Epilogue, Graph, Kernels};

/// Fake quantization of every linear layer's input (the compression study): bits, and the
/// protected input channels as u32 masks for d-wide and MLP-inner-wide inputs.
pub(crate) struct ActQuant {
    pub bits: u32,
    pub protect_d: wgpu::Buffer,
    pub protect_inner: wgpu::Buffer,
    /// For z inputs n_head · head_dim wide (≠ d): none protected (the protected channels are
    /// residual-stream and MLP channels).
    pub protect_heads: wgpu::Buffer,
}

/// A forward pass being recorded into one op graph.
pub(crate) struct Pass<'a> {
    pub k: &'a Kernels,
    pub cfg: &'a ModelConfig,
    pub space: HookSpace,
    pub emb: &'a Embedding,
    pub sess: &'a Session,
    pub g: Graph,
    /// Rows of the pass: `seqs × tmax`, sequence b owning rows `b·tmax ..`.
    pub rows: usize,
    pub tmax: usize,
    /// Keys of the longest sequence (cache included): the key stride of attention captures.
    pub cap_keys: usize,
    pub tokens: wgpu::Buffer,
    /// Per row: [sequence, position, valid, sequence length].
    pub info: wgpu::Buffer,
    pub want_att: bool,
    pub hooks: HookPoints<'a>,
    /// Knockout key masks, and which one each layer uses.
    pub knock: Vec<wgpu::Buffer>,
    pub knock_of_layer: Vec<Option<usize>>,
    pub act_quant: Option<(&'a ActQuant, wgpu::Buffer)>,
    /// Linear inputs already fake-quantized since their hook point (read by a second linear).
    quantized: Vec<wgpu::Buffer>,
    /// f32 scratch for a layer kept in ggml blocks, dequantized there when a pass has more
    /// rows than the matvec takes (prefill), read by the tiled matmul.
    pub qscratch: Option<wgpu::Buffer>,
}

impl<'a> Pass<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        k: &'a Kernels,
        cfg: &'a ModelConfig,
        emb: &'a Embedding,
        sess: &'a Session,
        (rows, tmax, cap_keys): (usize, usize, usize),
        (tokens, info): (wgpu::Buffer, wgpu::Buffer),
        want_att: bool,
        hooks: HookPoints<'a>,
    ) -> Self {
        Self {
            k,
            cfg,
            space: HookSpace::of(cfg),
            emb,
            sess,
            g: Graph::default(),
            rows,
            tmax,
            cap_keys,
            tokens,
            info,
            want_att,
            hooks,
            knock: Vec::new(),
            knock_of_layer: vec![None; cfg.n_layer],
            act_quant: None,
            quantized: Vec::new(),
            qscratch: None,
        }
    }

    /// Values in `src`'s buffer for this pass.
    fn floats(&self, src: Src) -> usize {
        match src {
            Src::Scores(_) | Src::Pattern(_) => self.rows * self.space.n_head * self.cap_keys,
            _ => self.rows * self.space.row_width(src),
        }
    }

    /// `buf` now holds hook point `src`: edits, captures (see [`HookPoints::tap`]).
    pub fn hook_point(&mut self, src: Src, buf: &wgpu::Buffer) -> Result<()> {
        self.quantized.retain(|b| b != buf);
        let n = self.floats(src);
        self.hooks.tap(&mut self.g, src, buf, n)
    }

    /// Whether a capture or an edit looks at `src` (else its op may be fused into the next).
    pub fn touches(&self, src: Src) -> bool {
        self.hooks.touches(src)
    }

    /// Whether linear layers fake-quantize their input in place (the compression study): an
    /// input that is also a residual stream (post-LN blocks) must then be copied first.
    pub fn quantizes_inputs(&self) -> bool {
        self.act_quant.is_some()
    }

    /// Copy the first `width` columns of every row (`width` wide rows) from `src` to `dst`.
    pub fn copy_rows(&mut self, src: &wgpu::Buffer, dst: &wgpu::Buffer, width: usize) {
        let bytes = (self.rows * width) as u64 * 4;
        self.g.copy(src, 0, dst, 0, bytes);
    }

    /// A projection outside the blocks (OPT's project_in, project_out): `out` = x·W, or with
    /// `resid` = (r, sum), sum = r + x·W with x·W in `out` only when something looks at `hook`
    /// (else fused). Never fake-quantized: the compression study quantizes the blocks' inputs.
    pub fn projection(
        &mut self,
        hook: Src,
        x: &wgpu::Buffer,
        w: &Linear,
        out: &wgpu::Buffer,
        resid: Option<(&wgpu::Buffer, &wgpu::Buffer)>,
    ) -> Result<()> {
        let quant = self.act_quant.take();
        let r = match resid {
            Some((r, sum)) => self.residual_linear(hook, x, w, (r, out, sum)),
            None => {
                self.linear(x, w, out);
                self.hook_point(hook, out)
            }
        };
        self.act_quant = quant;
        r
    }

    /// y = LayerNorm(x)·w + b over rows of width D.
    pub fn layernorm(
        &mut self,
        x: &wgpu::Buffer,
        (w, b): &(wgpu::Buffer, wgpu::Buffer),
        y: &wgpu::Buffer,
    ) {
        let (d, eps) = (self.cfg.n_embd, self.cfg.norm_eps);
        self.k.layernorm(&mut self.g, self.rows, d, eps, x, w, b, y);
    }

    /// y = RMSNorm(x)·w over rows of width D.
    pub fn rmsnorm(&mut self, x: &wgpu::Buffer, w: &wgpu::Buffer, y: &wgpu::Buffer) {
        let (d, eps) = (self.cfg.n_embd, self.cfg.norm_eps);
        self.k.rmsnorm(&mut self.g, self.rows, d, eps, x, w, y);
    }

    /// Fake-quantize a linear layer's input in place (compression study only), once per write.
    fn quantize_input(&mut self, x: &wgpu::Buffer, input: InputWidth) {
        let Some((q, scales)) = &self.act_quant else {
            return;
        };
        if self.quantized.contains(x) {
            return;
        }
        let (k, mask) = match input {
            InputWidth::D => (self.cfg.n_embd, &q.protect_d),
            InputWidth::Inner => (self.cfg.n_inner(), &q.protect_inner),
            InputWidth::Heads => (self.cfg.q_dim(), &q.protect_heads),
        };
        let seqs = self.sess.seqs;
        self.k.quant_act(
            &mut self.g,
            self.rows,
            k,
            self.tmax,
            seqs,
            q.bits,
            x,
            mask,
            &self.info,
            scales,
        );
        self.quantized.push(x.clone());
    }

    /// out `[R, n]` = x `[R, k]` · W (+ b), with `epi` fused into the output write.
    pub fn linear_epi(&mut self, x: &wgpu::Buffer, w: &Linear, out: &wgpu::Buffer, epi: Epilogue) {
        self.quantize_input(x, w.input);
        // Weights kept in ggml blocks (upload_quant.rs): decoded inside a matvec per matrix of
        // the layer, or for many rows dequantized into the scratch for the tiled matmul.
        if !w.q.is_empty() {
            let (xb, ob, b) = (x.into(), out.into(), w.b.as_ref());
            match &self.qscratch {
                Some(s) if self.rows > crate::kernels::MATVEC_MAX_ROWS => {
                    for q in &w.q {
                        self.k.qdequant(&mut self.g, w.k, q, s);
                    }
                    let (r, sb) = (self.rows, s.into());
                    self.k
                        .matmul_epi(&mut self.g, r, w.n, w.k, xb, sb, b, ob, true, epi);
                }
                _ => {
                    for q in &w.q {
                        let (xb, ob) = (x.into(), out.into());
                        self.k
                            .qmatvec(&mut self.g, self.rows, w.n, w.k, xb, q, b, ob, epi);
                    }
                }
            }
            return;
        }
        let epi = Epilogue {
            b_f16: w.f16,
            ..epi
        };
        let (x, wb, out) = (x.into(), (&w.w).into(), out.into());
        self.k.matmul_epi(
            &mut self.g,
            self.rows,
            w.n,
            w.k,
            x,
            wb,
            w.b.as_ref(),
            out,
            w.b_t,
            epi,
        );
    }

    /// out `[R, n]` = x `[R, k]` · W (+ b).
    pub fn linear(&mut self, x: &wgpu::Buffer, w: &Linear, out: &wgpu::Buffer) {
        self.linear_epi(x, w, out, Epilogue::default());
    }

    /// sum = resid + x·W (+ b) for a residual branch whose output is hook `hook`: added in the
    /// matmul's epilogue unless something looks at the hook, else written to `branch`, hooked, added.
    pub fn residual_linear(
        &mut self,
        hook: Src,
        x: &wgpu::Buffer,
        w: &Linear,
        (resid, branch, sum): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
    ) -> Result<()> {
        if self.touches(hook) {
            self.linear(x, w, branch);
            self.hook_point(hook, branch)?;
            let n = self.rows * w.n;
            self.k.add(&mut self.g, n, resid, branch, sum);
        } else {
            let epi = Epilogue {
                resid: Some(resid),
                ..Default::default()
            };
            self.linear_epi(x, w, sum, epi);
        }
        Ok(())
    }

    /// post = GELU(x·W + b) (tanh form, or erf when `exact`); the pre-activation is hook `hook`:
    /// GELU runs in the matmul's epilogue unless something looks at it.
    pub fn linear_gelu(
        &mut self,
        hook: Src,
        x: &wgpu::Buffer,
        w: &Linear,
        (pre, post): (&wgpu::Buffer, &wgpu::Buffer),
        exact: bool,
    ) -> Result<()> {
        if self.touches(hook) {
            self.linear(x, w, pre);
            self.hook_point(hook, pre)?;
            self.k
                .gelu_mode(&mut self.g, self.rows * w.n, exact, pre, post);
        } else {
            let epi = Epilogue {
                gelu: Some(exact),
                ..Default::default()
            };
            self.linear_epi(x, w, post, epi);
        }
        Ok(())
    }

    /// post = ReLU(x·W + b) (OPT's fc1); the pre-activation is hook `hook`: ReLU runs in the
    /// matmul's epilogue unless something looks at it.
    pub fn linear_relu(
        &mut self,
        hook: Src,
        x: &wgpu::Buffer,
        w: &Linear,
        (pre, post): (&wgpu::Buffer, &wgpu::Buffer),
    ) -> Result<()> {
        if self.touches(hook) {
            self.linear(x, w, pre);
            self.hook_point(hook, pre)?;
            self.k.relu(&mut self.g, self.rows * w.n, pre, post);
        } else {
            let epi = Epilogue {
                relu: true,
                ..Default::default()
            };
            self.linear_epi(x, w, post, epi);
        }
        Ok(())
    }

    /// post `[R, I]` = silu(gate) · up from the fused gate|up rows `[R, 2I]`.
    pub fn swiglu(&mut self, gate_up: &wgpu::Buffer, post: &wgpu::Buffer) {
        self.k
            .swiglu(&mut self.g, self.rows, self.cfg.n_inner(), gate_up, post);
    }

    /// post `[R, I]` = gelu_tanh(gate) · up from the fused gate|up rows `[R, 2I]` (GeGLU).
    pub fn geglu(&mut self, gate_up: &wgpu::Buffer, post: &wgpu::Buffer) {
        self.k.glu(
            &mut self.g,
            self.rows,
            self.cfg.n_inner(),
            true,
            gate_up,
            post,
        );
    }

    /// Per-head RMSNorm in place on the q and k heads of the qkv rows (`q_norm` | `k_norm`
    /// weights `[2, Dh]`), eps `norm_eps`.
    pub fn head_norm(&mut self, qkv: &wgpu::Buffer, weight: &wgpu::Buffer) {
        let c = self.cfg;
        self.k.head_norm(
            &mut self.g,
            self.rows,
            (c.n_head, c.n_kv_head),
            c.head_dim(),
            c.qkv_dim(),
            c.norm_eps,
            weight,
            qkv,
        );
    }

    /// x `[R, D]` ← x · s in place.
    pub fn scale(&mut self, x: &wgpu::Buffer, s: f32) {
        self.k.scale(&mut self.g, self.rows * self.cfg.n_embd, s, x);
    }

    /// y = a + b over rows of width D (a residual add).
    pub fn add(&mut self, a: &wgpu::Buffer, b: &wgpu::Buffer, y: &wgpu::Buffer) {
        self.k
            .add(&mut self.g, self.rows * self.cfg.n_embd, a, b, y);
    }

    /// RoPE in place on the query and key heads of the qkv rows: the first `cfg.rope_dims()`
    /// dimensions of each head (all of them unless partial), tables `[n_positions, rope_dims/2]`.
    pub fn rope(&mut self, qkv: &wgpu::Buffer, (cos, sin): &(wgpu::Buffer, wgpu::Buffer)) {
        let c = self.cfg;
        let info = &self.info;
        self.k.rope_partial(
            &mut self.g,
            self.rows,
            c.n_head + c.n_kv_head,
            (c.head_dim(), c.rope_dims()),
            c.qkv_dim(),
            info,
            cos,
            sin,
            qkv,
        );
    }
}
