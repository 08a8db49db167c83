//! `config.json` of a Hugging Face GPT-2 checkpoint.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The fields of a GPT-2 `config.json` that the forward pass needs.
#[derive(Clone, Debug, Deserialize)]
pub struct Gpt2Config {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP width; `None` means 4 × n_embd.
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f32,
    #[serde(default = "default_act")]
    pub activation_function: String,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// GPT-2 divides attention scores by sqrt(head_dim) unless this is false.
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    pub reorder_and_upcast_attn: bool,
    /// The LM head is `wte` (default true, as transformers' GPT2Config).
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Attention variant (outlier-probe extension; absent = the default softmax). See [`AttnVariant`].
    #[serde(default)]
    pub attn_variant: Option<String>,
    /// Clipped softmax's γ and η.
    #[serde(default)]
    pub clip_gamma: Option<f32>,
    #[serde(default)]
    pub clip_eta: Option<f32>,
    /// Sigmoid attention's T in σ(s − log T); absent = as the paper's code: the sequence's length
    /// in the forward pass (then a position's output depends on later tokens, and KV-cache decoding
    /// differs from recomputation).
    #[serde(default)]
    pub sigmoid_fixed_t: Option<f64>,
}

/// Attention variants of Wang et al. 2025 (Table 2) and related ones, as `attn_variant` in config.json.
///
/// | `attn_variant` | formula | extra tensors per layer |
/// |---|---|---|
/// | `default` | softmax(s) V | — |
/// | `value_bias` (b) | softmax(s) V + v′ | `h.{l}.attn.v_prime` [H, Dh] |
/// | `context_bias` (c) | softmax(s) V + p′ v′ | `h.{l}.attn.k_prime`, `v_prime` [H, Dh] |
/// | `attn_bias` (d) | softmax(Q[K; k′]ᵀ)[V; v′] | `k_prime`, `v_prime` |
/// | `context_scale` (e) | 2σ(W x + b) · softmax(s) V, x = ln_1 output | `h.{l}.attn.context_scale.weight` [H, D], `.bias` [H] |
/// | `sigmoid` (f) | σ(s − log T) V, T = sequence length | — (config `sigmoid_fixed_t`) |
/// | `softmax1` | Σ e^s v / (1 + Σ e^s) | — |
/// | `clipped` | clip((η − γ) softmax(s) + γ, 0, 1) V | — (config `clip_gamma`, `clip_eta`) |
/// | `gated` | σ(G x + c) · softmax(s) V | `h.{l}.attn.gate.weight` [H, D], `.bias` [H] |
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum AttnVariant {
    Default,
    ValueBias,
    ContextBias,
    AttnBias,
    ContextScale,
    Sigmoid,
    Softmax1,
    Clipped,
    Gated,
}

impl AttnVariant {
    pub const ALL: [AttnVariant; 9] = [
        Self::Default,
        Self::ValueBias,
        Self::ContextBias,
        Self::AttnBias,
        Self::ContextScale,
        Self::Sigmoid,
        Self::Softmax1,
        Self::Clipped,
        Self::Gated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::ValueBias => "value_bias",
            Self::ContextBias => "context_bias",
            Self::AttnBias => "attn_bias",
            Self::ContextScale => "context_scale",
            Self::Sigmoid => "sigmoid",
            Self::Softmax1 => "softmax1",
            Self::Clipped => "clipped",
            Self::Gated => "gated",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "attn_variant '{s}' is unknown; known: {}",
                    Self::ALL.map(Self::name).join(", ")
                )
            })
    }

    /// The code attention.wgsl switches on.
    pub fn code(self) -> u32 {
        Self::ALL.iter().position(|v| *v == self).expect("listed") as u32
    }

    /// Needs `v_prime` (and `k_prime` when `needs_k_prime`).
    pub fn has_v_prime(self) -> bool {
        matches!(self, Self::ValueBias | Self::ContextBias | Self::AttnBias)
    }

    pub fn has_k_prime(self) -> bool {
        matches!(self, Self::ContextBias | Self::AttnBias)
    }

    /// A per-head output factor computed from the ln_1 output (`hook_scale`).
    pub fn scale(self) -> Option<(&'static str, f32)> {
        match self {
            Self::ContextScale => Some(("context_scale", 2.0)),
            Self::Gated => Some(("gate", 1.0)),
            _ => None,
        }
    }

    /// Has an extra-key probability p′ (`hook_extra_prob`).
    pub fn has_extra_prob(self) -> bool {
        matches!(self, Self::ContextBias | Self::AttnBias | Self::Softmax1)
    }
}

