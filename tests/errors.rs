//! Bad input gets a clear error naming the file, tensor, shape or limit — never a panic,
//! a wrong answer or a hang.

mod common;

use std::path::Path;

use common::*;
use outlier_probe::generate::{generate, Sampling};
use outlier_probe::gpu::GpuOptions;
use outlier_probe::hooks::HookFilter;
use outlier_probe::model::{ForwardOptions, Gpt2};

const FX: &str = "gpt2-odd-a";

/// A copy of the fixture model directory that a test may break.
fn copy_fixture(tag: &str) -> TempDir {
    let t = TempDir::new(tag);
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixtures_dir().join(FX).join(f), t.0.join(f)).unwrap();
    }
    t
}

fn load_err(dir: &Path) -> String {
    match Gpt2::load(ctx(), dir) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

fn edit_config(dir: &Path, key: &str, value: serde_json::Value) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v[key] = value;
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error message lacks {p:?}: {msg}");
    }
}

#[test]
fn missing_weights_file() {
    let t = copy_fixture("missing");
    std::fs::remove_file(t.0.join("model.safetensors")).unwrap();
    assert_has(&load_err(&t.0), &["model.safetensors"]);
}

#[test]
fn missing_directory() {
    assert_has(
        &load_err(Path::new("/nonexistent/gpt2")),
        &["/nonexistent/gpt2", "does not exist"],
    );
}

#[test]
fn truncated_weights_file() {
    let t = copy_fixture("truncated");
    let p = t.0.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() * 2 / 3]).unwrap();
    assert_has(&load_err(&t.0), &["model.safetensors", "truncated"]);
}

#[test]
fn corrupt_weights_file() {
    let t = copy_fixture("corrupt");
    let p = t.0.join("model.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[8..40].copy_from_slice(b"this is not a JSON header at all");
    std::fs::write(&p, &bytes).unwrap();
    assert_has(
        &load_err(&t.0),
        &["model.safetensors", "not a valid safetensors file"],
    );
    std::fs::write(&p, b"tiny").unwrap();
    assert_has(&load_err(&t.0), &["model.safetensors"]);
}

#[test]
fn missing_tensor_is_named() {
    let t = copy_fixture("missing-tensor");
    let p = t.0.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "h.1.mlp.c_fc.bias")
        .collect();
    assert_eq!(kept.len() + 1, st.len());
    safetensors::serialize_to_file(kept, None, &p).unwrap();
    assert_has(&load_err(&t.0), &["missing tensor", "h.1.mlp.c_fc.bias"]);
}

#[test]
fn config_disagreeing_with_weights_names_both_shapes() {
    let t = copy_fixture("shape");
    edit_config(&t.0, "n_positions", 40.into());
    assert_has(
        &load_err(&t.0),
        &["wpe.weight", "[48, 72]", "[40, 72]", "config.json"],
    );
    let t = copy_fixture("layers");
    edit_config(&t.0, "n_layer", 1.into());
    assert_has(&load_err(&t.0), &["more layers", "n_layer = 1"]);
    let t = copy_fixture("heads");
    edit_config(&t.0, "n_head", 5.into());
    assert_has(
        &load_err(&t.0),
        &["config.json", "n_embd 72 is not a multiple of n_head 5"],
    );
    let t = copy_fixture("vocab");
    edit_config(&t.0, "vocab_size", 2000.into());
    assert_has(&load_err(&t.0), &["wte.weight", "[1021, 72]", "[2000, 72]"]);
}

#[test]
fn prompt_longer_than_n_positions() {
    let m = load(FX);
    let toks: Vec<u32> = (0..49).map(|i| (i * 7 % 1000) as u32).collect();
    let e = format!("{:#}", m.logits(&toks).unwrap_err());
    assert_has(&e, &["49 tokens", "n_positions = 48"]);
    let e = format!(
        "{:#}",
        generate(&m, &[toks], &Sampling::default(), |_, _| {}).unwrap_err()
    );
    assert_has(&e, &["49 tokens", "n_positions = 48"]);
    // Exactly n_positions works, and generation stops at the limit instead of failing.
    let toks: Vec<u32> = (0..46).map(|i| (i * 7 % 1000) as u32).collect();
    let out = generate(
        &m,
        &[toks],
        &Sampling {
            max_new_tokens: 10,
            ..Default::default()
        },
        |_, _| {},
    )
    .unwrap();
    assert_eq!(
        out[0].len(),
        2 + 1,
        "46 prompt tokens + 2 fill the cache; the last sampled token is returned"
    );
}

#[test]
fn empty_prompt() {
    let m = load(FX);
    assert_has(
        &format!("{:#}", m.logits(&[]).unwrap_err()),
        &["empty prompt"],
    );
    assert_has(
        &format!(
            "{:#}",
            generate(&m, &[vec![]], &Sampling::default(), |_, _| {}).unwrap_err()
        ),
        &["empty"],
    );
    let tok = m.tokenizer.as_ref().unwrap();
    assert!(tok.encode("").unwrap().is_empty());
}

