//! A transformer on one GPU: weights in storage buffers, KV-cache sessions, and forward passes
//! with hook-point capture and edits. One file per architecture (`gpt2`, `llama`, `gpt_neox`, `opt`, `gemma3`; Qwen3 runs llama.rs with q/k norms; Qwen2 runs llama.rs with q/k/v biases),
//! registered in `registry`; the op vocabulary they call is `pass` (+ `attention`), hook points
//! are `hook_point`.
//! Depends on gpu, kernels and the data types below; never on studies, analysis, report or frontends.

mod acts;
mod attention;
mod gated;
pub(crate) mod gemma3;
pub(crate) mod gpt2;
pub(crate) mod gpt_neox;
mod head;
mod hook_point;
pub(crate) mod llama;
pub(crate) mod opt;
mod pass;
mod pass_embed;
mod pass_glu;
pub mod registry;
mod run;
mod session;
mod upload;
mod upload_quant;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};

pub use crate::forward::{ForwardOptions, ForwardOutput, LogitsMode};
pub use crate::rope::rope_tables;
pub use session::Session;
pub use upload::{pack_f16, InputWidth};
pub use upload_quant::Weights;

use crate::analysis::ModuleWeight;
use crate::config::ModelConfig;
use crate::gpu::GpuContext;
use crate::hooks::HookSpace;
use crate::kernels::Kernels;
use crate::tokenizer::Tokenizer;
use crate::weights::WeightSource;
use acts::{Acts, PoolMap};
use head::Embedding;
use pass::{ActQuant, Pass};
use upload::{Linear, Uploader};

/// What an architecture file provides: its forward pass, as flat lists of op calls on a
/// [`Pass`] in the order of the model's figure, and its linear layers for the compression study.
pub(crate) trait Architecture: Send + Sync {
    /// Token (and position) embedding into `a.resid`, with its hook points.
    fn embed(&self, p: &mut Pass, a: &Acts) -> Result<()>;
    /// Block `l`: `a.resid` (resid_pre) to `a.resid_next` (resid_post), every hook point on the way.
    fn block(&self, p: &mut Pass, a: &Acts, l: usize) -> Result<()>;
    /// The final norm into `a.ln_final`, with its hook point.
    fn final_norm(&self, p: &mut Pass, a: &Acts) -> Result<()>;
    /// Every linear layer's weight inside the blocks, one entry per Hugging Face tensor.
    fn linear_weights(&self) -> Vec<LinearWeight>;
    /// The matmuls of one block as the pass runs them (stacked matrices as one): (label, n, k, b_t).
    fn block_matmuls(&self) -> Vec<(&'static str, usize, usize, bool)>;
    /// Layer `l`'s projection weights as `[in, out]` tensors with their roles, read from `wf`
    /// into host memory (the weight-outlier analysis).
    fn module_weights(&self, wf: &dyn WeightSource, l: usize) -> Result<Vec<ModuleWeight>>;
}

/// A GPT-2, Llama, Qwen2, Qwen3, GPT-NeoX, OPT or Gemma 3 model loaded onto one GPU.
pub struct Model {
    pub cfg: ModelConfig,
    pub tokenizer: Option<Tokenizer>,
    /// Where the weights came from (a model directory or a GGUF file).
    pub source: PathBuf,
    /// Bytes of weights on the GPU.
    pub weight_bytes: u64,
    /// Of those, bytes of linear layers kept in ggml blocks (`--weights stored|q8`).
    pub quant_bytes: u64,
    /// The blocks' linear-layer matrices are stored as f16 (packed pairs), read with f32 math.
    pub f16: bool,
    /// How the blocks' linear-layer matrices were asked to be stored (`--weights`); with
    /// `Stored` or `Q8` some may stay dense (see [`Weights`]).
    pub weights: Weights,
    pub(crate) ctx: Arc<GpuContext>,
    pub(crate) k: Kernels,
    emb: Embedding,
    arch: Box<dyn Architecture>,
    /// Fake quantization of every linear layer's input (the compression study), if set.
    act_quant: Option<ActQuant>,
    /// Activation buffers by name, kept from one forward pass to the next of the same size.
    pool: PoolMap,
    /// f32 scratch for the prefill path of layers kept in ggml blocks (see `Pass::qscratch`).
    qscratch: Option<wgpu::Buffer>,
}

/// The GPT-2 name the engine started with; the same type runs Llama models.
pub type Gpt2 = Model;

/// Likewise for the weights and the activation pool.
impl Drop for Model {
    fn drop(&mut self) {
        self.ctx.forget_bind_groups();
    }
}

/// How to load a model.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// How to store the blocks' linear-layer matrices (`--weights`): as stored (default: a
    /// GGUF's quantized blocks stay quantized, decoded inside the matmul), f32, f16 (half the
    /// bytes; f32 accumulation) or Q8_0. Norms and biases stay f32; with `Stored`, a GGUF's
    /// token embedding and LM head stay in their blocks too (GPT-2 and OPT embeddings: f32).
    pub weights: Weights,
}

