//! OPT's `config.json` (transformers `OPTConfig`) and its conversion to `ModelConfig`: every
//! field is applied or refused by `config_fields::OPT`; `model/opt.rs` runs it.
//! Plain data and serde: never wgpu, GGUF or models.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::*;

/// OPT's facts (see [`ArchSpec`]): learned positions (`hook_pos_embed`), no RoPE, a plain MLP.
/// Tensors sit under `model.decoder.` (OPTForCausalLM) or `decoder.` (OPTModel checkpoints).
pub(super) const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Opt,
    name: "OPT",
    model_type: "opt",
    hook_layout: HookLayout {
        pos_embed: true,
        rotary: false,
        gated_mlp: false,
        qk_norm: false,
        post_norms: false,
    },
    weight_names: WeightNames {
        embedding: "embed_tokens.weight",
        prefixes: &["model.decoder.", "decoder.", ""],
        lm_head: "lm_head.weight",
    },
    layer_tensor: |l| format!("layers.{l}.fc1.weight"),
    from_config_json: OptConfig::from_file,
};

/// The fields of an OPT `config.json` (defaults as `OPTConfig`'s).
#[derive(Clone, Debug, Deserialize)]
pub struct OptConfig {
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_ffn")]
    pub ffn_dim: usize,
    #[serde(default = "d_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "yes")]
    pub do_layer_norm_before: bool,
    #[serde(default, rename = "_remove_final_layer_norm")]
    pub remove_final_layer_norm: bool,
    /// None: hidden_size.
    #[serde(default)]
    pub word_embed_proj_dim: Option<usize>,
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_act")]
    pub activation_function: String,
    #[serde(default = "yes")]
    pub enable_bias: bool,
    #[serde(default = "yes")]
    pub layer_norm_elementwise_affine: bool,
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
    #[serde(default = "d_bos")]
    pub bos_token_id: Option<u32>,
    /// A token id or a list of them (the first is where `generate` stops).
    #[serde(default = "d_eos")]
    pub eos_token_id: Option<serde_json::Value>,
}

fn d_vocab() -> usize {
    50272
}
fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_ffn() -> usize {
    3072
}
fn d_positions() -> usize {
    2048
}
fn d_heads() -> usize {
    12
}
fn d_act() -> String {
    "relu".into()
}
fn d_bos() -> Option<u32> {
    Some(2)
}
fn d_eos() -> Option<serde_json::Value> {
    Some(2.into())
}
fn yes() -> bool {
    true
}

/// OPT's LayerNorms are `nn.LayerNorm` with torch's default epsilon (no config field).
pub const OPT_LAYER_NORM_EPS: f32 = 1e-5;

/// The OPT learned-position offset (`OPTLearnedPositionalEmbedding.offset`): position p reads
/// row p + 2 of `embed_positions.weight` `[max_position_embeddings + 2, hidden_size]`.
pub const OPT_POS_OFFSET: usize = 2;

impl OptConfig {
    /// Parse, audit (`config_fields::OPT`) and convert an OPT `config.json`.
    ///
    /// # Errors
    /// A field outside the audit table or with a value the engine cannot honour (named), an
    /// activation the act kernel lacks, or sizes that fail `ModelConfig::validate`.
    pub fn from_file(path: &Path) -> Result<ModelConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {} as JSON", path.display()))?;
        let bad = |m: String| anyhow::anyhow!("{}: {m}", path.display());
        crate::config_fields::check(&json, crate::config_fields::OPT)
            .map_err(|e| bad(format!("{e:#}")))?;
        let c: Self = serde_json::from_value(json)
            .with_context(|| format!("parsing {} as an OPT config", path.display()))?;
        let cfg = c.to_model_config().map_err(|e| bad(format!("{e:#}")))?;
        cfg.validate().map_err(|e| bad(e.to_string()))?;
        Ok(cfg)
    }

    /// The normalized config. ReLU, exact GELU and tanh GELU are the activations the act kernel
    /// has; any other `activation_function` is refused by name.
    pub fn to_model_config(&self) -> Result<ModelConfig> {
        let (relu, gelu_exact) = match self.activation_function.as_str() {
            "relu" => (true, false),
            "gelu" => (false, true),
            "gelu_new" | "gelu_pytorch_tanh" => (false, false),
            other => bail!(
                "activation_function '{other}' is not supported for OPT (relu, gelu or gelu_new)"
            ),
        };
        let eos = match &self.eos_token_id {
            Some(serde_json::Value::Array(a)) => a.first(),
            other => other.as_ref(),
        };
        let eos = match eos {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| anyhow::anyhow!("eos_token_id {v} is not a u32 token id"))?,
            ),
        };
        Ok(ModelConfig {
            arch: Arch::Opt,
            vocab_size: self.vocab_size,
            n_positions: self.max_position_embeddings,
            n_embd: self.hidden_size,
            n_layer: self.num_hidden_layers,
            n_head: self.num_attention_heads,
            n_kv_head: self.num_attention_heads,
            n_inner: self.ffn_dim,
            qkv_bias: self.enable_bias,
            norm_eps: OPT_LAYER_NORM_EPS,
            rope_theta: 0.0,
            rope_freq_factors: Vec::new(),
            tie_embeddings: self.tie_word_embeddings,
            bos_token_id: self.bos_token_id,
            eos_token_id: eos,
            // OPT multiplies q by head_dim^-0.5 before q·k; the engine scales the scores by the
            // same factor (equal up to f32 rounding).
            scale_attn_weights: true,
            gelu_exact,
            variant: AttnVariant::Default,
            clip_gamma: 0.0,
            clip_eta: 1.0,
            sigmoid_t: 0,
            attn: Default::default(),
            rotary_dims: None,
            parallel_residual: false,
            embed_dim: self.word_embed_proj_dim.unwrap_or(self.hidden_size),
            pos_offset: OPT_POS_OFFSET,
            final_norm: self.do_layer_norm_before && !self.remove_final_layer_norm,
            post_norm: !self.do_layer_norm_before,
            norm_affine: self.layer_norm_elementwise_affine,
            relu,
            linear_bias: self.enable_bias,
        })
    }
}
