//! The GPT-NeoX path (Pythia: LayerNorm with biases, partial RoPE, per-head fused q|k|v with
//! biases, GELU MLP, parallel or sequential residual) against transformers on random-init models
//! of odd sizes (tools/reference/make_gpt_neox_fixtures.py): gpt-neox-odd-a (parallel, 4 of 17
//! dims rotated, untied `embed_out`, erf GELU, Pythia-style config.json) and gpt-neox-odd-b
//! (sequential, 8 of 20 dims rotated, tied, tanh GELU, no attention biases). Also: the config
//! audit, the missing hook_resid_mid of a parallel block, the weight-outlier module roles, and
//! every CLI command on odd-a.

mod common;

use common::*;
use outlier_probe::analysis::ModuleKind;
use outlier_probe::config::{Arch, ModelConfig};
use outlier_probe::generate::{generate, Sampling};
use outlier_probe::hooks::HookFilter;
use outlier_probe::model::{ForwardOptions, Gpt2, LogitsMode};
use outlier_probe::tensor::Tensor;
use serde_json::{json, Value};

const A: &str = "gpt-neox-odd-a";
const B: &str = "gpt-neox-odd-b";
/// Every hook: |a − b| ≤ T·(median|b| + |b|) elementwise against transformers' f32 result
/// (measured worst on lavapipe: 2.3e-6, mlp.hook_post).
const T: f32 = 2e-5;
/// The logits of the fused and batched paths (the bound of the GPT-2 fixtures).
const T_LOGITS: f32 = 2e-5;

#[test]
fn every_gpt_neox_hook_matches_transformers() {
    let a = load(A);
    assert_eq!(a.cfg.arch, Arch::GptNeox);
    assert_eq!((a.cfg.head_dim(), a.cfg.rope_dims()), (17, 4));
    assert!(a.cfg.parallel_residual && !a.cfg.tie_embeddings && a.cfg.gelu_exact);
    assert_all_hooks_match(&a, A, T);
    let b = load(B);
    assert_eq!((b.cfg.head_dim(), b.cfg.rope_dims()), (20, 8));
    assert!(!b.cfg.parallel_residual && b.cfg.tie_embeddings && !b.cfg.gelu_exact);
    assert!(!b.cfg.qkv_bias);
    assert_all_hooks_match(&b, B, T);
}

/// With nothing captured the residual adds and GELU are fused into the matmuls and short
/// prompts take the matvec path: the logits still match transformers.
#[test]
fn gpt_neox_fused_forward_logits_match_transformers() {
    for fx in [A, B] {
        let model = load(fx);
        for k in 0..3 {
            let r = reference(fx, k);
            let got = model.logits(&r.tokens).unwrap();
            let what = format!("{fx} ref-{k}: fused logits");
            check_close(&what, &got, &r.tensors["logits"], T_LOGITS);
        }
    }
}

#[test]
fn gpt_neox_greedy_generation_and_decoding() {
    for fx in [A, B] {
        let model = load(fx);
        for k in 0..3 {
            let r = reference(fx, k);
            let s = Sampling {
                max_new_tokens: r.generated.len(),
                ..Default::default()
            };
            let out = generate(&model, std::slice::from_ref(&r.tokens), &s, |_, _| {}).unwrap();
            assert_eq!(out[0], r.generated, "{fx} ref-{k}: greedy continuation");
        }
        // Decode over the cache equals recomputation (partial RoPE at each position).
        assert_decode_equals_recompute(&model, &reference(fx, 2).tokens, fx);
    }
}

