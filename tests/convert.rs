//! The nanoGPT (paper code) checkpoint converter, on tiny ckpt.pt files with the paper's
//! structure (tools/reference/make_nanogpt_ckpts.py): converted models give PyTorch's logits.

mod common;

use common::*;
use outlier_probe::config::AttnVariant;
use outlier_probe::convert::convert_nanogpt;
use outlier_probe::model::Model;
use outlier_probe::tensor::Tensor;

#[test]
fn converted_checkpoints_give_the_reference_logits() {
    for (name, flag) in [
        ("default", None),
        ("context_scale", None),
        ("attn_bias", Some(AttnVariant::AttnBias)),
    ] {
        let dir = fixtures_dir().join("nanogpt").join(name);
        let exp: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let out = TempDir::new(&format!("convert-{name}"));
        let c = convert_nanogpt(&dir.join("ckpt.pt"), &out.0, flag, None)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(c.variant.name(), name);
        assert_eq!(
            (c.n_layer, c.n_head, c.n_embd, c.vocab_size),
            (2, 2, 16, 61)
        );
        let model = Model::load(ctx(), &out.0).unwrap();
        let tokens: Vec<u32> = exp["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let rows: Vec<f32> = exp["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let want = Tensor::new(vec![tokens.len(), 61], rows);
        let got = model.logits(&tokens).unwrap();
        // |a − b| ≤ t·(median|b| + |b|) elementwise against PyTorch (measured worst 2.1e-6).
        check_close(&format!("{name}: logits"), &got, &want, 2e-5);
    }
}

#[test]
fn ambiguous_or_wrong_variant_is_refused() {
    let dir = fixtures_dir().join("nanogpt");
    let out = TempDir::new("convert-ambiguous");
    let e = convert_nanogpt(&dir.join("attn_bias/ckpt.pt"), &out.0, None, None).unwrap_err();
    assert!(
        format!("{e:#}").contains("--variant context_bias or attn_bias"),
        "{e:#}"
    );
    let e = convert_nanogpt(
        &dir.join("context_scale/ckpt.pt"),
        &out.0,
        Some(AttnVariant::Default),
        None,
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("disagrees"), "{e:#}");
    let e = convert_nanogpt(&dir.join("default/expected.json"), &out.0, None, None).unwrap_err();
    assert!(
        format!("{e:#}").contains("not a torch.save zip archive"),
        "{e:#}"
    );
}
