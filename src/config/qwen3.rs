//! Qwen3's `config.json` (transformers `Qwen3Config`): Qwen2's fields parsed by [`LlamaConfig`]
//! (audited by `config_fields::QWEN3`), without q/k/v biases (`attention_bias` false) but with a
//! per-head RMSNorm of q and k before RoPE (`qk_norm`) and an explicit `head_dim` (default 128,
//! as transformers'), so `model/llama.rs` runs it. Plain data and serde: never wgpu, GGUF or models.

use std::path::Path;

use anyhow::{Context, Result};

use super::*;

/// Qwen3's facts (see [`ArchSpec`]): Llama's hook points and tensor names plus the q/k norms.
pub(super) const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Qwen3,
    name: "Qwen3",
    model_type: "qwen3",
    hook_layout: HookLayout {
        pos_embed: false,
        rotary: true,
        gated_mlp: true,
        qk_norm: true,
        post_norms: false,
    },
    weight_names: WeightNames {
        embedding: "embed_tokens.weight",
        prefixes: &["model.", ""],
        lm_head: "lm_head.weight",
    },
    layer_tensor: |l| format!("layers.{l}.input_layernorm.weight"),
    from_config_json: from_file,
};

/// A Qwen3 `config.json` as a [`ModelConfig`]; every field is applied or refused by
/// `config_fields::QWEN3` (sliding-window attention and biases are refused).
fn from_file(path: &Path) -> Result<ModelConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {} as JSON", path.display()))?;
    if let Some(m) = json.as_object_mut() {
        // transformers' default when the field is absent (or null).
        if m.get("head_dim").is_none_or(|v| v.is_null()) {
            m.insert("head_dim".into(), 128.into());
        }
    }
    let mut cfg = LlamaConfig::from_json_as(&json, path, Arch::Qwen3, crate::config_fields::QWEN3)?;
    cfg.attn.qk_norm = true;
    Ok(cfg)
}
