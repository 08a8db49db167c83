//! The GGUF key audit (src/gguf_keys/keys.rs `KEYS`): one case per row, on tiny GGUF files written
//! here (tests/gguf_writer). Restricted keys accept their identity value and refuse others,
//! refused and unknown keys are errors naming the key, its value and the file, ignored keys leave
//! the config and the tokens unchanged; the applied keys are exercised in
//! tests/gguf_keys_applied.rs (config values) and tests/gguf_keys_forward.rs (logits against
//! transformers). CPU only.

mod common;
mod gguf_writer;

use std::collections::BTreeSet;

use common::TempDir;
use gguf_writer::audit::*;
use gguf_writer::*;
use outlier_probe::gguf::{GgufFile, GgufValue as V};
use outlier_probe::gguf_keys::{key_rule, Handling, KEYS, TENSORS};
use outlier_probe::gguf_tokenizer::tokenizer_from_gguf;

fn refused_cases() -> Vec<(&'static str, V)> {
    use V::*;
    vec![
        ("llama.rope.scaling.alpha", F32(2.0)),
        ("llama.rope.scaling.yarn_beta_fast", F32(32.0)),
        ("llama.rope.dimension_count_swa", U32(4)),
        ("llama.rope.freq_base_swa", F32(10000.0)),
        ("llama.rope.dimension_sections", u32s(&[1, 1, 0, 0])),
        ("llama.expert_feed_forward_length", U32(8)),
        ("llama.expert_shared_feed_forward_length", U32(8)),
        ("llama.expert_shared_count", U32(1)),
        ("llama.expert_weights_scale", F32(2.5)),
        ("llama.expert_weights_norm", Bool(true)),
        ("llama.expert_gating_func", U32(2)),
        ("llama.leading_dense_block_count", U32(1)),
        ("llama.interleave_moe_layer_step", U32(2)),
        ("llama.classifier.output_labels", strs(&["neg", "pos"])),
        ("llama.attention.key_length_swa", U32(4)),
        ("llama.attention.value_length_swa", U32(4)),
        ("llama.attention.sliding_window", U32(4096)),
        ("llama.attention.sliding_window_pattern", U32(4)),
        ("llama.attention.clamp_kqv", F32(8.0)),
        ("llama.logit_scale", F32(0.25)),
        ("llama.embedding_scale", F32(12.0)),
        ("llama.residual_scale", F32(0.22)),
        ("llama.attention.scale", F32(0.0078125)),
        ("llama.attention.output_scale", F32(0.5)),
        ("llama.attn_logit_softcapping", F32(50.0)),
        ("llama.final_logit_softcapping", F32(30.0)),
        ("llama.attention.layer_norm_epsilon", F32(1e-5)),
        ("llama.attention.max_alibi_bias", F32(8.0)),
        ("llama.attention.temperature_length", U32(8192)),
        ("llama.attention.temperature_scale", F32(0.1)),
        ("llama.use_parallel_residual", Bool(true)),
        ("llama.swiglu_clamp_exp", F32(7.0)),
        ("llama.swiglu_clamp_shexp", F32(7.0)),
        (
            "tokenizer.ggml.precompiled_charsmap",
            Array(vec![U8(0), U8(1)]),
        ),
        ("tokenizer.rwkv.world", strs(&["a"])),
        ("adapter.type", s("lora")),
        ("clip.projector_type", s("mlp")),
    ]
}

/// (key, accepted values, a refused value)
fn restricted_cases() -> Vec<(&'static str, Vec<V>, V)> {
    use V::*;
    let n_tensors = tiny().tensors.len() as u64;
    vec![
        ("general.type", vec![s("model")], s("adapter")),
        ("general.quantization_version", vec![U32(2)], U32(1)),
        ("llama.attention.key_length", vec![U32(HD)], U32(2 * HD)),
        ("llama.attention.value_length", vec![U32(HD)], U32(HD / 2)),
        ("llama.rope.dimension_count", vec![U32(HD)], U32(HD / 2)),
        ("llama.rope.scaling.attn_factor", vec![F32(1.0)], F32(1.25)),
        ("llama.expert_count", vec![U32(0)], U32(8)),
        ("llama.expert_used_count", vec![U32(0)], U32(2)),
        ("llama.expert_group_count", vec![U32(0)], U32(2)),
        ("llama.expert_group_used_count", vec![U32(0)], U32(1)),
        ("llama.attention.causal", vec![Bool(true)], Bool(false)),
        ("llama.pooling_type", vec![U32(0)], U32(1)),
        (
            "llama.embedding_length_out",
            vec![U32(TINY.d as u32)],
            U32(2 * TINY.d as u32),
        ),
        (
            "tokenizer.ggml.token_type_count",
            vec![U32(0), U32(1)],
            U32(2),
        ),
        (
            "tokenizer.ggml.add_eos_token",
            vec![Bool(false)],
            Bool(true),
        ),
        (
            "tokenizer.ggml.add_sep_token",
            vec![Bool(false)],
            Bool(true),
        ),
        (
            "tokenizer.ggml.add_space_prefix",
            vec![Bool(false)],
            Bool(true),
        ),
        (
            "tokenizer.ggml.remove_extra_whitespaces",
            vec![Bool(false)],
            Bool(true),
        ),
        ("split.count", vec![U16(1)], U16(3)),
        ("split.no", vec![U16(0)], U16(1)),
        (
            "split.tensors.count",
            vec![U64(n_tensors)],
            U64(n_tensors + 1),
        ),
    ]
}

