//! `tokenizer.json` (Hugging Face tokenizers format) for encoding prompts and decoding output.

use std::path::Path;

use anyhow::{anyhow, Result};

/// A byte-level BPE tokenizer as GPT-2 ships it.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| anyhow!("loading tokenizer {}: {e}", path.display()))?;
        Ok(Self { inner })
    }

    /// Token ids of `text`, without special tokens added (GPT-2 adds none).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizing {text:?}: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| anyhow!("decoding {ids:?}: {e}"))
    }

    /// The string of one token (as the model sees it, after byte-level decoding).
    pub fn token_str(&self, id: u32) -> String {
        self.decode(&[id]).unwrap_or_default()
    }

    pub fn token_to_id(&self, tok: &str) -> Option<u32> {
        self.inner.token_to_id(tok)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

impl Tokenizer {
    /// Wrap a tokenizer built elsewhere (e.g. from GGUF metadata).
    pub fn from_inner(inner: tokenizers::Tokenizer) -> Self {
        Self { inner }
    }
}
