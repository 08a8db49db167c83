//! What outlier-probe does with every field a transformers `config.json` can carry for the
//! families it loads (transformers 5.24 `GPT2Config`, `LlamaConfig`, `Qwen2Config`, `GPTNeoXConfig`, `OPTConfig`, `Qwen3Config`, `Gemma3TextConfig` and the
//! `PreTrainedConfig` base): applied, accepted only with the value that leaves the computation
//! as the engine does it (`Restricted`), or ignored because it cannot change the logits — with
//! the reason. A field in no list is refused by name, never skipped. docs/gguf-keys.md lists them too.
//! Data only (also the rule types the GGUF key audit uses): never GGUF, wgpu or models.

use anyhow::{bail, Result};
use serde_json::Value;

use Handling::{Applied, Ignored, Refused, Restricted};

/// What the engine does with one metadata key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Handling {
    /// Read and used exactly (by `gguf_config::from_gguf`, the GGUF reader or the GGUF
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

const DROPOUT: &str = "dropout, inactive at inference";
const GENERATION: &str = "a generation default; `generate` takes its settings from the caller";
const OUTPUT: &str = "an output/runtime option of transformers; no effect on the values";

/// `PreTrainedConfig` fields, for every family.
pub const COMMON: &[KeyRule] = &[
    r("model_type", Applied, "selects the family (gpt2, llama, qwen2, qwen3, gpt_neox, opt, gemma3_text, or gemma3 around a gemma3_text)"),
    r("bos_token_id", Applied, "BOS token"),
    r("eos_token_id", Applied, "EOS token (the first one when a list): where `generate` stops"),
    r("tie_word_embeddings", Applied, "true: the LM head is the embedding matrix (a separately stored head is then refused); false: `lm_head.weight` is required"),
    r("transformers_version", Ignored, "provenance"),
    r("architectures", Ignored, "provenance (the class that saved it)"),
    r("_name_or_path", Ignored, "provenance"),
    r("name_or_path", Ignored, "provenance"),
    r("_commit_hash", Ignored, "provenance"),
    r("converted_from", Ignored, "provenance written by `outlier-probe convert`"),
    r("dtype", Ignored, "the dtype transformers would compute in; the engine computes in f32 from the stored values"),
    r("torch_dtype", Ignored, "old name of dtype"),
    r("initializer_range", Ignored, "initialisation only"),
    r("use_cache", Ignored, OUTPUT),
    r("output_hidden_states", Ignored, OUTPUT),
    r("output_attentions", Ignored, OUTPUT),
    r("return_dict", Ignored, OUTPUT),
    r("torchscript", Ignored, OUTPUT),
    r("attn_implementation", Ignored, "a kernel choice (eager/sdpa/flash); same attention"),
    r("_attn_implementation", Ignored, "a kernel choice (eager/sdpa/flash); same attention"),
    r("experts_implementation", Ignored, "a kernel choice for experts; no experts here"),
    r("chunk_size_feed_forward", Ignored, "chunking the MLP over positions gives the same values"),
    r("pad_token_id", Ignored, "padding id; padded positions are not computed"),
    r("sep_token_id", Ignored, "unused by causal language models"),
    r("decoder_start_token_id", Ignored, "encoder-decoder models only (is_encoder_decoder must be false)"),
    r("id2label", Ignored, "labels of a classification head, not the LM head"),
    r("label2id", Ignored, "labels of a classification head, not the LM head"),
    r("num_labels", Ignored, "size of a classification head, not the LM head"),
    r("problem_type", Ignored, "classification-head loss choice"),
    r("finetuning_task", Ignored, "provenance"),
    r("tokenizer_class", Ignored, "the tokenizer comes from tokenizer.json"),
    r("prefix", Ignored, "a prompt prefix hint for pipelines"),
    r("task_specific_params", Ignored, GENERATION),
    r("max_length", Ignored, GENERATION),
    r("min_length", Ignored, GENERATION),
    r("do_sample", Ignored, GENERATION),
    r("early_stopping", Ignored, GENERATION),
    r("num_beams", Ignored, GENERATION),
    r("temperature", Ignored, GENERATION),
    r("top_k", Ignored, GENERATION),
    r("top_p", Ignored, GENERATION),
    r("repetition_penalty", Ignored, GENERATION),
    r("length_penalty", Ignored, GENERATION),
    r("no_repeat_ngram_size", Ignored, GENERATION),
    r("num_return_sequences", Ignored, GENERATION),
    r("bad_words_ids", Ignored, GENERATION),
    r("num_beam_groups", Ignored, GENERATION),
    r("diversity_penalty", Ignored, GENERATION),
    r("typical_p", Ignored, GENERATION),
    r("encoder_no_repeat_ngram_size", Ignored, GENERATION),
    r("forced_bos_token_id", Ignored, GENERATION),
    r("forced_eos_token_id", Ignored, GENERATION),
    r("remove_invalid_values", Ignored, GENERATION),
    r("exponential_decay_length_penalty", Ignored, GENERATION),
    r("suppress_tokens", Ignored, GENERATION),
    r("begin_suppress_tokens", Ignored, GENERATION),
    r("output_scores", Ignored, OUTPUT),
    r("return_dict_in_generate", Ignored, OUTPUT),
    r("output_past", Ignored, "old name of use_cache (transformers 2-3)"),
    r("_num_labels", Ignored, "old name of num_labels: a classification head, not the LM head"),
    r("gradient_checkpointing", Ignored, "a training memory option (old configs); same values"),
    r("use_bfloat16", Ignored, "an old TPU training option; the engine computes in f32 from the stored values"),
    r("tf_legacy_loss", Ignored, "TensorFlow loss option; no effect on the forward pass"),
    r("is_decoder", Ignored, "marks a decoder inside an encoder-decoder; both families here are causal decoders anyway"),
    r("is_encoder_decoder", Restricted, "false only: encoder-decoder models are not supported"),
    r("add_cross_attention", Restricted, "false only: cross-attention layers (GPT-2 as a decoder of an encoder) are not implemented"),
    r("cross_attention_hidden_size", Ignored, "only used with add_cross_attention (which must be false)"),
    r("tie_encoder_decoder", Ignored, "encoder-decoder models only (is_encoder_decoder must be false)"),
    r("pruned_heads", Restricted, "empty only: pruned attention heads are not supported"),
    r("quantization_config", Refused, "a quantized transformers checkpoint (bitsandbytes/GPTQ/AWQ/...): its weights are not plain tensors"),
    r("layer_types", Refused, "per-layer attention types (sliding/full) are not implemented"),
    r("per_layer_config", Refused, "heterogeneous per-layer configs are not implemented"),
];

