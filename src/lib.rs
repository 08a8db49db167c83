//! outlier-probe: GPT-2 in WGSL compute shaders on wgpu, with hook-point capture for the study
//! of systematic outliers (Wang et al., ICLR 2025).
//!
//! ```no_run
//! use outlier_probe::{gpu::{GpuContext, GpuOptions}, model::Gpt2, hooks::HookFilter};
//! # fn main() -> anyhow::Result<()> {
//! let ctx = GpuContext::new(&GpuOptions::default())?;
//! let model = Gpt2::load(ctx, std::path::Path::new("path/to/gpt2"))?;
//! let tokens = model.tokenizer.as_ref().unwrap().encode("Summer is warm. Winter is cold.\n")?;
//! let logits = model.logits(&tokens)?;                       // [T, vocab]
//! let caps = model.capture(&tokens, &HookFilter::parse("blocks.*.hook_resid_post")?)?;
//! println!("{:?} {:?}", logits.shape, caps["blocks.0.hook_resid_post"].shape);
//! # Ok(()) }
//! ```

// Host-side tensors, analyses and report live in the `outlier-probe-core` crate (no wgpu there);
// re-exported so that `outlier_probe::tensor::Tensor`, `outlier_probe::report::…` keep their paths.
pub use outlier_probe_core::{analysis, report, tensor};

pub mod bench;
pub mod capture_file;
pub mod compress;
pub mod config;
pub mod config_fields;
pub mod convert;
pub mod corpus;
pub mod fetch;
pub mod finite;
pub mod generate;
pub mod gguf;
pub mod gguf_keys;
pub mod gguf_tokenizer;
pub mod gpu;
pub mod hooks;
pub mod hub;
pub mod intervene;
pub mod kernels;
pub mod model;
pub mod model_files;
pub mod ppl;
pub mod probe;
pub mod rope;
pub mod select;
pub mod tokenizer;
pub mod weights;
