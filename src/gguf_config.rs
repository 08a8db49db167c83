//! A Llama `ModelConfig` from GGUF metadata (`llama.*` keys, as llama.cpp reads them), audited
//! key by key (`gguf_keys`). File-format layer: never wgpu or models.

use anyhow::{bail, Context, Result};

use crate::config::{Arch, AttnVariant, ModelConfig};

/// A Llama configuration from GGUF metadata (`llama.*` keys), after the audit of every key and
/// tensor in the file ([`crate::gguf_keys`]): a key or tensor the engine cannot apply exactly is
/// an error naming it, its value and the file.
pub fn llama_from_gguf(g: &crate::gguf::GgufFile) -> Result<ModelConfig> {
    use crate::gguf_keys::uniform_per_layer;
    let file = g.path().display().to_string();
    let arch = g.architecture()?;
    if arch != "llama" {
        bail!("GGUF {file}: general.architecture = {arch:?} is not supported (only \"llama\" is)");
    }
    let n_layer = g.get_usize("llama.block_count")?;
    let per_layer = |key: &str| -> Result<Option<usize>> { uniform_per_layer(g, key, n_layer) };
    let required = |key: &str| -> Result<usize> {
        per_layer(key)?
            .ok_or_else(|| anyhow::anyhow!("GGUF {file}: metadata key `{key}` is missing"))
    };
    let optional_id =
        |key: &str| -> Result<Option<u32>> { g.get(key).map(|_| g.get_u32(key)).transpose() };
    let n_head = required("llama.attention.head_count")?;
    let d = g.get_usize("llama.embedding_length")?;
    let vocab = match g.get("llama.vocab_size") {
        Some(_) => g.get_usize("llama.vocab_size")?,
        None => g.get_str_array("tokenizer.ggml.tokens")?.len(),
    };
    let theta = match g.get("llama.rope.freq_base") {
        Some(_) => g.get_f32("llama.rope.freq_base")?,
        None => 10000.0,
    };
    if !(theta.is_finite() && theta > 0.0) {
        bail!("GGUF {file}: `llama.rope.freq_base` = {theta} must be > 0");
    }
    let mut cfg = ModelConfig {
        arch: Arch::Llama,
        vocab_size: vocab,
        n_positions: g.get_usize("llama.context_length")?,
        n_embd: d,
        n_layer,
        n_head,
        n_kv_head: per_layer("llama.attention.head_count_kv")?.unwrap_or(n_head),
        n_inner: required("llama.feed_forward_length")?,
        qkv_bias: false,
        norm_eps: g.get_f32("llama.attention.layer_norm_rms_epsilon")?,
        rope_theta: theta,
        rope_freq_factors: Vec::new(),
        tie_embeddings: g.tensor_info("output.weight").is_err(),
        bos_token_id: optional_id("tokenizer.ggml.bos_token_id")?,
        eos_token_id: optional_id("tokenizer.ggml.eos_token_id")?,
        scale_attn_weights: true,
        gelu_exact: false,
        variant: AttnVariant::Default,
        clip_gamma: 0.0,
        clip_eta: 1.0,
        sigmoid_t: 0,
        embed_dim: d,
        pos_offset: 0,
        final_norm: true,
        post_norm: false,
        norm_affine: true,
        relu: false,
        linear_bias: false,
    };
    cfg.validate()
        .with_context(|| format!("invalid model metadata in {file}"))?;
    crate::gguf_keys::check_metadata(g, &cfg)?;
    cfg.rope_freq_factors = gguf_rope_factors(g, cfg.head_dim())?;
    crate::gguf_keys::check_tensors(g, &cfg)?;
    Ok(cfg)
}

/// llama.cpp's RoPE scaling for `llama`: `rope.scaling.type` (default `linear`), the linear
/// `rope.scaling.factor` (old name `rope.scale_linear`; 0 = none) and `rope_freqs.weight`
/// (per-pair divisors), multiplied into [`ModelConfig::rope_freq_factors`].
fn gguf_rope_factors(g: &crate::gguf::GgufFile, head_dim: usize) -> Result<Vec<f32>> {
    let file = g.path().display().to_string();
    let half = head_dim / 2;
    let f = |key: &str| -> Result<Option<f32>> { g.get(key).map(|_| g.get_f32(key)).transpose() };
    let factor = match (
        f("llama.rope.scaling.factor")?,
        f("llama.rope.scale_linear")?,
    ) {
        (Some(a), Some(b)) if a != b => bail!(
            "GGUF {file}: `llama.rope.scaling.factor` = {a} and `llama.rope.scale_linear` = {b} disagree"
        ),
        (a, b) => a.or(b).unwrap_or(0.0),
    };
    if !(factor.is_finite() && factor >= 0.0) {
        bail!("GGUF {file}: `llama.rope.scaling.factor` = {factor} must be >= 0 (0 = no scaling)");
    }
    let kind = match g.get("llama.rope.scaling.type") {
        Some(_) => g.get_str("llama.rope.scaling.type")?,
        None => "linear",
    };
    let divisor = match kind {
        "none" if factor == 0.0 || factor == 1.0 => 1.0,
        "none" => bail!(
            "GGUF {file}: `llama.rope.scaling.type` = \"none\" contradicts `llama.rope.scaling.factor` = {factor}"
        ),
        "linear" if factor == 0.0 => 1.0,
        "linear" => factor,
        other => bail!(
            "GGUF {file}: `llama.rope.scaling.type` = {other:?} is not supported (none and linear are; yarn and longrope are not implemented)"
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
