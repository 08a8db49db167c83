//! The Gemma 3 path (√d-scaled embedding, Gemma RMSNorm x·(1 + w) four times per block,
//! per-head q/k norms, explicit head_dim ≠ d / heads, query_pre_attn_scalar, sliding-window
//! layers with their own RoPE base next to a full layer with linear RoPE scaling, GQA 5:1,
//! GeGLU, tied head) against transformers on a random-init model of odd sizes
//! (tools/reference/make_gemma3_fixtures.py). Also: its config.json audit (older field names
//! give the same model, unsupported values are refused by name) and the weights it reports.

mod common;

use common::*;
use outlier_probe::analysis::ModuleKind;
use outlier_probe::config::{Arch, ModelConfig};
use outlier_probe::generate::{generate, Sampling};
use outlier_probe::hooks::HookFilter;
use outlier_probe::model::{ForwardOptions, InputWidth, LogitsMode};
use serde_json::{json, Value};

const FX: &str = "gemma3-odd-a";
/// Every hook: |a − b| ≤ T·(median|b| + |b|) elementwise against transformers' f32 result
/// (the bound of the Llama fixtures).
const T: f32 = 1e-4;
/// The logits of the fused and batched paths (the bound of the GPT-2 fixtures).
const T_LOGITS: f32 = 2e-5;

#[test]
fn every_gemma3_hook_matches_transformers() {
    let model = load(FX);
    let c = &model.cfg;
    assert_eq!(c.arch, Arch::Gemma3);
    assert_eq!(
        (c.n_embd, c.n_head, c.n_kv_head, c.head_dim()),
        (40, 5, 1, 12)
    );
    assert_eq!((c.q_dim(), c.qkv_dim()), (60, 84));
    let windows: Vec<_> = (0..4).map(|l| c.window(l)).collect();
    assert_eq!(windows, [Some(4), Some(4), None, Some(4)]);
    assert!(c.tie_embeddings);
    assert_all_hooks_match(&model, FX, T);
}

/// With nothing captured, short prompts take the matvec path and the logits still match.
#[test]
fn gemma3_fused_forward_logits_match_transformers() {
    let model = load(FX);
    for k in 0..3 {
        let r = reference(FX, k);
        let got = model.logits(&r.tokens).unwrap();
        check_close(
            &format!("{FX} ref-{k}: fused logits"),
            &got,
            &r.tensors["logits"],
            T_LOGITS,
        );
    }
}

/// Greedy generation over the KV cache crosses the 4-token window (prompts of 16 and 18 tokens
/// plus 6 to 8 new ones); decoding one token at a time equals recomputation from position 6 on.
#[test]
fn gemma3_greedy_generation_and_decoding() {
    let model = load(FX);
    for k in 0..3 {
        let r = reference(FX, k);
        let s = Sampling {
            max_new_tokens: r.generated.len(),
            ..Default::default()
        };
        let out = generate(&model, std::slice::from_ref(&r.tokens), &s, |_, _| {}).unwrap();
        assert_eq!(out[0], r.generated, "{FX} ref-{k}: greedy continuation");
    }
    assert_decode_equals_recompute(&model, &reference(FX, 2).tokens, FX);
}

