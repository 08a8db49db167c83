//! Qwen2's `config.json` (transformers `Qwen2Config`): the fields it shares with Llama are
//! parsed by [`LlamaConfig`], its own (sliding windows) are audited by `config_fields::QWEN2`;
//! q_proj, k_proj and v_proj have biases (`qkv_bias`), so `model/llama.rs` runs it.
//! Plain data and serde: never wgpu, GGUF or models.

use std::path::Path;

use anyhow::Result;

use super::*;

/// Qwen2's facts (see [`ArchSpec`]): Llama's hook points and tensor names (plus the q/k/v
/// biases its loader reads).
pub(super) const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Qwen2,
    name: "Qwen2",
    model_type: "qwen2",
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
    from_config_json: from_file,
};

/// A Qwen2 `config.json` as a [`ModelConfig`]; every field is applied or refused by
/// `config_fields::QWEN2` (sliding-window attention is refused).
fn from_file(path: &Path) -> Result<ModelConfig> {
    let mut cfg = LlamaConfig::from_file_as(path, Arch::Qwen2, crate::config_fields::QWEN2)?;
    cfg.qkv_bias = true;
    Ok(cfg)
}
