//! What outlier-probe does with every GGUF metadata key and every tensor a `llama` GGUF file can
//! carry: the audit table [`KEYS`] (one row per key llama.cpp reads for `LLM_ARCH_LLAMA`, from
//! `src/llama-model.cpp`, `src/models/llama.cpp`, `src/llama-vocab.cpp`,
//! `gguf-py/gguf/constants.py`), the tensor rules [`TENSORS`], and the checks that enforce them.
//! docs/gguf-keys.md is the same table in prose.
//!
//! The rule: a key that changes the computation is applied exactly or refused with an error
//! naming the key, its value and the file; a key that cannot change it is listed as ignored, with
//! the reason. A key that is in no row — `llama.*`, `tokenizer.*` or any other namespace — is
//! refused by name, never skipped. Every tensor in the file must be one the forward pass loads;
//! any other is an error naming it, and a missing required tensor is named too.
//!
//! `general.architecture` other than `llama` (GPT-2 GGUF included) is refused before this audit
//! (see [`crate::gguf_config::llama_from_gguf`]).

use anyhow::{bail, Result};

use crate::config::ModelConfig;
use crate::gguf::{GgufFile, GgufValue};

/// What the engine does with one metadata key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Handling {
    /// Read and used exactly (by [`crate::gguf_config::llama_from_gguf`], the GGUF reader or the GGUF
    /// tokenizer); bad values are errors there.
    Applied,
    /// Accepted only with the value(s) named in the reason, which leave llama's computation as
    /// the engine does it; any other value is refused.
    Restricted,
    /// Cannot change the logits or the tokens; ignored.
    Ignored,
    /// Refused whenever present.
    Refused,
}

/// One row of the audit: a key (a `*` matches any run of characters), what is done, and why.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct KeyRule {
    pub key: &'static str,
    pub handling: Handling,
    pub reason: &'static str,
}

const fn r(key: &'static str, handling: Handling, reason: &'static str) -> KeyRule {
    KeyRule {
        key,
        handling,
        reason,
    }
}

use Handling::{Applied, Ignored, Refused, Restricted};

const DESCRIPTIVE: &str =
    "descriptive metadata (authorship, licence, provenance); no effect on the computation";
const MOE: &str = "mixture-of-experts routing is not implemented (dense SwiGLU MLP only)";
const SWA: &str = "sliding-window / per-layer attention geometry is not implemented (every layer attends to all previous positions)";
const NOT_LLAMA: &str = "llama.cpp does not read this key for `llama` (it belongs to other architectures); its intended effect on this model is unknown";
const SPM_ONLY: &str = "must be false: it applies to SentencePiece/Unigram tokenizers; the byte-level BPE tokenizer built here (as llama.cpp's and transformers' for `gpt2` vocabularies) never does it";

