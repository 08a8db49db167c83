//! GPT-NeoX's `config.json` (transformers `GPTNeoXConfig`, Pythia) and its conversion to
//! `ModelConfig`: partial rotary embeddings (`rotary_pct` / `partial_rotary_factor`), the
//! parallel residual, LayerNorm epsilon, biases, GELU. Every field is audited by
//! `config_fields::GPT_NEOX`. Plain data and serde: never wgpu, GGUF or models.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

use super::*;

/// GPT-NeoX's facts (see [`ArchSpec`]): no learned positions, RoPE (partial), a plain GELU MLP;
/// tensors under `gpt_neox.`, the untied head is `embed_out.weight`.
pub(super) const SPEC: ArchSpec = ArchSpec {
    arch: Arch::GptNeox,
    name: "GPT-NeoX",
    model_type: "gpt_neox",
    hook_layout: HookLayout {
        pos_embed: false,
        rotary: true,
        gated_mlp: false,
        qk_norm: false,
        post_norms: false,
    },
    weight_names: WeightNames {
        embedding: "embed_in.weight",
        prefixes: &["gpt_neox.", ""],
        lm_head: "embed_out.weight",
    },
    layer_tensor: |l| format!("layers.{l}.input_layernorm.weight"),
    from_config_json: GptNeoxConfig::from_file,
};

/// The fields of a GPT-NeoX `config.json` the forward pass needs (transformers 5.24 defaults).
#[derive(Clone, Debug, Deserialize)]
pub struct GptNeoxConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f32,
    #[serde(default = "default_true")]
    pub use_parallel_residual: bool,
    /// q|k|v and attention.dense carry biases.
    #[serde(default = "default_true")]
    pub attention_bias: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<Value>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_eps() -> f32 {
    1e-5
}
fn default_true() -> bool {
    true
}

/// `hidden_act` values whose transformers `ACT2FN` function the GELU kernel computes, and
/// whether it is the exact erf form (else the tanh approximation, the same formula in
/// `gelu_new`, `gelu_pytorch_tanh` and `gelu_fast`).
pub const GELU_ACTS: &[(&str, bool)] = &[
    ("gelu", true),
    ("gelu_python", true),
    ("gelu_new", false),
    ("gelu_pytorch_tanh", false),
    ("gelu_fast", false),
];

/// The RoPE of a GPT-NeoX config as transformers' `GPTNeoXConfig.convert_rope_params_to_dict`
/// resolves it: the dict (`rope_scaling` if non-null, else `rope_parameters`) first, then the
/// legacy top-level `rotary_emb_base` (default 10000) and `rotary_pct` (default 0.25). Only
/// `rope_type` default is supported; both sources given and disagreeing is refused rather than
/// resolved. Returns `(theta, partial_rotary_factor)`.
pub fn neox_rope(v: &Value) -> Result<(f64, f64)> {
    let get = |o: &Value, k: &str| o.get(k).filter(|x| !x.is_null()).cloned();
    let field = if get(v, "rope_scaling").is_some() {
        "rope_scaling"
    } else {
        "rope_parameters"
    };
    let dict = get(v, field);
    if let Some(d) = &dict {
        let Some(obj) = d.as_object() else {
            bail!("{field} = {d} is not an object");
        };
        for k in ["rope_type", "type"] {
            match obj.get(k) {
                None | Some(Value::Null) => {}
                Some(x) if x.as_str() == Some("default") => {}
                Some(x) => {
                    bail!("{field}.{k} = {x}: only rope_type \"default\" is supported for GPT-NeoX")
                }
            }
        }
        for (k, x) in obj {
            match k.as_str() {
                "rope_theta" | "partial_rotary_factor" | "rope_type" | "type" => {}
                _ => bail!(
                    "{field}.{k} = {x}: only rope_type \"default\" with rope_theta and partial_rotary_factor is supported for GPT-NeoX"
                ),
            }
        }
    }
    let num = |what: String, x: Option<Value>| -> Result<Option<f64>> {
        x.map(|x| {
            x.as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| anyhow!("{what} = {x} is not a finite number"))
        })
        .transpose()
    };
    let pick = |key: &str, legacy: &str, default: f64| -> Result<f64> {
        let a = num(
            format!("{field}.{key}"),
            dict.as_ref().and_then(|d| get(d, key)),
        )?;
        let b = num(legacy.to_string(), get(v, legacy))?;
        match (a, b) {
            (Some(a), Some(b)) if a != b => {
                bail!("{field}.{key} = {a} and {legacy} = {b} disagree")
            }
            (a, b) => Ok(a.or(b).unwrap_or(default)),
        }
    };
    let theta = pick("rope_theta", "rotary_emb_base", 10000.0)?;
    let pct = pick("partial_rotary_factor", "rotary_pct", 0.25)?;
    if !(theta > 0.0 && (theta as f32).is_finite()) {
        bail!("the RoPE base {theta} must be > 0 and within f32's range");
    }
    if !(pct > 0.0 && pct <= 1.0) {
        bail!("the rotary fraction (rotary_pct / partial_rotary_factor) {pct} must lie in (0, 1]");
    }
    Ok((theta, pct))
}