fn ignored_cases() -> Vec<(&'static str, V)> {
    use V::*;
    let mut v: Vec<(&'static str, V)> = [
        "general.name",
        "general.author",
        "general.version",
        "general.organization",
        "general.finetune",
        "general.basename",
        "general.description",
        "general.quantized_by",
        "general.size_label",
        "general.license",
        "general.license.name",
        "general.license.link",
        "general.url",
        "general.doi",
        "general.uuid",
        "general.repo_url",
        "general.source.url",
        "general.base_model.0.name",
        "general.dataset.0.name",
        "llama.tensor_data_layout",
        "tokenizer.chat_template",
        "tokenizer.chat_template.tool_use",
        "tokenizer.huggingface.json",
        "quantize.imatrix.file",
    ]
    .into_iter()
    .map(|k| (k, s("some text")))
    .collect();
    v.extend([
        ("general.file_type", U32(15)),
        ("general.tags", strs(&["text-generation"])),
        ("general.languages", strs(&["en"])),
        ("general.sampling.temp", F32(0.7)),
        // A descriptive key newer than this table (the `general.*` catch-all row).
        ("general.mystery", s("some text")),
        ("llama.rope.scaling.original_context_length", U32(8192)),
        ("llama.rope.scaling.finetuned", Bool(true)),
        ("tokenizer.ggml.eot_token_id", U32(1)),
        ("tokenizer.ggml.eom_token_id", U32(1)),
        ("tokenizer.ggml.seperator_token_id", U32(1)),
        ("tokenizer.ggml.mask_token_id", U32(1)),
        ("tokenizer.ggml.fim_pre_token_id", U32(1)),
        ("tokenizer.ggml.prefix_token_id", U32(1)),
        ("tokenizer.ggml.suffix_token_id", U32(1)),
        ("tokenizer.ggml.middle_token_id", U32(1)),
        ("tokenizer.chat_templates", strs(&["tool_use"])),
    ]);
    v
}

/// Applied keys, each exercised by a test in tests/gguf_keys_applied.rs (and the RoPE ones in
/// tests/gguf_keys_forward.rs).
const APPLIED: &[&str] = &[
    "general.architecture",
    "general.alignment",
    "llama.vocab_size",
    "llama.context_length",
    "llama.embedding_length",
    "llama.block_count",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.attention.layer_norm_rms_epsilon",
    "llama.rope.freq_base",
    "llama.rope.scaling.type",
    "llama.rope.scaling.factor",
    "llama.rope.scale_linear",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
];

#[test]
fn every_row_of_the_audit_has_a_case() {
    let mut keys: Vec<String> = APPLIED.iter().map(|k| k.to_string()).collect();
    keys.extend(refused_cases().into_iter().map(|(k, _)| k.to_string()));
    keys.extend(
        restricted_cases()
            .into_iter()
            .map(|(k, _, _)| k.to_string()),
    );
    keys.extend(ignored_cases().into_iter().map(|(k, _)| k.to_string()));
    let mut hit = BTreeSet::new();
    for k in &keys {
        let rule = key_rule(k).unwrap_or_else(|| panic!("test key {k} is in no row"));
        hit.insert(rule.key);
    }
    let missing: Vec<_> = KEYS
        .iter()
        .map(|r| r.key)
        .filter(|k| !hit.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "audit rows without a test case: {missing:?}"
    );
    // The cases agree with the table on the handling.
    for (k, _) in refused_cases() {
        assert_eq!(key_rule(k).unwrap().handling, Handling::Refused, "{k}");
    }
    for (k, _, _) in restricted_cases() {
        assert_eq!(key_rule(k).unwrap().handling, Handling::Restricted, "{k}");
    }
    for (k, _) in ignored_cases() {
        assert_eq!(key_rule(k).unwrap().handling, Handling::Ignored, "{k}");
    }
    for k in APPLIED {
        assert_eq!(key_rule(k).unwrap().handling, Handling::Applied, "{k}");
    }
}

#[test]
fn refused_keys_name_key_value_and_file() {
    let base = tiny();
    for (i, (key, v)) in refused_cases().into_iter().enumerate() {
        let mut b = base.clone();
        let shown = outlier_probe::gguf_keys::render(&v);
        b.set(key, v);
        refused(&b, &format!("refused-{i}"), &[key, &shown]);
    }
}