/// The three prompts in one batch give each prompt's own results: logits, the sliding and the
/// full layer's patterns, the q/k norms and the post-normed attention output; and batched
/// generation.
#[test]
fn gemma3_batch_equals_single() {
    let model = load(FX);
    let refs: Vec<_> = (0..3).map(|k| reference(FX, k)).collect();
    let prompts: Vec<&[u32]> = refs.iter().map(|r| r.tokens.as_slice()).collect();
    let cap = prompts.iter().map(|p| p.len()).max().unwrap();
    let mut sess = model.session(3, cap).unwrap();
    let hooks = "blocks.0.attn.hook_pattern,blocks.2.attn.hook_pattern,\
                 blocks.3.attn.q_norm.hook_normalized,blocks.3.attn.k_norm.hook_normalized,\
                 blocks.1.hook_attn_out,blocks.1.ln2_post.hook_normalized";
    let opts = ForwardOptions {
        logits: LogitsMode::All,
        capture: HookFilter::parse(hooks).unwrap(),
        ..Default::default()
    };
    let out = model.forward(&mut sess, &prompts, &opts).unwrap();
    for (k, r) in refs.iter().enumerate() {
        let got = out.logits[k].as_ref().unwrap();
        check_close(
            &format!("batched prompt {k}: logits"),
            got,
            &r.tensors["logits"],
            T_LOGITS,
        );
        for name in hooks.split(',') {
            let what = format!("batched prompt {k}: {name}");
            check_close(&what, &out.captures[k][name], &r.tensors[name], 1e-4);
        }
    }
    let owned: Vec<Vec<u32>> = refs.iter().map(|r| r.tokens.clone()).collect();
    let s = Sampling {
        max_new_tokens: 6,
        ..Default::default()
    };
    let batched = generate(&model, &owned, &s, |_, _| {}).unwrap();
    for (k, r) in refs.iter().enumerate() {
        assert_eq!(
            batched[k],
            r.generated[..6],
            "batched generation of prompt {k}"
        );
    }
}

/// The linear weights are the checkpoint's own (the norms' 1 + w is folded into the uploaded
/// norm weights only): module_weights names q, k, v, o (input n_head·head_dim = 60 ≠ d),
/// gate, up and down (`mlp.down_proj`, [I, D]); linear_weights lists the same tensors.
#[test]
fn gemma3_reports_its_linear_weights() {
    let model = load(FX);
    let mut seen = Vec::new();
    model
        .for_each_module_weight(|mw| {
            if mw.layer == 1 {
                seen.push((mw.kind, mw.weight.shape.clone()));
            }
        })
        .unwrap();
    use ModuleKind::*;
    let want = [
        (Q, vec![40, 60]),
        (K, vec![40, 12]),
        (V, vec![40, 12]),
        (O, vec![60, 40]),
        (Gate, vec![40, 26]),
        (Up, vec![40, 26]),
        (Down, vec![26, 40]),
    ];
    assert_eq!(seen, want);
    let lins = model.linear_weights();
    assert_eq!(lins.len(), 4 * 7);
    let o = lins
        .iter()
        .find(|l| l.name == "model.layers.2.self_attn.o_proj.weight")
        .unwrap();
    assert_eq!((o.k, o.n, o.input), (60, 40, InputWidth::Heads));
    let down = lins
        .iter()
        .find(|l| l.name == "model.layers.3.mlp.down_proj.weight")
        .unwrap();
    assert_eq!((down.k, down.n, down.input), (26, 40, InputWidth::Inner));
}

fn config(edit: impl FnOnce(&mut Value), tag: &str) -> Result<ModelConfig, String> {
    let p = fixtures_dir().join(FX).join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    edit(&mut cfg);
    let d = TempDir::new(&format!("gemma3-cfg-{tag}"));
    let p = d.0.join("config.json");
    std::fs::write(&p, cfg.to_string()).unwrap();
    ModelConfig::from_dir_config(&p).map_err(|e| format!("{e:#}"))
}

