//! `gptneox` GGUF files (GPT-NeoX / Pythia, as llama.cpp's `convert_hf_to_gguf.py` writes them):
//! the `gptneox.*` key rows (the only ones for that prefix: GPT-NeoX is not Llama-shaped; the
//! `general.*` and `tokenizer.*` keys keep the shared rows), the `ModelConfig`, the tensors the
//! forward pass loads, and their Hugging Face names and layout (`query_key_value` put back in
//! its per-head layout).
//!
//! | GGUF tensor | Hugging Face (`gpt_neox.` prefix dropped) |
//! |---|---|
//! | `token_embd.weight` | `embed_in.weight` |
//! | `output_norm.{weight,bias}` | `final_layer_norm.*` |
//! | `output.weight` | `embed_out.weight` (absent when tied) |
//! | `blk.N.attn_norm.*` | `layers.N.input_layernorm.*` |
//! | `blk.N.attn_qkv.*` | `layers.N.attention.query_key_value.*`: the converter stores q \| k \| v, HF per head |
//! | `blk.N.attn_output.*` | `layers.N.attention.dense.*` |
//! | `blk.N.ffn_norm.*` | `layers.N.post_attention_layernorm.*` |
//! | `blk.N.ffn_up.*`, `blk.N.ffn_down.*` | `layers.N.mlp.dense_h_to_4h.*`, `layers.N.mlp.dense_4h_to_h.*` |
//!
//! The file names no activation: the MLP's GELU is the exact erf form, as transformers computes
//! Pythia (`hidden_act: "gelu"`); llama.cpp's graph uses its tanh approximation there.
//! File formats: depends on gguf, gguf_keys and config; never wgpu or models.

use anyhow::{bail, Result};

use super::GgufArch;
use crate::config::{Arch, AttnVariant, ModelConfig};
use crate::config_fields::Handling::{Applied, Restricted};
use crate::config_fields::KeyRule;
use crate::gguf::GgufFile;

/// `gptneox`: its own key rows only; q|k|v put back per head.
pub(super) const SPEC: GgufArch = GgufArch {
    name: "gptneox",
    arch: Arch::GptNeox,
    keys: KEYS,
    tensors: &[],
    llama_rows: false,
    config,
    wanted: neox_tensors,
    hf_name,
    tensor_hf,
};

const fn r(
    key: &'static str,
    handling: crate::config_fields::Handling,
    reason: &'static str,
) -> KeyRule {
    KeyRule {
        key,
        handling,
        reason,
    }
}

/// Every `gptneox.*` key the engine reads (llama.cpp `LLM_ARCH_GPTNEOX`); any other is refused.
const KEYS: &[KeyRule] = &[
    r("gptneox.context_length", Applied, "longest sequence (RoPE table length)"),
    r("gptneox.embedding_length", Applied, "model width"),
    r("gptneox.block_count", Applied, "number of blocks"),
    r("gptneox.feed_forward_length", Applied, "MLP width"),
    r("gptneox.attention.head_count", Applied, "attention heads"),
    r("gptneox.attention.head_count_kv", Restricted, "equal to attention.head_count only (GPT-NeoX has no grouped-query attention)"),
    r("gptneox.rope.dimension_count", Applied, "rotated dimensions per head, int(head_dim · rotary_pct) (absent: the whole head, as llama.cpp)"),
    r("gptneox.rope.freq_base", Applied, "RoPE base (absent: 10000, as llama.cpp)"),
    r("gptneox.use_parallel_residual", Applied, "parallel (true) or sequential (false) residual"),
    r("gptneox.attention.layer_norm_epsilon", Applied, "LayerNorm epsilon"),
    r("gptneox.vocab_size", Applied, "vocabulary size (absent: the number of tokenizer.ggml.tokens)"),
];

/// The HF name (prefix-less, as [`crate::model`]'s GPT-NeoX loader asks) of a GPT-NeoX GGUF
/// tensor, per the module table; `None` outside it.
fn hf_name(gguf_name: &str) -> Option<String> {
    let (stem, suffix) = gguf_name.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let mapped = match stem {
        "token_embd" => "embed_in".to_string(),
        "output_norm" => "final_layer_norm".to_string(),
        "output" => "embed_out".to_string(),
        _ => {
            let (layer, leaf) = stem.strip_prefix("blk.")?.split_once('.')?;
            let layer: usize = layer.parse().ok()?;
            let leaf = match leaf {
                "attn_norm" => "input_layernorm",
                "attn_qkv" => "attention.query_key_value",
                "attn_output" => "attention.dense",
                "ffn_norm" => "post_attention_layernorm",
                "ffn_up" => "mlp.dense_h_to_4h",
                "ffn_down" => "mlp.dense_4h_to_h",
                _ => return None,
            };
            format!("layers.{layer}.{leaf}")
        }
    };
    Some(format!("{mapped}.{suffix}"))
}

