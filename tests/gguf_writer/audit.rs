//! Shared by the GGUF audit tests: load a builder's file through `from_gguf` and check
//! that errors name the key/tensor, its value and the file.

use outlier_probe::config::ModelConfig;
use outlier_probe::gguf::{GgufFile, GgufValue as V};
use outlier_probe::gguf_config::from_gguf;

use super::{tiny_llama, GgufBuilder, TINY};
use crate::common::TempDir;

/// Write `b`, open it and read its config; the error text (with the file path) on failure.
pub fn load(b: &GgufBuilder, tag: &str) -> (Result<ModelConfig, String>, String, TempDir) {
    let dir = TempDir::new(&format!("gguf-keys-{tag}"));
    let path = dir.0.join("model.gguf");
    b.write(&path);
    let r = GgufFile::open(&path)
        .and_then(|g| from_gguf(&g))
        .map_err(|e| format!("{e:#}"));
    (r, path.display().to_string(), dir)
}

pub fn ok(b: &GgufBuilder, tag: &str) -> ModelConfig {
    match load(b, tag).0 {
        Ok(c) => c,
        Err(e) => panic!("{tag}: expected to load, got: {e}"),
    }
}

/// The error, which must name the file and every part.
pub fn refused(b: &GgufBuilder, tag: &str, parts: &[&str]) -> String {
    let (r, path, _d) = load(b, tag);
    let e = match r {
        Ok(_) => panic!("{tag}: expected an error naming {parts:?}"),
        Err(e) => e,
    };
    for p in parts.iter().chain([&path.as_str()]) {
        assert!(e.contains(p), "{tag}: error lacks {p:?}: {e}");
    }
    e
}

pub fn json(c: &ModelConfig) -> String {
    serde_json::to_string(c).unwrap()
}

pub fn tiny() -> GgufBuilder {
    tiny_llama(TINY)
}

/// The head dimension of [`TINY`].
pub const HD: u32 = (TINY.d / TINY.heads) as u32;

/// An array of i32 values.
pub fn i32s(xs: &[i32]) -> V {
    V::Array(xs.iter().map(|&x| V::I32(x)).collect())
}
