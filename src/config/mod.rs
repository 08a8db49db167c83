//! What a model is, whatever its file: `ModelConfig` (the normalized hyper-parameters), `Arch`
//! (the architectures and their GPU-free facts), `AttnVariant`, and parsing `config.json`
//! (`gpt2.rs`, `llama.rs`, `qwen2.rs`, `gpt_neox.rs`, `opt.rs`, `gemma3.rs`, `qwen3.rs`). Plain data and serde: never wgpu, GGUF, models or studies.

mod attn_shape;
mod attn_variant;
mod checks;
mod gemma3;
mod gpt2;
mod gpt_neox;
mod llama;
mod opt;
mod qwen2;
mod qwen3;

use std::path::Path;

use anyhow::{bail, Context, Result};

use checks::{check_finite, check_u32_sizes};

pub use attn_shape::AttnShape;
pub use attn_variant::AttnVariant;
pub use gpt2::Gpt2Config;
pub use gpt_neox::{neox_qkv_rows, GptNeoxConfig};
pub use llama::LlamaConfig;

/// Longest sequence a model may declare: the host builds tables and masks with one entry per
/// position (Llama's RoPE tables are `n_positions × head_dim` floats), so a config claiming more
/// is an error rather than an attempt.
pub const MAX_POSITIONS: usize = 1 << 24;

/// Model family, chosen from the file (config.json's `model_type`, or GGUF's architecture).
/// Its facts that need no GPU are the tables below; its loader and forward pass are
/// `model::registry` and `model/<arch>.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Arch {
    /// LayerNorm, learned positions, fused c_attn with biases, GELU MLP, Conv1D `[in, out]` weights.
    Gpt2,
    /// RMSNorm, RoPE, grouped-query attention, SwiGLU MLP, nn.Linear `[out, in]` weights.
    Llama,
    /// Llama with biases on q_proj, k_proj and v_proj.
    Qwen2,
    /// GPT-NeoX (Pythia): LayerNorm with biases, partial RoPE, fused per-head q|k|v with biases,
    /// GELU MLP, parallel (or sequential) residual, untied `embed_out`.
    GptNeox,
    /// Gemma 3 (text): four RMSNorms x·(1 + w) per block, q/k norms, GeGLU, sliding-window
    /// layers with their own RoPE base, an explicit head_dim, √d-scaled embeddings.
    Gemma3,
    /// Qwen2 without the q/k/v biases, with per-head q/k RMSNorm and an explicit head_dim.
    Qwen3,
    /// OPT: LayerNorm (pre- or post-), learned positions offset by 2, biased q/k/v/out_proj,
    /// ReLU MLP fc1 → fc2, optional project_in/project_out around the blocks.
    Opt,
}

/// Which optional hook points an architecture's blocks have (see `hooks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookLayout {
    /// Learned positions: `hook_pos_embed`.
    pub pos_embed: bool,
    /// RoPE: `attn.hook_rot_q`, `attn.hook_rot_k`.
    pub rotary: bool,
    /// A gated MLP: `mlp.hook_pre` (gate) and `mlp.hook_pre_linear` (up) from one buffer.
    pub gated_mlp: bool,
    /// Per-head RMSNorm of q and k before RoPE: `attn.q_norm.hook_normalized`,
    /// `attn.k_norm.hook_normalized` (Gemma 3, Qwen3).
    pub qk_norm: bool,
    /// A norm on each branch's output before its residual add: `ln1_post.hook_normalized`,
    /// `ln2_post.hook_normalized` (Gemma 2/3's sandwich norms).
    pub post_norms: bool,
}

/// Where an architecture's tensors are in a `model.safetensors`.
#[derive(Clone, Copy, Debug)]
pub struct WeightNames {
    /// A tensor every checkpoint has (it finds the prefix), also the token embedding.
    pub embedding: &'static str,
    /// Prefixes tried in order before each tensor name.
    pub prefixes: &'static [&'static str],
    /// The untied LM head's tensor (`lm_head.weight`; GPT-NeoX: `embed_out.weight`), looked up
    /// under the prefixes, then without one.
    pub lm_head: &'static str,
}

/// An architecture's facts that need no GPU; its loader and forward pass are `model/<arch>.rs`.
pub struct ArchSpec {
    pub arch: Arch,
    /// The name messages use ("GPT-2", "Llama").
    pub name: &'static str,
    /// config.json's `model_type`.
    pub model_type: &'static str,
    /// Its optional hook points.
    pub hook_layout: HookLayout,
    /// Its tensor names in safetensors checkpoints.
    pub weight_names: WeightNames,
    /// A tensor of layer `l` every checkpoint of this family has (finds extra layers).
    pub layer_tensor: fn(usize) -> String,
    /// Parse and validate a `config.json` of this family.
    pub from_config_json: fn(&Path) -> Result<ModelConfig>,
}

impl Arch {
    /// Every architecture the engine runs.
    pub const ALL: [Arch; 7] = [
        Arch::Gpt2,
        Arch::Llama,
        Arch::Qwen2,
        Arch::GptNeox,
        Arch::Gemma3,
        Arch::Qwen3,
        Arch::Opt,
    ];

