//! GGUF reader and GGUF tokenizer against the `gguf` Python package and transformers
//! (fixtures in tests/fixtures/gguf/, written by tools/reference/gguf_blocks.py).
//!
//! The `tiny_*`, `blocks_*` and `corrupt_*` tests need only the committed fixtures. The `real_*`
//! tests read SmolLM2-135M-Instruct.Q4_1.gguf (98 MB, not committed), fetched on first use by
//! tests/common/fetch.rs; they FAIL, with the command to run, when it cannot be had.

mod common;

use std::path::{Path, PathBuf};

use outlier_probe::gguf::{dequantize, hf_name, GgmlType, GgufFile, GgufValue};
use outlier_probe::gguf_tokenizer::{tokenizer_from_gguf, GgufSpecialTokens};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

fn json(name: &str) -> Value {
    let p = fixtures().join(name);
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("parsing {}: {e}", p.display()))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn bits_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// FNV-1a 64 over the little-endian f32 bytes (as gguf_blocks.py computes it).
fn fnv1a64(x: &[f32]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for f in x {
        for b in f.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

fn assert_bits_eq(name: &str, got: &[f32], want: &[u32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i])
        .collect();
    assert!(
        bad.is_empty(),
        "{name}: {} of {} values differ, first at {}: got {} want {}",
        bad.len(),
        got.len(),
        bad[0],
        got[bad[0]],
        f32::from_bits(want[bad[0]])
    );
}

fn unique_tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("outlier-probe-gguf-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

// ---------------------------------------------------------------- blocks

#[test]
fn blocks_match_gguf_package() {
    let blocks = json("blocks.json");
    let blocks = blocks.as_array().unwrap();
    let mut types = std::collections::BTreeSet::new();
    for b in blocks {
        let name = b["name"].as_str().unwrap();
        let ty = GgmlType::from_name(b["type"].as_str().unwrap()).unwrap();
        types.insert(ty.name());
        let raw = hex(b["raw_hex"].as_str().unwrap());
        let n = b["n_elements"].as_u64().unwrap() as usize;
        let got = dequantize(ty, &raw, n).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_bits_eq(name, &got, &bits_of(&b["expected_bits"]));
    }
    for t in ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"] {
        assert!(types.contains(t), "no {t} blocks in blocks.json");
    }
    // Wrong sizes are errors, not panics.
    assert!(dequantize(GgmlType::Q4_1, &[0u8; 19], 32).is_err());
    assert!(dequantize(GgmlType::Q8_0, &[0u8; 34], 31).is_err());
    let e = err_of(dequantize(GgmlType::IQ2_XXS, &[0u8; 66], 256));
    assert!(e.contains("IQ2_XXS"), "{e}");
}

// ---------------------------------------------------------------- tiny synthetic file

fn check_value(key: &str, got: &GgufValue, ty: &str, want: &Value) {
    let rust_ty = match ty {
        "UINT8" => "u8",
        "INT8" => "i8",
        "UINT16" => "u16",
        "INT16" => "i16",
        "UINT32" => "u32",
        "INT32" => "i32",
        "UINT64" => "u64",
        "INT64" => "i64",
        "FLOAT32" => "f32",
        "FLOAT64" => "f64",
        "BOOL" => "bool",
        "STRING" => "string",
        "ARRAY" => "array",
        t => panic!("unknown type {t}"),
    };
    assert_eq!(got.type_name(), rust_ty, "{key}: type");
    match got {
        GgufValue::Array(items) => {
            let want = want.as_array().unwrap();
            assert_eq!(items.len(), want.len(), "{key}: length");
            for (i, (g, w)) in items.iter().zip(want).enumerate() {
                let k = format!("{key}[{i}]");
                check_scalar_or_array(&k, g, w);
            }
        }
        _ => check_scalar_or_array(key, got, want),
    }
}

fn check_scalar_or_array(key: &str, got: &GgufValue, want: &Value) {
    match got {
        GgufValue::Array(items) => {
            let want = want.as_array().unwrap();
            assert_eq!(items.len(), want.len(), "{key}: length");
            for (i, (g, w)) in items.iter().zip(want).enumerate() {
                check_scalar_or_array(&format!("{key}[{i}]"), g, w);
            }
        }
        GgufValue::String(s) => assert_eq!(s, want.as_str().unwrap(), "{key}"),
        GgufValue::Bool(b) => assert_eq!(*b, want.as_bool().unwrap(), "{key}"),
        GgufValue::F32(_) | GgufValue::F64(_) => {
            let g = got.as_f64().unwrap();
            let w = want.as_f64().unwrap();
            assert!((g - w).abs() <= 1e-12 * w.abs(), "{key}: {g} != {w}");
        }
        v => {
            let g = v.as_i128().unwrap();
            let w = want
                .as_i64()
                .map(i128::from)
                .or_else(|| want.as_u64().map(i128::from))
                .unwrap();
            assert_eq!(g, w, "{key}");
        }
    }
}

fn check_tiny(path: &Path, alignment: u64) {
    let g = GgufFile::open(path).unwrap_or_else(|e| panic!("{e:#}"));
    let exp = json("tiny_expected.json");
    assert_eq!(g.version(), 3);
    assert_eq!(g.alignment(), alignment);
    assert_eq!(g.data_offset() % alignment, 0);
    assert_eq!(g.architecture().unwrap(), "llama");
    for (key, m) in exp["metadata"].as_object().unwrap() {
        let v = g
            .get(key)
            .unwrap_or_else(|| panic!("{}: missing {key}", path.display()));
        check_value(key, v, m["type"].as_str().unwrap(), &m["value"]);
    }
    let names: Vec<&str> = g.tensors().iter().map(|t| t.name.as_str()).collect();
    let want_names: Vec<&str> = exp["tensors"]
        .as_object()
        .unwrap()
        .keys()
        .map(|s| s.as_str())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    let mut want_sorted = want_names.clone();
    want_sorted.sort();
    assert_eq!(sorted, want_sorted);
    for (name, t) in exp["tensors"].as_object().unwrap() {
        let info = g.tensor_info(name).unwrap();
        assert_eq!(info.ggml_type.name(), t["type"].as_str().unwrap(), "{name}");
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(info.shape(), shape, "{name}: shape");
        let mut dims = shape.iter().map(|&d| d as u64).collect::<Vec<_>>();
        dims.reverse();
        assert_eq!(info.dims, dims, "{name}: GGUF dims are reversed");
        assert_eq!(info.offset % alignment, 0, "{name}: offset alignment");
        match t.get("expected_bits") {
            Some(bits) => {
                let got = g.tensor_f32(name).unwrap_or_else(|e| panic!("{e:#}"));
                assert_bits_eq(name, &got, &bits_of(bits));
            }
            None => {
                // Q2_K: gguf_kquant_blocks.py recorded the whole tensor's bits.
                let k = json("kquant_blocks.json");
                let entry = k
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| b["name"] == format!("tiny.gguf#{name}"))
                    .unwrap_or_else(|| panic!("{name}: not in kquant_blocks.json"));
                let got = g.tensor_f32(name).unwrap_or_else(|e| panic!("{e:#}"));
                assert_bits_eq(name, &got, &bits_of(&entry["expected_bits"]));
            }
        }
    }
    let e = err_of(g.tensor_f32("no_such_tensor"));
    assert!(e.contains("no_such_tensor"), "{e}");
}

