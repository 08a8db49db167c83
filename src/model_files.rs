//! Opening a model's files on the host, without a GPU: the configuration, the tokenizer and a
//! weight source, exactly as [`crate::model::Model::load`] reads them before it uploads anything.
//! The loader fuzzer (`examples/fuzz_loaders.rs`) drives the same path.
//! File formats: depends on config, gguf (and gguf_neox for `gptneox` files), tokenizers and weights; never on wgpu or models.

use std::path::Path;

use anyhow::{bail, Result};

use crate::config::{Arch, ModelConfig};
use crate::tokenizer::Tokenizer;
use crate::weights::{GgufWeights, WeightFile, WeightSource};

/// A model's files, parsed and validated, with the weights still in the (mapped) file.
pub struct ModelFiles {
    pub cfg: ModelConfig,
    /// From `tokenizer.json` (absent file: `None`) or from the GGUF metadata.
    pub tokenizer: Option<Tokenizer>,
    /// `model.safetensors` or the GGUF file; tensors are read (and dequantized) on request.
    pub weights: Box<dyn WeightSource>,
}

impl ModelFiles {
    /// Open `path`: a `.gguf` file (Llama: config from the metadata, tokenizer from
    /// `tokenizer.ggml.*`) or a Hugging Face directory (`config.json` with model_type gpt2 or
    /// llama, `model.safetensors`, optional `tokenizer.json`).
    ///
    /// # Errors
    /// A missing path, or any file that does not parse or validate; the message names the file
    /// and the field or tensor at fault.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_file() {
            let file = crate::gguf::GgufFile::open(path)?;
            if file.architecture()? == "gptneox" {
                let cfg = crate::gguf_neox::gptneox_from_gguf(&file)?;
                let tokenizer = crate::gguf_tokenizer::load(&file)?;
                return Ok(Self {
                    cfg,
                    tokenizer: Some(tokenizer),
                    weights: Box::new(crate::gguf_neox::NeoxGgufWeights::new(file)?),
                });
            }
            let cfg = crate::gguf_config::llama_from_gguf(&file)?;
            let tokenizer = crate::gguf_tokenizer::load(&file)?;
            return Ok(Self {
                cfg,
                tokenizer: Some(tokenizer),
                weights: Box::new(GgufWeights::new(file)),
            });
        }
        if !path.is_dir() {
            bail!("model directory {} does not exist", path.display());
        }
        let cfg = ModelConfig::from_dir_config(&path.join("config.json"))?;
        let tok_path = path.join("tokenizer.json");
        let tokenizer = if tok_path.exists() {
            Some(Tokenizer::from_file(&tok_path)?)
        } else {
            None
        };
        let weights = weight_source(path, cfg.arch)?;
        Ok(Self {
            cfg,
            tokenizer,
            weights,
        })
    }
}

/// The weights of the model at `path` (a `.gguf` file, or a directory's `model.safetensors`
/// with the tensor-name prefixes of `arch`), read on request.
///
/// # Errors
/// A file that does not open or parse; the message names it.
pub fn weight_source(path: &Path, arch: Arch) -> Result<Box<dyn WeightSource>> {
    if path.is_file() {
        let file = crate::gguf::GgufFile::open(path)?;
        if file.architecture()? == "gptneox" {
            return Ok(Box::new(crate::gguf_neox::NeoxGgufWeights::new(file)?));
        }
        return Ok(Box::new(GgufWeights::new(file)));
    }
    let st = path.join("model.safetensors");
    let names = arch.weight_names();
    Ok(Box::new(WeightFile::open(
        &st,
        names.embedding,
        names.prefixes,
    )?))
}
