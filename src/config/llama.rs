//! Llama's `config.json` (transformers `LlamaConfig`) and its conversion to `ModelConfig`.
//! Plain data and serde: never wgpu, GGUF or models.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::*;

/// Llama's facts (see [`ArchSpec`]).
pub(super) const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Llama,
    name: "Llama",
    model_type: "llama",
    hook_layout: HookLayout {
        pos_embed: false,
        rotary: true,
        gated_mlp: true,
        qk_norm: false,
        post_norms: false,
    },
    weight_names: WeightNames {
        embedding: "embed_tokens.weight",
        prefixes: &["model.", ""],
        lm_head: "lm_head.weight",
    },
    layer_tensor: |l| format!("layers.{l}.input_layernorm.weight"),
    from_config_json: LlamaConfig::from_file,
};

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
        Self::from_file_as(path, Arch::Llama, crate::config_fields::LLAMA)
    }

    /// A `config.json` of a Llama-shaped family `arch` (Llama, Qwen2), its fields audited
    /// against `rules`: the fields they share mean the same in both.
    pub(super) fn from_file_as(
        path: &Path,
        arch: Arch,
        rules: &[crate::config_fields::KeyRule],
    ) -> Result<ModelConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {} as JSON", path.display()))?;
        Self::from_json_as(&json, path, arch, rules)
    }

    /// [`Self::from_file_as`] on the parsed `json` of the file at `path` (named in errors).
    /// An explicit `head_dim` other than hidden_size / num_attention_heads (allowed by Qwen3's
    /// rules) becomes `attn.head_dim`.
    pub(super) fn from_json_as(
        json: &serde_json::Value,
        path: &Path,
        arch: Arch,
        rules: &[crate::config_fields::KeyRule],
    ) -> Result<ModelConfig> {
        let bad = |m: String| anyhow::anyhow!("{}: {m}", path.display());
        crate::config_fields::check(json, rules).map_err(|e| bad(format!("{e:#}")))?;
        let c: Self = serde_json::from_value(json.clone())
            .with_context(|| format!("parsing {} as a {} config", path.display(), arch.name()))?;
        // Fields checked by config_fields: attention_bias, mlp_bias, hidden_act, head_dim.
        if c.num_attention_heads == 0 {
            return Err(bad("num_attention_heads is 0".into()));
        }
        let own_head_dim = c
            .head_dim
            .filter(|&hd| hd * c.num_attention_heads != c.hidden_size);
        let head_dim = own_head_dim.unwrap_or(c.hidden_size / c.num_attention_heads);
        let (rope_theta, rope_freq_factors) =
            crate::rope::from_llama_config(json, head_dim).map_err(|e| bad(format!("{e:#}")))?;
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
            arch,
            vocab_size: c.vocab_size,
            n_positions: c.max_position_embeddings,
            n_embd: c.hidden_size,
            n_layer: c.num_hidden_layers,
            n_head: c.num_attention_heads,
            n_kv_head: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
            n_inner: c.intermediate_size,
            qkv_bias: false,
            norm_eps: c.rms_norm_eps,
            rope_theta,
            rope_freq_factors,
            rotary_dims: None,
            parallel_residual: false,
            tie_embeddings: c.tie_word_embeddings,
            bos_token_id: c.bos_token_id,
            eos_token_id: eos,
            scale_attn_weights: true,
            gelu_exact: false,
            variant: AttnVariant::Default,
            clip_gamma: 0.0,
            clip_eta: 1.0,
            sigmoid_t: 0,
            attn: AttnShape {
                head_dim: own_head_dim,
                ..Default::default()
            },
            embed_dim: c.hidden_size,
            pos_offset: 0,
            final_norm: true,
            post_norm: false,
            norm_affine: true,
            relu: false,
            linear_bias: false,
        };
        cfg.validate().map_err(|e| bad(e.to_string()))?;
        Ok(cfg)
    }
}
