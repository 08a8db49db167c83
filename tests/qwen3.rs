//! The Qwen3 path (a Llama block without biases, with a per-head RMSNorm of q and k before RoPE
//! and an explicit head_dim: RMSNorm, RoPE, grouped-query attention, SwiGLU) against transformers
//! on a random-init model of odd sizes: GQA 6:2, head_dim 12 (query width 72 ≠ d 48), tied head,
//! f32, every norm weight randomised (tools/reference/make_qwen3_fixtures.py). Also: its
//! config.json audit (head_dim default 128, biases and sliding windows refused), and a checkpoint
//! without q_norm is refused by name.

mod common;

use common::*;
use outlier_probe::config::{Arch, ModelConfig};
use outlier_probe::model::Gpt2;
use serde_json::{json, Value};

const FX: &str = "qwen3-odd-a";
/// Every hook: |a − b| ≤ T·(median|b| + |b|) elementwise against transformers' f32 result
/// (the bound of the Llama fixtures).
const T: f32 = 1e-4;
/// The logits of the fused and batched paths (the bound of the GPT-2 fixtures).
const T_LOGITS: f32 = 2e-5;

#[test]
fn every_qwen3_hook_matches_transformers() {
    let model = load(FX);
    assert_eq!(model.cfg.arch, Arch::Qwen3);
    assert_eq!((model.cfg.n_head, model.cfg.n_kv_head), (6, 2));
    assert_eq!((model.cfg.head_dim(), model.cfg.q_dim()), (12, 72));
    assert!(model.cfg.attn.qk_norm);
    assert!(model.cfg.tie_embeddings);
    assert_all_hooks_match(&model, FX, T);
}

#[test]
fn qwen3_fused_forward_logits_match_transformers() {
    assert_fused_logits(&load(FX), FX, T_LOGITS);
}

#[test]
fn qwen3_greedy_generation_and_decoding() {
    assert_greedy_and_decode(&load(FX), FX);
}

#[test]
fn qwen3_batch_equals_single() {
    let hooks = "blocks.1.attn.q_norm.hook_normalized,blocks.1.attn.k_norm.hook_normalized,blocks.1.attn.hook_pattern";
    assert_batch_equals_single(&load(FX), FX, hooks, T_LOGITS);
}

fn config(edit: impl FnOnce(&mut Value), tag: &str) -> Result<ModelConfig, String> {
    edited_config(FX, edit, tag)
}

/// The config as written parses (head_dim 12 applied); without head_dim transformers' default
/// 128 applies; sliding windows and biases are refused by name; inactive window fields change
/// nothing.
#[test]
fn qwen3_config_fields() {
    let c = config(|_| {}, "as-written").unwrap();
    assert_eq!(c.arch, Arch::Qwen3);
    assert_eq!(
        (c.n_embd, c.n_inner, c.n_layer, c.rope_theta, c.head_dim()),
        (48, 60, 2, 1e6, 12)
    );
    let same = serde_json::to_string(&c).unwrap();
    let no_hd = config(
        |c| drop(c.as_object_mut().unwrap().remove("head_dim")),
        "no-head-dim",
    )
    .unwrap();
    assert_eq!((no_hd.head_dim(), no_hd.q_dim()), (128, 768));
    let hd8 = config(|c| c["head_dim"] = json!(8), "head-dim-d-over-h").unwrap();
    assert_eq!((hd8.head_dim(), hd8.attn.head_dim), (8, None));
    for (tag, key, v) in [
        ("window-inactive", "sliding_window", json!(4096)),
        ("window-layers", "max_window_layers", json!(0)),
        ("layer-types-null", "layer_types", Value::Null),
        ("dropout", "attention_dropout", json!(0.5)),
    ] {
        let got = config(|c| c[key] = v, tag).unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(serde_json::to_string(&got).unwrap(), same, "{tag}");
    }
    for (tag, key, v) in [
        ("sliding-on", "use_sliding_window", json!(true)),
        (
            "sliding-layer",
            "layer_types",
            json!(["full_attention", "sliding_attention"]),
        ),
        ("attention-bias", "attention_bias", json!(true)),
        ("activation", "hidden_act", json!("gelu")),
    ] {
        let e = config(|c| c[key] = v, tag).unwrap_err();
        assert!(e.contains(&format!("`{key}`")), "{tag}: {e}");
    }
}

/// A checkpoint whose k_norm is missing is refused, naming the tensor.
#[test]
fn qwen3_without_qk_norm_is_refused() {
    let src = fixtures_dir().join(FX);
    let d = TempDir::new("qwen3-no-k-norm");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), d.0.join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "model.layers.1.self_attn.k_norm.weight")
        .collect();
    assert_eq!(kept.len() + 1, st.len());
    safetensors::serialize_to_file(kept, None, &d.0.join("model.safetensors")).unwrap();
    let e = match Gpt2::load(ctx(), &d.0) {
        Ok(_) => panic!("loaded a Qwen3 checkpoint without k_norm"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("model.layers.1.self_attn.k_norm.weight"), "{e}");
}

/// The fixture as llama.cpp's own converter writes it (tests/fixtures/gguf-converted, f32):
/// `general.architecture = "qwen3"`, `attention.key_length` = 12 ≠ d / heads, the q/k norms as
/// `blk.N.attn_{q,k}_norm`. Every key and tensor passes the audit, every hook matches
/// transformers as the safetensors checkpoint does, and the GGUF tokenizer gives the fixture's ids.
#[test]
fn qwen3_gguf_from_llama_cpp_matches_transformers() {
    let p = fixtures_dir().join("gguf-converted/qwen3-odd-a.f32.gguf");
    let model = Gpt2::load(ctx(), &p).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(model.cfg.arch, Arch::Qwen3);
    assert_eq!((model.cfg.head_dim(), model.cfg.n_embd), (12, 48));
    assert_all_hooks_match(&model, FX, T);
    let prompts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join(FX).join("prompts.json")).unwrap(),
    )
    .unwrap();
    let tok = model.tokenizer.as_ref().expect("a GGUF tokenizer");
    for p in prompts.as_array().unwrap() {
        let want: Vec<u32> = serde_json::from_value(p["ids"].clone()).unwrap();
        assert_eq!(tok.encode(p["text"].as_str().unwrap()).unwrap(), want);
    }
}