/// The older spelling of the same model (top-level rope_theta, rope_local_base_freq and
/// rope_scaling as the released Gemma 3 checkpoints carry them; a sliding_window_pattern instead
/// of layer_types) gives the same configuration; values the engine cannot honour are refused,
/// naming the field.
#[test]
fn gemma3_config_fields() {
    let c = config(|_| {}, "as-written").unwrap();
    assert_eq!(c.arch, Arch::Gemma3);
    assert_eq!(
        (c.rope_theta, c.attn.rope_local_base_freq),
        (1e6, Some(1e4))
    );
    assert_eq!(c.rope_freq_factors, vec![2.0; 6]);
    assert_eq!(c.attn.query_pre_attn_scalar, Some(20.0));
    let same = serde_json::to_string(&c).unwrap();
    let legacy = config(
        |c| {
            let m = c.as_object_mut().unwrap();
            m.remove("rope_parameters");
            m.insert("rope_theta".into(), json!(1e6));
            m.insert("rope_local_base_freq".into(), json!(1e4));
            m.insert(
                "rope_scaling".into(),
                json!({"rope_type": "linear", "factor": 2.0}),
            );
        },
        "legacy-rope",
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&legacy).unwrap(),
        same,
        "legacy RoPE fields"
    );
    // Every 3rd layer full: layers 0, 1 slide, 2 is full, 3 slides — the fixture's layer_types.
    let pattern = config(
        |c| {
            let m = c.as_object_mut().unwrap();
            m.remove("layer_types");
            m.insert("sliding_window_pattern".into(), json!(3));
        },
        "pattern",
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&pattern).unwrap(),
        same,
        "sliding_window_pattern"
    );
    let all_full = config(
        |c| c["layer_types"] = json!(vec!["full_attention"; 4]),
        "all-full",
    )
    .unwrap();
    assert!((0..4).all(|l| all_full.window(l).is_none()));
    for (tag, key, v) in [
        ("attn-softcap", "attn_logit_softcapping", json!(50.0)),
        ("final-softcap", "final_logit_softcapping", json!(30.0)),
        ("activation", "hidden_activation", json!("gelu")),
        ("bias", "attention_bias", json!(true)),
        ("bidirectional", "use_bidirectional_attention", json!(true)),
        ("unknown-field", "altup_num_inputs", json!(4)),
    ] {
        let e = config(|c| c[key] = v, tag).unwrap_err();
        assert!(e.contains(&format!("`{key}`")), "{tag}: {e}");
    }
    let e = config(
        |c| {
            c["layer_types"] = json!([
                "sliding_attention",
                "chunked_attention",
                "full_attention",
                "full_attention"
            ])
        },
        "layer-type",
    )
    .unwrap_err();
    assert!(e.contains("chunked_attention"), "{e}");
    let e = config(
        |c| c["layer_types"] = json!(["full_attention"]),
        "layer-count",
    )
    .unwrap_err();
    assert!(e.contains("layer_types"), "{e}");
}

/// A copy of the fixture as an image-text `gemma3` checkpoint's text model: the config wrapped
/// as `text_config` (vision fields alongside), the tensors under `model.language_model.`
/// (transformers 5's Gemma3ForConditionalGeneration layout), plus `extra` tensors.
fn as_image_text(tag: &str, extra: &[&str]) -> TempDir {
    let src = fixtures_dir().join(FX);
    let d = TempDir::new(&format!("gemma3-mm-{tag}"));
    std::fs::copy(src.join("tokenizer.json"), d.0.join("tokenizer.json")).unwrap();
    let text: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    let wrapper = json!({
        "model_type": "gemma3",
        "architectures": ["Gemma3ForConditionalGeneration"],
        "text_config": text,
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 16},
        "mm_tokens_per_image": 4,
        "boi_token_index": 1000,
        "eoi_token_index": 1001,
        "image_token_index": 1002,
        "initializer_range": 0.02,
        "tie_word_embeddings": true,
        "transformers_version": "5.24.0",
    });
    std::fs::write(d.0.join("config.json"), wrapper.to_string()).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n.replacen("model.", "model.language_model.", 1), t))
        .collect();
    let probe = st.tensor("model.norm.weight").unwrap();
    for e in extra {
        tensors.push((e.to_string(), probe.clone()));
    }
    safetensors::serialize_to_file(tensors, None, &d.0.join("model.safetensors")).unwrap();
    d
}

