//! The architectures the engine runs, each one line: its `Arch` key (parsed from config.json's
//! `model_type` or GGUF `general.architecture` in `config`) and the loader of its file in `model/`.
//! Depends on the architecture files only.

use anyhow::Result;

use super::upload::Uploader;
use super::Architecture;
use crate::config::{Arch, ModelConfig};

/// Uploads an architecture's weights and returns its forward pass.
pub(crate) type Loader = fn(&ModelConfig, &mut Uploader) -> Result<Box<dyn Architecture>>;

/// The loader of `arch`'s file.
pub(crate) fn loader(arch: Arch) -> Loader {
    match arch {
        Arch::Gpt2 => super::gpt2::load,
        Arch::Llama => super::llama::load,
        Arch::Qwen2 => super::llama::load, // a Llama block with q/k/v biases (`qkv_bias`)
        Arch::GptNeox => super::gpt_neox::load,
        Arch::Gemma3 => super::gemma3::load,
        Arch::Qwen3 => super::llama::load, // a Llama block with q/k norms (`attn.qk_norm`)
        Arch::Opt => super::opt::load,
    }
}

/// The token embedding's tensor name (without prefix).
pub(crate) fn embedding_name(arch: Arch) -> &'static str {
    arch.weight_names().embedding
}

/// A tensor of layer `n_layer` (one past the last): a checkpoint holding it has more layers
/// than its config says.
pub(crate) fn layer_probe(arch: Arch, n_layer: usize) -> String {
    arch.layer_tensor(n_layer)
}
