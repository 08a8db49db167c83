//! Opening a model's files on the host, without a GPU: the configuration, the tokenizer and a
//! weight source, exactly as [`crate::model::Model::load`] reads them before it uploads anything.
//! The loader fuzzer (`examples/fuzz_loaders.rs`) drives the same path.
//! File formats: depends on config, gguf, tokenizers and weights; never on wgpu or models.

use std::path::Path;

use anyhow::{bail, Result};

use crate::config::{Arch, ModelConfig};
use crate::tokenizer::Tokenizer;
use crate::weights::{refuse_pickled, GgufWeights, ShardedWeights, WeightFile, WeightSource};

/// A model's files, parsed and validated, with the weights still in the (mapped) file.
pub struct ModelFiles {
    pub cfg: ModelConfig,
    /// From `tokenizer.json` (absent file: `None`) or from the GGUF metadata.
    pub tokenizer: Option<Tokenizer>,
    /// `model.safetensors` (or its shards) or the GGUF file; tensors are read (and dequantized)
    /// on request.
    pub weights: Box<dyn WeightSource>,
}

impl ModelFiles {
    /// Open `path`: a `.gguf` file (Llama: config from the metadata, tokenizer from
    /// `tokenizer.ggml.*`) or a Hugging Face directory (`config.json`, `model.safetensors` or
    /// the shards of `model.safetensors.index.json`, optional `tokenizer.json`; see
    /// [`weight_source`]).
    ///
    /// # Errors
    /// A missing path, or any file that does not parse or validate; the message names the file
    /// and the field or tensor at fault.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_file() {
            let file = crate::gguf::GgufFile::open(path)?;
            file.check_types()?;
            let cfg = crate::gguf_config::from_gguf(&file)?;
            let tokenizer = crate::gguf_tokenizer::load(&file)?;
            return Ok(Self {
                cfg,
                tokenizer: Some(tokenizer),
                weights: Box::new(GgufWeights::new(file)?),
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

/// The weights of the model at `path`, read on request: a `.gguf` file, or a directory's
/// `model.safetensors`, else its sharded `model.safetensors.index.json` (tensor-name prefixes of
/// `arch`). A path to either of those two files stands for its directory (it is what
/// [`WeightSource::path`] gives).
///
/// # Errors
/// A file that does not open or parse (the message names it); a GGUF tensor of a type that
/// cannot be dequantized (named with its tensor); a directory with only a pickled PyTorch
/// checkpoint (the message gives the command that converts it to safetensors).
pub fn weight_source(path: &Path, arch: Arch) -> Result<Box<dyn WeightSource>> {
    // What `WeightSource::path` of a directory's weights names: back to the directory.
    let name = path.file_name().and_then(|n| n.to_str());
    if path.is_file()
        && matches!(
            name,
            Some("model.safetensors" | "model.safetensors.index.json")
        )
    {
        if let Some(dir) = path.parent() {
            return weight_source(dir, arch);
        }
    }
    if path.is_file() {
        let file = crate::gguf::GgufFile::open(path)?;
        file.check_types()?;
        return Ok(Box::new(GgufWeights::new(file)?));
    }
    let st = path.join("model.safetensors");
    let index = path.join("model.safetensors.index.json");
    let names = arch.weight_names();
    if !st.exists() && index.exists() {
        return Ok(Box::new(ShardedWeights::open(
            &index,
            names.embedding,
            names.prefixes,
        )?));
    }
    if !st.exists() {
        refuse_pickled(path)?;
    }
    Ok(Box::new(WeightFile::open(
        &st,
        names.embedding,
        names.prefixes,
    )?))
}