/// Longest sequence a model may declare: the host builds tables and masks with one entry per
/// position (Llama's RoPE tables are `n_positions × head_dim` floats), so a config claiming more
/// is an error rather than an attempt.
pub const MAX_POSITIONS: usize = 1 << 24;

/// Every size must fit the `u32` the GPU kernels index with.
fn check_u32_sizes(sizes: &[(&str, usize)]) -> Result<()> {
    for &(name, v) in sizes {
        if v > u32::MAX as usize {
            bail!(
                "{name} {v} is over the supported {} (sizes are u32 on the GPU)",
                u32::MAX
            );
        }
    }
    Ok(())
}

/// A float setting that must be finite (NaN or infinity would reach every output).
fn check_finite(name: &str, v: Option<f64>) -> Result<()> {
    match v {
        Some(x) if !x.is_finite() => bail!("{name} is {x}, not a finite number"),
        _ => Ok(()),
    }
}

fn default_model_type() -> String {
    "gpt2".into()
}
fn default_eps() -> f32 {
    1e-5
}
fn default_act() -> String {
    "gelu_new".into()
}
fn default_true() -> bool {
    true
}

impl Gpt2Config {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {} as JSON", path.display()))?;
        crate::config_fields::check(&json, crate::config_fields::GPT2)
            .with_context(|| format!("invalid config {}", path.display()))?;
        let cfg: Self = serde_json::from_value(json)
            .with_context(|| format!("parsing {} as a GPT-2 config", path.display()))?;
        cfg.validate()
            .with_context(|| format!("invalid config {}", path.display()))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        if self.model_type != "gpt2" {
            bail!("model_type is '{}', expected 'gpt2'", self.model_type);
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
        ] {
            if v == 0 {
                bail!("{name} is 0");
            }
        }
        check_u32_sizes(&[
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_inner", self.n_inner.unwrap_or(0)),
        ])?;
        if self.n_embd % self.n_head != 0 {
            bail!(
                "n_embd {} is not a multiple of n_head {}",
                self.n_embd,
                self.n_head
            );
        }
        if self.head_dim() > 256 {
            bail!(
                "head dimension {} is over the supported 256",
                self.head_dim()
            );
        }
        check_finite("layer_norm_epsilon", Some(self.layer_norm_epsilon.into()))?;
        check_finite("clip_gamma", self.clip_gamma.map(f64::from))?;
        check_finite("clip_eta", self.clip_eta.map(f64::from))?;
        if let Some(t) = self.sigmoid_fixed_t {
            if !(1.0..=u32::MAX as f64).contains(&t) {
                bail!("sigmoid_fixed_t is {t:?}; it must lie in [1, {}]", u32::MAX);
            }
        }
        if !matches!(
            self.activation_function.as_str(),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu"
        ) {
            bail!(
                "activation_function '{}' is not supported (gelu_new as GPT-2, or gelu as nanoGPT)",
                self.activation_function
            );
        }
        if let Some(v) = &self.attn_variant {
            let v = AttnVariant::parse(v)?;
            if v == AttnVariant::Clipped && (self.clip_gamma.is_none() || self.clip_eta.is_none()) {
                bail!("attn_variant 'clipped' needs clip_gamma and clip_eta");
            }
            if self.clip_gamma.is_some_and(|g| g > 0.0) {
                bail!("clip_gamma must be <= 0 (masked keys must keep weight 0)");
            }
        }
        if self.scale_attn_by_inverse_layer_idx {
            bail!("scale_attn_by_inverse_layer_idx = true is not supported");
        }
        if self.layer_norm_epsilon.is_nan() || self.layer_norm_epsilon <= 0.0 {
            bail!("layer_norm_epsilon must be > 0");
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    pub fn n_inner(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// Factor applied to q·k.
    pub fn attn_scale(&self) -> f32 {
        if self.scale_attn_weights {
            1.0 / (self.head_dim() as f32).sqrt()
        } else {
            1.0
        }
    }
}

/// Model family, chosen from the file (config.json's `model_type`, or GGUF's architecture).
/// Its facts that need no GPU are the tables below; its loader and forward pass are
/// `model::registry` and `model/<arch>.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Arch {
    /// LayerNorm, learned positions, fused c_attn with biases, GELU MLP, Conv1D `[in, out]` weights.
    Gpt2,
    /// RMSNorm, RoPE, grouped-query attention, SwiGLU MLP, nn.Linear `[out, in]` weights.
    Llama,
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
}

/// Where an architecture's tensors are in a `model.safetensors`.
#[derive(Clone, Copy, Debug)]
pub struct WeightNames {
    /// A tensor every checkpoint has (it finds the prefix), also the token embedding.
    pub embedding: &'static str,
    /// Prefixes tried in order before each tensor name.
    pub prefixes: &'static [&'static str],
}

