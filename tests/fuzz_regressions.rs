//! What the loader fuzzer (`examples/fuzz_loaders`) found, and the neighbouring cases read off
//! the same code: each input now gets a clean error naming the file and the field, tensor or
//! limit (these inputs used to panic, overflow or wrap around). Also the CPU-only
//! `ModelFiles::open` the fuzzer drives. No GPU needed.

use std::path::{Path, PathBuf};

use outlier_probe::config::ModelConfig;
use outlier_probe::gguf::{dequantize, GgmlType, GgufFile};
use outlier_probe::model_files::ModelFiles;
use outlier_probe::tokenizer::Tokenizer;
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A temporary directory, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "outlier-probe-fuzzreg-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn err<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error message lacks {p:?}: {msg}");
    }
}

// ------------------------------------------------------------------------------------- GGUF

enum V {
    U32(u32),
    U64(u64),
    F32(f32),
    Str(&'static str),
}

/// A GGUF v3 file: metadata, then tensor infos (name, dims, type, bytes of data actually
/// stored), data 32-aligned.
fn gguf(kvs: &[(&str, V)], tensors: &[(&str, Vec<u64>, GgmlType, usize)]) -> Vec<u8> {
    let s = |out: &mut Vec<u8>, x: &str| {
        out.extend((x.len() as u64).to_le_bytes());
        out.extend(x.as_bytes());
    };
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        s(&mut out, k);
        match v {
            V::U32(x) => {
                out.extend(4u32.to_le_bytes());
                out.extend(x.to_le_bytes());
            }
            V::U64(x) => {
                out.extend(10u32.to_le_bytes());
                out.extend(x.to_le_bytes());
            }
            V::F32(x) => {
                out.extend(6u32.to_le_bytes());
                out.extend(x.to_le_bytes());
            }
            V::Str(x) => {
                out.extend(8u32.to_le_bytes());
                s(&mut out, x);
            }
        }
    }
    let mut offset = 0u64;
    for (name, dims, ty, n) in tensors {
        s(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(ty.0.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset += (*n as u64).div_ceil(32) * 32;
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    out.resize(out.len() + offset as usize, 0);
    out
}

#[test]
fn gguf_dims_claiming_more_than_2_64_bytes() {
    let t = Tmp::new("gguf-dims");
    // F32: (2^62 + 1) × 4 bytes; Q8_0: (2^64 − 32) / 32 blocks × 34 bytes. Used to wrap around
    // and pass the size check, then panic with "capacity overflow" when dequantized.
    for (i, (ty, dim)) in [
        (GgmlType::F32, (1u64 << 62) + 1),
        (GgmlType::Q8_0, u64::MAX - 31),
    ]
    .into_iter()
    .enumerate()
    {
        let p = t.write(
            &format!("dims{i}.gguf"),
            &gguf(&[], &[("blk.0.attn_q.weight", vec![dim], ty, 0)]),
        );
        let e = err(GgufFile::open(&p));
        assert_has(
            &e,
            &[
                &p.display().to_string(),
                "tensor `blk.0.attn_q.weight`",
                &format!("dims [{dim}]"),
                "more than 2^64 bytes; the file has",
            ],
        );
    }
    // Representable but larger than the file.
    let p = t.write(
        "big.gguf",
        &gguf(&[], &[("w", vec![1 << 40], GgmlType::F32, 0)]),
    );
    assert_has(
        &err(GgufFile::open(&p)),
        &[
            "tensor `w`",
            "4398046511104 bytes",
            "runs past the end of the file",
        ],
    );
}

#[test]
fn dequantize_count_beyond_memory_is_an_error() {
    let e = err(dequantize(GgmlType::F32, &[], usize::MAX / 4 + 1));
    assert_has(&e, &["take more than 2^64 bytes, got 0"]);
    let e = err(dequantize(GgmlType::Q8_0, &[0; 34], 64));
    assert_has(&e, &["64 elements of Q8_0 take 68 bytes, got 34"]);
}

#[test]
fn gguf_head_count_near_2_63_does_not_overflow_the_unpermute_check() {
    let t = Tmp::new("gguf-heads");
    let g = gguf(
        &[
            ("general.architecture", V::Str("llama")),
            ("llama.attention.head_count", V::U64(1 << 63)),
        ],
        &[("blk.0.attn_q.weight", vec![2, 4], GgmlType::F32, 32)],
    );
    let p = t.write("heads.gguf", &g);
    let f = GgufFile::open(&p).unwrap();
    let e = err(f.tensor_f32_hf("blk.0.attn_q.weight"));
    assert_has(
        &e,
        &[
            "tensor `blk.0.attn_q.weight` has 4 rows",
            "2 × 9223372036854775808 heads",
        ],
    );
}

fn llama_kvs(head_count: u32, context: u64, d: u64) -> Vec<(&'static str, V)> {
    vec![
        ("general.architecture", V::Str("llama")),
        ("llama.attention.head_count", V::U32(head_count)),
        ("llama.embedding_length", V::U64(d)),
        ("llama.rope.dimension_count", V::U32(16)),
        ("llama.context_length", V::U64(context)),
        ("llama.block_count", V::U32(1)),
        ("llama.feed_forward_length", V::U32(64)),
        ("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
        ("llama.vocab_size", V::U32(10)),
    ]
}

#[test]
fn gguf_config_head_count_0_and_huge_sizes() {
    let t = Tmp::new("gguf-config");
    // head_count 0 with rope.dimension_count: used to divide by zero.
    let p = t.write("h0.gguf", &gguf(&llama_kvs(0, 16, 32), &[]));
    let e = err(outlier_probe::gguf_config::from_gguf(
        &GgufFile::open(&p).unwrap(),
    ));
    assert_has(
        &e,
        &[
            &format!("invalid model metadata in {}", p.display()),
            "n_head is 0",
        ],
    );
    for (ctx, d, want) in [
        (
            1u64 << 40,
            32,
            "n_positions 1099511627776 is over the supported 16777216",
        ),
        (
            16,
            1 << 33,
            "n_embd 8589934592 is over the supported 4294967295",
        ),
    ] {
        let p = t.write("big.gguf", &gguf(&llama_kvs(2, ctx, d), &[]));
        let e = err(outlier_probe::gguf_config::from_gguf(
            &GgufFile::open(&p).unwrap(),
        ));
        assert_has(&e, &[&p.display().to_string(), want]);
    }
    // The seed the fuzzer starts from passes.
    let g = GgufFile::open(fixtures().join("fuzz/tiny-llama.gguf")).unwrap();
    let c = outlier_probe::gguf_config::from_gguf(&g).unwrap();
    assert_eq!(
        (c.n_embd, c.n_head, c.n_kv_head, c.n_positions),
        (32, 2, 1, 32)
    );
}

// ------------------------------------------------------------------------------ tokenizer.json

#[test]
fn tokenizer_json_syntax_errors_inside_decoder() {
    // tokenizers 0.22 panicked ("Helper") on these three fuzzer finds.
    for (f, want) in [
        (
            "tokenizer-decoder-eof.json",
            "EOF while parsing a string at line 1 column 202",
        ),
        (
            "tokenizer-decoder-syntax.json",
            "expected ident at line 1 column 173",
        ),
        (
            "tokenizer-decoder-recursion.json",
            "recursion limit exceeded at line 1 column",
        ),
    ] {
        let p = fixtures().join("fuzz").join(f);
        let e = err(Tokenizer::from_file(&p));
        assert_has(
            &e,
            &[
                &format!("loading tokenizer {}: not valid JSON", p.display()),
                want,
            ],
        );
    }
}

fn tokenizer_with(tag: &str, edit: impl Fn(&mut Value)) -> (Tmp, PathBuf) {
    let text = std::fs::read_to_string(fixtures().join("gpt2-odd-b/tokenizer.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    edit(&mut v);
    let t = Tmp::new(tag);
    let p = t.write("tokenizer.json", v.to_string().as_bytes());
    (t, p)
}

#[test]
fn tokenizer_json_that_tokenizers_would_panic_on() {
    // BPE strips continuing_subword_prefix off each merge's second token by slicing.
    let (_t, p) = tokenizer_with("tok-prefix", |v| {
        v["model"]["continuing_subword_prefix"] = json!("####");
    });
    let e = err(Tokenizer::from_file(&p));
    assert_has(
        &e,
        &[
            &p.display().to_string(),
            "model.merges[0]",
            "shorter than the continuing_subword_prefix \"####\"",
        ],
    );
    // A Precompiled normalizer with a bad charsmap, alone or inside a Sequence.
    for (tag, norm, want) in [
        (
            "tok-pc",
            json!({"type": "Precompiled", "precompiled_charsmap": "AAAA"}),
            "normalizer Precompiled: Cannot parse precompiled_charsmap",
        ),
        (
            "tok-pcseq",
            json!({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Precompiled"}]}),
            "normalizer Precompiled: missing field `precompiled_charsmap`",
        ),
    ] {
        let (_t, p) = tokenizer_with(tag, |v| v["normalizer"] = norm.clone());
        assert_has(
            &err(Tokenizer::from_file(&p)),
            &[&p.display().to_string(), want],
        );
    }
    // The unedited tokenizer still loads through the same checks.
    let (_t, p) = tokenizer_with("tok-ok", |_| {});
    assert_eq!(Tokenizer::from_file(&p).unwrap().vocab_size(), 777);
}

// --------------------------------------------------------------------------------- config.json

fn config_err(fixture: &str, key: &str, value: Value) -> (String, String) {
    let mut v: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(fixture).join("config.json")).unwrap(),
    )
    .unwrap();
    v[key] = value;
    let t = Tmp::new(&format!("cfg-{fixture}-{key}"));
    let p = t.write("config.json", v.to_string().as_bytes());
    (
        err(ModelConfig::from_dir_config(&p)),
        p.display().to_string(),
    )
}

#[test]
fn config_sizes_and_floats_out_of_range() {
    for (fixture, key, value, want) in [
        (
            "gpt2-odd-a",
            "n_embd",
            json!(1u64 << 63),
            "n_embd 9223372036854775808 is over the supported 4294967295",
        ),
        (
            "gpt2-odd-a",
            "n_positions",
            json!(1u64 << 40),
            "n_positions 1099511627776 is over the supported 4294967295",
        ),
        ("gpt2-odd-a", "n_inner", json!(0), "n_inner is 0"),
        (
            "gpt2-odd-a",
            "layer_norm_epsilon",
            json!(1e39),
            "layer_norm_epsilon is inf, not a finite number",
        ),
        (
            "gpt2-odd-a",
            "sigmoid_fixed_t",
            json!(1e300),
            "sigmoid_fixed_t is 1e300; it must lie in [1, 4294967295]",
        ),
        (
            "gpt2-odd-a",
            "sigmoid_fixed_t",
            json!(-3),
            "sigmoid_fixed_t is -3.0; it must lie in [1, 4294967295]",
        ),
        (
            "llama-odd-a",
            "head_dim",
            json!(1u64 << 63),
            "`head_dim` = 9223372036854775808: must equal hidden_size / num_attention_heads",
        ),
        (
            "llama-odd-a",
            "eos_token_id",
            json!(4294967301u64),
            "eos_token_id 4294967301 is not a u32 token id",
        ),
        (
            "llama-odd-a",
            "rope_theta",
            json!(1e39),
            "rope_theta = 1000000000000000000000000000000000000000 and rope_parameters.rope_theta = 10000 disagree",
        ),
        (
            "llama-odd-a",
            "max_position_embeddings",
            json!(1u64 << 30),
            "n_positions 1073741824 is over the supported 16777216",
        ),
        (
            "llama-odd-a",
            "rms_norm_eps",
            json!(-1.0),
            "the normalisation epsilon is -1",
        ),
    ] {
        let (e, path) = config_err(fixture, key, value);
        assert_has(&e, &[&path, want]);
    }
    let (e, path) = config_err("variants/clipped", "clip_eta", json!(1e39));
    assert_has(&e, &[&path, "clip_eta is inf, not a finite number"]);
}

// ------------------------------------------------------------------------------ ModelFiles

#[test]
fn model_files_open_without_a_gpu() {
    let f = ModelFiles::open(&fixtures().join("gpt2-odd-a")).unwrap();
    assert_eq!((f.cfg.n_embd, f.cfg.vocab_size), (72, 1021));
    assert!(f.tokenizer.is_some());
    let names = f.weights.names();
    assert!(names.contains(&"wte.weight".to_string()), "{names:?}");
    assert_eq!(f.weights.tensor("wte.weight").unwrap().shape, [1021, 72]);

    let f = ModelFiles::open(&fixtures().join("fuzz/tiny-llama.gguf")).unwrap();
    let names = f.weights.names();
    assert_eq!(names.len(), 12, "{names:?}");
    for n in &names {
        let t = f.weights.tensor(n).unwrap_or_else(|e| panic!("{n}: {e:#}"));
        assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
    }
    let q = f
        .weights
        .tensor("layers.0.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!(q.shape, [32, 32]);

    let e = err(ModelFiles::open(&fixtures().join("no-such-model")));
    assert_has(&e, &["no-such-model", "does not exist"]);
}
