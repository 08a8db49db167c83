//! `qwen3` GGUF files (llama.cpp `LLM_ARCH_QWEN3`): the Llama keys under `qwen3.*` with
//! `attention.key_length` as the explicit head dimension, no biases, per-head q/k RMSNorm
//! (`blk.N.attn_q_norm`, `attn_k_norm`), Q/K rows as transformers has them (not permuted).
//! File-format layer: never wgpu or models.

use anyhow::Result;

use super::GgufArch;
use crate::config::{Arch, ModelConfig};
use crate::gguf::GgufFile;
use crate::gguf_keys::Handling::Applied;
use crate::gguf_keys::TensorRule;

/// `qwen3`: the shared tables, with the q/k norms applied.
pub(super) const SPEC: GgufArch = GgufArch {
    name: "qwen3",
    arch: Arch::Qwen3,
    keys: &[],
    tensors: TENSORS,
    llama_rows: true,
    config,
    wanted,
    hf_name,
    tensor_hf: super::qwen2::plain,
};

const NORM: &str = "required: the per-head RMSNorm of q / k before RoPE (weight w, width head_dim)";

const TENSORS: &[TensorRule] = &[
    TensorRule {
        name: "blk.N.attn_q_norm.weight",
        handling: Applied,
        reason: NORM,
    },
    TensorRule {
        name: "blk.N.attn_k_norm.weight",
        handling: Applied,
        reason: NORM,
    },
];

/// Llama's configuration plus q/k norms and `qwen3.attention.key_length` (default d / heads)
/// as the head dimension.
fn config(g: &GgufFile, spec: &GgufArch) -> Result<ModelConfig> {
    let mut cfg = super::llama::config(g, spec)?;
    let key = "qwen3.attention.key_length";
    if g.get(key).is_some() {
        let hd = g.get_usize(key)?;
        if hd * cfg.n_head != cfg.n_embd {
            cfg.attn.head_dim = Some(hd);
        }
    }
    cfg.attn.qk_norm = true;
    Ok(cfg)
}

/// Llama's tensors plus `blk.N.attn_{q,k}_norm.weight`, all required.
fn wanted(cfg: &ModelConfig) -> Vec<(String, bool)> {
    let mut out = crate::gguf_keys::llama_tensors(cfg);
    for l in 0..cfg.n_layer {
        for p in ["attn_q_norm", "attn_k_norm"] {
            out.push((format!("blk.{l}.{p}.weight"), true));
        }
    }
    out
}

/// Llama's names plus `attn_q_norm` / `attn_k_norm` → `self_attn.q_norm` / `k_norm`.
fn hf_name(gguf_name: &str) -> Option<String> {
    for (g, h) in [("attn_q_norm", "q_norm"), ("attn_k_norm", "k_norm")] {
        if let Some(layer) = gguf_name
            .strip_prefix("blk.")
            .and_then(|r| r.strip_suffix(&format!(".{g}.weight")))
            .and_then(|l| l.parse::<usize>().ok())
        {
            return Some(format!("model.layers.{layer}.self_attn.{h}.weight"));
        }
    }
    crate::gguf::hf_name(gguf_name)
}
