//! The OPT path against transformers on two random-init models of odd sizes
//! (tools/reference/make_opt_fixtures.py), every LayerNorm weight and bias and every linear bias
//! randomised, ReLU MLP, tied head, f32:
//! opt-odd-a pre-LN (d 36, 3 heads, 3 layers, ffn 75, final LayerNorm) and opt-odd-b post-LN
//! (d 44, 4 heads, 2 layers, ffn 57, no final LayerNorm, word_embed_proj_dim 20 with
//! project_in/project_out). Every hook elementwise, fused logits, greedy generation, decode ==
//! recompute and batch == single for both; the config.json audit; the weight roles; and a smoke
//! run of every CLI command on opt-odd-b.

mod common;

use common::*;
use outlier_probe::analysis::ModuleKind;
use outlier_probe::config::{Arch, ModelConfig};
use outlier_probe::generate::{generate, Sampling};
use outlier_probe::hooks::HookFilter;
use outlier_probe::model::{ForwardOptions, LogitsMode};
use serde_json::{json, Value};

const FX: [&str; 2] = ["opt-odd-a", "opt-odd-b"];
/// Every hook: |a − b| ≤ T·(median|b| + |b|) elementwise against transformers' f32 result. OPT
/// scales q before q·k, the engine scales the scores (equal up to f32 rounding); measured worst
/// 1.5e-6 (attn.hook_attn_scores of opt-odd-a), so the bound is ten times tighter than Llama's 1e-4.
const T: f32 = 1e-5;
/// The logits of the fused and batched paths (the bound of the GPT-2 fixtures).
const T_LOGITS: f32 = 2e-5;

#[test]
fn every_opt_hook_matches_transformers() {
    for fx in FX {
        let model = load(fx);
        assert_eq!(model.cfg.arch, Arch::Opt);
        assert_eq!(model.cfg.pos_offset, 2);
        assert!(model.cfg.relu && model.cfg.tie_embeddings);
        let names = model.hooks().hooks();
        let projected = fx == "opt-odd-b";
        assert_eq!(model.cfg.post_norm, projected, "{fx}");
        assert_eq!(names.contains(&"hook_project_in".into()), projected);
        assert_eq!(names.contains(&"hook_project_out".into()), projected);
        assert_eq!(
            names.contains(&"ln_final.hook_normalized".into()),
            !projected
        );
        assert_all_hooks_match(&model, fx, T);
    }
}

/// With nothing captured the residual adds and ReLU are fused into the matmuls and short
/// prompts take the matvec path: the logits still match transformers.
#[test]
fn opt_fused_forward_logits_match_transformers() {
    for fx in FX {
        let model = load(fx);
        for k in 0..3 {
            let r = reference(fx, k);
            let got = model.logits(&r.tokens).unwrap();
            let what = format!("{fx} ref-{k}: fused logits");
            let e = check_close(&what, &got, &r.tensors["logits"], T_LOGITS);
            assert!(e <= 1.0);
        }
    }
}

#[test]
fn opt_greedy_generation_and_decoding() {
    for fx in FX {
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
        // Decode over the cache equals recomputation (positions at offset 2 from the cache).
        assert_decode_equals_recompute(&model, &reference(fx, 2).tokens, fx);
    }
}

/// The three prompts in one batch give each prompt's own results (each sequence starts at
/// position 0, row 2 of embed_positions, as transformers gives a padded batch), in prefill and
/// in batched generation.
#[test]
fn opt_batch_equals_single() {
    for fx in FX {
        let model = load(fx);
        let refs: Vec<_> = (0..3).map(|k| reference(fx, k)).collect();
        let prompts: Vec<&[u32]> = refs.iter().map(|r| r.tokens.as_slice()).collect();
        let cap = prompts.iter().map(|p| p.len()).max().unwrap();
        let mut sess = model.session(3, cap).unwrap();
        let hooks = "hook_pos_embed,blocks.1.attn.hook_q,blocks.1.attn.hook_pattern";
        let opts = ForwardOptions {
            logits: LogitsMode::All,
            capture: HookFilter::parse(hooks).unwrap(),
            ..Default::default()
        };
        let out = model.forward(&mut sess, &prompts, &opts).unwrap();
        for (k, r) in refs.iter().enumerate() {
            let got = out.logits[k].as_ref().unwrap();
            let what = format!("{fx} batched prompt {k}: logits");
            check_close(&what, got, &r.tensors["logits"], T_LOGITS);
            for name in hooks.split(',') {
                let what = format!("{fx} batched prompt {k}: {name}");
                check_close(&what, &out.captures[k][name], &r.tensors[name], T_LOGITS);
            }
        }
        let owned: Vec<Vec<u32>> = refs.iter().map(|r| r.tokens.clone()).collect();
        let s = Sampling {
            max_new_tokens: 5,
            ..Default::default()
        };
        let batched = generate(&model, &owned, &s, |_, _| {}).unwrap();
        for (k, r) in refs.iter().enumerate() {
            assert_eq!(batched[k], r.generated[..5], "{fx} batched generation {k}");
        }
    }
}