    /// The registry, GPU-free half: one line per architecture.
    pub fn spec(self) -> &'static ArchSpec {
        match self {
            Arch::Gpt2 => &gpt2::SPEC,
            Arch::Llama => &llama::SPEC,
            Arch::Qwen2 => &qwen2::SPEC,
            Arch::GptNeox => &gpt_neox::SPEC,
            Arch::Gemma3 => &gemma3::SPEC,
            Arch::Qwen3 => &qwen3::SPEC,
            Arch::Opt => &opt::SPEC,
        }
    }

    /// The name messages use ("GPT-2", "Llama").
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Its optional hook points.
    pub fn hook_layout(self) -> HookLayout {
        self.spec().hook_layout
    }

    /// Its tensor names in safetensors checkpoints.
    pub fn weight_names(self) -> WeightNames {
        self.spec().weight_names
    }

    /// A tensor of layer `l` every checkpoint of this family has (finds extra layers).
    pub fn layer_tensor(self, l: usize) -> String {
        (self.spec().layer_tensor)(l)
    }
}

/// Everything the forward pass needs to know about a model, whatever its family.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    /// Longest sequence (GPT-2 `n_positions`, Llama `max_position_embeddings`).
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Key/value heads (grouped-query attention); equal to n_head for GPT-2.
    pub n_kv_head: usize,
    pub n_inner: usize,
    /// q_proj, k_proj and v_proj carry biases (Qwen2; GPT-NeoX `attention_bias`: query_key_value
    /// and attention.dense). GPT-2's c_attn bias is its own file's.
    pub qkv_bias: bool,
    pub norm_eps: f32,
    /// RoPE base (architectures with `hook_layout().rotary`).
    pub rope_theta: f32,
    /// Partial rotary embeddings (GPT-NeoX `rotary_pct` / `partial_rotary_factor`): only the
    /// first `rotary_dims` dimensions of each q/k head are rotated (pairs i, i + rotary_dims/2),
    /// the rest pass through. `None`: the whole head ([`ModelConfig::rope_dims`]).
    pub rotary_dims: Option<usize>,
    /// Parallel residual (GPT-NeoX `use_parallel_residual`): x + attn(ln1(x)) + mlp(ln2(x)),
    /// so a block has no `hook_resid_mid`. false: x′ = x + attn(ln1(x)), x′ + mlp(ln2(x′)).
    pub parallel_residual: bool,
    /// RoPE frequency divisors, one per rotary pair (`head_dim / 2` of them): pair `i` turns at
    /// `rope_theta^(−2i/head_dim) / rope_freq_factors[i]` radians per position. Empty = all 1.
    /// From linear or Llama 3 scaling in config.json ([`crate::rope`]) or GGUF
    /// `rope.scaling.factor` × `rope_freqs.weight` (llama.cpp's freq_factors).
    pub rope_freq_factors: Vec<f32>,
    pub tie_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub scale_attn_weights: bool,
    /// GELU in its exact erf form (`activation_function: "gelu"`, nanoGPT) instead of the tanh form.
    pub gelu_exact: bool,
    pub variant: AttnVariant,
    pub clip_gamma: f32,
    pub clip_eta: f32,
    /// Sigmoid attention's fixed T (0: the sequence's length in the forward pass, as the paper's code).
    pub sigmoid_t: usize,
    /// Attention beyond GPT-2's and Llama's shape (Gemma 3, Qwen3); `Default` for the others.
    pub attn: AttnShape,
    /// Width of the token-embedding rows and of the LM head's input (OPT `word_embed_proj_dim`);
    /// `n_embd` for every other family. When it differs from `n_embd`, the model projects the
    /// embedding in (`project_in`, hook `hook_project_in`) and the final state out
    /// (`project_out`, hook `hook_project_out`).
    pub embed_dim: usize,
    /// Row of the learned-position table that position 0 reads (OPT: 2, its
    /// `OPTLearnedPositionalEmbedding.offset`; 0 for GPT-2 and RoPE families).
    pub pos_offset: usize,
    /// The model has a final norm before the LM head (hook `ln_final.hook_normalized`); false for
    /// OPT with `do_layer_norm_before = false` or `_remove_final_layer_norm`. True elsewhere.
    pub final_norm: bool,
    /// Post-LN blocks: x = LN(x + attn(x)), x = LN(x + mlp(x)) (OPT `do_layer_norm_before =
    /// false`). False (pre-LN) everywhere else.
    pub post_norm: bool,
    /// The LayerNorms have a weight and a bias (OPT `layer_norm_elementwise_affine`); true elsewhere.
    pub norm_affine: bool,
    /// The MLP's activation is ReLU (OPT `activation_function: "relu"`) instead of GELU.
    pub relu: bool,
    /// Every linear layer of the blocks has a bias (OPT `enable_bias`); read by `model/opt.rs`
    /// only (GPT-2 always has them, Llama never, Qwen2 on q/k/v: `qkv_bias`).
    pub linear_bias: bool,
}