/// One linear layer's weight matrix inside a block, as the engine stores it: elements
/// `offset .. offset + k·n` of its GPU buffer, `[k, n]` (Conv1D, in × out) or `[n, k]` (`b_t`,
/// nn.Linear). Stacked Llama matrices (q|k|v, gate|up) give one entry per Hugging Face tensor.
#[derive(Clone, Debug)]
pub struct LinearWeight {
    /// The Hugging Face tensor name.
    pub name: String,
    pub offset: usize,
    pub k: usize,
    pub n: usize,
    pub b_t: bool,
    pub input: InputWidth,
    pub(crate) buffer: wgpu::Buffer,
}

impl LinearWeight {
    fn whole(name: String, l: &Linear) -> Self {
        Self::part(name, l, 0, l.n)
    }

    /// Rows `n` of a stacked nn.Linear layer starting at element `offset`.
    fn part(name: String, l: &Linear, offset: usize, n: usize) -> Self {
        Self {
            name,
            offset,
            k: l.k,
            n,
            b_t: l.b_t,
            input: l.input,
            buffer: l.w.clone(),
        }
    }
}

impl Model {
    /// Load a model: a Hugging Face directory (`config.json` with model_type gpt2, llama, qwen2 or opt,
    /// `model.safetensors`, `tokenizer.json`) or a `.gguf` file (Llama). The family comes from the file.
    ///
    /// # Errors
    /// Files that do not open, parse or validate (the message names the file and field or
    /// tensor), or weights the device cannot hold.
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

    /// A model from a parsed config and a weight source (default options).
    pub fn from_weights(
        ctx: Arc<GpuContext>,
        cfg: ModelConfig,
        tokenizer: Option<Tokenizer>,
        wf: &dyn WeightSource,
    ) -> Result<Self> {
        Self::from_weights_with(ctx, cfg, tokenizer, wf, &LoadOptions::default())
    }

