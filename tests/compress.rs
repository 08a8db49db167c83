//! The compression study against transformers: each fake-quantization and pruning scheme,
//! applied by the engine to a fixture model, gives the logits that
//! tools/reference/make_quant_fixtures.py computed with the same scheme in PyTorch
//! (tests/fixtures/quant). Then the `compress` command end to end on a zoo model.

mod common;

use outlier_probe::compress::{apply, Protect, Scheme};
use outlier_probe::tensor::Tensor;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    model: String,
    prompt_ids: Vec<u32>,
    scheme: RefScheme,
}

#[derive(serde::Deserialize)]
struct RefScheme {
    w_bits: Option<u32>,
    w_granularity: Option<String>,
    a_bits: Option<u32>,
    prune: Option<f32>,
    protect: Protect,
}

fn logits_of(file: &safetensors::SafeTensors, name: &str) -> Tensor {
    let v = file.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let data: Vec<f32> = v
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::new(v.shape().to_vec(), data)
}

#[test]
fn fake_quant_and_pruning_match_pytorch() {
    let dir = common::fixtures_dir().join("quant");
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 20, "cases.json holds {} cases", cases.len());
    let mut failures = Vec::new();
    for model in ["gpt2-odd-a", "llama-odd-a"] {
        let bytes = std::fs::read(dir.join(format!("{model}.safetensors"))).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let fp32 = logits_of(&file, "fp32.logits");
        let plain = common::load(model);
        let ids = &cases.iter().find(|c| c.model == model).unwrap().prompt_ids;
        let e0 = plain.logits(ids).unwrap().rel_err(&fp32);
        assert!(e0 < 1e-5, "{model}: uncompressed logits differ by {e0:.2e}");
        for c in cases.iter().filter(|c| c.model == model) {
            let s = &c.scheme;
            let scheme = Scheme {
                name: c.name.clone(),
                w_bits: s.w_bits,
                per_channel: s.w_granularity.as_deref() != Some("tensor"),
                a_bits: s.a_bits,
                prune: s.prune,
            };
            let mut m = common::load(model);
            apply(&mut m, &scheme, &s.protect).unwrap_or_else(|e| panic!("{}: {e:#}", c.name));
            let got = m.logits(&c.prompt_ids).unwrap();
            let want = logits_of(&file, &format!("{}.logits", c.name));
            let err = got.rel_err(&want);
            let effect = want.rel_err(&fp32);
            // Weights are quantized identically (up to a last-ulp division); an activation
            // grid can round a value the other way when its input differs by an ulp, which
            // moves it one step: allowed, as long as it stays far below the scheme's effect.
            let tol = if s.a_bits.is_some() {
                (0.05 * effect).max(1e-4)
            } else {
                1e-4
            };
            eprintln!(
                "{model} {:<20} engine vs PyTorch {err:.2e}   (scheme's own effect {effect:.2e}, tol {tol:.1e})",
                c.name
            );
            if err > tol || effect < 1e-3 {
                failures.push(format!(
                    "{model} {}: err {err:.2e}, effect {effect:.2e}",
                    c.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
