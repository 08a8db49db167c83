//! The engine against Hugging Face transformers (PyTorch CPU, eager attention) on random-init
//! GPT-2 models of odd sizes: every hook tensor, logits, greedy generation, KV-cache decoding,
//! batching and the chunked vocabulary path.

mod common;

use common::*;
use outlier_probe::generate::{generate, Sampling};
use outlier_probe::gpu::GpuOptions;
use outlier_probe::hooks::HookFilter;
use outlier_probe::model::{ForwardOptions, Gpt2, LogitsMode};

/// Every hook of the three fixtures against transformers' f32 result, elementwise:
/// |a − b| ≤ T·(median|b| + |b|) (measured worst 1.2e-5, `mlp.hook_post`).
const T: f32 = 1e-4;
/// The logits of the fused, batched and chunked paths (measured worst 4.5e-6).
const T_LOGITS: f32 = 2e-5;

#[test]
fn every_hook_matches_transformers() {
    for fx in FIXTURES {
        assert_all_hooks_match(&load(fx), fx, T);
    }
}

/// With nothing captured the forward pass fuses GELU and the residual adds into the matmuls
/// (GPT-2), and the matvec path takes short prompts: its logits still match transformers,
/// at every position.
#[test]
fn fused_forward_logits_match_transformers() {
    for fx in FIXTURES {
        let model = load(fx);
        for k in 0..3 {
            let r = reference(fx, k);
            let got = model.logits(&r.tokens).unwrap();
            check_close(
                &format!("{fx} ref-{k}: fused logits"),
                &got,
                &r.tensors["logits"],
                T_LOGITS,
            );
        }
    }
}

