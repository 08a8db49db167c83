//! GPT-2 on the GPU: weights in storage buffers, a KV-cache session, and the forward pass
//! written top to bottom as the model's figure, each step one op, each output buffer named
//! by the hook point it feeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::config::{Arch, ModelConfig};
use crate::finite::NonFinite;
use crate::gpu::GpuContext;
use crate::hooks::{HookFilter, HookSpace, Src};
use crate::intervene::{editable, HookEdit, Knockout};
use crate::kernels::{AttnParams, Bind, Epilogue, Graph, Kernels};
use crate::tensor::Tensor;
use crate::tokenizer::Tokenizer;
use crate::weights::WeightSource;

/// A slice of vocabulary rows of an embedding matrix, small enough for one storage binding.
struct Chunk {
    buf: wgpu::Buffer,
    start: usize,
    count: usize,
}

/// One block's weights. GPT-2 stores Conv1D [in, out] matrices; Llama stores nn.Linear
/// [out, in] matrices, which the matmul reads transposed (`Model::wt`).
struct Layer {
    norm1_w: wgpu::Buffer,
    norm1_b: Option<wgpu::Buffer>,
    /// q|k|v fused: GPT-2 c_attn [D, D+2Dkv]; Llama q_proj, k_proj, v_proj stacked [D+2Dkv, D].
    qkv_w: wgpu::Buffer,
    qkv_b: Option<wgpu::Buffer>,
    o_w: wgpu::Buffer,
    o_b: Option<wgpu::Buffer>,
    norm2_w: wgpu::Buffer,
    norm2_b: Option<wgpu::Buffer>,
    /// GPT-2 c_fc [D, I]; Llama gate_proj and up_proj stacked [2I, D].
    up_w: wgpu::Buffer,
    up_b: Option<wgpu::Buffer>,
    /// GPT-2 mlp.c_proj [I, D]; Llama down_proj [D, I].
    down_w: wgpu::Buffer,
    down_b: Option<wgpu::Buffer>,
    /// Attention variants: k′ | v′ [2, H, Dh].
    prime: Option<wgpu::Buffer>,
    /// Attention variants: per-head factor weights [H, D] (nn.Linear layout) and bias [H].
    scale_w: Option<(wgpu::Buffer, wgpu::Buffer)>,
}

/// A GPT-2 or Llama model loaded onto one GPU.
pub struct Model {
    pub cfg: ModelConfig,
    pub tokenizer: Option<Tokenizer>,
    /// Where the weights came from (a model directory or a GGUF file).
    pub source: PathBuf,
    ctx: Arc<GpuContext>,
    k: Kernels,
    wte: Vec<Chunk>,
    /// Separate LM head when the checkpoint's head is not the tied embedding.
    lm_head: Option<Vec<Chunk>>,
    /// GPT-2's learned positions.
    wpe: Option<wgpu::Buffer>,
    /// Llama's RoPE tables [n_positions, head_dim/2].
    rope: Option<(wgpu::Buffer, wgpu::Buffer)>,
    layers: Vec<Layer>,
    normf_w: wgpu::Buffer,
    normf_b: Option<wgpu::Buffer>,
    /// Matrices stored [out, in] (nn.Linear), read transposed.
    wt: bool,
    /// Bytes of weights on the GPU.
    pub weight_bytes: u64,
    /// Fake quantization of every linear layer's input (the compression study), if set.
    act_quant: Option<ActQuant>,
    /// The blocks' linear-layer matrices are stored as f16 (packed pairs), read with f32 math.
    pub f16: bool,
    /// Activation buffers by name, kept from one forward pass to the next of the same size.
    pool: std::sync::Mutex<std::collections::HashMap<&'static str, wgpu::Buffer>>,
}

/// How to load a model.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Store the blocks' linear-layer matrices as f16 (half the bytes; f32 accumulation).
    /// Embeddings, LM head, norms and biases stay f32.
    pub f16_weights: bool,
}

/// f32 values as f16 pairs in u32 words, element 2i in the low half (WGSL unpack2x16float's x).
pub fn pack_f16(data: &[f32]) -> Vec<u32> {
    data.chunks(2)
        .map(|p| {
            let lo = half::f16::from_f32(p[0]).to_bits() as u32;
            let hi = p
                .get(1)
                .map_or(0, |&v| half::f16::from_f32(v).to_bits() as u32);
            lo | (hi << 16)
        })
        .collect()
}

/// Activation fake quantization: bits, and the protected input channels as u32 masks for the
/// d-wide inputs (ln_1, z, ln_2) and the MLP's inner-wide input.
struct ActQuant {
    bits: u32,
    protect_d: wgpu::Buffer,
    protect_inner: wgpu::Buffer,
}

/// Which input width a linear layer reads: the model width d or the MLP's inner width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum InputWidth {
    D,
    Inner,
}

/// One linear layer's weight matrix inside a block, as stored on the GPU: elements
/// `offset .. offset + k·n` of `buffer`, [k, n] (Conv1D, in × out) or [n, k] (`b_t`, nn.Linear).
/// Stacked Llama matrices (q|k|v, gate|up) give one entry per Hugging Face tensor.
#[derive(Clone, Debug)]
pub struct LinearWeight {
    pub name: String,
    pub buffer: wgpu::Buffer,
    pub offset: usize,
    pub k: usize,
    pub n: usize,
    pub b_t: bool,
    pub input: InputWidth,
}

/// The GPT-2 name the engine started with; the same type runs Llama models.
pub type Gpt2 = Model;

/// Which logits a forward pass returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsMode {
    None,
    /// The last new token of each sequence: [1, V].
    Last,
    /// Every new token: [n, V].
    All,
}

/// What a forward pass returns, captures and changes. `forward` refuses, before running, any
/// selector that selects nothing (see [`crate::select::check_forward`]): a capture glob matching
/// no hook point, an edit channel beyond the hook's width, an edit position or knockout key
/// beyond every sequence of the pass (cache included), a knockout layer beyond `n_layer`.
#[derive(Clone, Debug)]
pub struct ForwardOptions {
    pub logits: LogitsMode,
    pub capture: HookFilter,
    /// Edits applied where each hook is produced, before anything downstream reads it
    /// (captures show the edited values, as TransformerLens hooks do).
    pub edits: Vec<HookEdit>,
    /// Keys removed from attention, layer by layer.
    pub knockout: Option<Knockout>,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        Self {
            logits: LogitsMode::Last,
            capture: HookFilter::none(),
            edits: Vec::new(),
            knockout: None,
        }
    }
}

/// What one forward pass returns, per sequence of the batch.
#[derive(Debug, Default)]
pub struct ForwardOutput {
    /// Per sequence: [n, V] (All) or [1, V] (Last); `None` for sequences given no token.
    pub logits: Vec<Option<Tensor>>,
    /// Per sequence: hook name -> tensor, shapes as documented in `hooks`.
    pub captures: Vec<BTreeMap<String, Tensor>>,
}