/// `GPT2Config` fields, plus outlier-probe's attention-variant extensions.
pub const GPT2: &[KeyRule] = &[
    r("vocab_size", Applied, "vocabulary size"),
    r("n_positions", Applied, "longest sequence (learned positions)"),
    r("n_embd", Applied, "model width"),
    r("n_layer", Applied, "number of blocks"),
    r("n_head", Applied, "attention heads"),
    r("n_inner", Applied, "MLP width (null = 4 × n_embd)"),
    r("activation_function", Applied, "gelu_new / gelu_pytorch_tanh (tanh form) or gelu (erf form); others are refused"),
    r("layer_norm_epsilon", Applied, "LayerNorm epsilon"),
    r("scale_attn_weights", Applied, "divide scores by sqrt(head_dim) when true"),
    r("scale_attn_by_inverse_layer_idx", Restricted, "false only: scaling scores by 1/(layer+1) is not implemented"),
    r("reorder_and_upcast_attn", Ignored, "only changes the precision and order of transformers' score computation (upcast to f32); the engine computes scores in f32 always"),
    r("n_ctx", Restricted, "old alias of n_positions; accepted when equal to it"),
    r("resid_pdrop", Ignored, DROPOUT),
    r("embd_pdrop", Ignored, DROPOUT),
    r("attn_pdrop", Ignored, DROPOUT),
    r("summary_first_dropout", Ignored, DROPOUT),
    r("summary_type", Ignored, "GPT2DoubleHeadsModel's sequence-summary head, not the LM head"),
    r("summary_use_proj", Ignored, "GPT2DoubleHeadsModel's sequence-summary head, not the LM head"),
    r("summary_activation", Ignored, "GPT2DoubleHeadsModel's sequence-summary head, not the LM head"),
    r("summary_proj_to_labels", Ignored, "GPT2DoubleHeadsModel's sequence-summary head, not the LM head"),
    r("attn_variant", Applied, "outlier-probe extension: the attention variant (config::AttnVariant)"),
    r("clip_gamma", Applied, "outlier-probe extension: clipped softmax γ"),
    r("clip_eta", Applied, "outlier-probe extension: clipped softmax η"),
    r("sigmoid_fixed_t", Applied, "outlier-probe extension: sigmoid attention's fixed T"),
];