impl ModelConfig {
    /// Width of one attention head: `attn.head_dim`, else n_embd / n_head.
    pub fn head_dim(&self) -> usize {
        self.attn.head_dim.unwrap_or(self.n_embd / self.n_head)
    }

    /// Width of the query projection and of z (n_head · head_dim; n_embd unless `attn.head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim()
    }

    /// Width of the key (and value) projections.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim()
    }

    /// Width of the fused q|k|v rows.
    pub fn qkv_dim(&self) -> usize {
        self.q_dim() + 2 * self.kv_dim()
    }

    /// The sliding window of layer `l` (`None`: the layer sees every earlier key).
    pub fn window(&self, l: usize) -> Option<usize> {
        match self.attn.sliding_layers.get(l) {
            Some(true) => self.attn.sliding_window,
            _ => None,
        }
    }

    pub fn n_inner(&self) -> usize {
        self.n_inner
    }

    /// Rotated dimensions of each q/k head: `rotary_dims`, else the whole head.
    pub fn rope_dims(&self) -> usize {
        self.rotary_dims.unwrap_or_else(|| self.head_dim())
    }

    pub fn attn_scale(&self) -> f32 {
        if let Some(s) = self.attn.query_pre_attn_scalar {
            // transformers: query_pre_attn_scalar**-0.5 in Python floats, used as an f32 factor.
            (s as f64).powf(-0.5) as f32
        } else if self.scale_attn_weights {
            1.0 / (self.head_dim() as f32).sqrt()
        } else {
            1.0
        }
    }

    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_kv_head", self.n_kv_head),
            ("n_inner", self.n_inner),
            ("embed_dim", self.embed_dim),
        ] {
            if v == 0 {
                bail!("{name} is 0");
            }
        }
        check_u32_sizes(&[
            ("vocab_size", self.vocab_size),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_kv_head", self.n_kv_head),
            ("n_inner", self.n_inner),
            ("sigmoid_t", self.sigmoid_t),
            ("embed_dim", self.embed_dim),
        ])?;
        if self.n_positions > MAX_POSITIONS {
            bail!(
                "n_positions {} is over the supported {MAX_POSITIONS}",
                self.n_positions
            );
        }
        if self.attn.head_dim.is_none() && self.n_embd % self.n_head != 0 {
            bail!(
                "n_embd {} is not a multiple of n_head {}",
                self.n_embd,
                self.n_head
            );
        }
        if self.n_head % self.n_kv_head != 0 {
            bail!(
                "n_head {} is not a multiple of the key/value heads {}",
                self.n_head,
                self.n_kv_head
            );
        }
        if self.head_dim() == 0 {
            bail!("head_dim is 0");
        }
        self.attn.validate(self.n_layer)?;
        if self.head_dim() > 256 {
            bail!(
                "head dimension {} is over the supported 256",
                self.head_dim()
            );
        }
        let rotary = self.arch.hook_layout().rotary;
        if rotary && self.rope_dims() % 2 != 0 {
            bail!(
                "RoPE needs an even number of rotated dimensions, got {}",
                self.rope_dims()
            );
        }
        if rotary && !(1..=self.head_dim()).contains(&self.rope_dims()) {
            bail!(
                "{} rotated dimensions per head: must lie in 2..={} (the head dimension)",
                self.rope_dims(),
                self.head_dim()
            );
        }
        if !self.norm_eps.is_finite() || self.norm_eps <= 0.0 {
            bail!(
                "the normalisation epsilon is {}; it must be finite and > 0",
                self.norm_eps
            );
        }
        if rotary && (!self.rope_theta.is_finite() || self.rope_theta <= 0.0) {
            bail!(
                "the RoPE base (rope_theta) is {}; it must be finite and > 0",
                self.rope_theta
            );
        }
        check_finite("clip_gamma", Some(self.clip_gamma.into()))?;
        check_finite("clip_eta", Some(self.clip_eta.into()))?;
        Ok(())
    }

    /// Which family a model directory holds, from its config.json's `model_type`.
    pub fn from_dir_config(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let model_type = v
            .get("model_type")
            .and_then(|m| m.as_str())
            .unwrap_or("gpt2");
        // A multimodal wrapper (Gemma 3's `gemma3`) whose `text_config` holds a family's text
        // model goes to that family's parser, which reads the wrapper.
        let text_type = v
            .pointer("/text_config/model_type")
            .and_then(|m| m.as_str());
        let of = |t: Option<&str>| {
            Arch::ALL
                .into_iter()
                .find(|a| Some(a.spec().model_type) == t)
        };
        match of(Some(model_type)).or_else(|| of(text_type)) {
            Some(a) => (a.spec().from_config_json)(path),
            None => {
                let known: Vec<&str> = Arch::ALL.iter().map(|a| a.spec().model_type).collect();
                bail!(
                    "{}: model_type '{model_type}' is not supported ({} are)",
                    path.display(),
                    known.join(", ")
                )
            }
        }
    }
}
