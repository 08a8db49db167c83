//! Gemma 3's `config.json` (transformers `Gemma3TextConfig`, `model_type` `gemma3_text`) and its
//! conversion to `ModelConfig`: explicit head_dim, `query_pre_attn_scalar`, sliding-window layers
//! (`layer_types`, or the older `sliding_window_pattern`) with their own RoPE base, q/k norms.
//! Every field is applied or refused by `config_fields::GEMMA3`. Plain data and serde: never
//! wgpu, GGUF or models.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use super::*;

/// Gemma 3's facts (see [`ArchSpec`]): Llama's hook points plus the q/k norms and the
/// post-norms of both branches.
pub(super) const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Gemma3,
    name: "Gemma 3",
    model_type: "gemma3_text",
    hook_layout: HookLayout {
        pos_embed: false,
        rotary: true,
        gated_mlp: true,
        qk_norm: true,
        post_norms: true,
    },
    weight_names: WeightNames {
        embedding: "embed_tokens.weight",
        // Gemma3ForCausalLM, bare, and the text model inside Gemma3ForConditionalGeneration
        // (transformers 4 and 5 layouts).
        prefixes: &[
            "model.",
            "",
            "language_model.model.",
            "model.language_model.",
        ],
        lm_head: "lm_head.weight",
    },
    layer_tensor: |l| format!("layers.{l}.input_layernorm.weight"),
    from_config_json: from_file,
};

/// The fields of a `Gemma3TextConfig` the forward pass reads (defaults: transformers 5's).
#[derive(Clone, Debug, Deserialize)]
struct Gemma3Config {
    #[serde(default = "default_vocab")]
    vocab_size: usize,
    #[serde(default = "default_hidden")]
    hidden_size: usize,
    #[serde(default = "default_inner")]
    intermediate_size: usize,
    #[serde(default = "default_layers")]
    num_hidden_layers: usize,
    #[serde(default = "default_heads")]
    num_attention_heads: usize,
    #[serde(default = "default_kv_heads")]
    num_key_value_heads: usize,
    #[serde(default = "default_256")]
    head_dim: usize,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    rms_norm_eps: f32,
    #[serde(default = "default_256_f")]
    query_pre_attn_scalar: f64,
    #[serde(default = "default_window")]
    sliding_window: Option<usize>,
    #[serde(default)]
    layer_types: Option<Vec<String>>,
    #[serde(default)]
    sliding_window_pattern: Option<usize>,
    #[serde(default, rename = "_sliding_window_pattern")]
    sliding_window_pattern_old: Option<usize>,
    #[serde(default = "default_true")]
    tie_word_embeddings: bool,
    #[serde(default = "default_bos")]
    bos_token_id: Option<u32>,
    #[serde(default = "default_eos")]
    eos_token_id: Option<Value>,
}

// transformers' `Gemma3TextConfig` defaults (5.x), for the fields real configs leave out (the
// `text_config` of gemma-3-4b and larger omits vocab_size, head counts, …).
fn default_vocab() -> usize {
    262_208
}
fn default_hidden() -> usize {
    2304
}
fn default_inner() -> usize {
    9216
}
fn default_layers() -> usize {
    26
}
fn default_heads() -> usize {
    8
}
fn default_positions() -> usize {
    131_072
}
fn default_bos() -> Option<u32> {
    Some(2)
}
fn default_eos() -> Option<Value> {
    Some(Value::from(1))
}
fn default_kv_heads() -> usize {
    4
}
fn default_256() -> usize {
    256
}
fn default_256_f() -> f64 {
    256.0
}
fn default_eps() -> f32 {
    1e-6
}
fn default_window() -> Option<usize> {
    Some(4096)
}
fn default_true() -> bool {
    true
}

/// The RoPE of the full layers (θ, frequency divisors) and the base of the sliding layers, as
/// transformers' `Gemma3TextConfig.convert_rope_params_to_dict` reads them: `rope_parameters`
/// per layer type (or flat: the full layers'), a legacy `rope_scaling` updating the full
/// layers', `rope_theta` (default 1e6) and `rope_local_base_freq` (default 10000) filling in.
fn rope(v: &Value, head_dim: usize) -> Result<(f32, Vec<f32>, f32)> {
    let some = |k: &str| v.get(k).filter(|x| !x.is_null());
    let (mut full, mut sliding) = match some("rope_parameters") {
        Some(p) if p.get("full_attention").is_some() || p.get("sliding_attention").is_some() => (
            p.get("full_attention").cloned().unwrap_or(json!({})),
            p.get("sliding_attention").cloned().unwrap_or(json!({})),
        ),
        Some(p) => (p.clone(), json!({})),
        None => (json!({}), json!({})),
    };
    for (what, p) in [("full_attention", &full), ("sliding_attention", &sliding)] {
        if !p.is_object() {
            bail!("rope_parameters.{what} = {p} is not an object");
        }
    }
    if let Some(Value::Object(s)) = some("rope_scaling") {
        for (k, x) in s {
            full[k] = x.clone();
        }
    }
    if full.get("rope_theta").is_none_or(Value::is_null) {
        full["rope_theta"] = some("rope_theta").cloned().unwrap_or(json!(1e6));
    }
    if sliding.get("rope_theta").is_none_or(Value::is_null) {
        sliding["rope_theta"] = some("rope_local_base_freq").cloned().unwrap_or(json!(1e4));
    }
    let (theta, factors) =
        crate::rope::from_llama_config(&json!({ "rope_parameters": full }), head_dim)
            .context("rope_parameters.full_attention")?;
    let (local, local_factors) =
        crate::rope::from_llama_config(&json!({ "rope_parameters": sliding }), head_dim)
            .context("rope_parameters.sliding_attention")?;
    if !local_factors.is_empty() {
        bail!(
            "rope_parameters.sliding_attention: only default RoPE is supported on sliding layers"
        );
    }
    Ok((theta, factors, local))
}