/// `LlamaConfig` fields (and legacy/derived-model ones seen in Llama-family checkpoints).
pub const LLAMA: &[KeyRule] = &[
    r("vocab_size", Applied, "vocabulary size"),
    r("hidden_size", Applied, "model width"),
    r("intermediate_size", Applied, "SwiGLU width"),
    r("num_hidden_layers", Applied, "number of blocks"),
    r("num_attention_heads", Applied, "query heads"),
    r("num_key_value_heads", Applied, "key/value heads (grouped-query attention; null = num_attention_heads)"),
    r("max_position_embeddings", Applied, "longest sequence (RoPE table length)"),
    r("rms_norm_eps", Applied, "RMSNorm epsilon"),
    r("rope_theta", Applied, "RoPE base (legacy top-level field; rope_parameters.rope_theta wins)"),
    r("rope_parameters", Applied, "rope_type default, linear (factor) and llama3 are applied (rope::from_llama_config); dynamic, yarn, longrope and partial rotary are refused"),
    r("rope_scaling", Applied, "legacy name of rope_parameters; same handling"),
    r("hidden_act", Restricted, "silu only (SwiGLU)"),
    r("head_dim", Restricted, "must equal hidden_size / num_attention_heads (or be null)"),
    r("attention_bias", Restricted, "false only: Q/K/V/O biases are not implemented for llama"),
    r("mlp_bias", Restricted, "false only: MLP biases are not implemented for llama"),
    r("partial_rotary_factor", Restricted, "1 only: partial rotary embeddings are not supported"),
    r("rope_interleaved", Restricted, "false only (SmolLM2/nanotron configs): interleaved-pair RoPE in the HF weight layout is not what transformers' Llama computes"),
    r("attention_dropout", Ignored, DROPOUT),
    r("pretraining_tp", Ignored, "transformers 5 keeps it for compatibility only (the Llama forward pass never reads it); in older versions it only split the same matmuls into slices"),
    r("is_llama_config", Ignored, "a marker in SmolLM2/nanotron configs"),
];

/// `Qwen2Config` fields: Llama's (parsed the same way) without `attention_bias`/`mlp_bias` (Qwen2's
/// q/k/v biases are always there, o_proj and the MLP never have one), plus the sliding window.
pub const QWEN2: &[KeyRule] = &[
    r("vocab_size", Applied, "vocabulary size"),
    r("hidden_size", Applied, "model width"),
    r("intermediate_size", Applied, "SwiGLU width"),
    r("num_hidden_layers", Applied, "number of blocks"),
    r("num_attention_heads", Applied, "query heads"),
    r("num_key_value_heads", Applied, "key/value heads (grouped-query attention; null = num_attention_heads)"),
    r("max_position_embeddings", Applied, "longest sequence (RoPE table length)"),
    r("rms_norm_eps", Applied, "RMSNorm epsilon"),
    r("rope_theta", Applied, "RoPE base (legacy top-level field; rope_parameters.rope_theta wins)"),
    r("rope_parameters", Applied, "rope_type default, linear (factor) and llama3 are applied (rope::from_llama_config); dynamic, yarn, longrope and partial rotary are refused"),
    r("rope_scaling", Applied, "legacy name of rope_parameters; same handling"),
    r("hidden_act", Restricted, "silu only (SwiGLU)"),
    r("head_dim", Restricted, "must equal hidden_size / num_attention_heads (or be null)"),
    r("partial_rotary_factor", Restricted, "1 only: partial rotary embeddings are not supported"),
    r("use_sliding_window", Restricted, "false only: sliding-window attention is not implemented"),
    r("layer_types", Restricted, "full_attention for every layer only (or null): sliding-window layers are not implemented"),
    r("sliding_window", Ignored, "the window of sliding layers; there are none (use_sliding_window false, layer_types all full_attention), and transformers sets it to null without use_sliding_window"),
    r("max_window_layers", Ignored, "only chooses which layers slide when use_sliding_window is true (it must be false)"),
    r("attention_dropout", Ignored, DROPOUT),
];