impl Arch {
    /// Every architecture the engine runs.
    pub const ALL: [Arch; 2] = [Arch::Gpt2, Arch::Llama];

    /// The name messages use ("GPT-2", "Llama").
    pub fn name(self) -> &'static str {
        match self {
            Arch::Gpt2 => "GPT-2",
            Arch::Llama => "Llama",
        }
    }

    /// Its optional hook points.
    pub fn hook_layout(self) -> HookLayout {
        match self {
            Arch::Gpt2 => HookLayout {
                pos_embed: true,
                rotary: false,
                gated_mlp: false,
            },
            Arch::Llama => HookLayout {
                pos_embed: false,
                rotary: true,
                gated_mlp: true,
            },
        }
    }

    /// Its tensor names in safetensors checkpoints.
    pub fn weight_names(self) -> WeightNames {
        match self {
            Arch::Gpt2 => WeightNames {
                embedding: "wte.weight",
                prefixes: &["", "transformer.", "model.transformer."],
            },
            Arch::Llama => WeightNames {
                embedding: "embed_tokens.weight",
                prefixes: &["model.", ""],
            },
        }
    }

    /// A tensor of layer `l` every checkpoint of this family has (finds extra layers).
    pub fn layer_tensor(self, l: usize) -> String {
        match self {
            Arch::Gpt2 => format!("h.{l}.ln_1.weight"),
            Arch::Llama => format!("layers.{l}.input_layernorm.weight"),
        }
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
    pub norm_eps: f32,
    /// RoPE base (Llama only).
    pub rope_theta: f32,
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
}

impl ModelConfig {
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Width of the key (and value) projections.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim()
    }

    /// Width of the fused q|k|v rows.
    pub fn qkv_dim(&self) -> usize {
        self.n_embd + 2 * self.kv_dim()
    }

    pub fn n_inner(&self) -> usize {
        self.n_inner
    }

    pub fn attn_scale(&self) -> f32 {
        if self.scale_attn_weights {
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
        ])?;
        if self.n_positions > MAX_POSITIONS {
            bail!(
                "n_positions {} is over the supported {MAX_POSITIONS}",
                self.n_positions
            );
        }
        if self.n_embd % self.n_head != 0 {
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
        if self.head_dim() > 256 {
            bail!(
                "head dimension {} is over the supported 256",
                self.head_dim()
            );
        }
        if self.arch == Arch::Llama && self.head_dim() % 2 != 0 {
            bail!("RoPE needs an even head dimension, got {}", self.head_dim());
        }
        if !self.norm_eps.is_finite() || self.norm_eps <= 0.0 {
            bail!(
                "the normalisation epsilon is {}; it must be finite and > 0",
                self.norm_eps
            );
        }
        if self.arch == Arch::Llama && (!self.rope_theta.is_finite() || self.rope_theta <= 0.0) {
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
        match v
            .get("model_type")
            .and_then(|m| m.as_str())
            .unwrap_or("gpt2")
        {
            "gpt2" => {
                let cfg: Self = Gpt2Config::from_file(path)?.into();
                cfg.validate()
                    .with_context(|| format!("invalid config {}", path.display()))?;
                Ok(cfg)
            }
            "llama" => LlamaConfig::from_file(path),
            other => bail!(
                "{}: model_type '{other}' is not supported (gpt2 and llama are)",
                path.display()
            ),
        }
    }
}

impl From<Gpt2Config> for ModelConfig {
    fn from(c: Gpt2Config) -> Self {
        let variant = c
            .attn_variant
            .as_deref()
            .map(|v| AttnVariant::parse(v).expect("validated"))
            .unwrap_or(AttnVariant::Default);
        ModelConfig {
            gelu_exact: c.activation_function == "gelu",
            variant,
            clip_gamma: c.clip_gamma.unwrap_or(0.0),
            clip_eta: c.clip_eta.unwrap_or(1.0),
            sigmoid_t: c.sigmoid_fixed_t.map_or(0, |t| t.round().max(1.0) as usize),
            arch: Arch::Gpt2,
            vocab_size: c.vocab_size,
            n_positions: c.n_positions,
            n_embd: c.n_embd,
            n_layer: c.n_layer,
            n_head: c.n_head,
            n_kv_head: c.n_head,
            n_inner: c.n_inner(),
            norm_eps: c.layer_norm_epsilon,
            rope_theta: 0.0,
            rope_freq_factors: Vec::new(),
            tie_embeddings: c.tie_word_embeddings,
            bos_token_id: c.bos_token_id,
            eos_token_id: c.eos_token_id,
            scale_attn_weights: c.scale_attn_weights,
        }
    }
}