/// The audit table. `{arch}` keys are spelled with `llama.`, the only architecture accepted.
pub const KEYS: &[KeyRule] = &[
    // ------------------------------------------------------------------ general.*
    r("general.architecture", Applied, "selects the model family; only `llama` is accepted (`gpt2` and every other architecture are refused by name)"),
    r("general.type", Restricted, "`model` only; `adapter` (LoRA), `mmproj`, `imatrix` files are not language models"),
    r("general.alignment", Applied, "tensor data offsets are multiples of it and the data section starts at the next multiple (GGUF reader); must be a power of two"),
    r("general.quantization_version", Restricted, "2 only: the Q4_0/Q4_1/Q8_0 block layouts the dequantizer implements are those of ggml quantization version 2"),
    r("general.file_type", Ignored, "a label for the dominant quantization; every tensor is dequantized by its own ggml type"),
    r("general.name", Ignored, DESCRIPTIVE),
    r("general.author", Ignored, DESCRIPTIVE),
    r("general.version", Ignored, DESCRIPTIVE),
    r("general.organization", Ignored, DESCRIPTIVE),
    r("general.finetune", Ignored, DESCRIPTIVE),
    r("general.basename", Ignored, DESCRIPTIVE),
    r("general.description", Ignored, DESCRIPTIVE),
    r("general.quantized_by", Ignored, DESCRIPTIVE),
    r("general.size_label", Ignored, DESCRIPTIVE),
    r("general.license", Ignored, DESCRIPTIVE),
    r("general.license.name", Ignored, DESCRIPTIVE),
    r("general.license.link", Ignored, DESCRIPTIVE),
    r("general.url", Ignored, DESCRIPTIVE),
    r("general.doi", Ignored, DESCRIPTIVE),
    r("general.uuid", Ignored, DESCRIPTIVE),
    r("general.repo_url", Ignored, DESCRIPTIVE),
    r("general.source.*", Ignored, DESCRIPTIVE),
    r("general.base_model.*", Ignored, DESCRIPTIVE),
    r("general.dataset.*", Ignored, DESCRIPTIVE),
    r("general.tags", Ignored, DESCRIPTIVE),
    r("general.languages", Ignored, DESCRIPTIVE),
    r("general.sampling.*", Ignored, "recommended sampler settings; sampling is chosen by the caller (`generate` options), not by the file"),
    r("general.*", Ignored, "any other general.* key is descriptive: llama.cpp reads only architecture, alignment, quantization_version, file_type and name of this namespace, and none of the others changes what it computes"),
    // ------------------------------------------------------------------ llama.* (read by llama.cpp)
    r("llama.vocab_size", Applied, "vocabulary size (rows of token_embd / output); default: the length of tokenizer.ggml.tokens"),
    r("llama.context_length", Applied, "longest sequence (RoPE table length, KV-cache capacity)"),
    r("llama.embedding_length", Applied, "model width d"),
    r("llama.block_count", Applied, "number of blocks; tensors of further blocks are refused as unused"),
    r("llama.feed_forward_length", Applied, "SwiGLU width; a per-layer array is accepted when all layers agree, refused otherwise"),
    r("llama.attention.head_count", Applied, "query heads; a per-layer array is accepted when all layers agree, refused otherwise"),
    r("llama.attention.head_count_kv", Applied, "key/value heads (grouped-query attention; default head_count); scalar, or a per-layer array when all layers agree"),
    r("llama.attention.layer_norm_rms_epsilon", Applied, "RMSNorm epsilon (required, as in llama.cpp)"),
    r("llama.attention.key_length", Restricted, "must equal embedding_length / head_count: the engine's head dimension is d / heads"),
    r("llama.attention.value_length", Restricted, "must equal embedding_length / head_count: the engine's head dimension is d / heads"),
    r("llama.rope.dimension_count", Restricted, "must equal the head dimension (partial rotary is refused; llama.cpp refuses it for llama too)"),
    r("llama.rope.freq_base", Applied, "RoPE base θ (default 10000)"),
    r("llama.rope.scaling.type", Applied, "`none` or `linear` (the default when absent, as llama.cpp) are applied; `yarn`, `longrope` and anything else are refused"),
    r("llama.rope.scaling.factor", Applied, "linear RoPE scaling: inverse frequencies divided by the factor (0 or absent = 1); with type `none` only 0 or 1 is accepted"),
    r("llama.rope.scale_linear", Applied, "old name of rope.scaling.factor (read when that is absent; both present and different is refused)"),
    r("llama.rope.scaling.original_context_length", Ignored, "read by llama.cpp for YaRN only (ggml_rope_ext uses n_ctx_orig only when ext_factor != 0); YaRN is refused"),
    r("llama.rope.scaling.finetuned", Ignored, "stored by llama.cpp as a flag and never used in the llama graph"),
    r("llama.rope.scaling.attn_factor", Restricted, "1 only: a RoPE magnitude scale (mscale) the engine does not apply"),
    r("llama.rope.scaling.alpha", Refused, "NTK-alpha RoPE (HunYuan); not implemented"),
    r("llama.rope.scaling.yarn_*", Refused, "YaRN parameters; YaRN is not implemented"),
    r("llama.rope.dimension_count_swa", Refused, SWA),
    r("llama.rope.freq_base_swa", Refused, SWA),
    r("llama.rope.dimension_sections", Refused, "multimodal (M-RoPE) sections are not implemented"),
    r("llama.expert_count", Restricted, "0 only (dense model); mixture-of-experts is refused"),
    r("llama.expert_used_count", Restricted, "0 only (dense model); mixture-of-experts is refused"),
    r("llama.expert_group_count", Restricted, "0 only (dense model); mixture-of-experts is refused"),
    r("llama.expert_group_used_count", Restricted, "0 only (dense model); mixture-of-experts is refused"),
    r("llama.expert_feed_forward_length", Refused, MOE),
    r("llama.expert_shared_feed_forward_length", Refused, MOE),
    r("llama.expert_shared_count", Refused, MOE),
    r("llama.expert_weights_scale", Refused, MOE),
    r("llama.expert_weights_norm", Refused, MOE),
    r("llama.expert_gating_func", Refused, MOE),
    r("llama.leading_dense_block_count", Refused, MOE),
    r("llama.interleave_moe_layer_step", Refused, MOE),
    r("llama.attention.causal", Restricted, "true only: the engine's attention is causal (a non-causal model is refused)"),
    r("llama.pooling_type", Restricted, "0 (none) only: a pooled embedding model does not produce next-token logits"),
    r("llama.embedding_length_out", Restricted, "must equal embedding_length (no output projection to another width)"),
    r("llama.classifier.output_labels", Refused, "a classification head, not a language-model head"),
    r("llama.attention.key_length_swa", Refused, SWA),
    r("llama.attention.value_length_swa", Refused, SWA),
    r("llama.attention.sliding_window", Refused, SWA),
    r("llama.attention.sliding_window_pattern", Refused, SWA),
    r("llama.tensor_data_layout", Ignored, "names the source checkpoint layout (\"Meta AI original pth\"); Q/K are stored in llama.cpp's interleaved-pair RoPE layout either way and un-permuted the same way"),
    // ------------------------------------------------------------------ llama.* (other architectures' multipliers and options)
    r("llama.attention.clamp_kqv", Refused, "clamping of Q/K/V (MPT/DBRX) is not implemented; llama.cpp ignores it for llama"),
    r("llama.logit_scale", Refused, "a logit multiplier (Granite/Command-R/MiniCPM); llama.cpp ignores it for llama, transformers applies it for those models: ambiguous, not applied"),
    r("llama.embedding_scale", Refused, "an embedding multiplier (Granite/MiniCPM); llama.cpp ignores it for llama: ambiguous, not applied"),
    r("llama.residual_scale", Refused, "a residual-branch multiplier (Granite/MiniCPM); llama.cpp ignores it for llama: ambiguous, not applied"),
    r("llama.attention.scale", Refused, "a replacement for 1/sqrt(head_dim) (Granite); not applied"),
    r("llama.attention.output_scale", Refused, "an attention-output multiplier (Grok); not applied"),
    r("llama.attn_logit_softcapping", Refused, "soft-capping of attention scores (Gemma 2/Grok) is not implemented"),
    r("llama.final_logit_softcapping", Refused, "soft-capping of the logits (Gemma 2) is not implemented"),
    r("llama.attention.layer_norm_epsilon", Refused, "a LayerNorm epsilon; llama uses RMSNorm (layer_norm_rms_epsilon)"),
    r("llama.attention.max_alibi_bias", Refused, "ALiBi position biases are not implemented"),
    r("llama.attention.temperature_length", Refused, "attention temperature tuning (Llama 4) is not implemented"),
    r("llama.attention.temperature_scale", Refused, "attention temperature tuning (Llama 4) is not implemented"),
    r("llama.use_parallel_residual", Refused, "parallel attention/MLP residual (GPT-NeoX) is not implemented"),
    r("llama.swiglu_clamp_exp", Refused, NOT_LLAMA),
    r("llama.swiglu_clamp_shexp", Refused, NOT_LLAMA),
    // ------------------------------------------------------------------ tokenizer.*
    r("tokenizer.ggml.model", Applied, "`gpt2` (byte-level BPE) only; `llama` (SentencePiece) and others are refused by the GGUF tokenizer"),
    r("tokenizer.ggml.pre", Applied, "selects the pre-tokenizer split regex (see gguf_tokenizer::split_regex)"),
    r("tokenizer.ggml.tokens", Applied, "the vocabulary (id = index)"),
    r("tokenizer.ggml.token_type", Applied, "CONTROL tokens become special tokens, USER_DEFINED tokens added tokens"),
    r("tokenizer.ggml.merges", Applied, "BPE merges, in rank order"),
    r("tokenizer.ggml.scores", Ignored, "SentencePiece piece scores; a `gpt2` BPE vocabulary is driven by the merges (llama.cpp and transformers ignore the scores for it too)"),
    r("tokenizer.ggml.token_type_count", Restricted, "0 or 1 only: more token types are BERT segment embeddings, which a llama model does not have"),
    r("tokenizer.ggml.bos_token_id", Applied, "BOS token (a special token; BOS insertion follows add_bos_token)"),
    r("tokenizer.ggml.eos_token_id", Applied, "EOS token: a special token and where `generate` stops"),
    r("tokenizer.ggml.unknown_token_id", Applied, "made a special token"),
    r("tokenizer.ggml.padding_token_id", Applied, "made a special token"),
    r("tokenizer.ggml.add_bos_token", Applied, "whether BOS is prepended (BOS handling, gguf_tokenizer::GgufSpecialTokens)"),
    r("tokenizer.ggml.add_eos_token", Restricted, "false only: appending EOS to every prompt is not implemented"),
    r("tokenizer.ggml.add_sep_token", Restricted, "false only: appending SEP (BERT) is not implemented"),
    r("tokenizer.ggml.add_space_prefix", Restricted, SPM_ONLY),
    r("tokenizer.ggml.remove_extra_whitespaces", Restricted, SPM_ONLY),
    r("tokenizer.ggml.precompiled_charsmap", Refused, "a Unigram (T5) normalizer, not used by byte-level BPE"),
    r("tokenizer.ggml.eot_token_id", Ignored, "end-of-turn marker for chat front ends; `generate` stops at eos_token_id (as transformers' GGUF loader, which reads only bos/eos/unk/pad)"),
    r("tokenizer.ggml.eom_token_id", Ignored, "end-of-message marker for chat front ends; see eot_token_id"),
    r("tokenizer.ggml.seperator_token_id", Ignored, "BERT separator id, only used with add_sep_token (which must be false); whether the token is special follows its token_type"),
    r("tokenizer.ggml.mask_token_id", Ignored, "BERT mask id, unused by causal language models; whether the token is special follows its token_type"),
    r("tokenizer.ggml.fim_*_token_id", Ignored, "fill-in-the-middle prompt markers; only used to build infill prompts"),
    r("tokenizer.ggml.prefix_token_id", Ignored, "old name of fim_pre_token_id"),
    r("tokenizer.ggml.suffix_token_id", Ignored, "old name of fim_suf_token_id"),
    r("tokenizer.ggml.middle_token_id", Ignored, "old name of fim_mid_token_id"),
    r("tokenizer.chat_template", Ignored, "a Jinja chat template; prompts are passed as text, not chat messages"),
    r("tokenizer.chat_template.*", Ignored, "named chat templates; see tokenizer.chat_template"),
    r("tokenizer.chat_templates", Ignored, "list of named chat templates; see tokenizer.chat_template"),
    r("tokenizer.huggingface.json", Ignored, "an embedded tokenizer.json; llama.cpp does not read it either, the tokenizer is built from tokenizer.ggml.*"),
    r("tokenizer.rwkv.world", Refused, "an RWKV vocabulary, not byte-level BPE"),
    // ------------------------------------------------------------------ other namespaces
    r("split.count", Restricted, "1 only: a split model's tensors live in other files"),
    r("split.no", Restricted, "0 only (the first and only shard)"),
    r("split.tensors.count", Restricted, "must equal the number of tensors in this file"),
    r("quantize.imatrix.*", Ignored, "which importance matrix the quantizer used; the stored values are what is read"),
    r("adapter.*", Refused, "LoRA adapter metadata: adapters are not applied"),
    r("clip.*", Refused, "a vision/audio projector (mmproj) file, not a language model"),
];

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