/// `GPTNeoXConfig` fields (Pythia), including the legacy rope fields transformers 4 wrote
/// (`rotary_pct`, `rotary_emb_base`), which `GPTNeoXConfig` still reads.
pub const GPT_NEOX: &[KeyRule] = &[
    r("vocab_size", Applied, "vocabulary size"),
    r("hidden_size", Applied, "model width"),
    r("num_hidden_layers", Applied, "number of blocks"),
    r("num_attention_heads", Applied, "attention heads (head dimension = hidden_size / num_attention_heads)"),
    r("intermediate_size", Applied, "MLP width (dense_h_to_4h)"),
    r("hidden_act", Applied, "gelu / gelu_python (erf form) or gelu_new / gelu_pytorch_tanh / gelu_fast (tanh form); others are refused by name"),
    r("max_position_embeddings", Applied, "longest sequence (RoPE table length)"),
    r("layer_norm_eps", Applied, "LayerNorm epsilon (all norms)"),
    r("use_parallel_residual", Applied, "true: x + attn(ln1(x)) + mlp(ln2(x)), no hook_resid_mid; false: sequential as GPT-2"),
    r("attention_bias", Applied, "query_key_value and attention.dense carry biases (true) or not"),
    r("rope_parameters", Applied, "rope_type default with rope_theta and partial_rotary_factor (the rotated fraction of each head: int(head_dim · factor) dims); other rope types are refused"),
    r("rope_scaling", Applied, "legacy name of rope_parameters; wins when non-null, as in transformers; same handling"),
    r("rotary_pct", Applied, "legacy rotated fraction (default 0.25) when rope_parameters has no partial_rotary_factor; a disagreement is refused"),
    r("rotary_emb_base", Applied, "legacy RoPE base (default 10000) when rope_parameters has no rope_theta; a disagreement is refused"),
    r("attention_dropout", Ignored, DROPOUT),
    r("hidden_dropout", Ignored, DROPOUT),
    r("classifier_dropout", Ignored, "dropout of a classification head, not the LM head"),
];

/// `Qwen3Config` fields: Qwen2's (parsed the same way) with an explicit `head_dim` and
/// `attention_bias` (false: no biases anywhere); q_norm/k_norm always exist.
pub const QWEN3: &[KeyRule] = &[
    r("vocab_size", Applied, "vocabulary size"),
    r("hidden_size", Applied, "model width"),
    r("intermediate_size", Applied, "SwiGLU width"),
    r("num_hidden_layers", Applied, "number of blocks"),
    r("num_attention_heads", Applied, "query heads"),
    r("num_key_value_heads", Applied, "key/value heads (grouped-query attention; null = num_attention_heads)"),
    r("max_position_embeddings", Applied, "longest sequence (RoPE table length)"),
    r("rms_norm_eps", Applied, "RMSNorm epsilon"),
    r("rope_theta", Applied, "RoPE base (legacy top-level field; rope_parameters.rope_theta wins)"),
    r("rope_parameters", Applied, "rope_type default, linear (factor) and llama3 are applied (rope::from_llama_config); dynamic, yarn, longrope and partial rotary are refused"),
    r("rope_scaling", Applied, "legacy name of rope_parameters; same handling"),
    r("hidden_act", Restricted, "silu only (SwiGLU)"),
    r("head_dim", Applied, "width of one head, independent of hidden_size / num_attention_heads (default 128); q_norm and k_norm have this width"),
    r("attention_bias", Restricted, "false only: Qwen3's biases would be on q/k/v and o_proj, which is not implemented"),
    r("partial_rotary_factor", Restricted, "1 only: partial rotary embeddings are not supported"),
    r("use_sliding_window", Restricted, "false only: sliding-window attention is not implemented"),
    r("layer_types", Restricted, "full_attention for every layer only (or null): sliding-window layers are not implemented"),
    r("sliding_window", Ignored, "the window of sliding layers; there are none (use_sliding_window false, layer_types all full_attention), and transformers sets it to null without use_sliding_window"),
    r("max_window_layers", Ignored, "only chooses which layers slide when use_sliding_window is true (it must be false)"),
    r("attention_dropout", Ignored, DROPOUT),
];