#[test]
fn tiny_file_default_alignment() {
    check_tiny(&fixtures().join("tiny.gguf"), 32);
}

#[test]
fn tiny_file_alignment_64() {
    check_tiny(&fixtures().join("tiny_align64.gguf"), 64);
}

#[test]
fn tiny_typed_getters() {
    let g = GgufFile::open(fixtures().join("tiny.gguf")).unwrap();
    assert_eq!(g.get_u32("llama.block_count").unwrap(), 2);
    assert_eq!(g.get_usize("llama.attention.head_count").unwrap(), 4);
    assert_eq!(g.get_f32("llama.rope.freq_base").unwrap(), 10000.0);
    assert_eq!(g.get_u32("test.u8").unwrap(), 200);
    assert_eq!(g.get_i32("test.i8").unwrap(), -100);
    assert_eq!(g.get_u32("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(g.get_i64("test.i32").unwrap(), -2_000_000_000);
    assert_eq!(g.get_u64("test.u64").unwrap(), (1u64 << 63) + 5);
    assert_eq!(g.get_i64("test.i64").unwrap(), -(1i64 << 62) - 3);
    assert_eq!(g.get_f32("test.f32").unwrap(), 0.1f32);
    assert_eq!(g.get_f64("test.f64").unwrap(), std::f64::consts::PI);
    assert!(g.get_bool("test.bool_true").unwrap());
    assert!(!g.get_bool("test.bool_false").unwrap());
    assert_eq!(g.get_str("test.string").unwrap(), "héllo ✓ world");
    assert_eq!(
        g.get_str_array("test.array_str").unwrap(),
        ["a", "", "ünï", "x y"]
    );
    assert_eq!(g.get_i32_array("test.array_i32").unwrap(), [1, -2, 3]);
    assert_eq!(
        g.get_f32_array("test.array_f32").unwrap(),
        [0.5, -1.25, 1e-3f32]
    );
    assert_eq!(g.get_u32_array("test.array_u8").unwrap(), [0, 255, 7]);
    assert_eq!(g.get_i64_array("test.array_u64").unwrap(), [1, 1 << 40]);
    assert_eq!(
        g.get_bool_array("test.array_bool").unwrap(),
        [true, false, true]
    );
    let nested = g.get_array("test.array_nested_str").unwrap();
    assert_eq!(
        nested[0],
        GgufValue::Array(vec![
            GgufValue::String("p".into()),
            GgufValue::String("q".into())
        ])
    );
    // Errors name the key.
    for (e, key) in [
        (err_of(g.get_u32("llama.no_such_key")), "llama.no_such_key"),
        (err_of(g.get_u32("test.i32")), "test.i32"),
        (err_of(g.get_u32("test.u64")), "test.u64"),
        (err_of(g.get_str("test.u8")), "test.u8"),
        (err_of(g.get_f32("test.string")), "test.string"),
        (err_of(g.get_str_array("test.array_i32")), "test.array_i32"),
        (err_of(g.get_bool("test.array_bool")), "test.array_bool"),
    ] {
        assert!(e.contains(key), "error should name `{key}`: {e}");
        assert!(e.contains("tiny.gguf"), "error should name the file: {e}");
    }
    assert!(err_of(g.get_u32("llama.no_such_key")).contains("missing"));
}

#[test]
fn tiny_tokenizer_matches_transformers() {
    let g = GgufFile::open(fixtures().join("tiny.gguf")).unwrap();
    let tok = tokenizer_from_gguf(&g).unwrap_or_else(|e| panic!("{e:#}"));
    let exp = json("tiny_expected.json");
    for case in exp["tokenizer"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text, false).unwrap();
        assert_eq!(got.get_ids(), want, "{text:?}");
        assert_eq!(tok.decode(&want, false).unwrap(), text, "decode {text:?}");
    }
    let sp = GgufSpecialTokens::from_gguf(&g).unwrap();
    assert_eq!(
        (sp.bos, sp.eos, sp.pad, sp.unk),
        (Some(1), Some(0), Some(259), None)
    );
}

// ---------------------------------------------------------------- versions, corrupt, truncated

fn tiny_bytes() -> Vec<u8> {
    std::fs::read(fixtures().join("tiny.gguf")).unwrap()
}

fn write_tmp(tag: &str, bytes: &[u8]) -> PathBuf {
    let p = unique_tmp(tag).join(format!("{tag}.gguf"));
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn corrupt_versions_and_magic() {
    let mut b = tiny_bytes();
    b[4..8].copy_from_slice(&2u32.to_le_bytes());
    let p = write_tmp("v2", &b);
    let g = GgufFile::open(&p).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(g.version(), 2);
    assert_eq!(g.tensors().len(), 9);

    for (v, msg) in [
        (1u32, "version 1"),
        (4, "unsupported GGUF version 4"),
        (0x0300_0000, "big-endian"),
    ] {
        b[4..8].copy_from_slice(&v.to_le_bytes());
        let p = write_tmp(&format!("v{v}"), &b);
        let e = err_of(GgufFile::open(&p));
        assert!(
            e.contains(msg) && e.contains(&p.display().to_string()),
            "{e}"
        );
    }
    let mut b = tiny_bytes();
    b[0] = b'X';
    let p = write_tmp("magic", &b);
    let e = err_of(GgufFile::open(&p));
    assert!(e.contains("not a GGUF file"), "{e}");
    let e = err_of(GgufFile::open(fixtures().join("does_not_exist.gguf")));
    assert!(e.contains("does_not_exist.gguf"), "{e}");
}

#[test]
fn corrupt_truncated_files_name_file_and_tensor() {
    let b = tiny_bytes();
    let g = GgufFile::open(fixtures().join("tiny.gguf")).unwrap();
    // The tensor whose data ends last.
    let last = g
        .tensors()
        .iter()
        .max_by_key(|t| t.offset + t.n_bytes)
        .unwrap();
    let end = (g.data_offset() + last.offset + last.n_bytes) as usize;
    let p = write_tmp("trunc_data", &b[..end - 1]);
    let e = err_of(GgufFile::open(&p));
    assert!(
        e.contains(&p.display().to_string())
            && e.contains(&last.name)
            && e.contains("past the end"),
        "error should name the file and tensor `{}`: {e}",
        last.name
    );
    // Cut anywhere in the header/metadata/tensor infos: always an error naming the file, no panic.
    let header_end = g.data_offset() as usize;
    let p = unique_tmp("trunc_sweep").join("cut.gguf");
    for cut in (0..header_end).step_by(7) {
        std::fs::write(&p, &b[..cut]).unwrap();
        let e = err_of(GgufFile::open(&p));
        assert!(e.contains(&p.display().to_string()), "cut at {cut}: {e}");
    }
}

#[test]
fn corrupt_huge_counts_are_errors() {
    let b = tiny_bytes();
    // A huge tensor count and metadata count: errors, not allocations.
    for at in [8usize, 16] {
        let mut c = b.clone();
        c[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let p = write_tmp(&format!("huge{at}"), &c);
        let e = err_of(GgufFile::open(&p));
        assert!(e.contains("truncated or corrupt"), "{e}");
    }
    // The first key's length.
    let mut c = b.clone();
    c[24..32].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let p = write_tmp("hugekey", &c);
    assert!(err_of(GgufFile::open(&p)).contains("truncated or corrupt"));
}

#[test]
fn names_map_to_transformers() {
    for (g, h) in [
        ("token_embd.weight", "model.embed_tokens.weight"),
        (
            "blk.0.attn_norm.weight",
            "model.layers.0.input_layernorm.weight",
        ),
        (
            "blk.3.attn_q.weight",
            "model.layers.3.self_attn.q_proj.weight",
        ),
        (
            "blk.3.attn_k.weight",
            "model.layers.3.self_attn.k_proj.weight",
        ),
        (
            "blk.3.attn_v.weight",
            "model.layers.3.self_attn.v_proj.weight",
        ),
        (
            "blk.3.attn_output.weight",
            "model.layers.3.self_attn.o_proj.weight",
        ),
        (
            "blk.29.ffn_norm.weight",
            "model.layers.29.post_attention_layernorm.weight",
        ),
        (
            "blk.29.ffn_gate.weight",
            "model.layers.29.mlp.gate_proj.weight",
        ),
        ("blk.29.ffn_up.weight", "model.layers.29.mlp.up_proj.weight"),
        (
            "blk.29.ffn_down.weight",
            "model.layers.29.mlp.down_proj.weight",
        ),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
    ] {
        assert_eq!(hf_name(g).as_deref(), Some(h), "{g}");
    }
}

// ---------------------------------------------------------------- the real SmolLM2 file

fn real_gguf() -> PathBuf {
    common::smollm2_gguf()
}

fn open_real() -> GgufFile {
    let p = real_gguf();
    GgufFile::open(&p).unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn real_metadata_and_tensor_list() {
    let g = open_real();
    let exp = json("real_expected.json");
    assert_eq!(g.version(), 3);
    assert_eq!(g.alignment(), 32);
    for (key, want) in exp["metadata"].as_object().unwrap() {
        let got = g.get(key).unwrap_or_else(|| panic!("missing {key}"));
        check_scalar_or_array(key, got, want);
    }
    assert_eq!(g.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(g.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(g.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(g.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(g.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert_eq!(
        g.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
        49152
    );
    assert_eq!(
        g.get_str_array("tokenizer.ggml.merges").unwrap().len(),
        48900
    );
    assert_eq!(
        g.tensors().len() as u64,
        exp["tensor_count"].as_u64().unwrap()
    );
    let mut counts = std::collections::BTreeMap::new();
    for t in g.tensors() {
        *counts.entry(t.ggml_type.name()).or_insert(0u64) += 1;
        assert!(hf_name(&t.name).is_some(), "{} has no HF name", t.name);
    }
    for (ty, n) in exp["type_counts"].as_object().unwrap() {
        assert_eq!(counts.get(ty).copied(), n.as_u64(), "{ty} count");
    }
    assert_eq!(
        g.tensor_info("output.weight").is_ok(),
        exp["has_output_weight"].as_bool().unwrap()
    );
    let emb = g.tensor_info("token_embd.weight").unwrap();
    assert_eq!(emb.shape(), [49152, 576]);
    assert_eq!(emb.dims, [576, 49152]);
    assert_eq!(
        g.tensor_info("blk.0.ffn_down.weight").unwrap().shape(),
        [576, 1536]
    );
}

#[test]
fn real_blocks_and_tensors_dequantize_like_gguf_and_transformers() {
    let g = open_real();
    // The real blocks in blocks.json are these bytes of the file.
    for b in json("blocks.json").as_array().unwrap() {
        let name = b["name"].as_str().unwrap();
        let Some((tensor, block)) = name.split_once("#block") else {
            if !name.starts_with("random") {
                let raw = g.tensor_bytes(name).unwrap();
                assert_eq!(raw, hex(b["raw_hex"].as_str().unwrap()), "{name}");
            }
            continue;
        };
        let info = g.tensor_info(tensor).unwrap();
        let size = info.ggml_type.block().unwrap().1 as usize;
        let i: usize = block.parse().unwrap();
        let raw = &g.tensor_bytes(tensor).unwrap()[i * size..(i + 1) * size];
        assert_eq!(raw, hex(b["raw_hex"].as_str().unwrap()), "{name}");
    }
    let exp = json("real_expected.json");
    for (name, h) in exp["hashes"].as_object().unwrap() {
        let w = g.tensor_f32(name).unwrap();
        assert_eq!(
            fnv1a64(&w),
            h["gguf_dequant_fnv1a64"].as_str().unwrap(),
            "{name}: dequantized values differ from gguf.quants.dequantize"
        );
        let (hf, shape) = g.tensor_f32_hf(name).unwrap();
        let want_shape: Vec<usize> = h["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, want_shape, "{name}");
        let row = if shape.len() == 2 { shape[1] } else { 16 };
        assert_bits_eq(name, &hf[..row], &bits_of(&h["first_row_bits"]));
        assert_eq!(
            fnv1a64(&hf),
            h["transformers_fnv1a64"].as_str().unwrap(),
            "{name}: HF-layout tensor differs from the one transformers loads"
        );
    }
    // Q8_0 token embedding (tied lm_head): whole tensor, a few rows against gguf/transformers.
    let emb = g.tensor_f32("token_embd.weight").unwrap();
    assert_eq!(emb.len(), 49152 * 576);
    for (row, bits) in exp["token_embd_rows_bits"].as_object().unwrap() {
        let r: usize = row.parse().unwrap();
        assert_bits_eq(
            &format!("token_embd row {r}"),
            &emb[r * 576..(r + 1) * 576],
            &bits_of(bits),
        );
    }
}

#[test]
fn real_tokenizer_matches_transformers() {
    let g = open_real();
    let t0 = std::time::Instant::now();
    let tok = tokenizer_from_gguf(&g).unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("tokenizer built in {:?}", t0.elapsed());
    let exp = json("tokenizer_ids.json");
    assert_eq!(
        tok.get_vocab_size(true) as u64,
        exp["vocab_size"].as_u64().unwrap()
    );
    let sp = GgufSpecialTokens::from_gguf(&g).unwrap();
    assert_eq!(sp.bos.map(u64::from), exp["bos_token_id"].as_u64());
    assert_eq!(sp.eos.map(u64::from), exp["eos_token_id"].as_u64());
    assert_eq!(sp.add_bos, Some(false));
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
    let mut failures = Vec::new();
    let cases = exp["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text, false).unwrap().get_ids().to_vec();
        if got != want {
            failures.push(format!("{text:?}: got {got:?}, want {want:?}"));
            continue;
        }
        let decoded = tok.decode(&got, false).unwrap();
        assert_eq!(
            decoded,
            case["decoded"].as_str().unwrap(),
            "decode {text:?}"
        );
        assert_eq!(decoded, text, "round trip {text:?}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