/// KV cache for a batch of sequences: one K and one V buffer per layer, [seqs, cap, D].
pub struct Session {
    ctx: Arc<GpuContext>,
    pub seqs: usize,
    pub cap: usize,
    k: Vec<wgpu::Buffer>,
    v: Vec<wgpu::Buffer>,
    /// Tokens already in the cache, per sequence.
    pub lens: Vec<usize>,
}

/// The cached bind groups hold the KV buffers: let them go with the session.
impl Drop for Session {
    fn drop(&mut self) {
        self.ctx.forget_bind_groups();
    }
}

/// Likewise for the weights and the activation pool.
impl Drop for Model {
    fn drop(&mut self) {
        self.ctx.forget_bind_groups();
    }
}

fn bytes_f32(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

/// RoPE cos/sin tables `[n_positions, head_dim/2]` as transformers computes them in f32:
/// inv_freq_i = 1 / θ^(2i/Dh) (divided by `factors[i]` when `factors` is not empty: RoPE
/// scaling, see [`crate::rope`]), angle = position · inv_freq.
///
/// # Panics
/// When `factors` is neither empty nor `head_dim / 2` long.
pub fn rope_tables(
    n_positions: usize,
    head_dim: usize,
    theta: f32,
    factors: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    assert!(
        factors.is_empty() || factors.len() == half,
        "rope_tables: {} factors for {half} rotary pairs",
        factors.len()
    );
    let inv: Vec<f32> = crate::rope::base_inv_freq(theta, head_dim)
        .into_iter()
        .enumerate()
        .map(|(i, f)| factors.get(i).map_or(f, |d| f / d))
        .collect();
    let mut cos = Vec::with_capacity(n_positions * half);
    let mut sin = Vec::with_capacity(n_positions * half);
    for p in 0..n_positions {
        for f in &inv {
            let a = p as f32 * f;
            cos.push((a as f64).cos() as f32);
            sin.push((a as f64).sin() as f32);
        }
    }
    (cos, sin)
}

impl Model {
    /// Load a model: a Hugging Face directory (`config.json` with model_type gpt2 or llama,
    /// `model.safetensors`, `tokenizer.json`) or a `.gguf` file (Llama). The family comes from the file.
    pub fn load(ctx: Arc<GpuContext>, path: &Path) -> Result<Self> {
        Self::load_with(ctx, path, &LoadOptions::default())
    }

    /// `load` with options (f16 weights).
    pub fn load_with(ctx: Arc<GpuContext>, path: &Path, opts: &LoadOptions) -> Result<Self> {
        let files = crate::model_files::ModelFiles::open(path)?;
        let mut m =
            Self::from_weights_with(ctx, files.cfg, files.tokenizer, &*files.weights, opts)?;
        m.source = path.to_path_buf();
        Ok(m)
    }

    pub fn from_weights(
        ctx: Arc<GpuContext>,
        cfg: ModelConfig,
        tokenizer: Option<Tokenizer>,
        wf: &dyn WeightSource,
    ) -> Result<Self> {
        Self::from_weights_with(ctx, cfg, tokenizer, wf, &LoadOptions::default())
    }

    pub fn from_weights_with(
        ctx: Arc<GpuContext>,
        cfg: ModelConfig,
        tokenizer: Option<Tokenizer>,
        wf: &dyn WeightSource,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let f16 = opts.f16_weights;
        let (d, v, inner, kvd) = (cfg.n_embd, cfg.vocab_size, cfg.n_inner(), cfg.kv_dim());
        let llama = cfg.arch == Arch::Llama;
        let extra = if llama {
            format!("layers.{}.input_layernorm.weight", cfg.n_layer)
        } else {
            format!("h.{}.ln_1.weight", cfg.n_layer)
        };
        if wf.contains(&extra) {
            bail!(
                "{}: holds more layers than the config's n_layer = {}",
                wf.path().display(),
                cfg.n_layer
            );
        }
        if let Some(t) = &tokenizer {
            if t.vocab_size() > v {
                bail!(
                    "the tokenizer has {} tokens but the model's vocab_size is {v}",
                    t.vocab_size()
                );
            }
        }
        let k = Kernels::new(&ctx)?;
        let mut bytes = 0u64;
        let ctx2 = ctx.clone();
        let label = |name: &str| format!("{}:{name}", wf.path().display());
        let up = |name: &str, shape: &[usize], bytes: &mut u64| -> Result<wgpu::Buffer> {
            let data = wf.load(name, shape)?;
            *bytes += data.len() as u64 * 4;
            ctx2.storage_init(&label(name), bytes_f32(&data))
        };
        // A block's linear-layer matrix: f32, or f16 pairs packed in u32 with --f16-weights.
        let put_matrix = |name: &str, data: &[f32], bytes: &mut u64| -> Result<wgpu::Buffer> {
            if f16 {
                let packed = pack_f16(data);
                *bytes += packed.len() as u64 * 4;
                ctx2.storage_init(&label(name), bytemuck::cast_slice(&packed))
            } else {
                *bytes += data.len() as u64 * 4;
                ctx2.storage_init(&label(name), bytes_f32(data))
            }
        };
        // A block matrix as loaded; stored as f16, it must fit f16's range.
        let load_matrix = |name: &str, shape: &[usize]| -> Result<std::borrow::Cow<[f32]>> {
            let data = wf.load(name, shape)?;
            if f16 {
                crate::finite::check_f16_range(name, shape, &data)
                    .with_context(|| wf.path().display().to_string())?;
            }
            Ok(data)
        };
        let upm = |name: &str, shape: &[usize], bytes: &mut u64| -> Result<wgpu::Buffer> {
            put_matrix(name, &load_matrix(name, shape)?, bytes)
        };
        // Several tensors stacked along their first axis into one buffer.
        let stack =
            |names: &[(&str, usize)], cols: usize, bytes: &mut u64| -> Result<wgpu::Buffer> {
                let mut all = Vec::new();
                for (name, rows) in names {
                    all.extend_from_slice(&load_matrix(name, &[*rows, cols])?);
                }
                put_matrix(names[0].0, &all, bytes)
            };
        let chunks = |name: &str, bytes: &mut u64| -> Result<Vec<Chunk>> {
            let data = wf.load(name, &[v, d])?;
            let rows_per = ((ctx.max_binding / (d as u64 * 4)) as usize / 64 * 64).max(64);
            let mut out = Vec::new();
            let mut start = 0;
            while start < v {
                let count = rows_per.min(v - start);
                let l = format!("{name}[{start}..{}]", start + count);
                let buf = ctx
                    .storage_init(&l, bytes_f32(&data[start * d..(start + count) * d]))
                    .with_context(|| {
                        format!("{}: {name} in vocabulary chunks", wf.path().display())
                    })?;
                out.push(Chunk { buf, start, count });
                start += count;
            }
            *bytes += data.len() as u64 * 4;
            Ok(out)
        };
        ctx.clone().checked("loading the weights onto the GPU", || {
            let emb = if llama {
                "embed_tokens.weight"
            } else {
                "wte.weight"
            };
            let wte = chunks(emb, &mut bytes)?;
            let separate_head =
                wf.contains("lm_head.weight") && !wf.same("lm_head.weight", emb);
            let lm_head = match (separate_head, cfg.tie_embeddings) {
                (true, false) => Some(chunks("lm_head.weight", &mut bytes)?),
                (false, true) => None,
                (false, false) => bail!(
                    "{}: missing tensor 'lm_head.weight' (the config says the head is not tied: tie_word_embeddings = false)",
                    wf.path().display()
                ),
                (true, true) => bail!(
                    "{}: holds a separate 'lm_head.weight' but the config ties the head to '{emb}' (tie_word_embeddings = true), so transformers would not use it; set tie_word_embeddings to false to use the stored head",
                    wf.path().display()
                ),
            };
            let mut layers = Vec::with_capacity(cfg.n_layer);
            for l in 0..cfg.n_layer {
                layers.push(if llama {
                    let n = |s: &str| format!("layers.{l}.{s}");
                    Layer {
                        norm1_w: up(&n("input_layernorm.weight"), &[d], &mut bytes)?,
                        norm1_b: None,
                        qkv_w: stack(
                            &[
                                (&n("self_attn.q_proj.weight"), d),
                                (&n("self_attn.k_proj.weight"), kvd),
                                (&n("self_attn.v_proj.weight"), kvd),
                            ],
                            d,
                            &mut bytes,
                        )?,
                        qkv_b: None,
                        o_w: upm(&n("self_attn.o_proj.weight"), &[d, d], &mut bytes)?,
                        o_b: None,
                        norm2_w: up(&n("post_attention_layernorm.weight"), &[d], &mut bytes)?,
                        norm2_b: None,
                        up_w: stack(
                            &[
                                (&n("mlp.gate_proj.weight"), inner),
                                (&n("mlp.up_proj.weight"), inner),
                            ],
                            d,
                            &mut bytes,
                        )?,
                        up_b: None,
                        down_w: upm(&n("mlp.down_proj.weight"), &[d, inner], &mut bytes)?,
                        down_b: None,
                        prime: None,
                        scale_w: None,
                    }
                } else {
                    let n = |s: &str| format!("h.{l}.{s}");
                    let var = cfg.variant;
                    let (h, hd) = (cfg.n_head, cfg.head_dim());
                    let prime = if var.has_v_prime() {
                        let mut kv = if var.has_k_prime() {
                            wf.load(&n("attn.k_prime"), &[h, hd])?.into_owned()
                        } else {
                            vec![0.0; h * hd]
                        };
                        // [H, Dh], or flat [D] (h·Dh + d) as the paper's value-bias code stores it.
                        let vp = match wf.load(&n("attn.v_prime"), &[h, hd]) {
                            Ok(v) => v,
                            Err(_) => wf.load(&n("attn.v_prime"), &[d])?,
                        };
                        kv.extend_from_slice(&vp);
                        bytes += kv.len() as u64 * 4;
                        Some(ctx2.storage_init(&label(&n("attn.v_prime")), bytes_f32(&kv))?)
                    } else {
                        None
                    };
                    let scale_w = match var.scale() {
                        Some((m, _)) => Some((
                            up(&n(&format!("attn.{m}.weight")), &[h, d], &mut bytes)?,
                            up(&n(&format!("attn.{m}.bias")), &[h], &mut bytes)?,
                        )),
                        None => None,
                    };
                    Layer {
                        prime,
                        scale_w,
                        norm1_w: up(&n("ln_1.weight"), &[d], &mut bytes)?,
                        norm1_b: Some(up(&n("ln_1.bias"), &[d], &mut bytes)?),
                        qkv_w: upm(&n("attn.c_attn.weight"), &[d, 3 * d], &mut bytes)?,
                        qkv_b: Some(up(&n("attn.c_attn.bias"), &[3 * d], &mut bytes)?),
                        o_w: upm(&n("attn.c_proj.weight"), &[d, d], &mut bytes)?,
                        o_b: Some(up(&n("attn.c_proj.bias"), &[d], &mut bytes)?),
                        norm2_w: up(&n("ln_2.weight"), &[d], &mut bytes)?,
                        norm2_b: Some(up(&n("ln_2.bias"), &[d], &mut bytes)?),
                        up_w: upm(&n("mlp.c_fc.weight"), &[d, inner], &mut bytes)?,
                        up_b: Some(up(&n("mlp.c_fc.bias"), &[inner], &mut bytes)?),
                        down_w: upm(&n("mlp.c_proj.weight"), &[inner, d], &mut bytes)?,
                        down_b: Some(up(&n("mlp.c_proj.bias"), &[d], &mut bytes)?),
                    }
                });
            }
            let (wpe, rope, normf_w, normf_b) = if llama {
                let (c, s) = rope_tables(
                    cfg.n_positions,
                    cfg.head_dim(),
                    cfg.rope_theta,
                    &cfg.rope_freq_factors,
                );
                let rope = (
                    ctx.storage_init("rope cos", bytes_f32(&c))?,
                    ctx.storage_init("rope sin", bytes_f32(&s))?,
                );
                (None, Some(rope), up("norm.weight", &[d], &mut bytes)?, None)
            } else {
                (
                    Some(up("wpe.weight", &[cfg.n_positions, d], &mut bytes)?),
                    None,
                    up("ln_f.weight", &[d], &mut bytes)?,
                    Some(up("ln_f.bias", &[d], &mut bytes)?),
                )
            };
            ctx.wait()?;
            Ok(Self {
                cfg: cfg.clone(),
                tokenizer,
                source: wf.path().to_path_buf(),
                ctx: ctx.clone(),
                k,
                wte,
                lm_head,
                wpe,
                rope,
                layers,
                normf_w,
                normf_b,
                wt: llama,
                weight_bytes: bytes,
                act_quant: None,
                pool: Default::default(),
                f16,
            })
        })
    }

    /// The tokenizer, or an error naming the model when it came without one.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "{} has no tokenizer (tokenizer.json or GGUF metadata)",
                self.source.display()
            )
        })
    }

    pub fn ctx(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    pub fn kernels(&self) -> &Kernels {
        &self.k
    }

    /// Every linear layer's weights inside the blocks (not embeddings, LM head, norms or
    /// biases), one entry per Hugging Face tensor, in layer order.
    pub fn linear_weights(&self) -> Vec<LinearWeight> {
        let c = &self.cfg;
        let (d, inner, kvd, h) = (c.n_embd, c.n_inner(), c.kv_dim(), c.n_head);
        let mut out = Vec::new();
        for (l, w) in self.layers.iter().enumerate() {
            let mut push = |name: String, buf: &wgpu::Buffer, offset, k, n, b_t, input| {
                out.push(LinearWeight {
                    name,
                    buffer: buf.clone(),
                    offset,
                    k,
                    n,
                    b_t,
                    input,
                })
            };
            use InputWidth::{Inner, D};
            if self.wt {
                let n = |s: &str| format!("model.layers.{l}.{s}.weight");
                push(n("self_attn.q_proj"), &w.qkv_w, 0, d, d, true, D);
                push(n("self_attn.k_proj"), &w.qkv_w, d * d, d, kvd, true, D);
                push(
                    n("self_attn.v_proj"),
                    &w.qkv_w,
                    (d + kvd) * d,
                    d,
                    kvd,
                    true,
                    D,
                );
                push(n("self_attn.o_proj"), &w.o_w, 0, d, d, true, D);
                push(n("mlp.gate_proj"), &w.up_w, 0, d, inner, true, D);
                push(n("mlp.up_proj"), &w.up_w, inner * d, d, inner, true, D);
                push(n("mlp.down_proj"), &w.down_w, 0, inner, d, true, Inner);
            } else {
                let n = |s: &str| format!("h.{l}.{s}.weight");
                push(n("attn.c_attn"), &w.qkv_w, 0, d, c.qkv_dim(), false, D);
                push(n("attn.c_proj"), &w.o_w, 0, d, d, false, D);
                push(n("mlp.c_fc"), &w.up_w, 0, d, inner, false, D);
                push(n("mlp.c_proj"), &w.down_w, 0, inner, d, false, Inner);
                if let (Some((sw, _)), Some((m, _))) = (&w.scale_w, c.variant.scale()) {
                    push(n(&format!("attn.{m}")), sw, 0, d, h, true, D);
                }
            }
        }
        out
    }

    /// Fake-quantize the input of every linear layer in the blocks to `bits` bits (dynamic,
    /// per tensor: one scale per sequence and forward call), keeping the listed input channels
    /// in f32; `None` turns it off. Captures show the values before quantization.
    pub fn set_act_quant(
        &mut self,
        bits: Option<u32>,
        protect_d: &[usize],
        protect_inner: &[usize],
    ) -> Result<()> {
        let Some(bits) = bits else {
            self.act_quant = None;
            return Ok(());
        };
        if !(2..=16).contains(&bits) {
            bail!("activation quantization to {bits} bits: 2 to 16 bits are supported");
        }
        let mask = |chans: &[usize], width: usize, what: &str| -> Result<wgpu::Buffer> {
            let mut m = vec![0u32; width];
            for &c in chans {
                if c >= width {
                    bail!("protected channel {c} does not exist: the {what} input has {width} channels");
                }
                m[c] = 1;
            }
            self.ctx.storage_init(what, bytemuck::cast_slice(&m))
        };
        self.act_quant = Some(ActQuant {
            bits,
            protect_d: mask(protect_d, self.cfg.n_embd, "d-wide")?,
            protect_inner: mask(protect_inner, self.cfg.n_inner(), "MLP inner")?,
        });
        Ok(())
    }

    /// Number of vocabulary chunks the embedding is split into (1 unless the binding limit forces more).
    pub fn vocab_chunks(&self) -> usize {
        self.wte.len()
    }

    /// Vocabulary rows in the largest embedding chunk (the LM head's widest matmul).
    pub fn vocab_chunk_rows(&self) -> usize {
        self.wte.iter().map(|c| c.count).max().unwrap_or(0)
    }

    /// A KV cache for `seqs` sequences of up to `cap` tokens each.
    pub fn session(&self, seqs: usize, cap: usize) -> Result<Session> {
        if seqs == 0 {
            bail!("a batch needs at least one sequence");
        }
        if cap > self.cfg.n_positions {
            bail!(
                "{cap} tokens are longer than the model's n_positions = {}",
                self.cfg.n_positions
            );
        }
        let cap = cap.max(1);
        let bytes = (seqs * cap * self.cfg.kv_dim() * 4) as u64;
        let mut k = Vec::new();
        let mut v = Vec::new();
        self.ctx.checked("allocating the KV cache", || {
            for l in 0..self.cfg.n_layer {
                k.push(self.ctx.storage(&format!("kv cache k{l}"), bytes)?);
                v.push(self.ctx.storage(&format!("kv cache v{l}"), bytes)?);
            }
            Ok(())
        })?;
        Ok(Session {
            ctx: self.ctx.clone(),
            seqs,
            cap,
            k,
            v,
            lens: vec![0; seqs],
        })
    }

    fn check_tokens(&self, sess: &Session, new: &[&[u32]]) -> Result<()> {
        if new.len() != sess.seqs {
            bail!(
                "{} token lists given for a batch of {} sequences",
                new.len(),
                sess.seqs
            );
        }
        if new.iter().all(|t| t.is_empty()) {
            bail!("empty prompt: at least one token is needed");
        }
        for (b, toks) in new.iter().enumerate() {
            let total = sess.lens[b] + toks.len();
            if total > self.cfg.n_positions {
                bail!(
                    "sequence {b}: {total} tokens are longer than the model's n_positions = {}",
                    self.cfg.n_positions
                );
            }
            if total > sess.cap {
                bail!(
                    "sequence {b}: {total} tokens do not fit the session's KV cache of {} positions",
                    sess.cap
                );
            }
            if let Some((i, t)) = toks
                .iter()
                .enumerate()
                .find(|(_, t)| **t as usize >= self.cfg.vocab_size)
            {
                bail!(
                    "sequence {b}: token id {t} at position {i} is not in the vocabulary (vocab_size {})",
                    self.cfg.vocab_size
                );
            }
        }
        Ok(())
    }

    /// Run new tokens of each sequence through the model, appending them to the KV cache.
    /// Sequences of different lengths are padded; padding rows touch neither cache nor results.
    /// Errors with `finite::NonFinite`, naming the first hook that holds one, when a captured
    /// hook or the returned logits hold NaN or ±inf (the cache then does not advance).
    pub fn forward(
        &self,
        sess: &mut Session,
        new: &[&[u32]],
        opts: &ForwardOptions,
    ) -> Result<ForwardOutput> {
        let mut captures = vec![BTreeMap::new(); new.len()];
        let logits = self.forward_with(sess, new, opts, &mut |b, name, t| {
            captures[b].insert(name, t);
        })?;
        Ok(ForwardOutput { logits, captures })
    }

    /// `forward`, handing each captured tensor to `sink(sequence, hook, tensor)` as soon as its
    /// layer is done instead of collecting them: corpus analyses can reduce tensors on the fly.
    /// Returns the logits.
    pub fn forward_with(
        &self,
        sess: &mut Session,
        new: &[&[u32]],
        opts: &ForwardOptions,
        sink: &mut dyn FnMut(usize, String, Tensor),
    ) -> Result<Vec<Option<Tensor>>> {
        self.check_tokens(sess, new)?;
        let lens: Vec<usize> = new
            .iter()
            .zip(&sess.lens)
            .map(|(t, l)| l + t.len())
            .collect();
        crate::select::check_forward(opts, &self.hooks(), &lens)?;
        let out = self.ctx.checked("running the forward pass", || {
            self.forward_inner(sess, new, opts, sink)
        });
        let out = match out {
            Err(e) if e.is::<NonFinite>() => return Err(self.first_nonfinite(sess, new, opts, e)),
            other => other?,
        };
        for (b, t) in new.iter().enumerate() {
            sess.lens[b] += t.len();
        }
        Ok(out)
    }

    /// After non-finite values were found (in a captured hook or the logits): the same pass
    /// again, capturing every hook and keeping nothing, so that the check names the first hook
    /// that holds one. It rewrites the same KV-cache entries with the same values, and costs a
    /// capturing pass only when something is already wrong. Attention scores and patterns are
    /// left out when they would not fit a binding. Returns the error to report.
    fn first_nonfinite(
        &self,
        sess: &Session,
        new: &[&[u32]],
        opts: &ForwardOptions,
        found: anyhow::Error,
    ) -> anyhow::Error {
        let space = self.hooks();
        if space.hooks().iter().all(|h| opts.capture.wants(h)) {
            return found; // everything was checked already
        }
        let tmax = new.iter().map(|t| t.len()).max().unwrap_or(0);
        let keys = (0..sess.seqs)
            .map(|b| sess.lens[b] + new[b].len())
            .max()
            .unwrap_or(1);
        let att = (sess.seqs * tmax * self.cfg.n_head * keys * 4) as u64;
        let capture = if att <= self.ctx.max_binding {
            HookFilter::all()
        } else {
            let names: Vec<String> = space
                .hooks()
                .into_iter()
                .filter(|h| {
                    !h.ends_with("attn.hook_attn_scores") && !h.ends_with("attn.hook_pattern")
                })
                .collect();
            match HookFilter::parse(&names.join(",")) {
                Ok(f) => f,
                Err(_) => return found,
            }
        };
        let diag = ForwardOptions {
            logits: LogitsMode::None,
            capture,
            ..opts.clone()
        };
        let rerun = self.ctx.checked("locating non-finite values", || {
            self.forward_inner(sess, new, &diag, &mut |_, _, _| {})
        });
        match rerun {
            Err(e) if e.is::<NonFinite>() => e,
            _ => found,
        }
    }

    #[allow(clippy::needless_range_loop)]
    fn forward_inner(
        &self,
        sess: &Session,
        new: &[&[u32]],
        opts: &ForwardOptions,
        sink: &mut dyn FnMut(usize, String, Tensor),
    ) -> Result<Vec<Option<Tensor>>> {
        let ctx = &*self.ctx;
        let cfg = &self.cfg;
        let space = self.hooks();
        let llama = cfg.arch == Arch::Llama;
        let (d, h, hd, inner) = (cfg.n_embd, cfg.n_head, cfg.head_dim(), cfg.n_inner());
        let (kvd, qkvw) = (cfg.kv_dim(), cfg.qkv_dim());
        let s = sess.seqs;
        let tmax = new.iter().map(|t| t.len()).max().unwrap_or(0);
        let rows = s * tmax;
        let cap_keys = (0..s)
            .map(|b| sess.lens[b] + new[b].len())
            .max()
            .unwrap_or(1);
        let f = 4u64;

        // Row layout: sequence b owns rows b*tmax .. b*tmax + tmax; valid rows first.
        let mut tokens = vec![0u32; rows];
        let mut rowinfo = vec![[0u32; 4]; rows];
        for (b, toks) in new.iter().enumerate() {
            for t in 0..tmax {
                let r = b * tmax + t;
                if t < toks.len() {
                    tokens[r] = toks[t];
                    rowinfo[r] = [
                        b as u32,
                        (sess.lens[b] + t) as u32,
                        1,
                        (sess.lens[b] + toks.len()) as u32,
                    ];
                } else {
                    rowinfo[r] = [b as u32, 0, 0, 0];
                }
            }
        }
        // Activations come from the pool: a decode loop allocates nothing after its first step.
        // Reused buffers are not cleared: every kernel writes all of its output's valid rows,
        // and nothing reads a padding row's values.
        // The pool is held for the whole pass; a pass running meanwhile on another thread (or
        // from inside a capture sink) gets fresh buffers instead of waiting.
        let pool = std::cell::RefCell::new(self.pool.try_lock().ok());
        let act = |name: &'static str, bytes: u64| -> Result<wgpu::Buffer> {
            let mut guard = pool.borrow_mut();
            let Some(pool) = guard.as_mut() else {
                return ctx.storage(name, bytes);
            };
            let size = bytes.max(16).next_multiple_of(4);
            if let Some(b) = pool.get(name).filter(|b| b.size() == size) {
                return Ok(b.clone());
            }
            let b = ctx.storage(name, bytes)?;
            if pool.insert(name, b.clone()).is_some() {
                // The replaced buffer must not stay alive in cached bind groups.
                ctx.forget_bind_groups();
            }
            Ok(b)
        };
        let upload = |name: &'static str, data: &[u8]| -> Result<wgpu::Buffer> {
            let b = act(name, data.len() as u64)?;
            ctx.queue.write_buffer(&b, 0, data);
            Ok(b)
        };
        let tok_buf = upload("tokens", bytemuck::cast_slice(&tokens))?;
        let info_buf = upload("rowinfo", bytemuck::cast_slice(&rowinfo))?;

        // Activations, named by the hook they feed:            shape
        let rd = rows as u64 * d as u64 * f;
        let mut resid = act("resid a", rd)?; //                 [rows, D]  resid_pre
        let mut resid_next = act("resid b", rd)?; //            [rows, D]  resid_post
        let tok_emb = act("hook_embed", rd)?; //                [rows, D]
        let pos_emb = act("hook_pos_embed", rd)?; //            [rows, D]  (GPT-2)
        let ln1 = act("ln1", rd)?; //                           [rows, D]
        let qkv = act("qkv", rows as u64 * qkvw as u64 * f)?; // [rows, D + 2 Dkv]
        let z = act("z", rd)?; //                               [rows, H, Dh]
        let attn_out = act("attn_out", rd)?; //                 [rows, D]
        let resid_mid = act("resid_mid", rd)?; //               [rows, D]
        let ln2 = act("ln2", rd)?; //                           [rows, D]
        let up_w = if llama { 2 * inner } else { inner };
        let mlp_pre = act("mlp_pre", rows as u64 * up_w as u64 * f)?; // [rows, I] or gate|up [rows, 2I]
        let mlp_post = act("mlp_post", rows as u64 * inner as u64 * f)?; // [rows, I]
        let mlp_out = act("mlp_out", rd)?; //                   [rows, D]
        let lnf = act("ln_final", rd)?; //                      [rows, D]
        let want_att = opts.capture.wants_any_src(cfg.n_layer, |l| {
            [Src::Scores(l), Src::Pattern(l), Src::ExtraProb(l)]
        });
        // Variant-only activations, [rows, H]; a placeholder otherwise.
        let rh = |on: bool| if on { rows as u64 * h as u64 * f } else { 16 };
        let extra = ctx.storage("attn extra prob", rh(space.extra_prob))?;
        let fac = act("attn head factor", rh(space.scale))?;
        let (scores, probs) = if want_att {
            let bytes = rows as u64 * h as u64 * cap_keys as u64 * f;
            ctx.check_binding("capture of attention scores [rows, n_head, keys]", bytes)?;
            // Fresh (zeroed) buffers: captures read masked entries too.
            (
                ctx.storage("attn scores", bytes)?,
                ctx.storage("attn pattern", bytes)?,
            )
        } else {
            (act("no scores", 16)?, act("no pattern", 16)?)
        };

        // Interventions: per edited source, the kernel's inputs.
        let mut edits: Vec<EditBuffers> = Vec::new();
        // (Channels, positions and values were checked by select::check_forward.)
        for e in &opts.edits {
            let (src, offset, _) = editable(&e.hook, &space)?;
            let mut mask = vec![0u32; cfg.n_positions];
            match &e.positions {
                None => mask.fill(1),
                Some(ps) => {
                    let n = mask.len();
                    ps.iter().filter(|&&p| p < n).for_each(|&p| mask[p] = 1)
                }
            }
            let chans: Vec<u32> = e.channels.iter().map(|&c| c as u32).collect();
            edits.push(EditBuffers {
                src,
                width: space.row_width(src),
                offset,
                mask: ctx.storage_init("edit positions", bytemuck::cast_slice(&mask))?,
                channels: ctx.storage_init("edit channels", bytemuck::cast_slice(&chans))?,
                values: ctx.storage_init("edit values", bytemuck::cast_slice(&e.values))?,
                n: chans.len(),
            });
        }
        // Knockout: one key mask per distinct set of removed keys, and each layer's mask.
        let (knock_masks, knock_of_layer) = match &opts.knockout {
            Some(k) => k.layer_masks(cfg.n_layer, sess.cap),
            None => (Vec::new(), vec![None; cfg.n_layer]),
        };
        let knock = knock_masks
            .iter()
            .map(|m| ctx.storage_init("knockout keys", bytemuck::cast_slice(m)))
            .collect::<Result<Vec<_>>>()?;

        let aq_scales = match &self.act_quant {
            Some(_) => Some(act("activation quant scales", s as u64 * f)?),
            None => None,
        };
        // Fake-quantize a linear layer's input in place (compression study only).
        let quant_in = |g: &mut Graph, x: &wgpu::Buffer, input: InputWidth| {
            if let (Some(q), Some(sc)) = (&self.act_quant, &aq_scales) {
                let (k, mask) = match input {
                    InputWidth::D => (d, &q.protect_d),
                    InputWidth::Inner => (inner, &q.protect_inner),
                };
                self.k
                    .quant_act(g, rows, k, tmax, s, q.bits, x, mask, &info_buf, sc);
            }
        };

        let mut g = Graph::default();
        let mut tap = Tap {
            k: &self.k,
            ctx,
            filter: &opts.capture,
            rows,
            info: &info_buf,
            edits,
            pending: Vec::new(),
        };
        let geometry = |b: usize| crate::hooks::Geometry {
            space,
            row0: b * tmax,
            n: new[b].len(),
            past: sess.lens[b],
            cap_keys,
        };
        // Hand each captured source to the sink, cut per sequence.
        // Every hook of the source is checked for non-finite values (forward order first, then
        // sequence order) before any is handed on.
        let seq_tag = |b: usize| (s > 1).then_some(b);
        let mut deliver = |src: Src, data: Vec<f32>| -> Result<()> {
            let cut: Vec<(usize, Vec<(String, Tensor)>)> = (0..s)
                .filter(|&b| !new[b].is_empty())
                .map(|b| (b, crate::hooks::split_capture(src, &data, geometry(b))))
                .collect();
            for i in 0..cut.first().map_or(0, |c| c.1.len()) {
                for (b, hooks) in &cut {
                    let (name, t) = &hooks[i];
                    crate::finite::check_hook(name, t, sess.lens[*b], seq_tag(*b))?;
                }
            }
            for (b, hooks) in cut {
                for (i, (name, t)) in hooks.into_iter().enumerate() {
                    if opts.capture.wants_nth(src, i) {
                        sink(b, name, t);
                    }
                }
            }
            Ok(())
        };
        let rdf = rows * d;
        let wt = self.wt;
        // How the blocks' matrices are stored (f32, or packed f16 pairs).
        let wf16 = Epilogue {
            b_f16: self.f16,
            ..Default::default()
        };
        // One of the blocks' linear layers: out [rows, n] = x [rows, k] · W (+ b), epilogue fused.
        let linear = |g: &mut Graph,
                      x: &wgpu::Buffer,
                      w: &wgpu::Buffer,
                      b: Option<&wgpu::Buffer>,
                      out: &wgpu::Buffer,
                      (n, k): (usize, usize),
                      epi: Epilogue| {
            let (x, w, out) = (x.into(), w.into(), out.into());
            self.k.matmul_epi(g, rows, n, k, x, w, b, out, wt, epi);
        };

        // Embedding: one dispatch per vocabulary chunk.
        for c in &self.wte {
            self.k.embed_opt(
                &mut g,
                rows,
                d,
                c.start,
                c.count,
                &tok_buf,
                &info_buf,
                &c.buf,
                self.wpe.as_ref(),
                &resid,
                &tok_emb,
                &pos_emb,
            );
        }
        tap.tap(&mut g, Src::Embed, &tok_emb, rdf)?;
        if !llama {
            tap.tap(&mut g, Src::PosEmbed, &pos_emb, rdf)?;
        }

        for (l, w) in self.layers.iter().enumerate() {
            tap.tap(&mut g, Src::ResidPre(l), &resid, rdf)?;
            self.norm(&mut g, rows, &resid, &w.norm1_w, w.norm1_b.as_ref(), &ln1);
            tap.tap(&mut g, Src::Ln1(l), &ln1, rdf)?;
            quant_in(&mut g, &ln1, InputWidth::D);
            linear(
                &mut g,
                &ln1,
                &w.qkv_w,
                w.qkv_b.as_ref(),
                &qkv,
                (qkvw, d),
                wf16,
            );
            tap.tap(&mut g, Src::Qkv(l), &qkv, rows * qkvw)?;
            if let Some((cos, sin)) = &self.rope {
                self.k.rope(
                    &mut g,
                    rows,
                    h + cfg.n_kv_head,
                    hd,
                    qkvw,
                    &info_buf,
                    cos,
                    sin,
                    &qkv,
                );
                tap.tap(&mut g, Src::RotQk(l), &qkv, rows * qkvw)?;
            }
            self.k.kv_store_gqa(
                &mut g, rows, d, kvd, sess.cap, &qkv, &info_buf, &sess.k[l], &sess.v[l],
            );
            let p = AttnParams {
                rows: rows as u32,
                n_head: h as u32,
                head_dim: hd as u32,
                d: d as u32,
                cap: sess.cap as u32,
                capture: want_att as u32,
                cap_keys: cap_keys as u32,
                scale: cfg.attn_scale(),
                qkv_width: qkvw as u32,
                kv_dim: kvd as u32,
                group: (h / cfg.n_kv_head) as u32,
                variant: cfg.variant.code(),
                clip_gamma: cfg.clip_gamma,
                clip_eta: cfg.clip_eta,
                sig_t: cfg.sigmoid_t as u32,
                ..Default::default()
            };
            let kn = knock_of_layer[l].map(|i| &knock[i]);
            self.k.attention_full(
                &mut g,
                p,
                &qkv,
                &info_buf,
                &sess.k[l],
                &sess.v[l],
                &z,
                &scores,
                &probs,
                kn,
                w.prime.as_ref(),
                &extra,
            );
            if want_att {
                tap.tap(&mut g, Src::Scores(l), &scores, rows * h * cap_keys)?;
                tap.tap(&mut g, Src::Pattern(l), &probs, rows * h * cap_keys)?;
                if space.extra_prob {
                    tap.tap(&mut g, Src::ExtraProb(l), &extra, rows * h)?;
                }
            }
            if let (Some((sw, sb)), Some((_, mult))) = (&w.scale_w, cfg.variant.scale()) {
                self.k.matmul(
                    &mut g,
                    rows,
                    h,
                    d,
                    (&ln1).into(),
                    sw.into(),
                    Some(sb),
                    (&fac).into(),
                    true,
                );
                self.k.head_scale(&mut g, rows, h, hd, mult, &fac, &z);
                tap.tap(&mut g, Src::Scale(l), &fac, rows * h)?;
            }
            tap.tap(&mut g, Src::Z(l), &z, rdf)?;
            quant_in(&mut g, &z, InputWidth::D);
            // Nothing looking at hook_attn_out: add the residual in the matmul's epilogue.
            let fuse_add = !tap.touches(Src::AttnOut(l));
            let epi = Epilogue {
                resid: fuse_add.then_some(&resid),
                ..wf16
            };
            let out = if fuse_add { &resid_mid } else { &attn_out };
            linear(&mut g, &z, &w.o_w, w.o_b.as_ref(), out, (d, d), epi);
            if !fuse_add {
                tap.tap(&mut g, Src::AttnOut(l), &attn_out, rdf)?;
                self.k.add(&mut g, rdf, &resid, &attn_out, &resid_mid);
            }
            tap.tap(&mut g, Src::ResidMid(l), &resid_mid, rdf)?;
            self.norm(
                &mut g,
                rows,
                &resid_mid,
                &w.norm2_w,
                w.norm2_b.as_ref(),
                &ln2,
            );
            tap.tap(&mut g, Src::Ln2(l), &ln2, rdf)?;
            quant_in(&mut g, &ln2, InputWidth::D);
            // GPT-2 with nothing looking at mlp.hook_pre: GELU in the matmul's epilogue.
            let fuse_gelu = !llama && !tap.touches(Src::MlpPre(l));
            let epi = Epilogue {
                gelu: fuse_gelu.then_some(cfg.gelu_exact),
                ..wf16
            };
            let out = if fuse_gelu { &mlp_post } else { &mlp_pre };
            linear(&mut g, &ln2, &w.up_w, w.up_b.as_ref(), out, (up_w, d), epi);
            if llama {
                tap.tap(&mut g, Src::GateUp(l), &mlp_pre, rows * up_w)?;
                self.k.swiglu(&mut g, rows, inner, &mlp_pre, &mlp_post);
            } else if !fuse_gelu {
                tap.tap(&mut g, Src::MlpPre(l), &mlp_pre, rows * inner)?;
                self.k
                    .gelu_mode(&mut g, rows * inner, cfg.gelu_exact, &mlp_pre, &mlp_post);
            }
            tap.tap(&mut g, Src::MlpPost(l), &mlp_post, rows * inner)?;
            quant_in(&mut g, &mlp_post, InputWidth::Inner);
            let fuse_add = !tap.touches(Src::MlpOut(l));
            let epi = Epilogue {
                resid: fuse_add.then_some(&resid_mid),
                ..wf16
            };
            let out = if fuse_add { &resid_next } else { &mlp_out };
            linear(
                &mut g,
                &mlp_post,
                &w.down_w,
                w.down_b.as_ref(),
                out,
                (d, inner),
                epi,
            );
            if !fuse_add {
                tap.tap(&mut g, Src::MlpOut(l), &mlp_out, rdf)?;
                self.k.add(&mut g, rdf, &resid_mid, &mlp_out, &resid_next);
            }
            tap.tap(&mut g, Src::ResidPost(l), &resid_next, rdf)?;
            std::mem::swap(&mut resid, &mut resid_next);
            // Captured layers go back to the host one at a time, so a capture never needs
            // more than one layer's worth of memory.
            tap.flush(&mut g, &mut deliver)?;
        }
        self.norm(
            &mut g,
            rows,
            &resid,
            &self.normf_w,
            self.normf_b.as_ref(),
            &lnf,
        );
        tap.tap(&mut g, Src::LnFinal, &lnf, rdf)?;

        // LM head on every row, or on the last new row of each sequence.
        let want_logits_hook = opts.capture.wants_src(Src::Logits);
        let mode = if want_logits_hook {
            LogitsMode::All
        } else {
            opts.logits
        };
        let head_rows: Vec<usize> = match mode {
            LogitsMode::None => vec![],
            LogitsMode::All => (0..rows).collect(),
            LogitsMode::Last => (0..s)
                .filter(|&b| !new[b].is_empty())
                .map(|b| b * tmax + new[b].len() - 1)
                .collect(),
        };
        let logits_rb = if head_rows.is_empty() {
            None
        } else {
            let m = head_rows.len();
            let head_in = if mode == LogitsMode::All {
                lnf.clone()
            } else {
                let hi = act("lm head input", (m * d) as u64 * f)?;
                for (i, r) in head_rows.iter().enumerate() {
                    g.copy(
                        &lnf,
                        (r * d) as u64 * f,
                        &hi,
                        (i * d) as u64 * f,
                        d as u64 * f,
                    );
                }
                hi
            };
            Some((self.lm_head(&mut g, m, &head_in)?, m))
        };

        tap.flush(&mut g, &mut deliver)?;
        ctx.note_memory();
        g.submit(ctx)?;
        let Some((rb, m)) = logits_rb else {
            ctx.wait()?;
            return Ok(vec![None; s]);
        };
        let v = cfg.vocab_size;
        let raw = ctx
            .read_f32(&[(&rb, m * v)])?
            .pop()
            .expect("logits readback");
        let lf = self.unchunk_logits(&raw, m);
        let mut logits = vec![None; s];
        match mode {
            LogitsMode::All => {
                for b in 0..s {
                    let n = new[b].len();
                    if n > 0 {
                        let r0 = b * tmax;
                        logits[b] =
                            Some(Tensor::new(vec![n, v], lf[r0 * v..(r0 + n) * v].to_vec()));
                    }
                }
            }
            LogitsMode::Last => {
                let mut i = 0;
                for b in 0..s {
                    if !new[b].is_empty() {
                        logits[b] = Some(Tensor::new(vec![1, v], lf[i * v..(i + 1) * v].to_vec()));
                        i += 1;
                    }
                }
            }
            LogitsMode::None => {}
        }
        // Non-finite logits: one pass over what was read back.
        for (b, l) in logits.iter().enumerate() {
            if let Some(t) = l {
                let first = sess.lens[b] + new[b].len() - t.shape[0];
                crate::finite::check_hook("logits", t, first, seq_tag(b))?;
            }
        }
        if want_logits_hook {
            for (b, l) in logits.iter().enumerate() {
                if let Some(t) = l {
                    sink(b, "logits".into(), t.clone());
                }
            }
            match opts.logits {
                LogitsMode::All => {}
                LogitsMode::None => logits = vec![None; s],
                LogitsMode::Last => {
                    for l in logits.iter_mut() {
                        if let Some(t) = l.take() {
                            let n = t.shape[0];
                            *l = Some(Tensor::new(vec![1, v], t.row(n - 1).to_vec()));
                        }
                    }
                }
            }
        }
        Ok(logits)
    }

    /// LayerNorm (GPT-2, with bias) or RMSNorm (Llama, weight only).
    fn norm(
        &self,
        g: &mut Graph,
        rows: usize,
        x: &wgpu::Buffer,
        w: &wgpu::Buffer,
        b: Option<&wgpu::Buffer>,
        y: &wgpu::Buffer,
    ) {
        let (d, eps) = (self.cfg.n_embd, self.cfg.norm_eps);
        match b {
            Some(b) => self.k.layernorm(g, rows, d, eps, x, w, b, y),
            None => self.k.rmsnorm(g, rows, d, eps, x, w, y),
        }
    }

    /// The hook points of this model.
    pub fn hooks(&self) -> HookSpace {
        HookSpace::of(&self.cfg)
    }

    /// logits = x · Wᵀ over vocabulary chunks; output laid out chunk-major ([chunk][m][count]),
    /// split into row blocks whenever a chunk's output would pass the binding limit.
    fn lm_head(&self, g: &mut Graph, m: usize, x: &wgpu::Buffer) -> Result<wgpu::Buffer> {
        let ctx = &*self.ctx;
        let (d, v) = (self.cfg.n_embd, self.cfg.vocab_size);
        let total = (m * v) as u64 * 4;
        if total > ctx.limits.max_buffer_size {
            bail!(
                "logits for {m} rows × {v} tokens need {} MiB, over the adapter's max_buffer_size of {} MiB; ask for fewer rows",
                total >> 20,
                ctx.limits.max_buffer_size >> 20
            );
        }
        let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("logits"),
            size: total.max(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let chunks = self.lm_head.as_ref().unwrap_or(&self.wte);
        for c in chunks {
            let per_row = c.count as u64 * 4;
            let block = (((ctx.max_binding / per_row) as usize) / 64 * 64)
                .max(64)
                .min(m.next_multiple_of(64));
            let block = block.max(1);
            if (block.min(m) as u64) * per_row > ctx.max_binding
                || (block.min(m) * d * 4) as u64 > ctx.max_binding
            {
                bail!(
                    "one row block of logits does not fit the adapter's max_storage_buffer_binding_size ({} bytes)",
                    ctx.max_binding
                );
            }
            let base = (m * c.start) as u64 * 4;
            let mut r0 = 0;
            while r0 < m {
                let rn = block.min(m - r0);
                let a = Bind::range(x, (r0 * d) as u64 * 4, (rn * d) as u64 * 4);
                let o = Bind::range(&out, base + r0 as u64 * per_row, rn as u64 * per_row);
                self.k
                    .matmul(g, rn, c.count, d, a, (&c.buf).into(), None, o, true);
                r0 += rn;
            }
        }
        let rb = ctx.readback("logits readback", total)?;
        g.copy(&out, 0, &rb, 0, total);
        Ok(rb)
    }

    /// Chunk-major logits back to [m, V].
    fn unchunk_logits(&self, raw: &[f32], m: usize) -> Vec<f32> {
        let v = self.cfg.vocab_size;
        let chunks = self.lm_head.as_ref().unwrap_or(&self.wte);
        if chunks.len() == 1 {
            return raw.to_vec();
        }
        let mut out = vec![0f32; m * v];
        for c in chunks {
            let base = m * c.start;
            for r in 0..m {
                out[r * v + c.start..r * v + c.start + c.count]
                    .copy_from_slice(&raw[base + r * c.count..base + (r + 1) * c.count]);
            }
        }
        out
    }

    /// Logits of every token of one prompt (a fresh session): [T, V].
    pub fn logits(&self, tokens: &[u32]) -> Result<Tensor> {
        let mut sess = self.session(1, tokens.len())?;
        let out = self.forward(
            &mut sess,
            &[tokens],
            &ForwardOptions {
                logits: LogitsMode::All,
                ..Default::default()
            },
        )?;
        Ok(out
            .logits
            .into_iter()
            .next()
            .flatten()
            .expect("logits requested"))
    }

    /// Capture the hooks selected by `filter` for one prompt (a fresh session).
    pub fn capture(&self, tokens: &[u32], filter: &HookFilter) -> Result<BTreeMap<String, Tensor>> {
        let mut sess = self.session(1, tokens.len())?;
        let out = self.forward(
            &mut sess,
            &[tokens],
            &ForwardOptions {
                logits: LogitsMode::None,
                capture: filter.clone(),
                ..Default::default()
            },
        )?;
        Ok(out.captures.into_iter().next().unwrap_or_default())
    }
}