/// `Gemma3TextConfig` fields (transformers 5, and the older names Gemma 3 checkpoints carry).
pub const GEMMA3: &[KeyRule] = &[
    r("vocab_size", Applied, "vocabulary size"),
    r("hidden_size", Applied, "model width (the embedding is scaled by its square root)"),
    r("intermediate_size", Applied, "GeGLU width"),
    r("num_hidden_layers", Applied, "number of blocks"),
    r("num_attention_heads", Applied, "query heads"),
    r("num_key_value_heads", Applied, "key/value heads (grouped-query attention)"),
    r("head_dim", Applied, "width of one head, independent of hidden_size / num_attention_heads (default 256)"),
    r("max_position_embeddings", Applied, "longest sequence (RoPE table length)"),
    r("rms_norm_eps", Applied, "epsilon of every RMSNorm (block norms and q/k norms)"),
    r("query_pre_attn_scalar", Applied, "scores are scaled by query_pre_attn_scalar^-0.5 (default 256)"),
    r("sliding_window", Applied, "window of the sliding layers: query i sees keys j with i - j < sliding_window"),
    r("layer_types", Applied, "sliding_attention or full_attention per layer (any other type is refused)"),
    r("sliding_window_pattern", Applied, "legacy: every n-th layer is full, the others slide (used when layer_types is absent; default 6)"),
    r("_sliding_window_pattern", Applied, "legacy spelling of sliding_window_pattern; same handling"),
    r("rope_parameters", Applied, "per layer type (full_attention, sliding_attention) or flat (full layers): rope_type default and linear (llama3 too) are applied to the full layers; the sliding layers take default RoPE only"),
    r("rope_theta", Applied, "RoPE base of the full layers (legacy top-level field; default 1e6)"),
    r("rope_local_base_freq", Applied, "RoPE base of the sliding layers (legacy top-level field; default 10000)"),
    r("rope_scaling", Applied, "legacy: RoPE scaling of the full layers (as transformers, it updates rope_parameters.full_attention)"),
    r("hidden_activation", Restricted, "gelu_pytorch_tanh only (GeGLU with the tanh GELU)"),
    r("attention_bias", Restricted, "false only: Q/K/V/O biases are not implemented for Gemma 3"),
    r("attn_logit_softcapping", Restricted, "null only: attention-score soft-capping is not implemented (Gemma 3 does not use it)"),
    r("final_logit_softcapping", Restricted, "null only: logit soft-capping is not implemented (Gemma 3 does not use it)"),
    r("use_bidirectional_attention", Restricted, "false only: bidirectional (EmbeddingGemma) attention is not implemented"),
    r("attention_dropout", Ignored, DROPOUT),
];

/// The fields of a `gemma3` (`Gemma3Config`, image-text) `config.json` around its text model.
pub const GEMMA3_WRAPPER: &[KeyRule] = &[
    r("text_config", Applied, "the text model: a gemma3_text config, audited by the Gemma 3 table"),
    r("vision_config", Ignored, "the vision tower's config; only the text model runs (the checkpoint's vision-tower and projector tensors act on images only and are not read)"),
    r("mm_tokens_per_image", Ignored, "tokens per image; only text prompts are run"),
    r("boi_token_index", Ignored, "begin-of-image token; only text prompts are run"),
    r("eoi_token_index", Ignored, "end-of-image token; only text prompts are run"),
    r("image_token_index", Ignored, "image placeholder token; only text prompts are run"),
    r("boi_token_id", Ignored, "alias of boi_token_index"),
    r("eoi_token_id", Ignored, "alias of eoi_token_index"),
    r("image_token_id", Ignored, "alias of image_token_index"),
];