/// The three prompts in one batch give each prompt's own results (logits, q/k/v, the rotated
/// q, the pattern) in prefill and in batched generation.
#[test]
fn gpt_neox_batch_equals_single() {
    let model = load(A);
    let refs: Vec<_> = (0..3).map(|k| reference(A, k)).collect();
    let prompts: Vec<&[u32]> = refs.iter().map(|r| r.tokens.as_slice()).collect();
    let cap = prompts.iter().map(|p| p.len()).max().unwrap();
    let mut sess = model.session(3, cap).unwrap();
    let hooks = "blocks.2.attn.hook_q,blocks.2.attn.hook_v,blocks.2.attn.hook_rot_k,blocks.2.attn.hook_pattern";
    let opts = ForwardOptions {
        logits: LogitsMode::All,
        capture: HookFilter::parse(hooks).unwrap(),
        ..Default::default()
    };
    let out = model.forward(&mut sess, &prompts, &opts).unwrap();
    for (k, r) in refs.iter().enumerate() {
        let got = out.logits[k].as_ref().unwrap();
        check_close(
            &format!("batched {k}: logits"),
            got,
            &r.tensors["logits"],
            T_LOGITS,
        );
        for name in hooks.split(',') {
            let what = format!("batched prompt {k}: {name}");
            check_close(&what, &out.captures[k][name], &r.tensors[name], T_LOGITS);
        }
    }
    let owned: Vec<Vec<u32>> = refs.iter().map(|r| r.tokens.clone()).collect();
    let s = Sampling {
        max_new_tokens: 6,
        ..Default::default()
    };
    let batched = generate(&model, &owned, &s, |_, _| {}).unwrap();
    for (k, r) in refs.iter().enumerate() {
        assert_eq!(batched[k], r.generated[..6], "batched generation {k}");
    }
}

/// A parallel block has no hook_resid_mid: it is not among the hooks, and a filter or an edit
/// naming it is an error that names the hook and says why. A sequential block has it.
#[test]
fn parallel_blocks_have_no_resid_mid() {
    let a = load(A);
    let space = a.hooks();
    assert!(!space.hooks().iter().any(|h| h.contains("resid_mid")));
    let toks = reference(A, 1).tokens;
    for spec in ["blocks.1.hook_resid_mid", "blocks.*.hook_resid_mid"] {
        let e = format!(
            "{:#}",
            a.capture(&toks, &HookFilter::parse(spec).unwrap())
                .unwrap_err()
        );
        assert!(
            e.contains(spec) && e.contains("parallel residual"),
            "{spec}: {e}"
        );
    }
    let e = format!(
        "{:#}",
        outlier_probe::intervene::expand("blocks.0.hook_resid_mid", &space).unwrap_err()
    );
    assert!(e.contains("parallel residual"), "{e}");
    let b = load(B);
    let n = b.hooks().hooks();
    assert_eq!(
        n.iter().filter(|h| h.ends_with("hook_resid_mid")).count(),
        2
    );
}

