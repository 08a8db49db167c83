//! `qwen2` GGUF files (llama.cpp `LLM_ARCH_QWEN2`): the Llama keys under `qwen2.*`, q/k/v biases,
//! and Q/K rows stored as transformers has them (llama.cpp's converter permutes Q/K for `llama`
//! only). File-format layer: never wgpu or models.

use anyhow::Result;

use super::GgufArch;
use crate::config::{Arch, ModelConfig};
use crate::gguf::GgufFile;
use crate::gguf_keys::Handling::Applied;
use crate::gguf_keys::TensorRule;

/// `qwen2`: the shared tables, with the q/k/v biases applied.
pub(super) const SPEC: GgufArch = GgufArch {
    name: "qwen2",
    arch: Arch::Qwen2,
    keys: &[],
    tensors: TENSORS,
    llama_rows: true,
    config,
    wanted,
    hf_name: crate::gguf::hf_name,
    tensor_hf: plain,
};

const BIAS: &str = "required: the q/k/v projection bias (Qwen2 has one, `qkv_bias`)";

const TENSORS: &[TensorRule] = &[
    TensorRule {
        name: "blk.N.attn_q.bias",
        handling: Applied,
        reason: BIAS,
    },
    TensorRule {
        name: "blk.N.attn_k.bias",
        handling: Applied,
        reason: BIAS,
    },
    TensorRule {
        name: "blk.N.attn_v.bias",
        handling: Applied,
        reason: BIAS,
    },
];

fn config(g: &GgufFile, spec: &GgufArch) -> Result<ModelConfig> {
    let mut cfg = super::llama::config(g, spec)?;
    cfg.qkv_bias = true;
    Ok(cfg)
}

/// Llama's tensors plus `blk.N.attn_{q,k,v}.bias`, all required.
fn wanted(cfg: &ModelConfig) -> Vec<(String, bool)> {
    let mut out = crate::gguf_keys::llama_tensors(cfg);
    for l in 0..cfg.n_layer {
        for p in ["attn_q", "attn_k", "attn_v"] {
            out.push((format!("blk.{l}.{p}.bias"), true));
        }
    }
    out
}

/// The dequantized values, unchanged (no Q/K permutation to undo).
pub(super) fn plain(g: &GgufFile, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
    let shape = g.tensor_info(name)?.shape();
    Ok((g.tensor_f32(name)?, shape))
}
