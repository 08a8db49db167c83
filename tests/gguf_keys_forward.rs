//! Keys that change the computation, applied through the forward pass and compared with
//! transformers: the llama-odd-a fixture written as GGUF (tied head, alignment 64, a stored
//! output.weight), RoPE scaling from GGUF (`rope.scaling.factor`, `rope_freqs.weight`) and from
//! config.json (`rope_parameters` linear / llama3) against tests/fixtures/gguf-keys/rope-refs
//! (tools/reference/make_gguf_key_fixtures.py), and `tie_word_embeddings` against the weights.

mod common;
mod gguf_writer;

use std::path::Path;

use common::*;
use gguf_writer::*;
use outlier_probe::gguf::GgufValue as V;
use outlier_probe::model::Gpt2;
use outlier_probe::tensor::Tensor;

/// numpy-style allclose, |a − b| <= atol + rtol·|b| with atol = rtol · median|b|; reports the
/// worst entry. NaN/inf where the reference is finite fails.
fn assert_allclose(what: &str, got: &Tensor, want: &Tensor, rtol: f32) {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    let mut mags: Vec<f32> = want.data.iter().map(|x| x.abs()).collect();
    mags.sort_by(f32::total_cmp);
    let atol = rtol * mags[mags.len() / 2];
    let (mut worst, mut at) = (0f32, 0usize);
    for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
        let excess = if a.is_finite() || !b.is_finite() {
            (a - b).abs() - (atol + rtol * b.abs())
        } else {
            f32::INFINITY
        };
        if excess > worst || excess.is_nan() {
            worst = if excess.is_nan() {
                f32::INFINITY
            } else {
                excess
            };
            at = i;
        }
    }
    let cols = *want.shape.last().unwrap();
    assert!(
        worst <= 0.0,
        "{what}: not allclose (rtol {rtol}, atol {atol:.2e}); worst at [{}, {}]: got {} want {}",
        at / cols,
        at % cols,
        got.data[at],
        want.data[at]
    );
}

/// Largest |a − b| (to show that a reference differs from the unscaled one).
fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

struct RopeRefs {
    tokens: Vec<u32>,
    linear: Tensor,
    llama3: Tensor,
    rope_freqs: Vec<f32>,
}

fn rope_refs() -> RopeRefs {
    let p = fixtures_dir().join("gguf-keys/rope-refs.safetensors");
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f32s = |n: &str| -> Tensor {
        let v = st.tensor(n).unwrap();
        let data = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Tensor::new(v.shape().to_vec(), data)
    };
    let tokens = st
        .tensor("tokens")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    RopeRefs {
        tokens,
        linear: f32s("logits_linear"),
        llama3: f32s("logits_llama3"),
        rope_freqs: f32s("rope_freqs_llama3").data,
    }
}

