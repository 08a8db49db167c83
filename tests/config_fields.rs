//! The config.json field audit (src/config_fields.rs), one case per row of `COMMON`, `GPT2` and
//! `LLAMA`, on edited copies of the gpt2-odd-a and llama-odd-a configs: applied fields change the
//! config, restricted fields accept their identity value and refuse others, refused and unknown
//! fields are errors naming the field, its value and the file, ignored fields change nothing.
//! CPU only (config parsing); the RoPE and tie_word_embeddings forward checks are in
//! tests/gguf_keys_forward.rs.

mod common;

use std::collections::BTreeSet;

use common::{fixtures_dir, TempDir};
use outlier_probe::config::{AttnVariant, ModelConfig};
use outlier_probe::config_fields::{COMMON, GPT2, LLAMA};
use outlier_probe::gguf_keys::{Handling, KeyRule};
use serde_json::{json, Value};

fn base(fx: &str) -> Value {
    let p = fixtures_dir().join(fx).join("config.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn parse(cfg: &Value, tag: &str) -> (Result<ModelConfig, String>, String) {
    let d = TempDir::new(&format!("cfg-fields-{tag}"));
    let p = d.0.join("config.json");
    std::fs::write(&p, cfg.to_string()).unwrap();
    let r = ModelConfig::from_dir_config(&p).map_err(|e| format!("{e:#}"));
    (r, p.display().to_string())
}

fn ok(cfg: &Value, tag: &str) -> ModelConfig {
    parse(cfg, tag).0.unwrap_or_else(|e| panic!("{tag}: {e}"))
}

fn refused(cfg: &Value, tag: &str, parts: &[&str]) {
    let (r, path) = parse(cfg, tag);
    let e = r
        .err()
        .unwrap_or_else(|| panic!("{tag}: expected an error naming {parts:?}"));
    for p in parts.iter().chain([&path.as_str()]) {
        assert!(e.contains(p), "{tag}: error lacks {p:?}: {e}");
    }
}

fn with(mut cfg: Value, key: &str, v: Value) -> Value {
    cfg[key] = v;
    cfg
}

fn js(c: &ModelConfig) -> String {
    serde_json::to_string(c).unwrap()
}

/// (family fixture, field, accepted values, refused value)
fn restricted() -> Vec<(&'static str, &'static str, Vec<Value>, Value)> {
    vec![
        (
            "gpt2-odd-a",
            "is_encoder_decoder",
            vec![json!(false)],
            json!(true),
        ),
        (
            "gpt2-odd-a",
            "add_cross_attention",
            vec![json!(false)],
            json!(true),
        ),
        (
            "gpt2-odd-a",
            "pruned_heads",
            vec![json!({}), Value::Null],
            json!({"0": [1]}),
        ),
        (
            "gpt2-odd-a",
            "scale_attn_by_inverse_layer_idx",
            vec![json!(false)],
            json!(true),
        ),
        ("gpt2-odd-a", "n_ctx", vec![json!(48)], json!(1024)),
        (
            "llama-odd-a",
            "hidden_act",
            vec![json!("silu")],
            json!("gelu"),
        ),
        (
            "llama-odd-a",
            "head_dim",
            vec![json!(16), Value::Null],
            json!(32),
        ),
        (
            "llama-odd-a",
            "attention_bias",
            vec![json!(false)],
            json!(true),
        ),
        ("llama-odd-a", "mlp_bias", vec![json!(false)], json!(true)),
        (
            "llama-odd-a",
            "partial_rotary_factor",
            vec![json!(1.0)],
            json!(0.5),
        ),
        (
            "llama-odd-a",
            "rope_interleaved",
            vec![json!(false)],
            json!(true),
        ),
    ]
}

fn refused_cases() -> Vec<(&'static str, Value)> {
    vec![
        (
            "quantization_config",
            json!({"quant_method": "gptq", "bits": 4}),
        ),
        (
            "layer_types",
            json!(["full_attention", "sliding_attention"]),
        ),
        ("per_layer_config", json!({})),
    ]
}

/// Applied GPT-2 fields: (field, value, expected projection of the config).
/// (field, value, what the config must then satisfy)
type Applied = Vec<(&'static str, Value, Box<dyn Fn(&ModelConfig) -> bool>)>;

fn gpt2_applied() -> Applied {
    vec![
        (
            "model_type",
            json!("gpt2"),
            Box::new(|c| c.arch == outlier_probe::config::Arch::Gpt2),
        ),
        (
            "vocab_size",
            json!(1500),
            Box::new(|c| c.vocab_size == 1500),
        ),
        ("n_positions", json!(40), Box::new(|c| c.n_positions == 40)),
        (
            "n_embd",
            json!(36),
            Box::new(|c| c.n_embd == 36 && c.head_dim() == 12),
        ),
        ("n_layer", json!(5), Box::new(|c| c.n_layer == 5)),
        (
            "n_head",
            json!(6),
            Box::new(|c| c.n_head == 6 && c.head_dim() == 12),
        ),
        ("n_inner", json!(100), Box::new(|c| c.n_inner == 100)),
        (
            "activation_function",
            json!("gelu"),
            Box::new(|c| c.gelu_exact),
        ),
        (
            "layer_norm_epsilon",
            json!(1e-3),
            Box::new(|c| c.norm_eps == 1e-3),
        ),
        (
            "scale_attn_weights",
            json!(false),
            Box::new(|c| c.attn_scale() == 1.0),
        ),
        (
            "bos_token_id",
            json!(7),
            Box::new(|c| c.bos_token_id == Some(7)),
        ),
        (
            "eos_token_id",
            json!(8),
            Box::new(|c| c.eos_token_id == Some(8)),
        ),
        (
            "tie_word_embeddings",
            json!(false),
            Box::new(|c| !c.tie_embeddings),
        ),
        (
            "attn_variant",
            json!("softmax1"),
            Box::new(|c| c.variant == AttnVariant::Softmax1),
        ),
        (
            "sigmoid_fixed_t",
            json!(32),
            Box::new(|c| c.sigmoid_t == 32),
        ),
    ]
}

fn llama_applied() -> Applied {
    vec![
        (
            "vocab_size",
            json!(1500),
            Box::new(|c| c.vocab_size == 1500),
        ),
        ("hidden_size", json!(48), Box::new(|c| c.n_embd == 48)),
        (
            "intermediate_size",
            json!(64),
            Box::new(|c| c.n_inner == 64),
        ),
        ("num_hidden_layers", json!(4), Box::new(|c| c.n_layer == 4)),
        (
            "num_attention_heads",
            json!(12),
            Box::new(|c| c.n_head == 12 && c.head_dim() == 8),
        ),
        (
            "num_key_value_heads",
            json!(6),
            Box::new(|c| c.n_kv_head == 6),
        ),
        (
            "max_position_embeddings",
            json!(64),
            Box::new(|c| c.n_positions == 64),
        ),
        (
            "rms_norm_eps",
            json!(3e-6),
            Box::new(|c| c.norm_eps == 3e-6),
        ),
        (
            "eos_token_id",
            json!([5, 9]),
            Box::new(|c| c.eos_token_id == Some(5)),
        ),
        (
            "tie_word_embeddings",
            json!(false),
            Box::new(|c| !c.tie_embeddings),
        ),
        (
            "rope_parameters",
            json!({"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}),
            Box::new(|c| c.rope_theta == 10000.0 && c.rope_freq_factors == vec![2.0; 8]),
        ),
        (
            "rope_scaling",
            json!({"type": "linear", "factor": 3.0}),
            Box::new(|c| c.rope_freq_factors == vec![3.0; 8]),
        ),
    ]
}

#[test]
fn every_row_has_a_case() {
    let mut hit: BTreeSet<String> = BTreeSet::new();
    let mut add = |k: &str| {
        hit.insert(k.to_string());
    };
    restricted().iter().for_each(|c| add(c.1));
    refused_cases().iter().for_each(|c| add(c.0));
    gpt2_applied().iter().for_each(|c| add(c.0));
    llama_applied().iter().for_each(|c| add(c.0));
    ignored(GPT2)
        .iter()
        .chain(&ignored(LLAMA))
        .chain(&ignored(COMMON))
        .for_each(|k| add(k));
    for k in ["rope_theta", "clip_gamma", "clip_eta"] {
        add(k); // applied, tested in applied_fields_change_the_config
    }
    let missing: Vec<&str> = COMMON
        .iter()
        .chain(GPT2)
        .chain(LLAMA)
        .map(|r| r.key)
        .filter(|k| !hit.contains(*k))
        .collect();
    assert!(missing.is_empty(), "rows without a case: {missing:?}");
    for (_, k, _, _) in restricted() {
        let r = COMMON
            .iter()
            .chain(GPT2)
            .chain(LLAMA)
            .find(|r| r.key == k)
            .unwrap();
        assert_eq!(r.handling, Handling::Restricted, "{k}");
    }
}

fn ignored(rows: &[KeyRule]) -> Vec<&'static str> {
    rows.iter()
        .filter(|r| r.handling == Handling::Ignored)
        .map(|r| r.key)
        .collect()
}

#[test]
fn applied_fields_change_the_config() {
    for (family, cases) in [
        ("gpt2-odd-a", gpt2_applied()),
        ("llama-odd-a", llama_applied()),
    ] {
        let b = base(family);
        for (i, (key, v, check)) in cases.into_iter().enumerate() {
            let mut cfg = with(b.clone(), key, v.clone());
            if family == "llama-odd-a" && matches!(key, "hidden_size" | "num_attention_heads") {
                cfg["head_dim"] = Value::Null;
            }
            if key == "rope_scaling" {
                cfg.as_object_mut().unwrap().remove("rope_parameters");
            }
            let c = ok(&cfg, &format!("applied-{family}-{i}"));
            assert!(check(&c), "{family} {key} = {v}: not applied: {c:?}");
        }
    }
    // clip_gamma / clip_eta (with the clipped variant) and the legacy top-level rope_theta.
    let mut g = base("gpt2-odd-a");
    g["attn_variant"] = json!("clipped");
    g["clip_gamma"] = json!(-0.03);
    g["clip_eta"] = json!(1.03);
    let c = ok(&g, "applied-clip");
    assert_eq!(
        (c.variant, c.clip_gamma, c.clip_eta),
        (AttnVariant::Clipped, -0.03, 1.03)
    );
    let mut l = base("llama-odd-a");
    l.as_object_mut().unwrap().remove("rope_parameters");
    l["rope_theta"] = json!(250.0);
    assert_eq!(ok(&l, "applied-theta").rope_theta, 250.0);
    // rope_parameters' own rope_theta (transformers 5's place for it) is applied...
    let mut p = base("llama-odd-a");
    p.as_object_mut().unwrap().remove("rope_theta");
    p["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 500.0});
    assert_eq!(ok(&p, "applied-params-theta").rope_theta, 500.0);
    // ...and a top-level rope_theta that disagrees with it is refused, naming both: transformers
    // 5 would read one and transformers 4 the other.
    p["rope_theta"] = json!(250.0);
    refused(
        &p,
        "theta-disagree",
        &[
            "rope_theta = 250",
            "rope_parameters.rope_theta = 500",
            "disagree",
        ],
    );
    // A Llama 3 rope_parameters gives per-pair factors (values checked against transformers'
    // logits in gguf_keys_forward.rs).
    l["rope_parameters"] = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 40});
    let f = ok(&l, "applied-llama3").rope_freq_factors;
    assert_eq!((f.len(), f[0], f[7]), (8, 1.0, 8.0));
}

#[test]
fn restricted_fields_accept_identity_and_refuse_other_values() {
    for (i, (family, key, goods, bad)) in restricted().into_iter().enumerate() {
        let b = base(family);
        let want = js(&ok(&b, &format!("restricted-base-{i}")));
        for (j, g) in goods.into_iter().enumerate() {
            let c = ok(&with(b.clone(), key, g), &format!("restricted-ok-{i}-{j}"));
            assert_eq!(js(&c), want, "{key}: the accepted value changed the config");
        }
        refused(
            &with(b, key, bad.clone()),
            &format!("restricted-bad-{i}"),
            &[key, &bad.to_string()],
        );
    }
}

#[test]
fn refused_and_unknown_fields_are_named() {
    for family in ["gpt2-odd-a", "llama-odd-a"] {
        for (i, (key, v)) in refused_cases().into_iter().enumerate() {
            let cfg = with(base(family), key, v);
            refused(&cfg, &format!("refused-{family}-{i}"), &[key]);
        }
        let cfg = with(base(family), "mystery_field", json!(3));
        refused(
            &cfg,
            &format!("unknown-{family}"),
            &["mystery_field", "= 3", "refused rather than ignored"],
        );
    }
    // A Llama field in a GPT-2 config is unknown there (transformers' GPT2Config ignores it).
    let cfg = with(base("gpt2-odd-a"), "rope_theta", json!(10000.0));
    refused(&cfg, "llama-field-in-gpt2", &["rope_theta"]);
}

#[test]
fn ignored_fields_change_nothing() {
    for (family, rows) in [("gpt2-odd-a", GPT2), ("llama-odd-a", LLAMA)] {
        let b = base(family);
        let want = js(&ok(&b, &format!("ignored-base-{family}")));
        for (i, key) in ignored(rows).into_iter().chain(ignored(COMMON)).enumerate() {
            // Any value; a field transformers types as a bool gets both bools.
            let values = if b[key].is_boolean() {
                vec![json!(true), json!(false)]
            } else {
                vec![json!(0.5), json!("x"), json!({"a": 1})]
            };
            for (j, v) in values.into_iter().enumerate() {
                let c = ok(
                    &with(b.clone(), key, v),
                    &format!("ignored-{family}-{i}-{j}"),
                );
                assert_eq!(js(&c), want, "{family} {key}");
            }
        }
    }
}

#[test]
fn every_fixture_and_zoo_config_passes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    let mut stack = vec![root.join("tests/fixtures"), root.join("zoo")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|f| f == "config.json") {
                ModelConfig::from_dir_config(&p).unwrap_or_else(|e| panic!("{e:#}"));
                n += 1;
            }
        }
    }
    assert!(n >= 10, "only {n} config.json files found");
}