/// `pattern` with `*` matching any run of characters (possibly empty).
fn glob(pattern: &str, s: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    if parts.is_empty() {
        return rest.is_empty();
    }
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.len() >= p.len() && rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    true
}

/// The audit row for `key` (exact rows win over patterns).
pub fn key_rule(key: &str) -> Option<&'static KeyRule> {
    KEYS.iter().find(|k| k.key == key).or_else(|| {
        KEYS.iter()
            .find(|k| k.key.contains('*') && glob(k.key, key))
    })
}

/// The tensor row for a GGUF tensor name (`blk.7.attn_q.bias` matches `blk.N.attn_q.bias`).
pub fn tensor_rule(name: &str) -> Option<&'static TensorRule> {
    let generic = match name.strip_prefix("blk.").and_then(|r| r.split_once('.')) {
        Some((n, leaf)) if n.parse::<usize>().is_ok() => format!("blk.N.{leaf}"),
        _ => name.to_string(),
    };
    TENSORS.iter().find(|t| t.name == generic).or_else(|| {
        TENSORS
            .iter()
            .find(|t| t.name.contains('*') && glob(t.name, name))
    })
}

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
        "llama.rope.scaling.attn_factor" => float == Some(1.0),
        "llama.expert_count"
        | "llama.expert_used_count"
        | "llama.expert_group_count"
        | "llama.expert_group_used_count"
        | "llama.pooling_type" => int == Some(0),
        "llama.attention.causal" => v.as_bool() == Some(true),
        "llama.embedding_length_out" => int == Some(cfg.n_embd as i128),
        "tokenizer.ggml.token_type_count" => matches!(int, Some(0 | 1)),
        "tokenizer.ggml.add_eos_token"
        | "tokenizer.ggml.add_sep_token"
        | "tokenizer.ggml.add_space_prefix"
        | "tokenizer.ggml.remove_extra_whitespaces" => v.as_bool() == Some(false),
        "split.count" => int == Some(1),
        "split.no" => int == Some(0),
        "split.tensors.count" => int == Some(g.tensors().len() as i128),
        _ => false,
    }
}