/// `OPTConfig` fields (parsed by `config::opt`): pre- or post-LN, learned positions offset by 2,
/// ReLU MLP, optional project_in/project_out.
pub const OPT: &[KeyRule] = &[
    r("vocab_size", Applied, "vocabulary size"),
    r("hidden_size", Applied, "model width"),
    r("num_hidden_layers", Applied, "number of blocks"),
    r("num_attention_heads", Applied, "attention heads"),
    r("ffn_dim", Applied, "MLP width (fc1 out, fc2 in)"),
    r("max_position_embeddings", Applied, "longest sequence; embed_positions has max_position_embeddings + 2 rows (position p reads row p + 2)"),
    r("do_layer_norm_before", Applied, "true: pre-LN blocks and a final LayerNorm; false: post-LN blocks (x = LN(x + f(x))) and no final LayerNorm"),
    r("_remove_final_layer_norm", Applied, "true: no final LayerNorm (even when do_layer_norm_before)"),
    r("word_embed_proj_dim", Applied, "embedding width; when it differs from hidden_size, project_in/project_out (no bias) map it to and from the model width"),
    r("activation_function", Applied, "relu, gelu (erf form) or gelu_new (tanh form); others are refused"),
    r("enable_bias", Applied, "biases on q/k/v/out_proj and fc1/fc2"),
    r("layer_norm_elementwise_affine", Applied, "false: LayerNorms without weight and bias"),
    r("dropout", Ignored, DROPOUT),
    r("attention_dropout", Ignored, DROPOUT),
    r("activation_dropout", Ignored, DROPOUT),
    r("layerdrop", Ignored, "LayerDrop skips layers in training only"),
    r("init_std", Ignored, "initialisation only"),
];

fn restricted_ok(key: &str, v: &Value, all: &Value) -> bool {
    let falsy = matches!(v, Value::Bool(false) | Value::Null);
    match key {
        "is_encoder_decoder"
        | "add_cross_attention"
        | "scale_attn_by_inverse_layer_idx"
        | "attention_bias"
        | "mlp_bias"
        | "rope_interleaved"
        | "use_bidirectional_attention"
        | "use_sliding_window" => falsy,
        "attn_logit_softcapping" | "final_logit_softcapping" => v.is_null(),
        "hidden_activation" => v.as_str() == Some("gelu_pytorch_tanh"),
        "layer_types" => match v {
            Value::Null => true,
            Value::Array(a) => a.iter().all(|t| t.as_str() == Some("full_attention")),
            _ => false,
        },
        "pruned_heads" => match v {
            Value::Null => true,
            Value::Object(m) => m.is_empty(),
            _ => false,
        },
        "n_ctx" => v.is_null() || v == &all["n_positions"],
        "hidden_act" => v.as_str() == Some("silu"),
        "head_dim" => {
            v.is_null()
                || matches!(
                    (v.as_u64(), all["hidden_size"].as_u64(), all["num_attention_heads"].as_u64()),
                    (Some(hd), Some(d), Some(h)) if hd * h == d
                )
        }
        "partial_rotary_factor" => v.is_null() || v.as_f64() == Some(1.0),
        _ => false,
    }
}

/// Check every field of a `config.json` object against `COMMON` and `family`: unknown fields,
/// `Refused` fields and `Restricted` fields with another value are errors, all listed in one
/// message naming each field and its value.
pub fn check(config: &Value, family: &[KeyRule]) -> Result<()> {
    let Some(obj) = config.as_object() else {
        bail!("config.json is not a JSON object");
    };
    let mut bad = Vec::new();
    for (key, v) in obj {
        let rule = family.iter().chain(COMMON).find(|r| r.key == key);
        let why = match rule {
            None => "not a field outlier-probe knows for this model type; refused rather than ignored (docs/gguf-keys.md lists the known fields)",
            Some(r) => match r.handling {
                Applied | Ignored => continue,
                Restricted if restricted_ok(key, v, config) => continue,
                Restricted | Refused => r.reason,
            },
        };
        let mut shown = v.to_string();
        if shown.len() > 80 {
            shown = format!("{}...", shown.chars().take(80).collect::<String>());
        }
        bad.push(format!("`{key}` = {shown}: {why}"));
    }
    if !bad.is_empty() {
        bail!(
            "fields that outlier-probe cannot apply:\n  {}",
            bad.join("\n  ")
        );
    }
    Ok(())
}