/// The weight-outlier analysis reads q/k/v/out_proj, fc1 (ungated input) and fc2 (the down
/// projection) as `[in, out]`.
#[test]
fn opt_module_weights_name_fc2_the_down_projection() {
    let model = load("opt-odd-b");
    let mut seen = Vec::new();
    model
        .for_each_module_weight(|w| {
            if w.layer == 1 {
                seen.push((w.kind, w.weight.shape.clone()));
            }
        })
        .unwrap();
    let want = vec![
        (ModuleKind::Q, vec![44, 44]),
        (ModuleKind::K, vec![44, 44]),
        (ModuleKind::V, vec![44, 44]),
        (ModuleKind::O, vec![44, 44]),
        (ModuleKind::Fc, vec![44, 57]),
        (ModuleKind::Down, vec![57, 44]),
    ];
    assert_eq!(seen, want);
}

fn config(fx: &str, edit: impl FnOnce(&mut Value), tag: &str) -> Result<ModelConfig, String> {
    let p = fixtures_dir().join(fx).join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    edit(&mut cfg);
    let d = TempDir::new(&format!("opt-cfg-{tag}"));
    let p = d.0.join("config.json");
    std::fs::write(&p, cfg.to_string()).unwrap();
    ModelConfig::from_dir_config(&p).map_err(|e| format!("{e:#}"))
}

/// Every OPT field is applied, ignored with a reason, or refused by name.
#[test]
fn opt_config_fields_are_applied_or_refused() {
    let a = config("opt-odd-a", |_| {}, "a").unwrap();
    assert_eq!(
        (a.n_embd, a.n_inner, a.n_layer, a.n_head, a.n_positions),
        (36, 75, 3, 3, 24)
    );
    assert_eq!((a.embed_dim, a.final_norm, a.post_norm), (36, true, false));
    assert_eq!((a.norm_eps, a.eos_token_id), (1e-5, Some(1020)));
    let b = config("opt-odd-b", |_| {}, "b").unwrap();
    assert_eq!((b.embed_dim, b.final_norm, b.post_norm), (20, false, true));
    let same = serde_json::to_string(&a).unwrap();
    for (tag, key, v) in [
        ("dropout", "dropout", json!(0.5)),
        ("attn-dropout", "attention_dropout", json!(0.5)),
        ("act-dropout", "activation_dropout", json!(0.5)),
        ("layerdrop", "layerdrop", json!(0.3)),
        ("init", "init_std", json!(1.0)),
        ("pad", "pad_token_id", json!(1)),
        ("prefix", "prefix", json!("</s>")),
    ] {
        let got = config("opt-odd-a", |c| c[key] = v, tag).unwrap();
        assert_eq!(serde_json::to_string(&got).unwrap(), same, "{tag}");
    }
    let applied = |key: &str, v: Value| config("opt-odd-a", |c| c[key] = v, key).unwrap();
    assert!(!applied("_remove_final_layer_norm", json!(true)).final_norm);
    assert!(!applied("enable_bias", json!(false)).linear_bias);
    assert!(!applied("layer_norm_elementwise_affine", json!(false)).norm_affine);
    let g = applied("activation_function", json!("gelu"));
    assert!(!g.relu && g.gelu_exact);
    assert_eq!(applied("word_embed_proj_dim", json!(12)).embed_dim, 12);
    assert_eq!(applied("eos_token_id", json!([7, 9])).eos_token_id, Some(7));
    for (tag, key, v, needle) in [
        ("silu", "activation_function", json!("silu"), "'silu'"),
        (
            "unknown",
            "scale_embedding",
            json!(true),
            "`scale_embedding`",
        ),
        (
            "quant",
            "quantization_config",
            json!({}),
            "`quantization_config`",
        ),
        ("heads", "num_attention_heads", json!(5), "not a multiple"),
    ] {
        let e = config("opt-odd-a", |c| c[key] = v, tag).unwrap_err();
        assert!(e.contains(needle), "{tag}: {e}");
    }
}

