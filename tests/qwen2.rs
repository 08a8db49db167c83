//! The Qwen2 path (a Llama with biases on q_proj, k_proj and v_proj: RMSNorm, RoPE,
//! grouped-query attention, SwiGLU) against transformers on a random-init model of odd sizes:
//! GQA 6:2, head_dim 8, tied head, f32, every norm weight and q/k/v bias randomised
//! (tools/reference/make_qwen2_fixtures.py). Also: its config.json audit refuses sliding windows,
//! and a checkpoint without the biases is refused by name.

mod common;

use common::*;
use outlier_probe::config::{Arch, ModelConfig};
use outlier_probe::model::Gpt2;
use serde_json::{json, Value};

const FX: &str = "qwen2-odd-a";
/// Every hook: |a − b| ≤ T·(median|b| + |b|) elementwise against transformers' f32 result
/// (the bound of the Llama fixtures).
const T: f32 = 1e-4;
/// The logits of the fused and batched paths (the bound of the GPT-2 fixtures).
const T_LOGITS: f32 = 2e-5;

#[test]
fn every_qwen2_hook_matches_transformers() {
    let model = load(FX);
    assert_eq!(model.cfg.arch, Arch::Qwen2);
    assert_eq!((model.cfg.n_head, model.cfg.n_kv_head), (6, 2));
    assert!(model.cfg.tie_embeddings);
    assert_all_hooks_match(&model, FX, T);
}

#[test]
fn qwen2_fused_forward_logits_match_transformers() {
    assert_fused_logits(&load(FX), FX, T_LOGITS);
}

#[test]
fn qwen2_greedy_generation_and_decoding() {
    assert_greedy_and_decode(&load(FX), FX);
}

#[test]
fn qwen2_batch_equals_single() {
    let hooks = "blocks.1.attn.hook_q,blocks.1.attn.hook_k,blocks.1.attn.hook_pattern";
    assert_batch_equals_single(&load(FX), FX, hooks, T_LOGITS);
}

fn config(edit: impl FnOnce(&mut Value), tag: &str) -> Result<ModelConfig, String> {
    edited_config(FX, edit, tag)
}

/// Sliding-window attention is not implemented: a config that turns it on is refused by name;
/// the inactive window fields transformers writes are accepted and change nothing.
#[test]
fn qwen2_config_refuses_sliding_windows() {
    let c = config(|_| {}, "as-written").unwrap();
    assert_eq!(c.arch, Arch::Qwen2);
    assert_eq!(
        (c.n_embd, c.n_inner, c.n_layer, c.rope_theta),
        (48, 100, 2, 1e6)
    );
    let same = serde_json::to_string(&c).unwrap();
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
    ] {
        let e = config(|c| c[key] = v, tag).unwrap_err();
        assert!(e.contains(&format!("`{key}`")), "{tag}: {e}");
    }
}

/// A checkpoint whose q/k/v biases are missing is refused, naming the tensor.
#[test]
fn qwen2_without_biases_is_refused() {
    let src = fixtures_dir().join(FX);
    let d = TempDir::new("qwen2-no-bias");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), d.0.join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "model.layers.1.self_attn.k_proj.bias")
        .collect();
    assert_eq!(kept.len() + 1, st.len());
    safetensors::serialize_to_file(kept, None, &d.0.join("model.safetensors")).unwrap();
    let e = match Gpt2::load(ctx(), &d.0) {
        Ok(_) => panic!("loaded a Qwen2 checkpoint without k_proj.bias"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("model.layers.1.self_attn.k_proj.bias"), "{e}");
}

/// The fixture as llama.cpp's own converter writes it (tests/fixtures/gguf-converted, f32):
/// `general.architecture = "qwen2"`, the q/k/v biases as `blk.N.attn_{q,k,v}.bias`, Q/K rows as
/// transformers has them. Every key and tensor passes the audit, every hook matches transformers
/// as the safetensors checkpoint does, and the GGUF tokenizer encodes the prompts as
/// tokenizer.json does.
#[test]
fn qwen2_gguf_from_llama_cpp_matches_transformers() {
    let p = fixtures_dir().join("gguf-converted/qwen2-odd-a.f32.gguf");
    let model = Gpt2::load(ctx(), &p).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(model.cfg.arch, Arch::Qwen2);
    assert!(model.cfg.qkv_bias && model.cfg.tie_embeddings);
    assert_all_hooks_match(&model, FX, T);
    let prompts: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join(FX).join("prompts.json")).unwrap(),
    )
    .unwrap();
    let tok = model.tokenizer.as_ref().expect("a GGUF tokenizer");
    for p in prompts.as_array().unwrap() {
        let want: Vec<u32> = serde_json::from_value(p["ids"].clone()).unwrap();
        assert_eq!(tok.encode(p["text"].as_str().unwrap()).unwrap(), want);
    }
}
