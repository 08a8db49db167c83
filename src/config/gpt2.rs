//! GPT-2's `config.json` (transformers `GPT2Config`, plus the paper's nanoGPT variant fields)
//! and its conversion to `ModelConfig`. Plain data and serde: never wgpu, GGUF or models.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::*;

/// GPT-2's facts (see [`ArchSpec`]).
pub(super) const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Gpt2,
    name: "GPT-2",
    model_type: "gpt2",
    hook_layout: HookLayout {
        pos_embed: true,
        rotary: false,
        gated_mlp: false,
        qk_norm: false,
        post_norms: false,
    },
    weight_names: WeightNames {
        embedding: "wte.weight",
        prefixes: &["", "transformer.", "model.transformer."],
        lm_head: "lm_head.weight",
    },
    layer_tensor: |l| format!("h.{l}.ln_1.weight"),
    from_config_json: |path| {
        let cfg: ModelConfig = Gpt2Config::from_file(path)?.into();
        cfg.validate()
            .with_context(|| format!("invalid config {}", path.display()))?;
        Ok(cfg)
    },
};

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
            attn: Default::default(),
            arch: Arch::Gpt2,
            vocab_size: c.vocab_size,
            n_positions: c.n_positions,
            n_embd: c.n_embd,
            n_layer: c.n_layer,
            n_head: c.n_head,
            n_kv_head: c.n_head,
            n_inner: c.n_inner(),
            qkv_bias: false,
            norm_eps: c.layer_norm_epsilon,
            rope_theta: 0.0,
            rope_freq_factors: Vec::new(),
            rotary_dims: None,
            parallel_residual: false,
            tie_embeddings: c.tie_word_embeddings,
            bos_token_id: c.bos_token_id,
            eos_token_id: c.eos_token_id,
            scale_attn_weights: c.scale_attn_weights,
            embed_dim: c.n_embd,
            pos_offset: 0,
            final_norm: true,
            post_norm: false,
            norm_affine: true,
            relu: false,
            linear_bias: true,
        }
    }
}
