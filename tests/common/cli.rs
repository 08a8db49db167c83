//! The `outlier-probe` binary as users script it: one way to start it for every CLI test.

use std::process::Command;

/// The binary with a runtime dir for Mesa, an empty Hugging Face cache (hub names resolve to
/// nothing local) and no backtraces in its messages.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_outlier-probe"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c.env(
        "HF_HOME",
        std::env::temp_dir().join("outlier-probe-test-empty-hf-home"),
    );
    c.env("RUST_BACKTRACE", "0");
    c
}

/// (success, stdout, stderr) of the binary run with `args`.
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out = bin().args(args).output().expect("run outlier-probe");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
