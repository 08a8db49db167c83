//! The checks every architecture's fixture gets beyond its hooks (tests/<family>.rs call them):
//! fused logits, greedy generation with decode against recomputation, a batch against single
//! prompts (prefill captures, logits, batched generation), and a fixture config edited in a
//! temporary directory.

use outlier_probe::config::ModelConfig;
use outlier_probe::generate::{generate, Sampling};
use outlier_probe::hooks::HookFilter;
use outlier_probe::model::{ForwardOptions, Gpt2, LogitsMode};
use serde_json::Value;

use super::*;

/// With nothing captured the residual adds are fused into the matmuls and short prompts take
/// the matvec path: the logits of the three reference prompts still match transformers.
pub fn assert_fused_logits(model: &Gpt2, fx: &str, t: f32) {
    for k in 0..3 {
        let r = reference(fx, k);
        let got = model.logits(&r.tokens).unwrap();
        check_close(
            &format!("{fx} ref-{k}: fused logits"),
            &got,
            &r.tensors["logits"],
            t,
        );
    }
}

/// Greedy generation equals transformers' on the three prompts, and decoding over the KV cache
/// equals recomputation on the longest one.
pub fn assert_greedy_and_decode(model: &Gpt2, fx: &str) {
    for k in 0..3 {
        let r = reference(fx, k);
        let s = Sampling {
            max_new_tokens: r.generated.len(),
            ..Default::default()
        };
        let out = generate(model, std::slice::from_ref(&r.tokens), &s, |_, _| {}).unwrap();
        assert_eq!(out[0], r.generated, "{fx} ref-{k}: greedy continuation");
    }
    assert_decode_equals_recompute(model, &reference(fx, 2).tokens, fx);
}

/// The three prompts in one batch give each prompt's own results: the logits and `hooks`
/// (comma-separated names) in prefill, and the first 6 tokens of batched greedy generation.
pub fn assert_batch_equals_single(model: &Gpt2, fx: &str, hooks: &str, t: f32) {
    let refs: Vec<_> = (0..3).map(|k| reference(fx, k)).collect();
    let prompts: Vec<&[u32]> = refs.iter().map(|r| r.tokens.as_slice()).collect();
    let cap = prompts.iter().map(|p| p.len()).max().unwrap();
    let mut sess = model.session(3, cap).unwrap();
    let opts = ForwardOptions {
        logits: LogitsMode::All,
        capture: HookFilter::parse(hooks).unwrap(),
        ..Default::default()
    };
    let out = model.forward(&mut sess, &prompts, &opts).unwrap();
    for (k, r) in refs.iter().enumerate() {
        let got = out.logits[k].as_ref().unwrap();
        check_close(
            &format!("{fx} batched prompt {k}: logits"),
            got,
            &r.tensors["logits"],
            t,
        );
        for name in hooks.split(',') {
            let what = format!("{fx} batched prompt {k}: {name}");
            check_close(&what, &out.captures[k][name], &r.tensors[name], t);
        }
    }
    let owned: Vec<Vec<u32>> = refs.iter().map(|r| r.tokens.clone()).collect();
    let s = Sampling {
        max_new_tokens: 6,
        ..Default::default()
    };
    let batched = generate(model, &owned, &s, |_, _| {}).unwrap();
    for (k, r) in refs.iter().enumerate() {
        assert_eq!(
            batched[k],
            r.generated[..6],
            "{fx}: batched generation of prompt {k}"
        );
    }
}

/// The fixture's config.json with `edit` applied, parsed from a temporary directory.
pub fn edited_config(
    fx: &str,
    edit: impl FnOnce(&mut Value),
    tag: &str,
) -> Result<ModelConfig, String> {
    let p = fixtures_dir().join(fx).join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    edit(&mut cfg);
    let d = TempDir::new(&format!("{fx}-cfg-{tag}"));
    let p = d.0.join("config.json");
    std::fs::write(&p, cfg.to_string()).unwrap();
    ModelConfig::from_dir_config(&p).map_err(|e| format!("{e:#}"))
}