/// f16 weights (--f16-weights): the blocks' matrices rounded to half precision, f32 math.
/// Every logit stays within |a − b| ≤ 1e-2·(median|b| + |b|) of transformers' f32 result,
/// and the top-1 token agrees at nearly every position; weight memory drops accordingly.
#[test]
fn f16_weights_stay_within_half_precision_tolerance() {
    use outlier_probe::model::LoadOptions;
    // The error is the weights' own f16 rounding, the same on every device (measured worst
    // 5.2e-3, llama-odd-a). Stored f16/bf16 checkpoints round to themselves: 1e-5 (4.8e-6).
    const F16_T: f32 = 1e-2;
    const F16_CKPT_T: f32 = 1e-5;
    let opts = LoadOptions {
        weights: outlier_probe::model::Weights::F16,
    };
    for fx in FIXTURES.iter().copied().chain(["llama-odd-a"]) {
        let dir = fixtures_dir().join(fx);
        let m16 = Gpt2::load_with(ctx(), &dir, &opts).unwrap();
        let m32 = load(fx);
        assert!(
            m16.weight_bytes < m32.weight_bytes,
            "{fx}: f16 saves no memory"
        );
        let (mut agree, mut total) = (0, 0);
        for k in 0..3 {
            let r = reference(fx, k);
            let got = m16.logits(&r.tokens).unwrap();
            let want = &r.tensors["logits"];
            let what = format!("{fx} ref-{k}: f16-weight logits");
            if fx == "gpt2-odd-b" || fx == "gpt2-odd-c" {
                // Stored as f16 / bf16 on disk: both are exact in f16, rounding changes nothing.
                check_close(&what, &got, want, F16_CKPT_T);
            } else {
                check_close(&what, &got, want, F16_T);
                let moved = got.rel_err(want);
                assert!(moved > 1e-6, "{what}: f16 weights had no effect at all");
            }
            let (a, b) = (got.argmax_rows(), want.argmax_rows());
            agree += a.iter().zip(&b).filter(|(x, y)| x == y).count();
            total += b.len();
        }
        assert!(
            agree * 100 >= total * 95,
            "{fx}: top-1 agrees at {agree}/{total}"
        );
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    for fx in FIXTURES {
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
    }
}

/// Prefill a prefix, then decode the rest one token at a time over the KV cache: the logits
/// of every step equal those of one pass over the whole sequence.
#[test]
fn decode_equals_recompute() {
    for fx in ["gpt2-odd-a", "gpt2-odd-c"] {
        let model = load(fx);
        assert_decode_equals_recompute(&model, &reference(fx, 2).tokens, fx);
    }
}

/// Several prompts of different lengths in one batch give each prompt's own results,
/// in prefill and in batched generation.
#[test]
fn batch_equals_single() {
    let fx = "gpt2-odd-b";
    let model = load(fx);
    let refs: Vec<_> = (0..3).map(|k| reference(fx, k)).collect();
    let prompts: Vec<&[u32]> = refs.iter().map(|r| r.tokens.as_slice()).collect();
    let cap = prompts.iter().map(|p| p.len()).max().unwrap();
    let mut sess = model.session(3, cap).unwrap();
    let out = model
        .forward(
            &mut sess,
            &prompts,
            &ForwardOptions {
                logits: LogitsMode::All,
                capture: HookFilter::parse("blocks.*.attn.hook_pattern").unwrap(),
                ..Default::default()
            },
        )
        .unwrap();
    for (k, r) in refs.iter().enumerate() {
        let got = out.logits[k].as_ref().unwrap();
        check_close(
            &format!("batched prompt {k}: logits"),
            got,
            &r.tensors["logits"],
            T_LOGITS,
        );
        let name = "blocks.2.attn.hook_pattern";
        let what = format!("batched prompt {k}: {name}");
        check_close(&what, &out.captures[k][name], &r.tensors[name], T_LOGITS);
    }
    let owned: Vec<Vec<u32>> = refs.iter().map(|r| r.tokens.clone()).collect();
    let s = Sampling {
        max_new_tokens: 6,
        ..Default::default()
    };
    let batched = generate(&model, &owned, &s, |_, _| {}).unwrap();
    for (k, r) in refs.iter().enumerate() {
        assert_eq!(
            batched[k],
            r.generated[..6],
            "batched generation of prompt {k}"
        );
    }
}

/// With a deliberately small storage-binding limit the embedding and the LM head run in
/// vocabulary chunks and row blocks; results must not change.
#[test]
fn small_binding_limit_splits_vocabulary() {
    let fx = "gpt2-odd-a";
    let limited = Gpt2::load(
        ctx_with(&GpuOptions {
            max_binding_override: Some(96 * 1024),
            ..Default::default()
        }),
        &fixtures_dir().join(fx),
    )
    .unwrap();
    assert!(
        limited.vocab_chunks() >= 3,
        "expected several vocabulary chunks, got {}",
        limited.vocab_chunks()
    );
    let refs: Vec<_> = (0..3).map(|k| reference(fx, k)).collect();
    for r in &refs {
        let l = limited.logits(&r.tokens).unwrap();
        check_close(
            "chunked LM head: logits",
            &l,
            &r.tensors["logits"],
            T_LOGITS,
        );
        let caps = limited
            .capture(
                &r.tokens,
                &HookFilter::parse("hook_embed,blocks.0.hook_resid_pre").unwrap(),
            )
            .unwrap();
        for (name, t) in &caps {
            check_close(
                &format!("chunked embedding: {name}"),
                t,
                &r.tensors[name],
                T_LOGITS,
            );
        }
    }
    // Two prompts padded to 42 rows each: 84 rows × 320 vocabulary columns of logits pass the
    // 96 KiB limit, so each chunk's LM head splits into row blocks.
    let refs = [&refs[2], &refs[0]];
    let prompts: Vec<&[u32]> = refs.iter().map(|r| r.tokens.as_slice()).collect();
    let mut sess = limited.session(2, 48).unwrap();
    let out = limited
        .forward(
            &mut sess,
            &prompts,
            &ForwardOptions {
                logits: LogitsMode::All,
                ..Default::default()
            },
        )
        .unwrap();
    for (k, r) in refs.iter().enumerate() {
        let what = format!("chunked, batched prompt {k}: logits");
        check_close(
            &what,
            out.logits[k].as_ref().unwrap(),
            &r.tensors["logits"],
            T_LOGITS,
        );
    }
}

#[test]
fn fixture_tokenizers_match_transformers() {
    for fx in FIXTURES {
        let model = load(fx);
        let tok = model
            .tokenizer
            .as_ref()
            .expect("fixture has tokenizer.json");
        let path = fixtures_dir().join(fx).join("prompts.json");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let list = v
            .as_array()
            .or_else(|| v["prompts"].as_array())
            .expect("a list of prompts");
        assert!(!list.is_empty());
        for p in list {
            let text = p["text"]
                .as_str()
                .or_else(|| p["prompt"].as_str())
                .expect("prompt text");
            let ids: Vec<u32> = p["ids"]
                .as_array()
                .or_else(|| p["tokens"].as_array())
                .expect("ids")
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(tok.encode(text).unwrap(), ids, "{fx}: {text:?}");
            assert_eq!(tok.decode(&ids).unwrap(), text, "{fx}: decode");
        }
    }
}

#[test]
fn gpt2_tokenizer_matches_transformers() {
    let dir = fixtures_dir();
    let tok =
        outlier_probe::tokenizer::Tokenizer::from_file(&dir.join("gpt2-tokenizer.json")).unwrap();
    assert_eq!(tok.vocab_size(), 50257);
    let cases: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("gpt2_tokenizer_ids.json")).unwrap(),
    )
    .unwrap();
    let cases = cases.as_array().expect("list");
    assert!(cases.len() >= 10);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let ids: Vec<u32> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text).unwrap(), ids, "{text:?}");
    }
    assert_eq!(
        tok.encode("Hello world, it's GPT-2!").unwrap(),
        vec![15496, 995, 11, 340, 338, 402, 11571, 12, 17, 0]
    );
}