#[test]
fn restricted_keys_accept_identity_and_refuse_other_values() {
    let base = tiny();
    let want = json(&ok(&base, "restricted-base"));
    for (i, (key, goods, bad)) in restricted_cases().into_iter().enumerate() {
        for (j, good) in goods.into_iter().enumerate() {
            let mut b = base.clone();
            b.set(key, good);
            let c = ok(&b, &format!("restricted-ok-{i}-{j}"));
            assert_eq!(
                json(&c),
                want,
                "{key}: the accepted value changed the config"
            );
        }
        let mut b = base.clone();
        let shown = outlier_probe::gguf_keys::render(&bad);
        b.set(key, bad);
        refused(&b, &format!("restricted-bad-{i}"), &[key, &shown]);
    }
}

#[test]
fn ignored_keys_change_neither_config_nor_tokens() {
    let base = tiny();
    let dir = TempDir::new("gguf-keys-ignored");
    let encode = |b: &GgufBuilder, name: &str| -> Vec<u32> {
        let p = dir.0.join(name);
        b.write(&p);
        let g = GgufFile::open(&p).unwrap();
        let t = tokenizer_from_gguf(&g).unwrap();
        t.encode("abcab jab", false).unwrap().get_ids().to_vec()
    };
    let want = json(&ok(&base, "ignored-base"));
    let want_ids = encode(&base, "base.gguf");
    for (i, (key, v)) in ignored_cases().into_iter().enumerate() {
        let mut b = base.clone();
        b.set(key, v);
        assert_eq!(json(&ok(&b, &format!("ignored-{i}"))), want, "{key}");
        assert_eq!(encode(&b, &format!("{i}.gguf")), want_ids, "{key}: tokens");
    }
}

#[test]
fn unknown_keys_are_refused_in_every_namespace() {
    for (i, key) in [
        "llama.attention.mystery",
        "llama.rope.scaling.beta",
        "tokenizer.ggml.add_mystery_token",
        "mystery.key",
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = tiny();
        b.set(key, V::U32(7));
        refused(
            &b,
            &format!("unknown-{i}"),
            &[key, "= 7", "not a key outlier-probe knows"],
        );
    }
}

/// docs/gguf-keys.md lists every row of every audit table, with the same handling and reason.
#[test]
fn the_doc_lists_every_row() {
    use outlier_probe::config_fields::{
        COMMON, GEMMA3, GEMMA3_WRAPPER, GPT2, GPT_NEOX, LLAMA, OPT, QWEN2, QWEN3,
    };
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/gguf-keys.md");
    let doc = std::fs::read_to_string(&p).unwrap();
    let mut missing = Vec::new();
    for r in KEYS
        .iter()
        .chain(COMMON)
        .chain(GPT2)
        .chain(LLAMA)
        .chain(QWEN2)
        .chain(GPT_NEOX)
        .chain(GEMMA3)
        .chain(GEMMA3_WRAPPER)
        .chain(QWEN3)
        .chain(OPT)
    {
        let line = format!("| `{}` | {:?} | {} |", r.key, r.handling, r.reason);
        if !doc.contains(&line) {
            missing.push(line);
        }
    }
    let own_keys = outlier_probe::gguf_config::ALL.iter().flat_map(|a| a.keys);
    for r in own_keys {
        let line = format!("| `{}` | {:?} | {} |", r.key, r.handling, r.reason);
        if !doc.contains(&line) {
            missing.push(line);
        }
    }
    let own_tensors = outlier_probe::gguf_config::ALL
        .iter()
        .flat_map(|a| a.tensors);
    for t in TENSORS.iter().chain(own_tensors) {
        let line = format!("| `{}` | {:?} | {} |", t.name, t.handling, t.reason);
        if !doc.contains(&line) {
            missing.push(line);
        }
    }
    assert!(
        missing.is_empty(),
        "{} lacks:\n{}",
        p.display(),
        missing.join("\n")
    );
}

/// A SentencePiece (`llama`) vocabulary: add_space_prefix must say what the tokenizer does for the
/// architecture (a "▁" before the text for `llama`), remove_extra_whitespaces is read by neither
/// transformers nor llama.cpp for it.
#[test]
fn sentencepiece_space_keys_follow_the_tokenizer() {
    let mut base = tiny();
    base.set("tokenizer.ggml.model", V::String("llama".into()));
    let want = json(&ok(&base, "spm-base"));
    for (i, (key, v)) in [
        ("tokenizer.ggml.add_space_prefix", true),
        ("tokenizer.ggml.remove_extra_whitespaces", true),
        ("tokenizer.ggml.remove_extra_whitespaces", false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = base.clone();
        b.set(key, V::Bool(v));
        assert_eq!(json(&ok(&b, &format!("spm-ok-{i}"))), want, "{key} = {v}");
    }
    let mut b = base.clone();
    b.set("tokenizer.ggml.add_space_prefix", V::Bool(false));
    refused(
        &b,
        "spm-no-prefix",
        &[
            "tokenizer.ggml.add_space_prefix",
            "false",
            "by architecture",
        ],
    );
}