/// `model_type: gemma3` runs its text model: same configuration, same logits as the text
/// checkpoint, also when the file holds the vision tower's tensors (which act on images only).
#[test]
fn gemma3_image_text_checkpoint_runs_its_text_model() {
    let d = as_image_text("text-only", &[]);
    let c = ModelConfig::from_dir_config(&d.0.join("config.json")).unwrap();
    let want = config(|_| {}, "plain").unwrap();
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        serde_json::to_string(&want).unwrap()
    );
    let model = outlier_probe::model::Gpt2::load(ctx(), &d.0).unwrap();
    let r = reference(FX, 0);
    let got = model.logits(&r.tokens).unwrap();
    check_close(
        "gemma3 wrapper: logits",
        &got,
        &r.tensors["logits"],
        T_LOGITS,
    );

    let d = as_image_text(
        "vision",
        &["model.vision_tower.embeddings.patch_embedding.bias"],
    );
    let model = outlier_probe::model::Gpt2::load(ctx(), &d.0).unwrap_or_else(|e| panic!("{e:#}"));
    let got = model.logits(&r.tokens).unwrap();
    check_close(
        "gemma3 wrapper with a vision tower: logits",
        &got,
        &r.tensors["logits"],
        T_LOGITS,
    );
    let e = config(
        |c| {
            let text = c.clone();
            *c = json!({"model_type": "gemma3", "text_config": text, "audio_config": {}});
        },
        "wrapper-unknown",
    )
    .unwrap_err();
    assert!(e.contains("`audio_config`"), "{e}");
}

/// Gemma-3-270M's own config.json (as its checkpoint carries it, transformers 4.55 names):
/// head_dim 256 with d = 640 and 4 heads, scores scaled by 256^-0.5, windows of 512 on every
/// layer but 5, 11 and 17, RoPE bases 1e6 (full) and 1e4 (sliding), no scaling.
#[test]
fn gemma3_270m_config_parses() {
    let types: Vec<&str> = (0..18)
        .map(|i| {
            if (i + 1) % 6 == 0 {
                "full_attention"
            } else {
                "sliding_attention"
            }
        })
        .collect();
    let cfg = json!({
        "_sliding_window_pattern": 6, "architectures": ["Gemma3ForCausalLM"],
        "attention_bias": false, "attention_dropout": 0.0, "attn_logit_softcapping": null,
        "bos_token_id": 2, "eos_token_id": 1, "final_logit_softcapping": null, "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 640, "initializer_range": 0.02,
        "intermediate_size": 2048, "layer_types": types, "max_position_embeddings": 32768,
        "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 18,
        "num_key_value_heads": 1, "pad_token_id": 0, "query_pre_attn_scalar": 256,
        "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000.0, "rope_scaling": null,
        "rope_theta": 1000000.0, "sliding_window": 512, "torch_dtype": "bfloat16",
        "transformers_version": "4.55.0.dev0", "use_bidirectional_attention": false,
        "use_cache": true, "vocab_size": 262144
    });
    let c = config(|c| *c = cfg, "270m").unwrap();
    assert_eq!(
        (c.n_embd, c.n_head, c.n_kv_head, c.head_dim(), c.q_dim()),
        (640, 4, 1, 256, 1024)
    );
    assert_eq!((c.n_layer, c.n_inner, c.vocab_size), (18, 2048, 262144));
    assert_eq!(c.attn_scale(), 0.0625);
    let full: Vec<usize> = (0..18).filter(|&l| c.window(l).is_none()).collect();
    assert_eq!(full, [5, 11, 17]);
    assert_eq!(c.window(0), Some(512));
    assert_eq!(
        (c.rope_theta, c.attn.rope_local_base_freq),
        (1e6, Some(1e4))
    );
    assert!(c.rope_freq_factors.is_empty() && c.tie_embeddings);
    assert_eq!((c.bos_token_id, c.eos_token_id), (Some(2), Some(1)));
}