fn load_gguf(b: &GgufBuilder, dir: &Path, name: &str) -> Gpt2 {
    let p = dir.join(name);
    b.write(&p);
    Gpt2::load(ctx(), &p).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

#[test]
fn gguf_of_llama_odd_a_matches_transformers() {
    let dir = TempDir::new("gguf-fwd-odd-a");
    let base = odd_a(&fixtures_dir());
    let r = reference("llama-odd-a", 2);
    let want = &r.tensors["logits"];
    let m = load_gguf(&base, &dir.0, "tied.gguf");
    assert!(m.cfg.tie_embeddings && m.cfg.rope_freq_factors.is_empty());
    assert_allclose("tied", &m.logits(&r.tokens).unwrap(), want, 1e-4);
    // general.alignment = 64 moves every tensor; the values must not change.
    let mut b = base.clone();
    b.set("general.alignment", V::U32(64));
    let m = load_gguf(&b, &dir.0, "align64.gguf");
    assert_allclose("alignment 64", &m.logits(&r.tokens).unwrap(), want, 1e-4);
    // A stored output.weight is the head (here a copy of the embeddings: same logits) ...
    let emb = base
        .tensors
        .iter()
        .find(|t| t.0 == "token_embd.weight")
        .unwrap()
        .clone();
    let mut b = base.clone();
    b.tensor("output.weight", &emb.1, emb.2.clone());
    let m = load_gguf(&b, &dir.0, "untied.gguf");
    assert!(!m.cfg.tie_embeddings);
    assert_allclose("output.weight", &m.logits(&r.tokens).unwrap(), want, 1e-4);
    // ... and really is used: a scaled copy scales the logits.
    b.tensor(
        "output.weight",
        &emb.1,
        emb.2.iter().map(|x| 2.0 * x).collect(),
    );
    let m = load_gguf(&b, &dir.0, "untied2.gguf");
    let doubled = Tensor::new(
        want.shape.clone(),
        want.data.iter().map(|x| 2.0 * x).collect(),
    );
    assert_allclose(
        "2 × output.weight",
        &m.logits(&r.tokens).unwrap(),
        &doubled,
        1e-4,
    );
}

#[test]
fn gguf_rope_scaling_matches_transformers() {
    let refs = rope_refs();
    let unscaled = &reference("llama-odd-a", 2).tensors["logits"];
    assert!(max_diff(&refs.linear, unscaled) > 1.0 && max_diff(&refs.llama3, unscaled) > 1.0);
    let dir = TempDir::new("gguf-fwd-rope");
    let base = odd_a(&fixtures_dir());
    // Linear: rope.scaling.factor alone (type defaults to linear, as llama.cpp), or with the type.
    for (i, with_type) in [false, true].into_iter().enumerate() {
        let mut b = base.clone();
        b.set("llama.rope.scaling.factor", V::F32(4.0));
        if with_type {
            b.set("llama.rope.scaling.type", s("linear"));
        }
        let m = load_gguf(&b, &dir.0, &format!("linear{i}.gguf"));
        let got = m.logits(&refs.tokens).unwrap();
        assert_allclose("GGUF linear factor 4", &got, &refs.linear, 1e-4);
    }
    // Llama 3: rope_freqs.weight as convert_hf_to_gguf.py writes it.
    let mut b = base.clone();
    b.tensor(
        "rope_freqs.weight",
        &[refs.rope_freqs.len()],
        refs.rope_freqs.clone(),
    );
    let m = load_gguf(&b, &dir.0, "llama3.gguf");
    assert_allclose(
        "GGUF rope_freqs (llama3)",
        &m.logits(&refs.tokens).unwrap(),
        &refs.llama3,
        1e-4,
    );
}

/// A copy of a fixture directory with its config.json edited by `edit`.
fn fixture_copy(fx: &str, tag: &str, edit: impl FnOnce(&mut serde_json::Value)) -> TempDir {
    let t = TempDir::new(tag);
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixtures_dir().join(fx).join(f), t.0.join(f)).unwrap();
    }
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join(fx).join("config.json")).unwrap(),
    )
    .unwrap();
    edit(&mut cfg);
    std::fs::write(t.0.join("config.json"), cfg.to_string()).unwrap();
    t
}

#[test]
fn config_json_rope_parameters_match_transformers() {
    let refs = rope_refs();
    let cases = [
        (
            serde_json::json!({"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}),
            &refs.linear,
            "linear",
        ),
        (
            serde_json::json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 40, "rope_theta": 10000.0}),
            &refs.llama3,
            "llama3",
        ),
    ];
    for (rope, want, name) in cases {
        let d = fixture_copy("llama-odd-a", &format!("cfg-rope-{name}"), |c| {
            c["rope_parameters"] = rope.clone();
        });
        let m = Gpt2::load(ctx(), &d.0).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_allclose(name, &m.logits(&refs.tokens).unwrap(), want, 1e-4);
        // The legacy spelling (rope_scaling, no rope_parameters) gives the same model.
        let d = fixture_copy("llama-odd-a", &format!("cfg-rope-legacy-{name}"), |c| {
            c.as_object_mut().unwrap().remove("rope_parameters");
            c["rope_scaling"] = rope.clone();
        });
        let m2 = Gpt2::load(ctx(), &d.0).unwrap_or_else(|e| panic!("{name} legacy: {e:#}"));
        assert_eq!(m2.cfg.rope_freq_factors, m.cfg.rope_freq_factors, "{name}");
    }
}

#[test]
fn tie_word_embeddings_is_applied_or_refused() {
    let err = |d: &TempDir| match Gpt2::load(ctx(), &d.0) {
        Ok(_) => panic!("{} should not load", d.0.display()),
        Err(e) => format!("{e:#}"),
    };
    // GPT-2 (no lm_head stored) declared untied: the head is missing.
    let d = fixture_copy("gpt2-odd-a", "tie-gpt2-false", |c| {
        c["tie_word_embeddings"] = false.into()
    });
    let e = err(&d);
    assert!(
        e.contains("lm_head.weight") && e.contains("tie_word_embeddings = false"),
        "{e}"
    );
    // Llama with a separate head declared tied: transformers would drop the stored head.
    let d = fixture_copy("llama-odd-b", "tie-llama-true", |c| {
        c["tie_word_embeddings"] = true.into()
    });
    let e = err(&d);
    assert!(
        e.contains("lm_head.weight") && e.contains("tie_word_embeddings = true"),
        "{e}"
    );
    // gpt2-odd-c stores lm_head = wte byte for byte: tied either way, loads.
    let d = fixture_copy("gpt2-odd-c", "tie-gpt2-c", |_| {});
    Gpt2::load(ctx(), &d.0).unwrap_or_else(|e| panic!("{e:#}"));
}