/// Applies edits where a hook is produced and queues captured sources for readback.
struct Tap<'a> {
    k: &'a Kernels,
    ctx: &'a GpuContext,
    filter: &'a HookFilter,
    rows: usize,
    info: &'a wgpu::Buffer,
    edits: Vec<EditBuffers>,
    pending: Vec<(Src, wgpu::Buffer, usize)>,
}

/// One edit's GPU inputs: source, row width, column offset, position mask, channels, values.
struct EditBuffers {
    src: Src,
    width: usize,
    offset: usize,
    mask: wgpu::Buffer,
    channels: wgpu::Buffer,
    values: wgpu::Buffer,
    n: usize,
}

impl Tap<'_> {
    /// Whether anything looks at `src` (a capture or an edit): if not, the op that makes it
    /// may be fused into the next one.
    fn touches(&self, src: Src) -> bool {
        self.filter.wants_src(src) || self.edits.iter().any(|e| e.src == src)
    }

    /// `buf` now holds `src`: edit it, then copy it out if it is captured.
    fn tap(&mut self, g: &mut Graph, src: Src, buf: &wgpu::Buffer, floats: usize) -> Result<()> {
        for e in &self.edits {
            if e.src == src {
                self.k.edit(
                    g,
                    self.rows,
                    e.width,
                    e.offset,
                    e.n,
                    self.info,
                    &e.mask,
                    &e.channels,
                    &e.values,
                    buf,
                );
            }
        }
        if self.filter.wants_src(src) {
            let bytes = floats as u64 * 4;
            let rb = self.ctx.readback(&format!("capture {src:?}"), bytes)?;
            g.copy(buf, 0, &rb, 0, bytes);
            self.pending.push((src, rb, floats));
        }
        Ok(())
    }

    /// Submit what is recorded so far and hand the captured sources to `deliver`.
    fn flush(
        &mut self,
        g: &mut Graph,
        deliver: &mut dyn FnMut(Src, Vec<f32>) -> Result<()>,
    ) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.ctx.note_memory();
        std::mem::take(g).submit(self.ctx)?;
        let pending = std::mem::take(&mut self.pending);
        let reads: Vec<(&wgpu::Buffer, usize)> = pending.iter().map(|(_, b, n)| (b, *n)).collect();
        for ((src, _, _), data) in pending.iter().zip(self.ctx.read_f32(&reads)?) {
            deliver(*src, data)?;
        }
        Ok(())
    }
}