#[test]
fn unknown_token_ids() {
    let m = load(FX);
    let e = format!("{:#}", m.logits(&[1, 2, 1021]).unwrap_err());
    assert_has(&e, &["token id 1021", "position 2", "vocab_size 1021"]);
}

#[test]
fn model_larger_than_the_adapter_allows() {
    let ctx = ctx_with(&GpuOptions {
        max_binding_override: Some(8 * 1024),
        ..Default::default()
    });
    let e = match Gpt2::load(ctx, &fixtures_dir().join(FX)) {
        Ok(_) => panic!("must not fit"),
        Err(e) => format!("{e:#}"),
    };
    assert_has(
        &e,
        &[
            "wte.weight",
            "max_storage_buffer_binding_size",
            "8192 bytes",
        ],
    );
}

#[test]
fn capture_that_does_not_fit() {
    // Attention patterns of 3 × 42 rows × 3 heads × 42 keys pass a 96 KiB binding limit.
    let ctx = ctx_with(&GpuOptions {
        max_binding_override: Some(96 * 1024),
        ..Default::default()
    });
    let m = Gpt2::load(ctx, &fixtures_dir().join(FX)).unwrap();
    let r = reference(FX, 2);
    let mut sess = m.session(3, 48).unwrap();
    let p: &[u32] = &r.tokens[..40];
    let e = m
        .forward(
            &mut sess,
            &[p, p, p],
            &ForwardOptions {
                capture: HookFilter::parse("blocks.*.attn.hook_pattern").unwrap(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_has(&format!("{e:#}"), &["max_storage_buffer_binding_size"]);
    // The session is unchanged and still usable after the error.
    assert_eq!(sess.lens(), vec![0, 0, 0]);
    let out = m
        .forward(
            &mut sess,
            &[&p[..4], &p[..4], &p[..4]],
            &ForwardOptions::default(),
        )
        .unwrap();
    assert!(out.logits.iter().all(Option::is_some));
}

#[test]
fn bad_hook_pattern_and_unknown_hooks() {
    assert!(HookFilter::parse("blocks.[.hook").is_err());
    let e = HookFilter::parse("blocks.*.hook_nothing")
        .unwrap()
        .resolve(&outlier_probe::hooks::HookSpace::gpt2(2, 8, 2))
        .unwrap_err();
    assert_has(&format!("{e:#}"), &["select no hook"]);
}

/// Library callers get the same checks as the command line: `forward` refuses a capture glob,
/// an edit position or a knockout key or layer that selects nothing, naming the value and the limit.
#[test]
fn forward_refuses_selectors_that_select_nothing() {
    use outlier_probe::intervene::{HookEdit, Knockout};
    let m = Gpt2::load(ctx(), &fixtures_dir().join(FX)).unwrap();
    let toks: &[u32] = &[1, 2, 3, 4];
    let fail = |opts: ForwardOptions, parts: &[&str]| {
        let mut sess = m.session(1, 8).unwrap();
        let e = m.forward(&mut sess, &[toks], &opts).unwrap_err();
        assert_has(&format!("{e:#}"), parts);
        assert_eq!(sess.lens(), vec![0], "the session moved on a refused pass");
    };
    fail(
        ForwardOptions {
            capture: HookFilter::parse("logits,blocks.0.hook_resid_psot").unwrap(),
            ..Default::default()
        },
        &[
            "'blocks.0.hook_resid_psot'",
            "did you mean 'blocks.0.hook_resid_post'",
        ],
    );
    fail(
        ForwardOptions {
            capture: HookFilter::parse("blocks.2.hook_resid_post").unwrap(),
            ..Default::default()
        },
        &["'blocks.2.hook_resid_post'", "blocks.0 to blocks.1"],
    );
    let edit = |positions| HookEdit {
        hook: "blocks.0.hook_resid_post".into(),
        channels: vec![3],
        positions,
        values: vec![1.0],
    };
    fail(
        ForwardOptions {
            edits: vec![edit(Some(vec![1, 4]))],
            ..Default::default()
        },
        &["position 4", "4 tokens"],
    );
    fail(
        ForwardOptions {
            edits: vec![edit(Some(vec![]))],
            ..Default::default()
        },
        &["empty position list"],
    );
    fail(
        ForwardOptions {
            knockout: Some(Knockout::new(vec![0], Some(vec![2]))),
            ..Default::default()
        },
        &["knockout layer 2", "2 layers"],
    );
    fail(
        ForwardOptions {
            knockout: Some(Knockout::new(vec![4], None)),
            ..Default::default()
        },
        &["knockout key 4", "4 tokens"],
    );
    // A decode step may name positions already in the cache.
    let mut sess = m.session(1, 8).unwrap();
    m.forward(&mut sess, &[toks], &ForwardOptions::default())
        .unwrap();
    let opts = ForwardOptions {
        edits: vec![edit(Some(vec![1]))],
        knockout: Some(Knockout::new(vec![2], Some(vec![1]))),
        ..Default::default()
    };
    m.forward(&mut sess, &[&[5]], &opts).unwrap();
    assert_eq!(sess.lens(), vec![5]);
}
