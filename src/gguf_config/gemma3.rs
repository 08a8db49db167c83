//! `gemma3` GGUF files (llama.cpp `LLM_ARCH_GEMMA3`, e.g. Gemma-3-270M Q4_K_M): the `gemma3.*` key
//! rows (its own only: the sliding-window keys mean something here that the Llama rows refuse),
//! the `ModelConfig` as llama.cpp's `llama_model_gemma3::load_arch_hparams` reads the metadata,
//! the tensors the forward pass loads and their transformers names and values.
//!
//! | GGUF tensor | transformers (`model.` prefix) |
//! |---|---|
//! | `token_embd.weight` | `embed_tokens.weight` (also the tied head; `output.weight` when present) |
//! | `blk.N.attn_norm` / `post_attention_norm` | `layers.N.input_layernorm` / `post_attention_layernorm` |
//! | `blk.N.ffn_norm` / `post_ffw_norm` | `layers.N.pre_feedforward_layernorm` / `post_feedforward_layernorm` |
//! | `blk.N.attn_q_norm` / `attn_k_norm` | `layers.N.self_attn.q_norm` / `k_norm` |
//! | `blk.N.attn_{q,k,v,output}` | `layers.N.self_attn.{q,k,v,o}_proj` (not permuted: the converter permutes Q/K for `llama` only) |
//! | `blk.N.ffn_{gate,up,down}` | `layers.N.mlp.{gate,up,down}_proj` |
//! | `output_norm.weight` | `norm.weight` |
//!
//! Values: llama.cpp's converter stores every Gemma norm weight as w + 1 (its RMSNorm multiplies
//! by the weight); transformers' GGUF loader (`Gemma2TensorProcessor`) subtracts 1 again in f32,
//! and so does [`tensor_hf`], so the model file folds (1 + w) exactly as for a safetensors checkpoint.
//!
//! Attention as llama.cpp computes it: scores scaled by 1/√`attention.key_length` (its 27B size,
//! 62 layers, uses 1/√(d / heads), as Google's reference code); with a positive
//! `attention.sliding_window`, layer l slides unless `sliding_window_pattern` says otherwise (an int n: every n-th layer
//! is full, default 6; or one bool per layer); sliding layers take RoPE base
//! `rope.freq_base_swa` (default 10000) unscaled, full layers `rope.freq_base` with the linear
//! RoPE scaling of the file. transformers' GGUF loader reads the same keys and agrees on every
//! released size but 27B. File-format layer: never wgpu or models.

use anyhow::{bail, Result};

use super::GgufArch;
use crate::config::{Arch, AttnShape, AttnVariant, ModelConfig};
use crate::config_fields::Handling::{Applied, Ignored, Restricted};
use crate::config_fields::KeyRule;
use crate::gguf::GgufFile;

