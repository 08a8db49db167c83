//! Interventions on the GPU equal the same edits done inside transformers
//! (tools/reference/make_intervention_fixtures.py): each case's specs go through
//! `ppl::resolve`, the path `ppl --intervene 'A;B'` takes.

mod common;

use std::collections::BTreeMap;

use common::*;
use outlier_probe::hooks::HookFilter;
use outlier_probe::intervene::{constant_edits, Spec};
use outlier_probe::model::{ForwardOptions, LogitsMode};
use outlier_probe::tensor::Tensor;

/// Token ids, case name -> specs, and the reference tensors named "<case>.<hook>".
type Cases = (
    Vec<u32>,
    BTreeMap<String, Vec<String>>,
    BTreeMap<String, Tensor>,
);

fn load_cases(fx: &str) -> Cases {
    let dir = fixtures_dir().join(fx);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("interventions.json")).unwrap())
            .unwrap();
    let tokens = j["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let cases = j["cases"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let (_, tensors) =
        outlier_probe::capture_file::read(&dir.join("interventions.safetensors")).unwrap();
    (tokens, cases, tensors)
}

/// Logits and hooks against transformers: |a − b| ≤ T·(median|b| + |b|) elementwise
/// (measured worst 5.2e-6).
const T: f32 = 5e-5;

const CAPTURED: [&str; 3] = [
    "blocks.0.attn.hook_pattern",
    "blocks.1.attn.hook_pattern",
    "blocks.1.hook_resid_post",
];

#[test]
fn edits_and_knockouts_match_transformers() {
    for fx in ["gpt2-odd-a", "gpt2-odd-c"] {
        let model = load(fx);
        let (tokens, cases, refs) = load_cases(fx);
        assert_eq!(cases.len(), 11, "{fx}: cases");
        let plain = model.logits(&tokens).unwrap();
        for (case, specs) in &cases {
            let specs: Vec<Spec> = specs.iter().map(|s| Spec::parse(s).unwrap()).collect();
            let (edits, knockout) =
                outlier_probe::ppl::resolve(&model, &specs, std::slice::from_ref(&tokens), 1)
                    .unwrap();
            let capture = HookFilter::parse(
                &CAPTURED
                    .iter()
                    .filter(|h| refs.contains_key(&format!("{case}.{h}")))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .unwrap();
            let opts = ForwardOptions {
                logits: LogitsMode::All,
                capture,
                edits,
                knockout: knockout.clone(),
            };
            let mut sess = model.session(1, tokens.len()).unwrap();
            let out = model.forward(&mut sess, &[&tokens], &opts).unwrap();
            let logits = out.logits[0].as_ref().unwrap();
            let want = &refs[&format!("{case}.logits")];
            check_close(&format!("{fx} {case}: logits"), logits, want, T);
            // The intervention must matter, or this test proves nothing.
            let moved = logits.rel_err(&plain);
            assert!(
                moved > 1e-3,
                "{fx} {case}: the intervention did not change the logits ({moved:.1e})"
            );
            let mut compared = 0;
            for hook in CAPTURED {
                if let Some(want) = refs.get(&format!("{case}.{hook}")) {
                    let what = format!("{fx} {case}: {hook}");
                    check_close(&what, &out.captures[0][hook], want, T);
                    compared += 1;
                }
            }
            assert!(compared >= 2, "{fx} {case}: hooks missing from the fixture");
            // Where a key is knocked out, no later query of that layer attends to it; in the
            // other layers it is attended as usual.
            for l in 0..2 {
                let p = &out.captures[0][&format!("blocks.{l}.attn.hook_pattern")];
                let t = tokens.len();
                let gone = knockout.as_ref().map(|k| k.keys_in(l)).unwrap_or_default();
                for j in [0, 1, 2, 3, 4, 5] {
                    let seen: f32 = (0..model.cfg.n_head)
                        .flat_map(|h| (j + 1..t).map(move |i| (h * t + i) * t + j))
                        .map(|ix| p.data[ix])
                        .sum();
                    if gone.contains(&j) {
                        assert_eq!(seen, 0.0, "{fx} {case}: layer {l} key {j} still attended");
                    } else {
                        assert!(seen > 0.0, "{fx} {case}: layer {l} key {j} lost");
                    }
                }
            }
        }
    }
}

#[test]
fn bad_edits_are_refused() {
    let model = load("gpt2-odd-a");
    let mut sess = model.session(1, 4).unwrap();
    let spec = Spec::parse("blocks.0.hook_resid_pre:ch=72:zero").unwrap();
    let opts = ForwardOptions {
        edits: constant_edits(&spec, &model.hooks()).unwrap(),
        ..Default::default()
    };
    let e = model.forward(&mut sess, &[&[1, 2, 3]], &opts).unwrap_err();
    assert!(
        format!("{e:#}").contains("channel 72 does not exist"),
        "{e:#}"
    );
    let spec = Spec::parse("blocks.0.attn.hook_pattern:ch=1:zero").unwrap();
    let opts = ForwardOptions {
        edits: constant_edits(&spec, &model.hooks()).unwrap(),
        ..Default::default()
    };
    let e = model.forward(&mut sess, &[&[1, 2, 3]], &opts).unwrap_err();
    assert!(format!("{e:#}").contains("knockout"), "{e:#}");
}