/// Check every metadata key of `g` against [`KEYS`]: unknown keys, `Refused` keys and
/// `Restricted` keys with another value are errors, all listed in one message naming each key,
/// its value, the reason and the file.
pub fn check_metadata(g: &GgufFile, cfg: &ModelConfig) -> Result<()> {
    let mut bad = Vec::new();
    for (key, v) in g.metadata() {
        let why = match key_rule(key) {
            None => "not a key outlier-probe knows; refused rather than ignored (docs/gguf-keys.md lists every known key)",
            Some(rule) => match rule.handling {
                Applied | Ignored => continue,
                Restricted if restricted_ok(g, cfg, key, v) => continue,
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

/// Every tensor in `g` must be one [`llama_tensors`] lists (else an error naming it and, when
/// llama.cpp knows it, why it is not applied), and every required one must be present (else an
/// error naming it). All problems are listed in one message.
pub fn check_tensors(g: &GgufFile, cfg: &ModelConfig) -> Result<()> {
    let wanted = llama_tensors(cfg);
    let known: std::collections::HashSet<&str> = wanted.iter().map(|(n, _)| n.as_str()).collect();
    let mut bad = Vec::new();
    for ti in g.tensors() {
        if known.contains(ti.name.as_str()) {
            continue;
        }
        let why = match tensor_rule(&ti.name) {
            Some(rule) if rule.handling == Refused => rule.reason.to_string(),
            Some(_) => format!(
                "block index past block_count = {} (llama.block_count)",
                cfg.n_layer
            ),
            None => "not a tensor of the llama forward pass; refused rather than ignored".into(),
        };
        bad.push(format!("tensor `{}`: {why}", ti.name));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_and_lookup() {
        assert!(glob("general.base_model.*", "general.base_model.0.name"));
        assert!(glob(
            "tokenizer.ggml.fim_*_token_id",
            "tokenizer.ggml.fim_pre_token_id"
        ));
        assert!(!glob(
            "tokenizer.ggml.fim_*_token_id",
            "tokenizer.ggml.fim_pre"
        ));
        assert!(glob("*.scale", "blk.0.attn_q.scale"));
        assert!(!glob("general.url", "general.urls"));
        assert_eq!(
            key_rule("llama.rope.scaling.yarn_beta_fast").map(|k| k.handling),
            Some(Refused)
        );
        assert!(key_rule("llama.unheard_of").is_none());
        assert_eq!(
            tensor_rule("blk.12.attn_q.bias").map(|t| t.name),
            Some("blk.N.attn_q.bias")
        );
        assert_eq!(
            tensor_rule("blk.3.ffn_up.input_scale").map(|t| t.name),
            Some("*.input_scale")
        );
        assert!(tensor_rule("mystery.weight").is_none());
    }

    #[test]
    fn rows_are_unique() {
        let mut keys: Vec<_> = KEYS.iter().map(|k| k.key).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate key rows");
        let mut names: Vec<_> = TENSORS.iter().map(|t| t.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate tensor rows");
    }
}