/// The stored row of query_key_value behind each row of the engine's q | k | v layout:
/// `query_key_value.view(T, H, 3·Dh)` holds head h's q, k, v at rows `h·3Dh + {0, Dh, 2Dh} + j`
/// (transformers' `GPTNeoXAttention.forward`), so part `p` (q, k, v) of head h, dimension j is
/// stored row `h·3Dh + p·Dh + j`.
pub fn neox_qkv_rows(n_head: usize, head_dim: usize) -> Vec<usize> {
    let mut rows = Vec::with_capacity(3 * n_head * head_dim);
    for part in 0..3 {
        for h in 0..n_head {
            rows.extend((0..head_dim).map(|j| h * 3 * head_dim + part * head_dim + j));
        }
    }
    rows
}

impl GptNeoxConfig {
    /// A GPT-NeoX `config.json` as a [`ModelConfig`]: audited by `config_fields::GPT_NEOX`, then
    /// parsed and validated; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<ModelConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {} as JSON", path.display()))?;
        let bad = |m: String| anyhow!("{}: {m}", path.display());
        crate::config_fields::check(&json, crate::config_fields::GPT_NEOX)
            .map_err(|e| bad(format!("{e:#}")))?;
        let c: Self = serde_json::from_value(json.clone())
            .with_context(|| format!("parsing {} as a GPT-NeoX config", path.display()))?;
        let gelu_exact = GELU_ACTS
            .iter()
            .find(|(n, _)| *n == c.hidden_act)
            .map(|a| a.1)
            .ok_or_else(|| {
                bad(format!(
                    "hidden_act '{}' is not supported for GPT-NeoX ({} are)",
                    c.hidden_act,
                    GELU_ACTS.iter().map(|a| a.0).collect::<Vec<_>>().join(", ")
                ))
            })?;
        if c.num_attention_heads == 0 {
            return Err(bad("num_attention_heads is 0".into()));
        }
        let (theta, pct) = neox_rope(&json).map_err(|e| bad(format!("{e:#}")))?;
        let head_dim = c.hidden_size / c.num_attention_heads;
        // transformers: rotary_ndims = int(head_size * partial_rotary_factor).
        let rotary = (head_dim as f64 * pct).trunc() as usize;
        if rotary == 0 || rotary % 2 != 0 {
            return Err(bad(format!(
                "rotary_pct / partial_rotary_factor {pct} of the head dimension {head_dim} rotates {rotary} dimensions; RoPE needs an even number > 0"
            )));
        }
        let eos = match &c.eos_token_id {
            Some(Value::Array(a)) => a.first().cloned(),
            other => other.clone(),
        };
        let eos = eos
            .filter(|x| !x.is_null())
            .map(|x| {
                x.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| bad(format!("eos_token_id {x} is not a u32 token id")))
            })
            .transpose()?;
        let cfg = ModelConfig {
            arch: Arch::GptNeox,
            vocab_size: c.vocab_size,
            n_positions: c.max_position_embeddings,
            n_embd: c.hidden_size,
            n_layer: c.num_hidden_layers,
            n_head: c.num_attention_heads,
            n_kv_head: c.num_attention_heads,
            n_inner: c.intermediate_size,
            qkv_bias: c.attention_bias,
            norm_eps: c.layer_norm_eps,
            rope_theta: theta as f32,
            rope_freq_factors: Vec::new(),
            rotary_dims: Some(rotary),
            parallel_residual: c.use_parallel_residual,
            tie_embeddings: c.tie_word_embeddings,
            bos_token_id: c.bos_token_id,
            eos_token_id: eos,
            scale_attn_weights: true,
            gelu_exact,
            variant: AttnVariant::Default,
            clip_gamma: 0.0,
            clip_eta: 1.0,
            sigmoid_t: 0,
            attn: Default::default(),
            embed_dim: c.hidden_size,
            pos_offset: 0,
            final_norm: true,
            post_norm: false,
            norm_affine: true,
            relu: false,
            linear_bias: true,
        };
        cfg.validate().map_err(|e| bad(e.to_string()))?;
        Ok(cfg)
    }
}
