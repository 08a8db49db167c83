//! The audit of a GGUF file against the key and tensor tables, and the value rendering its errors use.
//! Depends on the GGUF reader and `crate::config::ModelConfig`; never on wgpu or models.

use anyhow::{bail, Result};

use super::Handling::{Applied, Ignored, Refused, Restricted};
use super::{key_rule_in, tensor_rule_in, KeyRule, TensorRule};
use crate::config::ModelConfig;
use crate::gguf::{GgufFile, GgufValue};

/// A value for an error message: scalars as written, strings quoted (long ones cut), arrays by
/// length and first elements.
pub fn render(v: &GgufValue) -> String {
    match v {
        GgufValue::String(s) if s.chars().count() > 60 => {
            format!("{:?}...", s.chars().take(60).collect::<String>())
        }
        GgufValue::String(s) => format!("{s:?}"),
        GgufValue::Array(a) => {
            let head: Vec<String> = a.iter().take(4).map(render).collect();
            let more = if a.len() > 4 { ", ..." } else { "" };
            format!("[{}{more}] ({} elements)", head.join(", "), a.len())
        }
        GgufValue::U8(x) => x.to_string(),
        GgufValue::I8(x) => x.to_string(),
        GgufValue::U16(x) => x.to_string(),
        GgufValue::I16(x) => x.to_string(),
        GgufValue::U32(x) => x.to_string(),
        GgufValue::I32(x) => x.to_string(),
        GgufValue::U64(x) => x.to_string(),
        GgufValue::I64(x) => x.to_string(),
        GgufValue::F32(x) => x.to_string(),
        GgufValue::F64(x) => x.to_string(),
        GgufValue::Bool(x) => x.to_string(),
    }
}

/// A per-layer hyperparameter (`feed_forward_length`, `attention.head_count[_kv]`): a scalar, or
/// an array of `n_layer` equal integers (llama.cpp's `get_key_or_arr`). `None` when absent.
/// Errors name the key, the values and the file.
pub fn uniform_per_layer(g: &GgufFile, key: &str, n_layer: usize) -> Result<Option<usize>> {
    let Some(v) = g.get(key) else {
        return Ok(None);
    };
    let file = g.path().display();
    let Some(items) = v.as_array() else {
        return g.get_usize(key).map(Some);
    };
    let ints: Option<Vec<usize>> = items
        .iter()
        .map(|x| x.as_i128().and_then(|i| usize::try_from(i).ok()))
        .collect();
    let Some(ints) = ints else {
        bail!(
            "GGUF {file}: metadata `{key}` = {} is not an array of non-negative integers",
            render(v)
        );
    };
    if ints.len() != n_layer {
        bail!(
            "GGUF {file}: metadata `{key}` = {} has {} per-layer values for {n_layer} blocks",
            render(v),
            ints.len()
        );
    }
    match ints.first() {
        Some(&first) if ints.iter().all(|&x| x == first) => Ok(Some(first)),
        _ => bail!(
            "GGUF {file}: metadata `{key}` = {:?}: layers of different sizes are not supported",
            ints
        ),
    }
}

/// Whether a Restricted key's value is one the engine computes exactly; `Err(why)` otherwise.
fn restricted_ok(g: &GgufFile, cfg: &ModelConfig, key: &str, v: &GgufValue) -> bool {
    let int = v.as_i128();
    let float = v.as_f64().or_else(|| int.map(|i| i as f64));
    match key {
        "general.type" => v.as_str() == Some("model"),
        "general.quantization_version" => int == Some(2),
        "llama.attention.key_length" | "llama.attention.value_length" => {
            int == Some(cfg.head_dim() as i128)
        }
        "llama.rope.dimension_count" => int == Some(cfg.head_dim() as i128),
        "gptneox.attention.head_count_kv" => int == Some(cfg.n_head as i128),
        "gemma3.attention.value_length" | "gemma3.rope.dimension_count" => {
            int == Some(cfg.head_dim() as i128)
        }
        "gemma3.final_logit_softcapping" | "gemma3.attn_logit_softcapping" => float == Some(0.0),
        "llama.rope.scaling.attn_factor" => float == Some(1.0),
        "llama.expert_count"
        | "llama.expert_used_count"
        | "llama.expert_group_count"
        | "llama.expert_group_used_count"
        | "llama.pooling_type" => int == Some(0),
        "llama.attention.causal" => v.as_bool() == Some(true),
        "llama.embedding_length_out" => int == Some(cfg.n_embd as i128),
        "tokenizer.ggml.token_type_count" => matches!(int, Some(0 | 1)),
        "tokenizer.ggml.add_eos_token" | "tokenizer.ggml.add_sep_token" => {
            v.as_bool() == Some(false)
        }
        "tokenizer.ggml.add_space_prefix" => v.as_bool() == Some(prepends_space(g)),
        "tokenizer.ggml.remove_extra_whitespaces" => {
            v.as_bool() == Some(false) || (is_spm(g) && v.as_bool().is_some())
        }
        "split.count" => int == Some(1),
        "split.no" => int == Some(0),
        "split.tensors.count" => int == Some(g.tensors().len() as i128),
        _ => false,
    }
}

