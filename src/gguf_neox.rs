//! GPT-NeoX GGUF files (`general.architecture = "gptneox"`, as llama.cpp's `convert_hf_to_gguf.py`
//! writes Pythia): the `gptneox.*` key table [`GPTNEOX_KEYS`] (the `general.*` and `tokenizer.*`
//! keys keep the Llama audit's rows), the [`ModelConfig`], the tensor audit, and the weights seen
//! through Hugging Face names ([`NeoxGgufWeights`]) with `query_key_value` put back in its
//! per-head layout. Beside the Llama GGUF path, not part of it.
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
//! File formats: depends on gguf, gguf_keys, config, config_fields and weights; never wgpu or models.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};

use crate::config::{Arch, AttnVariant, ModelConfig};
use crate::config_fields::Handling::{Applied, Restricted};
use crate::config_fields::KeyRule;
use crate::gguf::GgufFile;
use crate::weights::WeightSource;

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
pub const GPTNEOX_KEYS: &[KeyRule] = &[
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
pub fn neox_hf_name(gguf_name: &str) -> Option<String> {
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

/// A GPT-NeoX configuration from GGUF metadata, after the audit of every key (`gptneox.*` by
/// [`GPTNEOX_KEYS`], the others by the Llama audit's rows) and tensor: anything the engine
/// cannot apply exactly is an error naming it, its value and the file.
pub fn gptneox_from_gguf(g: &GgufFile) -> Result<ModelConfig> {
    let file = g.path().display().to_string();
    let arch = g.architecture()?;
    if arch != "gptneox" {
        bail!("GGUF {file}: general.architecture = {arch:?}, expected \"gptneox\"");
    }
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
    let cfg = ModelConfig {
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
    };
    cfg.validate()
        .map_err(|e| anyhow!("GGUF {file}: invalid model metadata: {e}"))?;
    check_keys(g, &cfg)?;
    check_tensors(g, &cfg)?;
    Ok(cfg)
}

fn check_keys(g: &GgufFile, cfg: &ModelConfig) -> Result<()> {
    let mut bad = Vec::new();
    for (key, v) in g.metadata() {
        let why = if key.starts_with("gptneox.") {
            match GPTNEOX_KEYS.iter().find(|r| r.key == key) {
                None => Some("not a gptneox key outlier-probe knows; refused rather than ignored"),
                Some(r) if r.handling == Restricted && v.as_i128() != Some(cfg.n_head as i128) => {
                    Some(r.reason)
                }
                Some(_) => None,
            }
        } else if key.starts_with("llama.") {
            Some("a llama key in a gptneox file")
        } else {
            crate::gguf_keys::key_problem(g, cfg, key, v)
        };
        if let Some(why) = why {
            let shown = crate::gguf_keys::render(v);
            bad.push(format!("`{key}` = {shown}: {why}"));
        }
    }
    if !bad.is_empty() {
        bail!(
            "GGUF {}: metadata that outlier-probe cannot apply:\n  {}",
            g.path().display(),
            bad.join("\n  ")
        );
    }
    Ok(())
}

fn check_tensors(g: &GgufFile, cfg: &ModelConfig) -> Result<()> {
    let wanted = neox_tensors(cfg);
    let mut bad = Vec::new();
    for t in g.tensors() {
        if !wanted.iter().any(|(n, _)| *n == t.name) {
            bad.push(format!(
                "tensor `{}`: not a tensor of the gptneox forward pass (or past block_count = {}; attention biases must be all present or all absent); refused rather than ignored",
                t.name, cfg.n_layer
            ));
        }
    }
    for (name, required) in &wanted {
        if *required && g.tensor_info(name).is_err() {
            bad.push(format!("required tensor `{name}` is missing"));
        }
    }
    if !bad.is_empty() {
        bail!(
            "GGUF {}: tensors that outlier-probe cannot apply:\n  {}",
            g.path().display(),
            bad.join("\n  ")
        );
    }
    Ok(())
}

/// A GPT-NeoX GGUF file seen through Hugging Face names, dequantized at load, with
/// `query_key_value` (weight and bias) put back from the converter's q | k | v rows into
/// transformers' per-head layout.
pub struct NeoxGgufWeights {
    pub file: GgufFile,
    /// Canonical HF name -> GGUF tensor name.
    names: HashMap<String, String>,
    n_head: usize,
}

impl NeoxGgufWeights {
    pub fn new(file: GgufFile) -> Result<Self> {
        let n_head = file.get_usize("gptneox.attention.head_count")?;
        let names = file
            .tensors()
            .iter()
            .filter_map(|t| Some((neox_hf_name(&t.name)?, t.name.clone())))
            .collect();
        Ok(Self {
            file,
            names,
            n_head,
        })
    }

    fn get(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let g = self.names.get(name).ok_or_else(|| {
            anyhow!(
                "{}: missing tensor for '{name}'",
                self.file.path().display()
            )
        })?;
        let (w, shape) = self.file.tensor_f32_hf(g)?;
        if !g.contains(".attn_qkv.") {
            return Ok((w, shape));
        }
        let rows = shape[0];
        let cols = w.len() / rows.max(1);
        if self.n_head == 0 || rows % (3 * self.n_head) != 0 {
            bail!(
                "GGUF {}: tensor `{g}` has {rows} rows, not 3 × a multiple of {} heads",
                self.file.path().display(),
                self.n_head
            );
        }
        let order = crate::config::neox_qkv_rows(self.n_head, rows / (3 * self.n_head));
        let mut out = vec![0f32; w.len()];
        for (i, &hf) in order.iter().enumerate() {
            out[hf * cols..(hf + 1) * cols].copy_from_slice(&w[i * cols..(i + 1) * cols]);
        }
        Ok((out, shape))
    }
}

impl WeightSource for NeoxGgufWeights {
    fn path(&self) -> &Path {
        self.file.path()
    }
    fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }
    fn load(&self, name: &str, shape: &[usize]) -> Result<Cow<'_, [f32]>> {
        let (data, got) = self.get(name)?;
        if got != shape {
            bail!(
                "{}: tensor for '{name}' has shape {got:?} but the metadata implies {shape:?}",
                self.file.path().display()
            );
        }
        Ok(Cow::Owned(data))
    }
    fn same(&self, a: &str, b: &str) -> bool {
        matches!((self.names.get(a), self.names.get(b)), (Some(x), Some(y)) if x == y)
    }
    fn tensor(&self, name: &str) -> Result<crate::tensor::Tensor> {
        let (data, shape) = self.get(name)?;
        Ok(crate::tensor::Tensor::new(shape, data))
    }
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names.keys().cloned().collect();
        names.sort();
        names
    }
}
