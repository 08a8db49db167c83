//! The Llama path (RMSNorm, RoPE, grouped-query attention, SwiGLU) against transformers on
//! random-init models of odd sizes: GQA 6:2 with tied head in f32, and MQA 3:1 with a separate
//! head in bf16 and rope_theta 500000.

mod common;

use std::collections::BTreeMap;

use common::*;
use outlier_probe::config::Arch;
use outlier_probe::generate::{generate, Sampling};
use outlier_probe::hooks::HookFilter;

const LLAMA: [&str; 2] = ["llama-odd-a", "llama-odd-b"];

#[test]
fn every_llama_hook_matches_transformers() {
    for fx in LLAMA {
        let model = load(fx);
        assert_eq!(model.cfg.arch, Arch::Llama);
        let mut worst: BTreeMap<String, f32> = BTreeMap::new();
        for k in 0..3 {
            let r = reference(fx, k);
            let caps = model.capture(&r.tokens, &HookFilter::all()).unwrap();
            let expected: Vec<&String> = r.tensors.keys().collect();
            let got: Vec<&String> = caps.keys().collect();
            assert_eq!(
                got, expected,
                "{fx} ref-{k}: hook names differ from the reference"
            );
            for (name, want) in &r.tensors {
                let have = &caps[name];
                assert_eq!(have.shape, want.shape, "{fx} ref-{k} {name}: shape");
                let e = have.rel_err(want);
                assert!(e <= 1e-4, "{fx} ref-{k} {name}: relative error {e:.2e}");
                let w = worst.entry(kind(name)).or_default();
                *w = w.max(e);
            }
            assert_eq!(
                caps["logits"].argmax_rows(),
                r.tensors["logits"].argmax_rows(),
                "{fx} ref-{k}: top-1"
            );
        }
        eprintln!("max relative error per hook kind, {fx}:");
        for (k, e) in worst {
            eprintln!("  {k:28} {e:.2e}");
        }
    }
}

#[test]
fn llama_greedy_generation_and_decoding() {
    for fx in LLAMA {
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
        // Decode over the cache equals recomputation (RoPE positions and GQA cache layout).
        assert_decode_equals_recompute(&model, &reference(fx, 2).tokens, fx);
    }
}
