//! outlier-probe: transformer language models (GPT-2, Llama family) in WGSL compute shaders on
//! wgpu, with hook-point capture, interventions and the analyses of "Systematic Outliers in Large
//! Language Models" (Wang et al., ICLR 2025).
//!
//! ```no_run
//! use outlier_probe::{gpu::{GpuContext, GpuOptions}, hooks::HookFilter, model::Gpt2};
//! # fn main() -> anyhow::Result<()> {
//! let ctx = GpuContext::new(&GpuOptions::default())?;
//! let model = Gpt2::load(ctx, "path/to/gpt2".as_ref())?;
//! let tokens = model.tokenizer.as_ref().unwrap().encode("Summer is warm. Winter is cold.\n")?;
//! let logits = model.logits(&tokens)?;                                   // Tensor [T, vocab]
//! let caps = model.capture(&tokens, &HookFilter::parse("blocks.*.hook_resid_post")?)?;
//! let h5 = &caps["blocks.5.hook_resid_post"];                            // Tensor [T, 768]
//! # let _ = (logits, h5);
//! # Ok(()) }
//! ```
//!
//! Batches and decoding: [`model::Model::session`] holds a KV cache; [`model::Model::forward`]
//! prefills prompts of different lengths in one pass, and later calls with one token per sequence
//! decode over the cache; [`generate::generate`] samples. The API a frontend needs speaks in token
//! ids, [`tensor::Tensor`]s, hook names ([`hooks`]), intervention specs ([`intervene`]) and
//! reports ([`report`], [`probe`], [`ppl`], [`compress`]) — no wgpu type. [`gpu`] and [`kernels`]
//! are the engine's own layers, public for the kernel benchmarks.
//!
//! Layers, lowest first (each uses only those below it; `tests/layering.rs` checks it):
//! data types (tensor, analysis, report — a crate without wgpu — config, hooks, intervene,
//! forward, select) ← file formats (gguf, safetensors weights, tokenizers) ← [`gpu`] ←
//! [`kernels`] (one folder per op) ← [`model`] (one file per architecture) ← studies (probe, ppl,
//! compress, generate, bench) ← frontends (the CLI, examples, bindings).

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
pub mod forward;
pub mod generate;
pub mod gguf;
pub mod gguf_config;
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
pub mod scale;
pub mod select;
pub mod tokenizer;
pub mod weights;
pub mod zoo;