/// `gemma3`: its own key rows only; norm weights −1 as transformers loads them.
pub(super) const SPEC: GgufArch = GgufArch {
    name: "gemma3",
    arch: Arch::Gemma3,
    keys: KEYS,
    tensors: &[],
    llama_rows: false,
    config,
    wanted,
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

/// Every `gemma3.*` key the engine reads (llama.cpp `LLM_ARCH_GEMMA3`); any other is refused.
const KEYS: &[KeyRule] = &[
    r("gemma3.context_length", Applied, "longest sequence (RoPE table length, KV-cache capacity)"),
    r("gemma3.embedding_length", Applied, "model width d (the embedding is scaled by √d)"),
    r("gemma3.block_count", Applied, "number of blocks"),
    r("gemma3.feed_forward_length", Applied, "GeGLU width; a per-layer array is accepted when all layers agree"),
    r("gemma3.attention.head_count", Applied, "query heads; a per-layer array is accepted when all layers agree"),
    r("gemma3.attention.head_count_kv", Applied, "key/value heads (default head_count); a per-layer array is accepted when all layers agree"),
    r("gemma3.attention.key_length", Applied, "head dimension (Gemma-3-270M: 256 with d = 640 and 4 heads); scores are scaled by its −½ power (27B: (d / heads)^−½)"),
    r("gemma3.attention.value_length", Restricted, "must equal attention.key_length (one head dimension)"),
    r("gemma3.attention.layer_norm_rms_epsilon", Applied, "epsilon of every RMSNorm (block norms and q/k norms)"),
    r("gemma3.attention.sliding_window", Applied, "window of the sliding layers: query i sees keys j with i − j < window; absent or 0: every layer is full"),
    r("gemma3.attention.sliding_window_pattern", Applied, "which layers slide: an int n (every n-th layer is full; default 6) or one bool per layer"),
    r("gemma3.rope.freq_base", Applied, "RoPE base of the full layers (default 10000, as llama.cpp)"),
    r("gemma3.rope.freq_base_swa", Applied, "RoPE base of the sliding layers (default 10000)"),
    r("gemma3.rope.dimension_count", Restricted, "must equal attention.key_length (no partial rotary)"),
    r("gemma3.rope.scaling.type", Applied, "`none` or `linear` (default) on the full layers (sliding layers are never scaled, as llama.cpp); others are refused"),
    r("gemma3.rope.scaling.factor", Applied, "linear RoPE scaling factor of the full layers (0 or absent: none)"),
    r("gemma3.rope.scale_linear", Applied, "old name of rope.scaling.factor"),
    r("gemma3.rope.scaling.original_context_length", Ignored, "used by llama.cpp for YaRN only, which is refused"),
    r("gemma3.rope.scaling.finetuned", Ignored, "a flag llama.cpp stores and never uses"),
    r("gemma3.final_logit_softcapping", Restricted, "0 only: logit soft-capping is not implemented (Gemma 3 has none)"),
    r("gemma3.attn_logit_softcapping", Restricted, "0 only: score soft-capping is not implemented (Gemma 3 has none)"),
    r("gemma3.vocab_size", Applied, "vocabulary size (absent: the number of tokenizer.ggml.tokens)"),
];

/// The transformers name of a `gemma3` GGUF tensor, per the module table.
fn hf_name(gguf_name: &str) -> Option<String> {
    let (stem, suffix) = gguf_name.rsplit_once('.')?;
    if suffix != "weight" {
        return None;
    }
    let mapped = match stem {
        "token_embd" => "model.embed_tokens".to_string(),
        "output_norm" => "model.norm".to_string(),
        "output" => "lm_head".to_string(),
        _ => {
            let (layer, leaf) = stem.strip_prefix("blk.")?.split_once('.')?;
            let layer: usize = layer.parse().ok()?;
            let leaf = match leaf {
                "attn_norm" => "input_layernorm",
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "attn_q_norm" => "self_attn.q_norm",
                "attn_k_norm" => "self_attn.k_norm",
                "post_attention_norm" => "post_attention_layernorm",
                "ffn_norm" => "pre_feedforward_layernorm",
                "post_ffw_norm" => "post_feedforward_layernorm",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                _ => return None,
            };
            format!("model.layers.{layer}.{leaf}")
        }
    };
    Some(format!("{mapped}.weight"))
}

/// The tensors the Gemma 3 forward pass loads: (GGUF name, required).
fn wanted(cfg: &ModelConfig) -> Vec<(String, bool)> {
    let mut out = vec![
        ("token_embd.weight".to_string(), true),
        ("output_norm.weight".to_string(), true),
        ("output.weight".to_string(), false),
    ];
    for l in 0..cfg.n_layer {
        for leaf in [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "attn_q_norm",
            "attn_k_norm",
            "post_attention_norm",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
            "post_ffw_norm",
        ] {
            out.push((format!("blk.{l}.{leaf}.weight"), true));
        }
    }
    out
}

/// A tensor as transformers' GGUF loader gives it: norm weights −1 (f32), the rest unchanged.
fn tensor_hf(g: &GgufFile, name: &str) -> Result<super::Values> {
    let shape = g.tensor_info(name)?.shape();
    let mut w = g.tensor_f32(name)?;
    if name.ends_with("norm.weight") {
        w.iter_mut().for_each(|x| *x -= 1.0);
    }
    Ok((w, shape))
}

/// Which layers slide, as llama.cpp's `load_swa_pattern(ml, 6)`: a per-layer bool array, or an
/// int n (layer l slides unless l % n == n − 1; n = 0: every layer slides).
fn sliding_layers(g: &GgufFile, n_layer: usize) -> Result<Vec<bool>> {
    let key = "gemma3.attention.sliding_window_pattern";
    let file = g.path().display();
    let Some(v) = g.get(key) else {
        return Ok((0..n_layer).map(|l| l % 6 < 5).collect());
    };
    if let Some(items) = v.as_array() {
        let bools: Option<Vec<bool>> = items.iter().map(|x| x.as_bool()).collect();
        match bools {
            Some(b) if b.len() == n_layer => return Ok(b),
            _ => bail!(
                "GGUF {file}: `{key}` = {} is not {n_layer} booleans (one per block)",
                crate::gguf_keys::render(v)
            ),
        }
    }
    let n = g.get_usize(key)?;
    Ok((0..n_layer).map(|l| n == 0 || l % n < n - 1).collect())
}

/// A Gemma 3 configuration from `gemma3.*` metadata (audited by the caller). Errors name the key
/// and the file.
fn config(g: &GgufFile, spec: &GgufArch) -> Result<ModelConfig> {
    use crate::gguf_keys::uniform_per_layer;
    let file = g.path().display().to_string();
    let k = |s: &str| format!("gemma3.{s}");
    let f32_or = |key: &str, default: f32| -> Result<f32> {
        g.get(key).map_or(Ok(default), |_| g.get_f32(key))
    };
    let n_layer = g.get_usize(&k("block_count"))?;
    let per_layer = |key: &str| -> Result<Option<usize>> { uniform_per_layer(g, key, n_layer) };
    let required = |key: &str| -> Result<usize> {
        per_layer(key)?
            .ok_or_else(|| anyhow::anyhow!("GGUF {file}: metadata key `{key}` is missing"))
    };
    let d = g.get_usize(&k("embedding_length"))?;
    let n_head = required(&k("attention.head_count"))?;
    let head_dim = g.get_usize(&k("attention.key_length"))?;
    let window = match g.get(&k("attention.sliding_window")) {
        Some(_) => g.get_usize(&k("attention.sliding_window"))?,
        None => 0,
    };
    let sliding = if window > 0 {
        sliding_layers(g, n_layer)?
    } else {
        Vec::new()
    };
    // llama.cpp: 1/sqrt(n_embd_head_k), except its 27B type (62 layers): 1/sqrt(n_embd / n_head).
    let scalar = if n_layer == 62 && n_head > 0 {
        (d / n_head) as f32
    } else {
        head_dim as f32
    };
    for key in ["final_logit_softcapping", "attn_logit_softcapping"] {
        if f32_or(&k(key), 0.0)? != 0.0 {
            bail!("GGUF {file}: `gemma3.{key}` is not 0: soft-capping is not implemented");
        }
    }
    let vocab = match g.get(&k("vocab_size")) {
        Some(_) => g.get_usize(&k("vocab_size"))?,
        None => g.get_str_array("tokenizer.ggml.tokens")?.len(),
    };
    let optional_id =
        |key: &str| -> Result<Option<u32>> { g.get(key).map(|_| g.get_u32(key)).transpose() };
    let theta = f32_or(&k("rope.freq_base"), 10000.0)?;
    if !(theta.is_finite() && theta > 0.0) {
        bail!("GGUF {file}: `gemma3.rope.freq_base` = {theta} must be > 0");
    }
    Ok(ModelConfig {
        arch: spec.arch,
        vocab_size: vocab,
        n_positions: g.get_usize(&k("context_length"))?,
        n_embd: d,
        n_layer,
        n_head,
        n_kv_head: per_layer(&k("attention.head_count_kv"))?.unwrap_or(n_head),
        n_inner: required(&k("feed_forward_length"))?,
        qkv_bias: false,
        norm_eps: g.get_f32(&k("attention.layer_norm_rms_epsilon"))?,
        rope_theta: theta,
        rope_freq_factors: super::llama::rope_factors(g, "gemma3", head_dim)?,
        tie_embeddings: g.tensor_info("output.weight").is_err(),
        bos_token_id: optional_id("tokenizer.ggml.bos_token_id")?,
        eos_token_id: optional_id("tokenizer.ggml.eos_token_id")?,
        scale_attn_weights: true,
        gelu_exact: false,
        variant: AttnVariant::Default,
        clip_gamma: 0.0,
        clip_eta: 1.0,
        sigmoid_t: 0,
        rotary_dims: None,
        parallel_residual: false,
        embed_dim: d,
        pos_offset: 0,
        final_norm: true,
        post_norm: false,
        norm_affine: true,
        relu: false,
        linear_bias: false,
        attn: AttnShape {
            head_dim: Some(head_dim),
            query_pre_attn_scalar: Some(scalar),
            sliding_window: (window > 0).then_some(window),
            sliding_layers: sliding,
            rope_local_base_freq: Some(f32_or(&k("rope.freq_base_swa"), 10000.0)?),
            qk_norm: true,
        },
    })
}