/// Which layers slide: `layer_types`, else every `sliding_window_pattern`-th layer (1-based) is
/// full and the others slide (transformers' rule; pattern default 6).
fn sliding_layers(c: &Gemma3Config) -> Result<Vec<bool>> {
    if let Some(types) = &c.layer_types {
        return types
            .iter()
            .map(|t| match t.as_str() {
                "sliding_attention" => Ok(true),
                "full_attention" => Ok(false),
                other => bail!("layer_types: {other:?} is not supported (sliding_attention and full_attention are)"),
            })
            .collect();
    }
    let pattern = c
        .sliding_window_pattern
        .or(c.sliding_window_pattern_old)
        .unwrap_or(6);
    if pattern == 0 {
        bail!("sliding_window_pattern is 0");
    }
    Ok((0..c.num_hidden_layers)
        .map(|i| (i + 1) % pattern != 0)
        .collect())
}

/// A Gemma 3 text `config.json` as a [`ModelConfig`]; also a `gemma3` (image-text) one, whose
/// `text_config` is the text model (its other fields audited by `config_fields::GEMMA3_WRAPPER`).
fn from_file(path: &Path) -> Result<ModelConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {} as JSON", path.display()))?;
    let at = || path.display().to_string();
    if json.get("model_type").and_then(Value::as_str) != Some("gemma3") {
        return from_json(&json).with_context(at);
    }
    crate::config_fields::check(&json, crate::config_fields::GEMMA3_WRAPPER).with_context(at)?;
    let text = json
        .get("text_config")
        .filter(|t| t.is_object())
        .ok_or_else(|| anyhow::anyhow!("{}: `text_config` is not an object", at()))?;
    let cfg = from_json(text).with_context(|| format!("{}: text_config", at()))?;
    if let Some(tie) = json.get("tie_word_embeddings").and_then(Value::as_bool) {
        if tie != cfg.tie_embeddings {
            bail!(
                "{}: tie_word_embeddings = {tie} disagrees with text_config's {}",
                at(),
                cfg.tie_embeddings
            );
        }
    }
    Ok(cfg)
}

/// A Gemma 3 text config object (a `config.json`, or the `text_config` of a `gemma3` one).
pub(super) fn from_json(json: &Value) -> Result<ModelConfig> {
    crate::config_fields::check(json, crate::config_fields::GEMMA3)?;
    let c: Gemma3Config =
        serde_json::from_value(json.clone()).context("parsing a Gemma 3 text config")?;
    let (rope_theta, rope_freq_factors, local) = rope(json, c.head_dim)?;
    let eos = match &c.eos_token_id {
        Some(Value::Number(n)) => Some(n.clone()),
        Some(Value::Array(a)) => a.first().and_then(|x| x.as_number()).cloned(),
        _ => None,
    };
    let eos = eos
        .map(|n| {
            n.as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(|| anyhow::anyhow!("eos_token_id {n} is not a u32 token id"))
        })
        .transpose()?;
    let sliding = sliding_layers(&c)?;
    let cfg = ModelConfig {
        arch: Arch::Gemma3,
        vocab_size: c.vocab_size,
        n_positions: c.max_position_embeddings,
        n_embd: c.hidden_size,
        n_layer: c.num_hidden_layers,
        n_head: c.num_attention_heads,
        n_kv_head: c.num_key_value_heads,
        n_inner: c.intermediate_size,
        qkv_bias: false,
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
        rotary_dims: None,
        parallel_residual: false,
        embed_dim: c.hidden_size,
        pos_offset: 0,
        final_norm: true,
        post_norm: false,
        norm_affine: true,
        relu: false,
        linear_bias: false,
        attn: AttnShape {
            head_dim: Some(c.head_dim),
            query_pre_attn_scalar: Some(c.query_pre_attn_scalar as f32),
            sliding_window: if sliding.iter().any(|&s| s) {
                c.sliding_window
            } else {
                None
            },
            sliding_layers: sliding,
            rope_local_base_freq: Some(local),
            qk_norm: true,
        },
    };
    cfg.validate()?;
    Ok(cfg)
}
