//! Shared test helpers: a GPU context that fails loudly when no adapter exists, and the
//! transformers reference fixtures written by tools/reference/make_fixtures.py.
#![allow(dead_code)]

mod fetch;
#[allow(unused_imports)] // used by the real-model test binaries only
pub use fetch::smollm2_gguf;

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

/// Prefill the first third of `tokens`, then decode the rest one token at a time over the KV
/// cache: every step's logits must equal those of one pass over the whole sequence.
pub fn assert_decode_equals_recompute(model: &Gpt2, tokens: &[u32], what: &str) {
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
    let mut out = model
        .forward(&mut sess, &[&tokens[..split]], &opts)
        .unwrap();
    loop {
        let want = Tensor::new(vec![1, full.shape[1]], full.row(pos).to_vec());
        let e = out.logits[0].as_ref().unwrap().rel_err(&want);
        assert!(
            e <= 1e-5,
            "{what}: decode step at position {pos}: relative error {e:.2e}"
        );
        pos += 1;
        if pos == t {
            break;
        }
        out = model
            .forward(&mut sess, &[&tokens[pos..pos + 1]], &opts)
            .unwrap();
    }
    assert_eq!(sess.lens[0], t);
}

/// Capture every hook of `fixture`'s three reference prompts and compare each with the
/// reference tensor (same names, same shapes, relative error ≤ `tol`, same top-1 tokens).
/// Prints and returns the worst error per hook kind.
pub fn assert_all_hooks_match(model: &Gpt2, fixture: &str, tol: f32) -> BTreeMap<String, f32> {
    use outlier_probe::hooks::HookFilter;
    let mut worst: BTreeMap<String, f32> = BTreeMap::new();
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
            assert_eq!(have.shape, want.shape, "{fixture} ref-{k} {name}: shape");
            let e = have.rel_err(want);
            assert!(
                e <= tol,
                "{fixture} ref-{k} {name}: relative error {e:.2e} > {tol:.0e}"
            );
            let w = worst.entry(kind(name)).or_default();
            *w = w.max(e);
        }
        assert_eq!(
            caps["logits"].argmax_rows(),
            r.tensors["logits"].argmax_rows(),
            "{fixture} ref-{k}: top-1 tokens differ"
        );
    }
    eprintln!("max relative error per hook kind, {fixture}:");
    for (k, e) in &worst {
        eprintln!("  {k:28} {e:.2e}");
    }
    worst
}
