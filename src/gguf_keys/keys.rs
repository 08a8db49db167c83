//! The key table of the GGUF audit: one [`KeyRule`] per metadata key llama.cpp reads for `llama`.
//! Data only: depends on nothing but [`Handling`]; never on wgpu, models or config.

use super::Handling;

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

pub(super) const DESCRIPTIVE: &str =
    "descriptive metadata (authorship, licence, provenance); no effect on the computation";
pub(super) const MOE: &str =
    "mixture-of-experts routing is not implemented (dense SwiGLU MLP only)";
pub(super) const SWA: &str = "sliding-window / per-layer attention geometry is not implemented (every layer attends to all previous positions)";
pub(super) const NOT_LLAMA: &str = "llama.cpp does not read this key for `llama` (it belongs to other architectures); its intended effect on this model is unknown";
pub(super) const SPM_ONLY: &str = "must be false: it applies to SentencePiece/Unigram tokenizers; the byte-level BPE tokenizer built here (as llama.cpp's and transformers' for `gpt2` vocabularies) never does it";

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
