//! The tensor table of the GGUF audit: every tensor llama.cpp knows for `llama`, loaded or refused.
//! Data only: depends on nothing but [`Handling`]; never on wgpu, models or config.

use super::keys::MOE;
use super::Handling::{self, Applied, Refused};

/// A tensor the forward pass may load, or one llama.cpp knows for `llama` that is refused.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct TensorRule {
    /// `N` stands for a block index.
    pub name: &'static str,
    pub handling: Handling,
    pub reason: &'static str,
}

const fn t(name: &'static str, handling: Handling, reason: &'static str) -> TensorRule {
    TensorRule {
        name,
        handling,
        reason,
    }
}

/// Tensors of `LLM_ARCH_LLAMA` (llama.cpp `llama_model_llama::load_arch_tensors` and the generic
/// `.scale` pass). `Applied` ones are loaded (required unless the reason says optional); a
/// `Refused` one in a file is an error naming it. A tensor in no row is refused as unknown.
pub const TENSORS: &[TensorRule] = &[
    t("token_embd.weight", Applied, "required: token embeddings"),
    t("output_norm.weight", Applied, "required: final RMSNorm weight"),
    t("output.weight", Applied, "optional: LM head; absent = tied to token_embd.weight"),
    t("rope_freqs.weight", Applied, "optional: per-frequency RoPE divisors (llama.cpp freq_factors, Llama 3.1 rope scaling), [head_dim/2]"),
    t("blk.N.attn_norm.weight", Applied, "required"),
    t("blk.N.attn_q.weight", Applied, "required (rows un-permuted as transformers does)"),
    t("blk.N.attn_k.weight", Applied, "required (rows un-permuted as transformers does)"),
    t("blk.N.attn_v.weight", Applied, "required"),
    t("blk.N.attn_output.weight", Applied, "required"),
    t("blk.N.ffn_norm.weight", Applied, "required"),
    t("blk.N.ffn_gate.weight", Applied, "required"),
    t("blk.N.ffn_up.weight", Applied, "required"),
    t("blk.N.ffn_down.weight", Applied, "required"),
    t("blk.N.attn_q.bias", Refused, "attention biases are not implemented for llama"),
    t("blk.N.attn_k.bias", Refused, "attention biases are not implemented for llama"),
    t("blk.N.attn_v.bias", Refused, "attention biases are not implemented for llama"),
    t("blk.N.attn_output.bias", Refused, "attention biases are not implemented for llama"),
    t("blk.N.attn_qkv.weight", Refused, "a fused QKV projection is not implemented for llama (separate attn_q/k/v only)"),
    t("blk.N.attn_qkv.bias", Refused, "attention biases are not implemented for llama"),
    t("blk.N.ffn_gate.bias", Refused, "MLP biases are not implemented for llama"),
    t("blk.N.ffn_up.bias", Refused, "MLP biases are not implemented for llama"),
    t("blk.N.ffn_down.bias", Refused, "MLP biases are not implemented for llama"),
    t("blk.N.ffn_gate_inp.weight", Refused, MOE),
    t("blk.N.ffn_gate_exps.weight", Refused, MOE),
    t("blk.N.ffn_up_exps.weight", Refused, MOE),
    t("blk.N.ffn_down_exps.weight", Refused, MOE),
    t("blk.N.ffn_gate_shexp.weight", Refused, MOE),
    t("blk.N.ffn_up_shexp.weight", Refused, MOE),
    t("blk.N.ffn_down_shexp.weight", Refused, MOE),
    t("blk.N.attn_rot_embd.weight", Refused, "precomputed rotary tables (never written by llama.cpp's converter); RoPE is computed from the metadata"),
    t("rope_factors_long.weight", Refused, "LongRoPE factors; longrope scaling is not implemented"),
    t("rope_factors_short.weight", Refused, "LongRoPE factors; longrope scaling is not implemented"),
    t("*.scale", Refused, "per-tensor weight scales (NVFP4 and similar) are not applied"),
    t("*.input_scale", Refused, "per-tensor activation scales are not applied"),
];