/// The tensors the GPT-NeoX forward pass loads: (GGUF name, required).
fn neox_tensors(cfg: &ModelConfig) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = [
        "token_embd.weight",
        "output_norm.weight",
        "output_norm.bias",
    ]
    .map(|n| (n.to_string(), true))
    .to_vec();
    out.push(("output.weight".into(), !cfg.tie_embeddings));
    for l in 0..cfg.n_layer {
        for leaf in [
            "attn_norm",
            "attn_qkv",
            "attn_output",
            "ffn_norm",
            "ffn_up",
            "ffn_down",
        ] {
            out.push((format!("blk.{l}.{leaf}.weight"), true));
            let attn = matches!(leaf, "attn_qkv" | "attn_output");
            out.push((format!("blk.{l}.{leaf}.bias"), !attn || cfg.qkv_bias));
        }
    }
    out
}

/// A GPT-NeoX configuration from `gptneox.*` metadata (audited by the caller).
fn config(g: &GgufFile, _: &GgufArch) -> Result<ModelConfig> {
    let opt =
        |k: &str, default: f32| -> Result<f32> { g.get(k).map_or(Ok(default), |_| g.get_f32(k)) };
    let d = g.get_usize("gptneox.embedding_length")?;
    let n_head = g.get_usize("gptneox.attention.head_count")?;
    let head_dim = d.checked_div(n_head).unwrap_or(0);
    let vocab = match g.get("gptneox.vocab_size") {
        Some(_) => g.get_usize("gptneox.vocab_size")?,
        None => g.get_str_array("tokenizer.ggml.tokens")?.len(),
    };
    let id = |k: &str| -> Result<Option<u32>> { g.get(k).map(|_| g.get_u32(k)).transpose() };
    let qkv_bias = g.tensor_info("blk.0.attn_qkv.bias").is_ok();
    Ok(ModelConfig {
        arch: Arch::GptNeox,
        vocab_size: vocab,
        n_positions: g.get_usize("gptneox.context_length")?,
        n_embd: d,
        n_layer: g.get_usize("gptneox.block_count")?,
        n_head,
        n_kv_head: n_head,
        n_inner: g.get_usize("gptneox.feed_forward_length")?,
        qkv_bias,
        norm_eps: g.get_f32("gptneox.attention.layer_norm_epsilon")?,
        rope_theta: opt("gptneox.rope.freq_base", 10000.0)?,
        rope_freq_factors: Vec::new(),
        rotary_dims: Some(match g.get("gptneox.rope.dimension_count") {
            Some(_) => g.get_usize("gptneox.rope.dimension_count")?,
            None => head_dim,
        }),
        parallel_residual: g.get_bool("gptneox.use_parallel_residual")?,
        tie_embeddings: g.tensor_info("output.weight").is_err(),
        bos_token_id: id("tokenizer.ggml.bos_token_id")?,
        eos_token_id: id("tokenizer.ggml.eos_token_id")?,
        scale_attn_weights: true,
        gelu_exact: true,
        variant: AttnVariant::Default,
        clip_gamma: 0.0,
        clip_eta: 1.0,
        sigmoid_t: 0,
        attn: Default::default(),
        embed_dim: d,
        pos_offset: 0,
        final_norm: true,
        post_norm: false,
        norm_affine: true,
        relu: false,
        linear_bias: true,
    })
}

/// A tensor in transformers' layout: `attn_qkv` (weight and bias) from the converter's q | k | v
/// rows back to the per-head `[h0: q k v, h1: q k v, …]` of `query_key_value`.
fn tensor_hf(g: &GgufFile, name: &str) -> Result<super::Values> {
    let shape = g.tensor_info(name)?.shape();
    let w = g.tensor_f32(name)?;
    if !name.contains(".attn_qkv.") {
        return Ok((w, shape));
    }
    let n_head = g.get_usize("gptneox.attention.head_count")?;
    let rows = shape[0];
    let cols = w.len() / rows.max(1);
    if n_head == 0 || rows % (3 * n_head) != 0 {
        bail!(
            "GGUF {}: tensor `{name}` has {rows} rows, not 3 × a multiple of {n_head} heads",
            g.path().display()
        );
    }
    let order = crate::config::neox_qkv_rows(n_head, rows / (3 * n_head));
    let mut out = vec![0f32; w.len()];
    for (i, &hf) in order.iter().enumerate() {
        out[hf * cols..(hf + 1) * cols].copy_from_slice(&w[i * cols..(i + 1) * cols]);
    }
    Ok((out, shape))
}