/// Whether `g` has a SentencePiece (`tokenizer.ggml.model = "llama"`) vocabulary.
fn is_spm(g: &GgufFile) -> bool {
    g.get("tokenizer.ggml.model").and_then(GgufValue::as_str) == Some("llama")
}

/// Whether the tokenizer built for `g` puts a "▁" before the text (see `gguf_tokenizer::spm`).
fn prepends_space(g: &GgufFile) -> bool {
    is_spm(g)
        && g.architecture()
            .is_ok_and(|a| crate::gguf_tokenizer::spm::Flavour::of(a).prepends_space())
}

/// Check every metadata key of `g` (GGUF architecture `arch`, with its own rows `own`) against
/// the audit ([`super::key_rule_in`]): unknown keys, `Refused` keys and `Restricted` keys with
/// another value are errors, all listed in one message naming each key, its value, the reason
/// and the file.
pub fn check_metadata(
    g: &GgufFile,
    cfg: &ModelConfig,
    (arch, own, llama_rows): (&str, &'static [KeyRule], bool),
) -> Result<()> {
    let mut bad = Vec::new();
    for (key, v) in g.metadata() {
        let why = match key_rule_in(arch, own, llama_rows, key) {
            None => "not a key outlier-probe knows; refused rather than ignored (docs/gguf-keys.md lists every known key)",
            Some((rule, spelled)) => match rule.handling {
                Applied | Ignored => continue,
                Restricted if restricted_ok(g, cfg, &spelled, v) => continue,
                Restricted | Refused => rule.reason,
            },
        };
        bad.push(format!("`{key}` = {}: {why}", render(v)));
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

/// The GGUF tensors the Llama forward pass loads for `cfg`: (name, required).
pub fn llama_tensors(cfg: &ModelConfig) -> Vec<(String, bool)> {
    let mut out = vec![
        ("token_embd.weight".to_string(), true),
        ("output_norm.weight".to_string(), true),
        ("output.weight".to_string(), false),
        ("rope_freqs.weight".to_string(), false),
    ];
    for l in 0..cfg.n_layer {
        for leaf in [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ] {
            out.push((format!("blk.{l}.{leaf}.weight"), true));
        }
    }
    out
}

/// Every tensor in `g` (GGUF architecture `arch`, with its own rows `own`) must be one `wanted`
/// lists (else an error naming it and, when llama.cpp knows it, why it is not applied), and every
/// required one must be present (else an error naming it). All problems are listed in one message.
pub fn check_tensors(
    g: &GgufFile,
    cfg: &ModelConfig,
    (arch, own, llama_rows): (&str, &'static [TensorRule], bool),
    wanted: &[(String, bool)],
) -> Result<()> {
    let known: std::collections::HashSet<&str> = wanted.iter().map(|(n, _)| n.as_str()).collect();
    let mut bad = Vec::new();
    for ti in g.tensors() {
        if known.contains(ti.name.as_str()) {
            continue;
        }
        let why = match tensor_rule_in(own, llama_rows, &ti.name) {
            Some(rule) if rule.handling == Refused => rule.reason.to_string(),
            Some(_) => format!(
                "block index past block_count = {} ({arch}.block_count)",
                cfg.n_layer
            ),
            None => {
                format!("not a tensor of the {arch} forward pass; refused rather than ignored")
            }
        };
        bad.push(format!("tensor `{}`: {why}", ti.name));
    }
    for (name, required) in wanted {
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