/// The fields of a Hugging Face Llama `config.json` that the forward pass needs.
#[derive(Clone, Debug, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub max_position_embeddings: usize,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f32,
    #[serde(default)]
    pub rope_theta: Option<f32>,
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "default_silu")]
    pub hidden_act: String,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
}

fn default_rms_eps() -> f32 {
    1e-6
}
fn default_silu() -> String {
    "silu".into()
}

impl LlamaConfig {
    pub fn from_file(path: &Path) -> Result<ModelConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {} as JSON", path.display()))?;
        let bad = |m: String| anyhow::anyhow!("{}: {m}", path.display());
        crate::config_fields::check(&json, crate::config_fields::LLAMA)
            .map_err(|e| bad(format!("{e:#}")))?;
        let c: Self = serde_json::from_value(json.clone())
            .with_context(|| format!("parsing {} as a Llama config", path.display()))?;
        // Fields checked by config_fields: attention_bias, mlp_bias, hidden_act, head_dim.
        if c.num_attention_heads == 0 {
            return Err(bad("num_attention_heads is 0".into()));
        }
        let head_dim = c.hidden_size / c.num_attention_heads;
        let (rope_theta, rope_freq_factors) =
            crate::rope::from_llama_config(&json, head_dim).map_err(|e| bad(format!("{e:#}")))?;
        let eos = match &c.eos_token_id {
            Some(serde_json::Value::Number(n)) => Some(n),
            Some(serde_json::Value::Array(a)) => a.first().and_then(|x| x.as_number()),
            _ => None,
        };
        let eos = eos
            .map(|n| {
                n.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| bad(format!("eos_token_id {n} is not a u32 token id")))
            })
            .transpose()?;
        let cfg = ModelConfig {
            arch: Arch::Llama,
            vocab_size: c.vocab_size,
            n_positions: c.max_position_embeddings,
            n_embd: c.hidden_size,
            n_layer: c.num_hidden_layers,
            n_head: c.num_attention_heads,
            n_kv_head: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
            n_inner: c.intermediate_size,
            norm_eps: c.rms_norm_eps,
            rope_theta,
            rope_freq_factors,
            tie_embeddings: c.tie_word_embeddings,
            bos_token_id: c.bos_token_id,
            eos_token_id: eos,
            scale_attn_weights: true,
            gelu_exact: false,
            variant: AttnVariant::Default,
            clip_gamma: 0.0,
            clip_eta: 1.0,
            sigmoid_t: 0,
        };
        cfg.validate().map_err(|e| bad(e.to_string()))?;
        Ok(cfg)
    }
}

