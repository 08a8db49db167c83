//! `llama` GGUF files (llama.cpp `LLM_ARCH_LLAMA`): the `ModelConfig` from `llama.*` metadata as
//! llama.cpp reads it, the tensors the forward pass loads, and transformers' layout of them (Q/K
//! rows un-permuted). The reading of the shared `{arch}.*` keys and of RoPE scaling here is reused
//! by the other Llama-like GGUF architectures. File-format layer: never wgpu or models.

use anyhow::{bail, Result};

use super::GgufArch;
use crate::config::{Arch, AttnVariant, ModelConfig};
use crate::gguf::GgufFile;

/// `llama`: the shared key and tensor tables of [`crate::gguf_keys`] are its own.
pub(super) const SPEC: GgufArch = GgufArch {
    name: "llama",
    arch: Arch::Llama,
    keys: &[],
    tensors: &[],
    llama_rows: true,
    config,
    wanted: crate::gguf_keys::llama_tensors,
    hf_name: crate::gguf::hf_name,
    tensor_hf: |g, name| g.tensor_f32_hf(name),
};

/// The Llama-shaped part of a configuration from `{arch}.*` metadata (`spec.name` = `arch`), as
/// llama.cpp's `llm_load_hparams` reads it for `llama`; the caller audits every key and tensor.
/// Errors name the key and the file.
pub(super) fn config(g: &GgufFile, spec: &GgufArch) -> Result<ModelConfig> {
    use crate::gguf_keys::uniform_per_layer;
    let file = g.path().display().to_string();
    let a = spec.name;
    let k = |s: &str| format!("{a}.{s}");
    let n_layer = g.get_usize(&k("block_count"))?;
    let per_layer = |key: &str| -> Result<Option<usize>> { uniform_per_layer(g, key, n_layer) };
    let required = |key: &str| -> Result<usize> {
        per_layer(key)?
            .ok_or_else(|| anyhow::anyhow!("GGUF {file}: metadata key `{key}` is missing"))
    };
    let optional_id =
        |key: &str| -> Result<Option<u32>> { g.get(key).map(|_| g.get_u32(key)).transpose() };
    let n_head = required(&k("attention.head_count"))?;
    let d = g.get_usize(&k("embedding_length"))?;
    let vocab = match g.get(&k("vocab_size")) {
        Some(_) => g.get_usize(&k("vocab_size"))?,
        None => g.get_str_array("tokenizer.ggml.tokens")?.len(),
    };
    let theta = match g.get(&k("rope.freq_base")) {
        Some(_) => g.get_f32(&k("rope.freq_base"))?,
        None => 10000.0,
    };
    if !(theta.is_finite() && theta > 0.0) {
        bail!("GGUF {file}: `{a}.rope.freq_base` = {theta} must be > 0");
    }
    let cfg = ModelConfig {
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
        rope_freq_factors: Vec::new(),
        rotary_dims: None,
        parallel_residual: false,
        tie_embeddings: g.tensor_info("output.weight").is_err(),
        bos_token_id: optional_id("tokenizer.ggml.bos_token_id")?,
        eos_token_id: optional_id("tokenizer.ggml.eos_token_id")?,
        scale_attn_weights: true,
        gelu_exact: false,
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
        linear_bias: false,
    };
    Ok(cfg)
}

/// llama.cpp's RoPE scaling for `llama` (and the Llama-like architectures, `a` = their GGUF
/// name): `{a}.rope.scaling.type` (default `linear`), the linear `rope.scaling.factor` (old name
/// `rope.scale_linear`; 0 = none) and `rope_freqs.weight` (per-pair divisors), multiplied into
/// [`ModelConfig::rope_freq_factors`]. Errors name the key or tensor and the file.
pub(super) fn rope_factors(g: &GgufFile, a: &str, head_dim: usize) -> Result<Vec<f32>> {
    let file = g.path().display().to_string();
    let half = head_dim / 2;
    let f = |key: &str| -> Result<Option<f32>> { g.get(key).map(|_| g.get_f32(key)).transpose() };
    let factor = match (
        f(&format!("{a}.rope.scaling.factor"))?,
        f(&format!("{a}.rope.scale_linear"))?,
    ) {
        (Some(x), Some(y)) if x != y => bail!(
            "GGUF {file}: `{a}.rope.scaling.factor` = {x} and `{a}.rope.scale_linear` = {y} disagree"
        ),
        (x, y) => x.or(y).unwrap_or(0.0),
    };
    if !(factor.is_finite() && factor >= 0.0) {
        bail!("GGUF {file}: `{a}.rope.scaling.factor` = {factor} must be >= 0 (0 = no scaling)");
    }
    let type_key = format!("{a}.rope.scaling.type");
    let kind = match g.get(&type_key) {
        Some(_) => g.get_str(&type_key)?,
        None => "linear",
    };
    let divisor = match kind {
        "none" if factor == 0.0 || factor == 1.0 => 1.0,
        "none" => bail!(
            "GGUF {file}: `{a}.rope.scaling.type` = \"none\" contradicts `{a}.rope.scaling.factor` = {factor}"
        ),
        "linear" if factor == 0.0 => 1.0,
        "linear" => factor,
        other => bail!(
            "GGUF {file}: `{a}.rope.scaling.type` = {other:?} is not supported (none and linear are; yarn and longrope are not implemented)"
        ),
    };
    let Ok(info) = g.tensor_info("rope_freqs.weight") else {
        return Ok(if divisor == 1.0 {
            Vec::new()
        } else {
            vec![divisor; half]
        });
    };
    if info.shape() != [half] {
        bail!(
            "GGUF {file}: tensor `rope_freqs.weight` has shape {:?}, expected [{half}] (head_dim / 2)",
            info.shape()
        );
    }
    let freqs = g.tensor_f32("rope_freqs.weight")?;
    if let Some((i, x)) = freqs
        .iter()
        .enumerate()
        .find(|(_, x)| !(x.is_finite() && **x > 0.0))
    {
        bail!("GGUF {file}: tensor `rope_freqs.weight`[{i}] = {x}: RoPE frequency factors must be finite and > 0");
    }
    Ok(freqs.iter().map(|x| x * divisor).collect())
}
