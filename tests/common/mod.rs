//! Shared test helpers: a GPU context that fails loudly when no adapter exists, the
//! transformers reference fixtures written by tools/reference/make_fixtures.py, and the
//! elementwise comparison every model-level test uses ([`assert_close`]).
#![allow(dead_code)]

mod cli;
mod family;
mod fetch;
#[allow(unused_imports)] // used by the CLI test binaries only
pub use cli::{bin, run};
#[allow(unused_imports)] // used by the architecture test binaries only
pub use family::*;
#[allow(unused_imports)] // used by the real-model test binaries only
pub use fetch::{gemma3_gguf, smollm2_gguf};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::model::Gpt2;
use outlier_probe::tensor::Tensor;
use safetensors::tensor::Dtype;

pub const FIXTURES: [&str; 3] = ["gpt2-odd-a", "gpt2-odd-b", "gpt2-odd-c"];

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A GPU context; panics with install instructions when there is none (tests never skip).
pub fn ctx_with(opts: &GpuOptions) -> Arc<GpuContext> {
    match GpuContext::new(opts) {
        Ok(c) => c,
        Err(e) => panic!(
            "these tests need a GPU adapter and found none: {e:#}\n\
             (on Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1)"
        ),
    }
}

pub fn ctx() -> Arc<GpuContext> {
    ctx_with(&GpuOptions::default())
}

pub fn load(name: &str) -> Gpt2 {
    Gpt2::load(ctx(), &fixtures_dir().join(name))
        .unwrap_or_else(|e| panic!("loading {name}: {e:#}"))
}

/// One reference file: f32 tensors, plus the i64 `tokens` and `generated`.
pub struct Reference {
    pub tokens: Vec<u32>,
    pub generated: Vec<u32>,
    pub tensors: BTreeMap<String, Tensor>,
}

pub fn reference(fixture: &str, k: usize) -> Reference {
    let path = fixtures_dir()
        .join(fixture)
        .join(format!("ref-{k}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid reference file");
    let mut r = Reference {
        tokens: vec![],
        generated: vec![],
        tensors: BTreeMap::new(),
    };
    for (name, v) in st.tensors() {
        match v.dtype() {
            Dtype::I64 => {
                let ids: Vec<u32> = v
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
                    .collect();
                match name.as_str() {
                    "tokens" => r.tokens = ids,
                    "generated" => r.generated = ids,
                    other => panic!("unexpected i64 tensor {other}"),
                }
            }
            Dtype::F32 => {
                let data = v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                r.tensors
                    .insert(name, Tensor::new(v.shape().to_vec(), data));
            }
            other => panic!("unexpected dtype {other:?} for {name}"),
        }
    }
    r
}

/// Hook kind of a name: `blocks.3.attn.hook_q` -> `attn.hook_q`.
pub fn kind(name: &str) -> String {
    match name.strip_prefix("blocks.") {
        Some(rest) => rest
            .split_once('.')
            .map(|x| x.1)
            .unwrap_or(rest)
            .to_string(),
        None => name.to_string(),
    }
}

/// Tolerance of an elementwise comparison: `|a − b| ≤ atol·median|b| + rtol·|b|` (numpy's
/// allclose with atol scaled to the reference's median magnitude, see `Tensor::allclose`).
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub rtol: f32,
    pub atol: f32,
}

/// The same bound for both terms: `|a − b| ≤ t·(median|b| + |b|)`.
pub const fn tol(t: f32) -> Tol {
    Tol { rtol: t, atol: t }
}

