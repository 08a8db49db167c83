//! The audit rows each GGUF architecture adds (`GgufArch::keys`, src/gguf_config/<arch>.rs), on
//! the fixtures llama.cpp's converter wrote (tests/fixtures/gguf-converted/, gpt-neox-odd-a):
//! each file passes as written; a restricted key with another value, an unknown key of the
//! architecture's namespace and another architecture's key are refused by name; and Gemma 3's
//! layer pattern and soft-capping keys do what llama.cpp does with them.

mod common;
mod gguf_writer;

use common::*;
use gguf_writer::GgufBuilder;
use outlier_probe::gguf::{GgufFile, GgufValue as V};
use outlier_probe::gguf_config::from_gguf;

/// The file at `rel` (under tests/fixtures) read back into a builder (F32 tensors).
fn builder(rel: &str) -> GgufBuilder {
    let g = GgufFile::open(fixtures_dir().join(rel)).unwrap();
    let mut b = GgufBuilder::default();
    for (k, v) in g.metadata() {
        if !k.starts_with("GGUF.") {
            b.set(k, v.clone());
        }
    }
    for t in g.tensors() {
        b.tensor(&t.name, &t.shape(), g.tensor_f32(&t.name).unwrap());
    }
    b
}

fn load(b: &GgufBuilder, tag: &str) -> Result<outlier_probe::config::ModelConfig, String> {
    let d = TempDir::new(&format!("gguf-arch-rows-{tag}"));
    let p = d.0.join("m.gguf");
    b.write(&p);
    let g = GgufFile::open(&p).map_err(|e| format!("{e:#}"))?;
    from_gguf(&g).map_err(|e| format!("{e:#}"))
}

const FILES: &[(&str, &str)] = &[
    ("gguf-converted/qwen2-odd-a.f32.gguf", "qwen2"),
    ("gguf-converted/qwen3-odd-a.f32.gguf", "qwen3"),
    ("gguf-converted/gemma3-odd-a.f32.gguf", "gemma3"),
    ("gpt-neox-odd-a/model-f32.gguf", "gptneox"),
];

#[test]
fn converter_files_pass_and_foreign_or_unknown_keys_are_refused() {
    for (rel, arch) in FILES {
        let base = builder(rel);
        load(&base, arch).unwrap_or_else(|e| panic!("{rel}: {e}"));
        for key in [
            format!("{arch}.mystery_length"),
            "llama.block_count".to_string(),
        ] {
            let mut b = base.clone();
            b.set(&key, V::U32(3));
            let e = load(&b, arch).unwrap_err();
            assert!(e.contains(&key), "{rel} + {key}: {e}");
        }
    }
}

/// Every Restricted row of every architecture's own table: its no-op value is accepted, another
/// value is refused naming the key.
#[test]
fn restricted_own_rows_refuse_other_values() {
    let cases: &[(&str, &str, V, V)] = &[
        (
            "gemma3",
            "gemma3.attention.value_length",
            V::U32(12),
            V::U32(16),
        ),
        (
            "gemma3",
            "gemma3.rope.dimension_count",
            V::U32(12),
            V::U32(6),
        ),
        (
            "gemma3",
            "gemma3.final_logit_softcapping",
            V::F32(0.0),
            V::F32(30.0),
        ),
        (
            "gemma3",
            "gemma3.attn_logit_softcapping",
            V::F32(0.0),
            V::F32(50.0),
        ),
        (
            "gptneox",
            "gptneox.attention.head_count_kv",
            V::U32(3),
            V::U32(1),
        ),
    ];
    for row in outlier_probe::gguf_config::ALL.iter().flat_map(|a| a.keys) {
        if row.handling == outlier_probe::gguf_keys::Handling::Restricted {
            assert!(
                cases.iter().any(|c| c.1 == row.key),
                "restricted row {} has no case",
                row.key
            );
        }
    }
    for (arch, key, good, bad) in cases {
        let rel = FILES.iter().find(|f| f.1 == *arch).unwrap().0;
        let mut b = builder(rel);
        b.set(key, good.clone());
        load(&b, arch).unwrap_or_else(|e| panic!("{key} = {good:?}: {e}"));
        b.set(key, bad.clone());
        let e = load(&b, arch).unwrap_err();
        assert!(e.contains(key), "{key} = {bad:?}: {e}");
    }
}

/// Gemma 3's layer pattern as llama.cpp reads it: absent = every 6th layer full (none of the
/// fixture's 4), an int n = every n-th, one bool per layer as given; a list of the wrong length
/// is refused by name; no window = every layer full; the SWA RoPE base and the linear scaling of
/// the full layers are read.
#[test]
fn gemma3_layer_pattern_and_rope_keys() {
    let base = builder("gguf-converted/gemma3-odd-a.f32.gguf");
    let full = |c: &outlier_probe::config::ModelConfig| -> Vec<usize> {
        (0..c.n_layer).filter(|&l| c.window(l).is_none()).collect()
    };
    let c = load(&base, "pattern-default").unwrap();
    assert_eq!((full(&c), c.window(0)), (vec![], Some(4)));
    assert_eq!(c.attn.rope_local_base_freq, Some(10000.0));
    assert!(
        c.rope_freq_factors.iter().all(|&f| f == 2.0),
        "{:?}",
        c.rope_freq_factors
    );
    assert_eq!(c.attn.query_pre_attn_scalar, Some(12.0));
    let key = "gemma3.attention.sliding_window_pattern";
    let mut b = base.clone();
    b.set(key, V::U32(2));
    assert_eq!(full(&load(&b, "pattern-2").unwrap()), [1, 3]);
    b.set(
        key,
        V::Array([true, false, true, true].map(V::Bool).to_vec()),
    );
    assert_eq!(full(&load(&b, "pattern-bools").unwrap()), [1]);
    b.set(key, V::Array(vec![V::Bool(true); 3]));
    let e = load(&b, "pattern-short").unwrap_err();
    assert!(e.contains(key), "{e}");
    let mut b = base.clone();
    b.remove("gemma3.attention.sliding_window");
    assert_eq!(full(&load(&b, "no-window").unwrap()), [0, 1, 2, 3]);
    let mut b = base.clone();
    b.set("gemma3.rope.freq_base_swa", V::F32(500.0));
    let c = load(&b, "swa-base").unwrap();
    assert_eq!(c.attn.rope_local_base_freq, Some(500.0));
}