/// `hook_attn_out` and `ln1_post.hook_normalized` are one tensor hooked twice, in
/// TransformerLens's order: an edit of `hook_attn_out` (every channel to 0) leaves the captured
/// `ln1_post.hook_normalized` as transformers computes it and makes `hook_resid_mid` equal
/// `hook_resid_pre`; an edit of `ln1_post.hook_normalized` shows in `hook_attn_out`.
#[test]
fn gemma3_post_norm_hooks_edit_in_order() {
    use outlier_probe::intervene::HookEdit;
    let model = load(FX);
    let r = reference(FX, 0);
    let hooks = "blocks.1.ln1_post.hook_normalized,blocks.1.hook_attn_out,\
                 blocks.1.hook_resid_pre,blocks.1.hook_resid_mid";
    let run = |hook: &str, value: f32| {
        let mut sess = model.session(1, r.tokens.len()).unwrap();
        let opts = ForwardOptions {
            capture: HookFilter::parse(hooks).unwrap(),
            edits: vec![HookEdit {
                hook: hook.into(),
                channels: (0..40).collect(),
                positions: None,
                values: vec![value; 40],
            }],
            ..Default::default()
        };
        let mut out = model.forward(&mut sess, &[&r.tokens], &opts).unwrap();
        out.captures.remove(0)
    };
    let c = run("blocks.1.hook_attn_out", 0.0);
    let ln1_post = "blocks.1.ln1_post.hook_normalized";
    check_close(ln1_post, &c[ln1_post], &r.tensors[ln1_post], 1e-4);
    assert!(c["blocks.1.hook_attn_out"].data.iter().all(|&v| v == 0.0));
    assert_eq!(
        c["blocks.1.hook_resid_mid"].data,
        c["blocks.1.hook_resid_pre"].data
    );
    let c = run(ln1_post, 0.5);
    assert!(c["blocks.1.hook_attn_out"].data.iter().all(|&v| v == 0.5));
}

/// gemma-3-4b's `config.json` as published: an image-text wrapper whose `text_config` leaves most
/// fields to `Gemma3TextConfig`'s defaults. The configuration transformers 5.24 builds from it
/// (`AutoConfig.from_pretrained(dir).text_config`): vocab 262,208, 8 heads / 4 kv heads of 256,
/// window 1024 with every 6th layer full, linear RoPE ×8 on the full layers, 34 layers, d 2560.
#[test]
fn gemma3_4b_style_sparse_text_config_takes_transformers_defaults() {
    let d = TempDir::new("gemma3-4b-config");
    let p = d.0.join("config.json");
    std::fs::write(
        &p,
        json!({
            "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999,
            "eoi_token_index": 256000, "eos_token_id": [1, 106], "image_token_index": 262144,
            "initializer_range": 0.02, "mm_tokens_per_image": 256, "model_type": "gemma3",
            "text_config": {"hidden_size": 2560, "intermediate_size": 10240,
                "model_type": "gemma3_text", "num_hidden_layers": 34,
                "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
            "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
            "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                "model_type": "siglip_vision_model", "num_attention_heads": 16,
                "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": false}
        })
        .to_string(),
    )
    .unwrap();
    let c = ModelConfig::from_dir_config(&p).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        (
            c.vocab_size,
            c.n_embd,
            c.n_inner,
            c.n_layer,
            c.n_head,
            c.n_kv_head
        ),
        (262_208, 2560, 10240, 34, 8, 4)
    );
    assert_eq!((c.head_dim(), c.n_positions), (256, 131_072));
    assert_eq!((c.bos_token_id, c.eos_token_id), (Some(2), Some(1)));
    let full: Vec<usize> = (0..34).filter(|&l| c.window(l).is_none()).collect();
    assert_eq!(full, [5, 11, 17, 23, 29]);
    assert_eq!(c.window(0), Some(1024));
    assert_eq!(c.rope_theta, 1e6);
    assert!(c.rope_freq_factors.iter().all(|&f| f == 8.0) && c.rope_freq_factors.len() == 128);
}