/// A Llama configuration from GGUF metadata (`llama.*` keys), after the audit of every key and
/// tensor in the file ([`crate::gguf_keys`]): a key or tensor the engine cannot apply exactly is
/// an error naming it, its value and the file.
pub fn llama_from_gguf(g: &crate::gguf::GgufFile) -> Result<ModelConfig> {
    use crate::gguf_keys::uniform_per_layer;
    let file = g.path().display().to_string();
    let arch = g.architecture()?;
    if arch != "llama" {
        bail!("GGUF {file}: general.architecture = {arch:?} is not supported (only \"llama\" is)");
    }
    let n_layer = g.get_usize("llama.block_count")?;
    let per_layer = |key: &str| -> Result<Option<usize>> { uniform_per_layer(g, key, n_layer) };
    let required = |key: &str| -> Result<usize> {
        per_layer(key)?
            .ok_or_else(|| anyhow::anyhow!("GGUF {file}: metadata key `{key}` is missing"))
    };
    let optional_id =
        |key: &str| -> Result<Option<u32>> { g.get(key).map(|_| g.get_u32(key)).transpose() };
    let n_head = required("llama.attention.head_count")?;
    let d = g.get_usize("llama.embedding_length")?;
    let vocab = match g.get("llama.vocab_size") {
        Some(_) => g.get_usize("llama.vocab_size")?,
        None => g.get_str_array("tokenizer.ggml.tokens")?.len(),
    };
    let theta = match g.get("llama.rope.freq_base") {
        Some(_) => g.get_f32("llama.rope.freq_base")?,
        None => 10000.0,
    };
    if !(theta.is_finite() && theta > 0.0) {
        bail!("GGUF {file}: `llama.rope.freq_base` = {theta} must be > 0");
    }
    let mut cfg = ModelConfig {
        arch: Arch::Llama,
        vocab_size: vocab,
        n_positions: g.get_usize("llama.context_length")?,
        n_embd: d,
        n_layer,
        n_head,
        n_kv_head: per_layer("llama.attention.head_count_kv")?.unwrap_or(n_head),
        n_inner: required("llama.feed_forward_length")?,
        norm_eps: g.get_f32("llama.attention.layer_norm_rms_epsilon")?,
        rope_theta: theta,
        rope_freq_factors: Vec::new(),
        tie_embeddings: g.tensor_info("output.weight").is_err(),
        bos_token_id: optional_id("tokenizer.ggml.bos_token_id")?,
        eos_token_id: optional_id("tokenizer.ggml.eos_token_id")?,
        scale_attn_weights: true,
        gelu_exact: false,
        variant: AttnVariant::Default,
        clip_gamma: 0.0,
        clip_eta: 1.0,
        sigmoid_t: 0,
    };
    cfg.validate()
        .with_context(|| format!("invalid model metadata in {file}"))?;
    crate::gguf_keys::check_metadata(g, &cfg)?;
    cfg.rope_freq_factors = gguf_rope_factors(g, cfg.head_dim())?;
    crate::gguf_keys::check_tensors(g, &cfg)?;
    Ok(cfg)
}

/// llama.cpp's RoPE scaling for `llama`: `rope.scaling.type` (default `linear`), the linear
/// `rope.scaling.factor` (old name `rope.scale_linear`; 0 = none) and `rope_freqs.weight`
/// (per-pair divisors), multiplied into [`ModelConfig::rope_freq_factors`].
fn gguf_rope_factors(g: &crate::gguf::GgufFile, head_dim: usize) -> Result<Vec<f32>> {
    let file = g.path().display().to_string();
    let half = head_dim / 2;
    let f = |key: &str| -> Result<Option<f32>> { g.get(key).map(|_| g.get_f32(key)).transpose() };
    let factor = match (
        f("llama.rope.scaling.factor")?,
        f("llama.rope.scale_linear")?,
    ) {
        (Some(a), Some(b)) if a != b => bail!(
            "GGUF {file}: `llama.rope.scaling.factor` = {a} and `llama.rope.scale_linear` = {b} disagree"
        ),
        (a, b) => a.or(b).unwrap_or(0.0),
    };
    if !(factor.is_finite() && factor >= 0.0) {
        bail!("GGUF {file}: `llama.rope.scaling.factor` = {factor} must be >= 0 (0 = no scaling)");
    }
    let kind = match g.get("llama.rope.scaling.type") {
        Some(_) => g.get_str("llama.rope.scaling.type")?,
        None => "linear",
    };
    let divisor = match kind {
        "none" if factor == 0.0 || factor == 1.0 => 1.0,
        "none" => bail!(
            "GGUF {file}: `llama.rope.scaling.type` = \"none\" contradicts `llama.rope.scaling.factor` = {factor}"
        ),
        "linear" if factor == 0.0 => 1.0,
        "linear" => factor,
        other => bail!(
            "GGUF {file}: `llama.rope.scaling.type` = {other:?} is not supported (none and linear are; yarn and longrope are not implemented)"
        ),
    };
    let Ok(info) = g.tensor_info("rope_freqs.weight") else {
        return Ok(if divisor == 1.0 {
            Vec::new()
        } else {
            vec![divisor; half]
        });
    };
    if info.shape() != [half] {
        bail!(
            "GGUF {file}: tensor `rope_freqs.weight` has shape {:?}, expected [{half}] (head_dim / 2)",
            info.shape()
        );
    }
    let freqs = g.tensor_f32("rope_freqs.weight")?;
    if let Some((i, x)) = freqs
        .iter()
        .enumerate()
        .find(|(_, x)| !(x.is_finite() && **x > 0.0))
    {
        bail!("GGUF {file}: tensor `rope_freqs.weight`[{i}] = {x}: RoPE frequency factors must be finite and > 0");
    }
    Ok(freqs.iter().map(|x| x * divisor).collect())
}