    /// A model from a parsed config and a weight source: the architecture's loader
    /// (`registry::loader`) uploads its tensors.
    ///
    /// # Errors
    /// More layers in the file than the config says, a tokenizer larger than the vocabulary, a
    /// missing or misshapen tensor, or weights the device cannot hold.
    pub fn from_weights_with(
        ctx: Arc<GpuContext>,
        cfg: ModelConfig,
        tokenizer: Option<Tokenizer>,
        wf: &dyn WeightSource,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let extra = registry::layer_probe(cfg.arch, cfg.n_layer);
        if wf.contains(&extra) {
            bail!(
                "{}: holds more layers than the config's n_layer = {}",
                wf.path().display(),
                cfg.n_layer
            );
        }
        if let Some(t) = &tokenizer {
            if t.vocab_size() > cfg.vocab_size {
                bail!(
                    "the tokenizer has {} tokens but the model's vocab_size is {}",
                    t.vocab_size(),
                    cfg.vocab_size
                );
            }
        }
        let k = Kernels::new(&ctx)?;
        ctx.clone().checked("loading the weights onto the GPU", || {
            let mut up = Uploader {
                ctx: &ctx,
                wf,
                f16: opts.weights == Weights::F16,
                weights: opts.weights,
                bytes: 0,
                quant_bytes: 0,
                quant_max_elems: 0,
            };
            let emb = Embedding::load(&mut up, &cfg, registry::embedding_name(cfg.arch))?;
            let arch = registry::loader(cfg.arch)(&cfg, &mut up)?;
            let (weight_bytes, quant_bytes) = (up.bytes, up.quant_bytes);
            // The prefill path's f32 scratch for one quantized layer (none when over a binding:
            // then every pass runs the quantized matvec).
            let scratch = up.quant_max_elems as u64 * 4;
            let qscratch = (scratch > 0 && scratch <= ctx.max_binding)
                .then(|| ctx.storage("quantized layer scratch (f32)", scratch))
                .transpose()?;
            ctx.wait()?;
            Ok(Self {
                cfg: cfg.clone(),
                tokenizer,
                source: wf.path().to_path_buf(),
                weight_bytes,
                quant_bytes,
                f16: opts.weights == Weights::F16,
                weights: opts.weights,
                ctx: ctx.clone(),
                k,
                emb,
                arch,
                act_quant: None,
                pool: Default::default(),
                qscratch,
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

    /// The GPU the model lives on: load further models onto it with [`Model::load`].
    pub fn device(&self) -> Arc<GpuContext> {
        self.ctx.clone()
    }

    /// The adapter's name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub fn device_name(&self) -> &str {
        &self.ctx.info.name
    }

    /// The hook points of this model.
    pub fn hooks(&self) -> HookSpace {
        HookSpace::of(&self.cfg)
    }

    /// Every linear layer's weights inside the blocks (not embeddings, LM head, norms or
    /// biases), one entry per Hugging Face tensor, in layer order.
    pub fn linear_weights(&self) -> Vec<LinearWeight> {
        self.arch.linear_weights()
    }

    /// Hand every projection weight of the model to `f`, one layer at a time, as `[in, out]`
    /// tensors with their roles. The weights are read again from the model's file (`source`),
    /// so nothing stays in host memory.
    ///
    /// # Errors
    /// The file no longer opens, or a tensor is missing.
    pub fn for_each_module_weight(&self, mut f: impl FnMut(&ModuleWeight)) -> Result<()> {
        let source = crate::model_files::weight_source(&self.source, self.cfg.arch)?;
        for l in 0..self.cfg.n_layer {
            for mw in self.arch.module_weights(&*source, l)? {
                f(&mw);
            }
        }
        Ok(())
    }

    /// The matmuls of one block as the forward pass runs them (stacked matrices as one):
    /// (label, n, k, b_t) for out `[rows, n]` = x `[rows, k]` · W, W stored `[n, k]` when `b_t`.
    pub fn block_matmuls(&self) -> Vec<(&'static str, usize, usize, bool)> {
        self.arch.block_matmuls()
    }

    /// Number of vocabulary chunks the embedding is split into (1 unless the binding limit forces more).
    pub fn vocab_chunks(&self) -> usize {
        self.emb.wte.len()
    }

    /// Vocabulary rows in the largest embedding chunk (the LM head's widest matmul).
    pub fn vocab_chunk_rows(&self) -> usize {
        self.emb.chunk_rows()
    }

    /// Fake-quantize the input of every linear layer in the blocks to `bits` bits (dynamic,
    /// per tensor: one scale per sequence and forward call), keeping the listed input channels
    /// in f32; `None` turns it off. Captures show the values before quantization.
    ///
    /// # Errors
    /// `bits` outside 2..=16, or a protected channel beyond its input's width.
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
            protect_heads: mask(&[], self.cfg.q_dim(), "attention heads")?,
        });
        Ok(())
    }
}
