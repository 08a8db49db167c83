//! Attention variants of Wang et al. 2025 (and softmax-off-by-one, clipped softmax, gated
//! attention) against PyTorch implementations (tools/reference/variants.py), every hook.

mod common;

use common::*;
use outlier_probe::config::AttnVariant;
use outlier_probe::generate::{generate, Sampling};
use outlier_probe::hooks::HookFilter;
use outlier_probe::model::Model;

/// Every hook against PyTorch: |a − b| ≤ T·(median|b| + |b|) elementwise (measured worst
/// 7.1e-6, context_scale).
const T: f32 = 5e-5;

fn load_variant(v: AttnVariant) -> Model {
    Model::load(ctx(), &fixtures_dir().join("variants").join(v.name()))
        .unwrap_or_else(|e| panic!("{}: {e:#}", v.name()))
}

#[test]
fn every_variant_matches_its_pytorch_reference() {
    let base = reference("variants/default", 0);
    for v in AttnVariant::ALL {
        let model = load_variant(v);
        assert_eq!(model.cfg.variant, v);
        let r = reference(&format!("variants/{}", v.name()), 0);
        let caps = model.capture(&r.tokens, &HookFilter::all()).unwrap();
        let expected: Vec<&String> = r.tensors.keys().collect();
        let got: Vec<&String> = caps.keys().collect();
        assert_eq!(got, expected, "{}: hook names", v.name());
        let mut worst = 0f64;
        for (name, want) in &r.tensors {
            let what = format!("{}: {name}", v.name());
            worst = worst.max(assert_close(&what, &caps[name], want, tol(T)) * T as f64);
        }
        if v != AttnVariant::Default {
            // The variant must change the model, or this test proves nothing.
            let moved = caps["logits"].rel_err(&base.tensors["logits"]);
            assert!(
                moved > 1e-3,
                "{}: logits equal the default model's",
                v.name()
            );
        }
        let s = Sampling {
            max_new_tokens: r.generated.len(),
            ..Default::default()
        };
        let out = generate(&model, std::slice::from_ref(&r.tokens), &s, |_, _| {}).unwrap();
        assert_eq!(out[0], r.generated, "{}: greedy continuation", v.name());
        eprintln!("{:14} needs t {worst:.2e} (bound {T:.0e})", v.name());
    }
}

/// With every variant except the paper's sigmoid attention (whose T is the sequence length),
/// decoding over the KV cache equals recomputation.
#[test]
fn variants_decode_equals_recompute() {
    for v in AttnVariant::ALL
        .into_iter()
        .filter(|v| *v != AttnVariant::Sigmoid)
    {
        let model = load_variant(v);
        let r = reference(&format!("variants/{}", v.name()), 0);
        assert_decode_equals_recompute(&model, &r.tokens, v.name());
    }
}

#[test]
fn missing_variant_tensor_is_named() {
    let t = TempDir::new("variant-missing");
    let src = fixtures_dir().join("variants/context_scale");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), t.0.join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "h.1.attn.context_scale.bias")
        .collect();
    safetensors::serialize_to_file(kept, None, &t.0.join("model.safetensors")).unwrap();
    let e = match Model::load(ctx(), &t.0) {
        Ok(_) => panic!("must fail"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("h.1.attn.context_scale.bias"), "{e}");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["attn_variant"] = "nonsense".into();
    std::fs::write(t.0.join("config.json"), cfg.to_string()).unwrap();
    let e = match Model::load(ctx(), &t.0) {
        Ok(_) => panic!("must fail"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("attn_variant 'nonsense'"), "{e}");
}
