//! A `ModelConfig` from a GGUF file, for each GGUF architecture the engine runs (llama.cpp's
//! `general.architecture` names): one [`GgufArch`] per architecture, in its own file, saying how
//! its metadata becomes a configuration, which keys and tensors it adds to or changes in the
//! audit of [`crate::gguf_keys`], which tensors the forward pass loads and how they map to
//! transformers' names and layout. [`from_gguf`] dispatches on `general.architecture` and audits
//! every key and tensor. File-format layer: depends on config, gguf and gguf_keys; never on
//! wgpu or models.

mod gemma3;
mod gpt_neox;
mod llama;
mod qwen2;
mod qwen3;

use anyhow::{bail, Context, Result};

use crate::config::{Arch, ModelConfig};
use crate::gguf::GgufFile;
use crate::gguf_keys::{KeyRule, TensorRule};

/// A tensor's values and row-major shape.
pub type Values = (Vec<f32>, Vec<usize>);

/// A GGUF architecture: what is specific to files whose `general.architecture` is [`Self::name`].
///
/// The audit looks a key up in [`Self::keys`] first (rows spelled with this architecture's
/// prefix, e.g. `qwen2.attention.sliding_window`), then in the shared table
/// ([`crate::gguf_keys::KEYS`]), whose `llama.*` rows apply to `{name}.*` keys; tensors likewise in
/// [`Self::tensors`], then [`crate::gguf_keys::TENSORS`].
pub struct GgufArch {
    /// `general.architecture` (`"llama"`, `"qwen2"`).
    pub name: &'static str,
    /// The engine's architecture that runs it.
    pub arch: Arch,
    /// Rows for this architecture's own keys, searched before the shared table.
    pub keys: &'static [KeyRule],
    /// Rows for this architecture's own tensors (`blk.N.` names), searched before the shared table.
    pub tensors: &'static [TensorRule],
    /// A Llama-shaped architecture: the shared `llama.*` key rows and the shared tensor rows
    /// apply to it. Otherwise only its own rows speak for `{name}.*` keys and its tensors.
    pub llama_rows: bool,
    /// The configuration from the metadata, before the audit. Errors name the key and the file.
    pub config: fn(&GgufFile, &GgufArch) -> Result<ModelConfig>,
    /// The GGUF tensors the forward pass loads for a configuration: (name, required).
    pub wanted: fn(&ModelConfig) -> Vec<(String, bool)>,
    /// The transformers name of a GGUF tensor (`None` for tensors transformers does not have).
    pub hf_name: fn(&str) -> Option<String>,
    /// A tensor's values and row-major shape in transformers' layout (as transformers' GGUF
    /// loader gives them: Q/K un-permuted for `llama`, …).
    pub tensor_hf: fn(&GgufFile, &str) -> Result<Values>,
}

/// Every GGUF architecture the engine runs.
pub const ALL: &[&GgufArch] = &[
    &llama::SPEC,
    &qwen2::SPEC,
    &gpt_neox::SPEC,
    &gemma3::SPEC,
    &qwen3::SPEC,
];

/// The [`GgufArch`] of `g` (`general.architecture`); an error naming the value, the file and the
/// supported architectures otherwise.
pub fn arch_of(g: &GgufFile) -> Result<&'static GgufArch> {
    let name = g.architecture()?;
    match ALL.iter().find(|a| a.name == name) {
        Some(a) => Ok(a),
        None => bail!(
            "GGUF {}: general.architecture = {name:?} is not supported (supported: {})",
            g.path().display(),
            ALL.iter()
                .map(|a| format!("{:?}", a.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The configuration of a GGUF file, after the audit of every key and tensor in it
/// ([`crate::gguf_keys`]): a key or tensor the engine cannot apply exactly is an error naming
/// it, its value and the file; so is an unsupported `general.architecture`.
pub fn from_gguf(g: &GgufFile) -> Result<ModelConfig> {
    let spec = arch_of(g)?;
    let file = g.path().display().to_string();
    let mut cfg = (spec.config)(g, spec)?;
    cfg.validate()
        .with_context(|| format!("invalid model metadata in {file}"))?;
    let (name, rows) = (spec.name, spec.llama_rows);
    crate::gguf_keys::check_metadata(g, &cfg, (name, spec.keys, rows))?;
    if rows {
        cfg.rope_freq_factors = llama::rope_factors(g, name, cfg.head_dim())?;
    }
    crate::gguf_keys::check_tensors(g, &cfg, (name, spec.tensors, rows), &(spec.wanted)(&cfg))?;
    Ok(cfg)
}