/// `got` against the reference `want` under `tol`; panics naming `what` and the worst entry
/// (index, values, margin). Returns the worst entry's ratio |a − b| / allowed (≤ 1); for a
/// [`tol`] bound, ratio × t is the smallest t that would pass.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: Tol) -> f64 {
    match got.allclose(want, tol.rtol, tol.atol) {
        Ok(c) => c.worst_ratio(),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// [`assert_close`] that also prints the worst entry; returns its ratio |a − b| / allowed.
pub fn check_tol(what: &str, got: &Tensor, want: &Tensor, tol: Tol) -> f64 {
    match got.allclose(want, tol.rtol, tol.atol) {
        Ok(c) => {
            if let Some(w) = &c.worst {
                eprintln!(
                    "{what}: worst {w} (rtol {:.0e}, atol {:.0e}·median|b|)",
                    tol.rtol, tol.atol
                );
            }
            c.worst_ratio()
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

/// [`check_tol`] under `tol(t)`; prints and returns the smallest t that would have passed.
pub fn check_close(what: &str, got: &Tensor, want: &Tensor, t: f32) -> f64 {
    let need = check_tol(what, got, want, tol(t)) * t as f64;
    eprintln!("{what}: needs t {need:.2e} (bound {t:.0e})");
    need
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "outlier-probe-test-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bound of [`assert_decode_equals_recompute`].
pub const DECODE_TOL: Tol = tol(DECODE_T);
const DECODE_T: f32 = 1e-5;

/// Prefill the first third of `tokens`, then decode the rest one token at a time over the KV
/// cache: every step's logits must equal those of one pass over the whole sequence, within
/// [`DECODE_TOL`]. Returns the smallest t of a `tol(t)` bound that would have passed.
pub fn assert_decode_equals_recompute(model: &Gpt2, tokens: &[u32], what: &str) -> f64 {
    use outlier_probe::model::{ForwardOptions, LogitsMode};
    let full = model.logits(tokens).unwrap();
    let t = tokens.len();
    let split = (t / 3).max(1);
    let mut sess = model.session(1, t).unwrap();
    let opts = ForwardOptions {
        logits: LogitsMode::Last,
        ..Default::default()
    };
    let mut pos = split - 1;
    let mut worst = 0f64;
    let mut out = model
        .forward(&mut sess, &[&tokens[..split]], &opts)
        .unwrap();
    loop {
        let want = Tensor::new(vec![1, full.shape[1]], full.row(pos).to_vec());
        let r = assert_close(
            &format!("{what}: decode step at position {pos}"),
            out.logits[0].as_ref().unwrap(),
            &want,
            DECODE_TOL,
        );
        worst = worst.max(r * DECODE_T as f64);
        pos += 1;
        if pos == t {
            break;
        }
        out = model
            .forward(&mut sess, &[&tokens[pos..pos + 1]], &opts)
            .unwrap();
    }
    assert_eq!(sess.lens()[0], t);
    eprintln!("{what}: decode vs recompute needs tol {worst:.2e} (bound {DECODE_T:.0e})");
    worst
}

/// Capture every hook of `fixture`'s three reference prompts and compare each with the
/// reference tensor (same names, same shapes, every entry within `tol(t)`, same top-1
/// tokens). Prints and returns, per hook kind, the smallest t that would have passed.
pub fn assert_all_hooks_match(model: &Gpt2, fixture: &str, t: f32) -> BTreeMap<String, f64> {
    use outlier_probe::hooks::HookFilter;
    let mut worst: BTreeMap<String, f64> = BTreeMap::new();
    for k in 0..3 {
        let r = reference(fixture, k);
        let caps = model.capture(&r.tokens, &HookFilter::all()).unwrap();
        let expected: Vec<&String> = r.tensors.keys().collect();
        let got: Vec<&String> = caps.keys().collect();
        assert_eq!(
            got, expected,
            "{fixture} ref-{k}: captured hook names differ from the reference"
        );
        assert_eq!(caps.len(), model.hooks().hooks().len());
        for (name, want) in &r.tensors {
            let have = &caps[name];
            let r = assert_close(&format!("{fixture} ref-{k} {name}"), have, want, tol(t));
            let w = worst.entry(kind(name)).or_default();
            *w = w.max(r * t as f64);
        }
        assert_eq!(
            caps["logits"].argmax_rows(),
            r.tensors["logits"].argmax_rows(),
            "{fixture} ref-{k}: top-1 tokens differ"
        );
    }
    eprintln!("{fixture}: smallest passing t of |a−b| ≤ t·(median|b| + |b|) per hook kind (bound {t:.0e}):");
    for (k, e) in &worst {
        eprintln!("  {k:28} {e:.2e}");
    }
    worst
}