/// Every command of the binary runs on the post-LN, projected fixture: generate, capture (the
/// projection hooks), probe, ppl under an intervention, compress with protected channels.
#[test]
fn every_cli_command_runs_on_opt() {
    let m = fixtures_dir().join("opt-odd-b");
    let m = m.to_str().unwrap();
    let corpus = format!(
        "{}/data/tinyshakespeare-heldout.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let t = TempDir::new("opt-cli");
    let cap = t.0.join("cap.safetensors");
    let out = t.0.to_str().unwrap();
    let r = reference("opt-odd-b", 0);
    let (ok, _, err) = run(&[
        "capture",
        "--model",
        m,
        "--prompt",
        "Summer is warm. Winter is cold.\n",
        "--hooks",
        "hook_project_in,hook_project_out,blocks.1.ln1.hook_normalized,logits",
        "--out",
        cap.to_str().unwrap(),
    ]);
    assert!(ok, "capture failed: {err}");
    let (tokens, caps) = outlier_probe::capture_file::read(&cap).unwrap();
    assert_eq!(
        tokens.iter().map(|&t| t as u32).collect::<Vec<_>>(),
        r.tokens
    );
    assert_eq!(caps.len(), 4);
    for (name, t) in &caps {
        check_close(name, t, &r.tensors[name], 2e-5);
    }
    let runs: Vec<Vec<&str>> = vec![
        vec!["generate", "--prompt", "Summer is", "-n", "4"],
        vec!["probe", "--prompt", "Summer is warm.", "--out", out],
        vec![
            "ppl",
            "--corpus",
            &corpus,
            "--seqs",
            "2",
            "--seq-len",
            "16",
            "--intervene",
            "blocks.*.hook_resid_post:ch=3:pos=0:zero",
            "--intervene",
            "hook_project_out:ch=1,2:mean",
        ],
        vec![
            "compress",
            "--corpus",
            &corpus,
            "--seqs",
            "1",
            "--seq-len",
            "16",
            "--schemes",
            "w8,a8",
            "--protect",
            "d=3,17;inner=5",
            "--out",
            out,
        ],
    ];
    for args in runs {
        let mut a = args.clone();
        a.extend(["--model", m]);
        let (ok, stdout, err) = run(&a);
        assert!(ok, "{args:?} failed: {err}");
        assert!(!stdout.is_empty() || !err.is_empty(), "{args:?}: no output");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// LayerNorm weight and bias `[D]` of the fixture's checkpoint, as f64.
fn ln_params(fx: &str, name: &str) -> (Vec<f64>, Vec<f64>) {
    let bytes = std::fs::read(fixtures_dir().join(fx).join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let get = |n: String| -> Vec<f64> {
        let t = st.tensor(&n).unwrap();
        t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect()
    };
    (
        get(format!("model.decoder.{name}.weight")),
        get(format!("model.decoder.{name}.bias")),
    )
}

/// Post-LN blocks feed the residual stream itself to q/k/v_proj and fc1. Fake-quantizing linear
/// inputs in place (the compression study, here 4 bits) must not touch the stream: each layer's
/// ln1 is still LayerNorm(resid_pre + attn_out) of the captured (unquantized) tensors, and ln2
/// LayerNorm(resid_mid + mlp_out), recomputed here in f64 from the checkpoint's parameters.
#[test]
fn opt_post_ln_act_quant_leaves_the_residual_stream_alone() {
    let fx = "opt-odd-b";
    let mut model = load(fx);
    model.set_act_quant(Some(4), &[], &[]).unwrap();
    let r = reference(fx, 2);
    let caps = model.capture(&r.tokens, &HookFilter::all()).unwrap();
    let d = model.cfg.n_embd;
    for l in 0..model.cfg.n_layer {
        let b = |s: &str| caps[&format!("blocks.{l}.{s}")].clone();
        for (sum, (x, f), norm, out) in [
            (
                "ln1",
                (b("hook_resid_pre"), b("hook_attn_out")),
                "self_attn_layer_norm",
                b("ln1.hook_normalized"),
            ),
            (
                "ln2",
                (b("hook_resid_mid"), b("hook_mlp_out")),
                "final_layer_norm",
                b("ln2.hook_normalized"),
            ),
        ] {
            let (w, bias) = ln_params(fx, &format!("layers.{l}.{norm}"));
            let mut want = Vec::with_capacity(x.data.len());
            for t in 0..x.shape[0] {
                let row: Vec<f64> = (0..d)
                    .map(|c| x.data[t * d + c] as f64 + f.data[t * d + c] as f64)
                    .collect();
                let mu = row.iter().sum::<f64>() / d as f64;
                let var = row.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / d as f64;
                let inv = 1.0 / (var + 1e-5).sqrt();
                want.extend((0..d).map(|c| ((row[c] - mu) * inv * w[c] + bias[c]) as f32));
            }
            let want = outlier_probe::tensor::Tensor::new(out.shape.clone(), want);
            let what = format!("{fx} a4 layer {l}: {sum} = LN(stream + branch)");
            check_close(&what, &out, &want, 1e-4);
        }
    }
    // The quantization is really on: the logits moved.
    let q = caps["logits"].clone();
    let e = q.allclose(&r.tensors["logits"], 1e-3, 1e-3);
    assert!(e.is_err(), "4-bit activations left the logits within 1e-3");
}

/// opt-odd-a rewritten into `dir`: config.json edited by `cfg`, each tensor kept, replaced
/// (`Some(values)`) or dropped by `tensor`.
fn rewrite(
    dir: &std::path::Path,
    cfg: impl FnOnce(&mut Value),
    tensor: impl Fn(&str, &[f32]) -> Option<Option<Vec<f32>>>,
) {
    let src = fixtures_dir().join("opt-odd-a");
    std::fs::copy(src.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let mut c: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg(&mut c);
    std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, v) in st.tensors() {
        let vals: Vec<f32> = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let out = match tensor(&name, &vals) {
            None => vals,
            Some(None) => continue,
            Some(Some(new)) => new,
        };
        let raw = out.iter().flat_map(|x| x.to_le_bytes()).collect();
        kept.push((name, v.shape().to_vec(), raw));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = kept
        .iter()
        .map(|(n, s, b)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b);
            (n.clone(), v.unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

/// `layer_norm_elementwise_affine: false` (LayerNorms without tensors) computes what unit weights
/// and zero biases compute; `enable_bias: false` (linear layers without bias tensors) what zero
/// biases compute. Same logits, bit for bit.
#[test]
fn opt_without_affine_norms_or_biases_equals_unit_and_zero_parameters() {
    let r = reference("opt-odd-a", 0);
    let is_norm = |n: &str| n.contains("layer_norm.");
    let is_bias = |n: &str| n.ends_with(".bias") && !is_norm(n);
    for (tag, key, pick) in [
        (
            "affine",
            "layer_norm_elementwise_affine",
            &is_norm as &dyn Fn(&str) -> bool,
        ),
        ("bias", "enable_bias", &is_bias),
    ] {
        let (unit, without) = (
            TempDir::new(&format!("opt-{tag}-unit")),
            TempDir::new(&format!("opt-{tag}-none")),
        );
        rewrite(
            &unit.0,
            |_| {},
            |n, v| {
                pick(n).then(|| {
                    let one = n.ends_with(".weight");
                    Some(vec![if one { 1.0 } else { 0.0 }; v.len()])
                })
            },
        );
        rewrite(
            &without.0,
            |c| c[key] = json!(false),
            |n, _| pick(n).then_some(None),
        );
        let a = outlier_probe::model::Gpt2::load(ctx(), &unit.0).unwrap();
        let b = outlier_probe::model::Gpt2::load(ctx(), &without.0)
            .unwrap_or_else(|e| panic!("{tag}: {e:#}"));
        let (la, lb) = (a.logits(&r.tokens).unwrap(), b.logits(&r.tokens).unwrap());
        assert_eq!(la.data, lb.data, "{tag}");
        let plain = load("opt-odd-a").logits(&r.tokens).unwrap();
        assert_ne!(la.data, plain.data, "{tag}: the parameters mattered");
        // The tensors still there while the config says they are not: refused by name.
        rewrite(&without.0, |c| c[key] = json!(false), |_, _| None);
        let e = match outlier_probe::model::Gpt2::load(ctx(), &without.0) {
            Ok(_) => panic!("{tag}: loaded tensors the config disowns"),
            Err(e) => format!("{e:#}"),
        };
        assert!(e.contains(&format!("{key} = false")), "{tag}: {e}");
    }
}