/// Weight-outlier roles: q/k/v are cut per head out of query_key_value (x·W_q + b_q is
/// transformers' hook_q), attention.dense is O, dense_h_to_4h Fc and dense_4h_to_h the down
/// projection.
#[test]
fn gpt_neox_module_weights() {
    let model = load(A);
    let (d, inner) = (model.cfg.n_embd, model.cfg.n_inner());
    let mut seen = Vec::new();
    let r = reference(A, 0);
    let ln1 = &r.tensors["blocks.0.ln1.hook_normalized"];
    let st_bytes = std::fs::read(fixtures_dir().join(A).join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    let bias: Vec<f32> = st
        .tensor("gpt_neox.layers.0.attention.query_key_value.bias")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let hd = model.cfg.head_dim();
    model
        .for_each_module_weight(|mw| {
            seen.push((mw.layer, mw.kind, mw.weight.shape.clone()));
            let Some(part) = [ModuleKind::Q, ModuleKind::K, ModuleKind::V]
                .iter()
                .position(|k| *k == mw.kind)
            else {
                return;
            };
            if mw.layer != 0 {
                return;
            }
            let t = ln1.shape[0];
            let mut out = vec![0f32; t * d];
            for i in 0..t {
                for o in 0..d {
                    let (h, j) = (o / hd, o % hd);
                    let mut s = bias[h * 3 * hd + part * hd + j] as f64;
                    for c in 0..d {
                        s += ln1.data[i * d + c] as f64 * mw.weight.data[c * d + o] as f64;
                    }
                    out[i * d + o] = s as f32;
                }
            }
            let name = ["q", "k", "v"][part];
            let want = &r.tensors[&format!("blocks.0.attn.hook_{name}")];
            let got = Tensor::new(want.shape.clone(), out);
            check_close(&format!("x·W_{name} + b_{name}"), &got, want, 1e-4);
        })
        .unwrap();
    assert_eq!(seen.len(), 3 * 6);
    for l in 0..3 {
        let kinds: Vec<_> = seen.iter().filter(|s| s.0 == l).map(|s| s.1).collect();
        use ModuleKind::*;
        assert_eq!(kinds, [Q, K, V, O, Fc, Down]);
    }
    let down = seen.iter().find(|s| s.1 == ModuleKind::Down).unwrap();
    assert_eq!(down.2, [inner, d], "Down is dense_4h_to_h as [in, out]");
}

fn config(fx: &str, edit: impl FnOnce(&mut Value), tag: &str) -> Result<ModelConfig, String> {
    let p = fixtures_dir().join(fx).join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    edit(&mut cfg);
    let d = TempDir::new(&format!("neox-cfg-{tag}"));
    let p = d.0.join("config.json");
    std::fs::write(&p, cfg.to_string()).unwrap();
    ModelConfig::from_dir_config(&p).map_err(|e| format!("{e:#}"))
}

/// The legacy rope fields (Pythia) and rope_parameters (transformers 5) mean the same; the
/// defaults are transformers' (0.25, 10000); disagreements, other rope types, odd rotary
/// widths, unsupported activations and unknown fields are refused by name.
#[test]
fn gpt_neox_config_fields() {
    let a = config(A, |_| {}, "a").unwrap();
    assert_eq!(
        (a.rope_theta, a.rotary_dims, a.norm_eps),
        (1e4, Some(4), 1e-5)
    );
    let same = serde_json::to_string(&a).unwrap();
    let js = |c: &ModelConfig| serde_json::to_string(c).unwrap();
    let modern = config(
        A,
        |c| {
            let o = c.as_object_mut().unwrap();
            o.remove("rotary_pct");
            o.remove("rotary_emb_base");
            o.insert(
                "rope_parameters".into(),
                json!({"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25}),
            );
        },
        "modern",
    )
    .unwrap();
    assert_eq!(js(&modern), same);
    let defaults = config(
        A,
        |c| {
            let o = c.as_object_mut().unwrap();
            o.remove("rotary_pct");
            o.remove("rotary_emb_base");
        },
        "defaults",
    )
    .unwrap();
    assert_eq!(js(&defaults), same);
    for (tag, key, v) in [
        ("dropout", "hidden_dropout", json!(0.3)),
        ("attn-dropout", "attention_dropout", json!(0.3)),
        ("classifier", "classifier_dropout", json!(0.3)),
        ("cache", "use_cache", json!(false)),
    ] {
        let got = config(A, |c| c[key] = v, tag).unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(js(&got), same, "{tag}");
    }
    let b = config(B, |_| {}, "b").unwrap();
    assert_eq!((b.rope_theta, b.rotary_dims), (500.0, Some(8)));
    let seq = config(A, |c| c["use_parallel_residual"] = json!(false), "seq").unwrap();
    assert!(!seq.parallel_residual);
    for (tag, edit, needles) in [
        (
            "pct-disagree",
            json!({"rope_parameters": {"rope_theta": 10000, "partial_rotary_factor": 0.5}}),
            vec!["rotary_pct", "disagree"],
        ),
        (
            "linear",
            json!({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}),
            vec!["rope_scaling.rope_type", "linear"],
        ),
        (
            "odd-rotary",
            json!({"rotary_pct": 0.18}),
            vec!["rotary_pct", "3 dimensions"],
        ),
        (
            "act",
            json!({"hidden_act": "relu"}),
            vec!["hidden_act", "relu"],
        ),
        (
            "top-level-theta",
            json!({"rope_theta": 10000}),
            vec!["`rope_theta`"],
        ),
        ("unknown", json!({"mystery": 3}), vec!["`mystery`"]),
    ] {
        let e = config(
            A,
            |c| {
                for (k, v) in edit.as_object().unwrap() {
                    c[k] = v.clone();
                }
            },
            tag,
        )
        .unwrap_err();
        for n in needles {
            assert!(e.contains(n), "{tag}: {e}");
        }
    }
}

/// An untied checkpoint without `embed_out.weight` is refused naming it; the same checkpoint
/// without the attention biases it declares is refused naming the bias.
#[test]
fn gpt_neox_missing_tensors_are_named() {
    for (drop, needle) in [
        ("embed_out.weight", "embed_out.weight"),
        (
            "gpt_neox.layers.2.attention.query_key_value.bias",
            "layers.2.attention.query_key_value.bias",
        ),
    ] {
        let src = fixtures_dir().join(A);
        let d = TempDir::new(&format!("neox-drop-{}", drop.len()));
        for f in ["config.json", "tokenizer.json"] {
            std::fs::copy(src.join(f), d.0.join(f)).unwrap();
        }
        let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let kept: Vec<_> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| n != drop)
            .collect();
        assert_eq!(kept.len() + 1, st.len());
        safetensors::serialize_to_file(kept, None, &d.0.join("model.safetensors")).unwrap();
        let e = match Gpt2::load(ctx(), &d.0) {
            Ok(_) => panic!("loaded without {drop}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(e.contains(needle), "{e}");
    }
}

/// Every command on gpt-neox-odd-a: generate, capture, probe, ppl with an intervention, and
/// compress with protected channels.
#[test]
fn every_cli_command_runs_on_gpt_neox() {
    let dir = fixtures_dir().join(A);
    let m = dir.to_str().unwrap();
    let corpus = fixtures_dir().join("ppl/corpus.txt");
    let c = corpus.to_str().unwrap();
    let t = TempDir::new("neox-cli");
    let out = |f: &str| t.0.join(f).to_str().unwrap().to_string();

    let (ok, stdout, err) = run(&["generate", "--model", m, "--prompt", "Hello", "-n", "8"]);
    assert!(ok, "generate: {err}");
    let model = load(A);
    let r = reference(A, 1);
    let want = format!(
        "Hello{}",
        model.tokenizer().unwrap().decode(&r.generated).unwrap()
    );
    assert_eq!(stdout.trim_end_matches('\n'), want);

    let cap = out("cap.safetensors");
    let (ok, _, err) = run(&[
        "capture",
        "--model",
        m,
        "--prompt",
        "Summer is warm. Winter is cold.\n",
        "--hooks",
        "blocks.*.attn.hook_rot_q,blocks.2.hook_resid_post,logits",
        "--out",
        &cap,
    ]);
    assert!(ok, "capture: {err}");
    let (_, caps) = outlier_probe::capture_file::read(std::path::Path::new(&cap)).unwrap();
    let r0 = reference(A, 0);
    assert_eq!(caps.len(), 3 + 1 + 1);
    for (name, t) in &caps {
        check_close(&format!("cli capture {name}"), t, &r0.tensors[name], T);
    }
    let (ok, _, err) = run(&[
        "capture",
        "--model",
        m,
        "--prompt",
        "x",
        "--hooks",
        "blocks.0.hook_resid_mid",
        "--out",
        &cap,
    ]);
    assert!(!ok && err.contains("parallel residual"), "{err}");

    let (ok, stdout, err) = run(&[
        "probe",
        "--model",
        m,
        "--corpus",
        c,
        "--seqs",
        "2",
        "--seq-len",
        "16",
        "--out",
        &out("probe"),
    ]);
    assert!(ok, "probe: {err}");
    assert!(!stdout.is_empty(), "probe printed nothing");

    let (ok, _, err) = run(&[
        "ppl",
        "--model",
        m,
        "--corpus",
        c,
        "--seq-len",
        "16",
        "--seqs",
        "2",
        "--intervene",
        "knockout:keys=0:layers=1",
        "--intervene",
        "blocks.*.hook_resid_post:ch=3,17:zero",
        "--json",
        &out("ppl.json"),
    ]);
    assert!(ok, "ppl: {err}");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out("ppl.json")).unwrap()).unwrap();
    let text = v.to_string();
    assert!(
        text.contains("knockout") && text.contains("hook_resid_post"),
        "{text}"
    );

    let (ok, stdout, err) = run(&[
        "compress",
        "--model",
        m,
        "--corpus",
        c,
        "--seqs",
        "2",
        "--seq-len",
        "16",
        "--schemes",
        "w8,a8",
        "--protect",
        "d=3,17;inner=5",
        "--out",
        &out("compress"),
    ]);
    assert!(ok, "compress: {err}");
    assert!(stdout.contains("| `w8` |"), "{stdout}");
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(t.0.join("compress/compress.json")).unwrap())
            .unwrap();
    let st = &j.as_array().unwrap()[0];
    let base = st["baseline_ppl"].as_f64().unwrap();
    assert!(base.is_finite() && base > 1.0, "{st}");
    for r in st["results"].as_array().unwrap() {
        assert!(r["ppl"].as_f64().unwrap().is_finite(), "{st}");
        assert!(r["ppl_protected"].as_f64().unwrap().is_finite(), "{st}");
    }
}

/// Every row of `config_fields::GPT_NEOX` has a case: an applied field changes the config, an
/// ignored one changes nothing.
#[test]
fn every_gpt_neox_field_row_has_a_case() {
    use outlier_probe::config_fields::GPT_NEOX;
    use outlier_probe::gguf_keys::Handling;
    let js = |c: &ModelConfig| serde_json::to_string(c).unwrap();
    let base = js(&config(A, |_| {}, "rows-base").unwrap());
    let no_legacy = |c: &mut Value| {
        let o = c.as_object_mut().unwrap();
        o.remove("rotary_pct");
        o.remove("rotary_emb_base");
    };
    let rope = json!({"rope_type": "default", "rope_theta": 500.0, "partial_rotary_factor": 0.5});
    let applied: Vec<(&str, Value)> = vec![
        ("vocab_size", json!(1030)),
        ("hidden_size", json!(54)),
        ("num_hidden_layers", json!(2)),
        ("num_attention_heads", json!(1)),
        ("intermediate_size", json!(98)),
        ("hidden_act", json!("gelu_new")),
        ("max_position_embeddings", json!(30)),
        ("layer_norm_eps", json!(1e-3)),
        ("use_parallel_residual", json!(false)),
        ("attention_bias", json!(false)),
        ("rope_parameters", rope.clone()),
        ("rope_scaling", rope),
        ("rotary_pct", json!(0.5)),
        ("rotary_emb_base", json!(100)),
    ];
    for row in GPT_NEOX {
        let tag = format!("row-{}", row.key);
        match row.handling {
            Handling::Applied => {
                let (_, v) = applied
                    .iter()
                    .find(|(k, _)| *k == row.key)
                    .unwrap_or_else(|| panic!("no case for {}", row.key));
                let got = config(
                    A,
                    |c| {
                        if row.key.starts_with("rope_") {
                            no_legacy(c);
                        }
                        c[row.key] = v.clone();
                    },
                    &tag,
                )
                .unwrap_or_else(|e| panic!("{tag}: {e}"));
                assert_ne!(js(&got), base, "{} changed nothing", row.key);
            }
            Handling::Ignored => {
                for v in [json!(0.5), json!("x")] {
                    let got = config(A, |c| c[row.key] = v.clone(), &tag).unwrap();
                    assert_eq!(js(&got), base, "{}", row.key);
                }
            }
            h => panic!("{}: {h:?} rows need a case here", row.key),
        }
    }
}

/// gpt-neox-odd-a converted by llama.cpp's own `convert_hf_to_gguf.py` (q|k|v reordered, keys
/// `gptneox.*`, tokenizer in the metadata; tools/reference/llama_cpp_convert.py): every hook,
/// the greedy continuations and the tokenizer match transformers' on the safetensors model.
#[test]
fn gpt_neox_gguf_from_llama_cpp_matches_transformers() {
    let path = fixtures_dir().join(A).join("model-f32.gguf");
    let model = Gpt2::load(ctx(), &path).unwrap_or_else(|e| panic!("{e:#}"));
    let hf = load(A);
    assert_eq!(
        serde_json::to_string(&model.cfg).unwrap(),
        serde_json::to_string(&hf.cfg).unwrap()
    );
    assert_all_hooks_match(&model, A, T);
    let tok = model.tokenizer().unwrap();
    for k in 0..3 {
        let r = reference(A, k);
        let text = hf.tokenizer().unwrap().decode(&r.tokens).unwrap();
        assert_eq!(tok.encode(&text).unwrap(), r.tokens, "ref-{k} tokens");
        let s = Sampling {
            max_new_tokens: r.generated.len(),
            ..Default::default()
        };
        let out = generate(&model, std::slice::from_ref(&r.tokens), &s, |_, _| {}).unwrap();
        assert_eq!(out[0], r.generated, "GGUF ref-{k}: greedy continuation");
    }
    let mut a = Vec::new();
    let mut b = Vec::new();
    model.for_each_module_weight(|m| a.push(m.clone())).unwrap();
    hf.for_each_module_weight(|m| b.push(m.clone())).unwrap();
    assert!(
        a == b,
        "module weights differ between the GGUF and the safetensors file"
    );
}

mod gguf_writer;

/// gpt-neox-odd-a's converter-made GGUF as a builder, to edit.
fn neox_gguf() -> gguf_writer::GgufBuilder {
    let g =
        outlier_probe::gguf::GgufFile::open(fixtures_dir().join(A).join("model-f32.gguf")).unwrap();
    let mut b = gguf_writer::GgufBuilder::default();
    for (k, v) in g.metadata() {
        b.set(k, v.clone());
    }
    for t in g.tensors() {
        b.tensor(&t.name, &t.shape(), g.tensor_f32(&t.name).unwrap());
    }
    b
}

fn open_gguf(b: &gguf_writer::GgufBuilder, tag: &str) -> Result<ModelConfig, String> {
    let d = TempDir::new(&format!("neox-gguf-{tag}"));
    let p = d.0.join("m.gguf");
    b.write(&p);
    outlier_probe::model_files::ModelFiles::open(&p)
        .map(|f| f.cfg)
        .map_err(|e| format!("{e:#}"))
}

/// The gptneox key and tensor audit: the converter's file as written loads; unknown `gptneox.*`
/// keys, llama keys, grouped key/value heads, odd rotary widths, foreign or missing tensors are
/// refused by name; a file without `output.weight` is tied.
#[test]
fn gpt_neox_gguf_audit() {
    use gguf_writer::GgufBuilder;
    use outlier_probe::gguf::GgufValue as V;
    let base = neox_gguf();
    let js = |c: &ModelConfig| serde_json::to_string(c).unwrap();
    let want = js(&load_cfg(A));
    assert_eq!(js(&open_gguf(&base, "as-written").unwrap()), want);
    let mut kv = base.clone();
    kv.set("gptneox.attention.head_count_kv", V::U32(3));
    assert_eq!(js(&open_gguf(&kv, "kv-equal").unwrap()), want);
    let mut tied = base.clone();
    tied.remove_tensor("output.weight");
    assert!(open_gguf(&tied, "tied").unwrap().tie_embeddings);
    type Edit = fn(&mut GgufBuilder);
    let cases: [(&str, Edit, &str); 6] = [
        (
            "unknown",
            |b| {
                b.set("gptneox.mystery", V::U32(7));
            },
            "`gptneox.mystery` = 7",
        ),
        (
            "llama-key",
            |b| {
                b.set("llama.block_count", V::U32(3));
            },
            "`llama.block_count`",
        ),
        (
            "gqa",
            |b| {
                b.set("gptneox.attention.head_count_kv", V::U32(1));
            },
            "`gptneox.attention.head_count_kv` = 1",
        ),
        (
            "odd-rope",
            |b| {
                b.set("gptneox.rope.dimension_count", V::U32(3));
            },
            "even number of rotated dimensions",
        ),
        (
            "foreign-tensor",
            |b| {
                b.tensor("blk.0.attn_q.weight", &[51, 51], vec![0.0; 51 * 51]);
            },
            "tensor `blk.0.attn_q.weight`",
        ),
        (
            "missing-bias",
            |b| {
                b.remove_tensor("blk.1.attn_output.bias");
            },
            "required tensor `blk.1.attn_output.bias` is missing",
        ),
    ];
    for (tag, edit, needle) in cases {
        let mut b = base.clone();
        edit(&mut b);
        let e = open_gguf(&b, tag).unwrap_err();
        assert!(e.contains(needle), "{tag}: {e}");
    }
}

fn load_cfg(fx: &str) -> ModelConfig {
    ModelConfig::from_dir_config(&fixtures_dir().join(fx).join("config.json")).unwrap()
}
