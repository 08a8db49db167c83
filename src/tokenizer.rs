//! `tokenizer.json` (Hugging Face tokenizers format) for encoding prompts and decoding output.

use std::path::Path;

use anyhow::{anyhow, Result};
use serde_json::Value;

/// A byte-level BPE tokenizer as GPT-2 ships it.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// Load a `tokenizer.json`.
    ///
    /// # Errors
    /// An unreadable file, invalid JSON (with line and column), or a tokenizer the `tokenizers`
    /// crate rejects; each names the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("reading tokenizer {}: {e}", path.display()))?;
        // Parse the JSON first: tokenizers 0.22 panics ("Helper") instead of returning an error
        // when a syntax error (or nesting past serde_json's recursion limit) lies inside the
        // "decoder" object.
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("loading tokenizer {}: not valid JSON: {e}", path.display()))?;
        check_known_panics(&json)
            .map_err(|e| anyhow!("loading tokenizer {}: {e}", path.display()))?;
        let inner: tokenizers::Tokenizer = text
            .parse()
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

/// Reject the `tokenizer.json` contents on which `tokenizers` 0.22 panics instead of returning
/// an error (found by `examples/fuzz_loaders`): the message names the field.
fn check_known_panics(v: &Value) -> std::result::Result<(), String> {
    // A BPE model strips `continuing_subword_prefix` off every merge's second token by slicing.
    let model = v.get("model");
    let prefix = model
        .and_then(|m| m.get("continuing_subword_prefix"))
        .and_then(Value::as_str);
    let merges = model
        .and_then(|m| m.get("merges"))
        .and_then(Value::as_array);
    if let (Some(prefix), Some(merges)) = (prefix, merges) {
        for (i, m) in merges.iter().enumerate() {
            let second = match m {
                Value::String(s) if !s.starts_with("#version") => {
                    let parts: Vec<&str> = s.split(' ').collect();
                    (parts.len() == 2).then(|| parts[1])
                }
                Value::Array(a) if a.len() == 2 => a[1].as_str(),
                _ => None,
            };
            if let Some(b) = second.filter(|b| b.get(prefix.len()..).is_none()) {
                return Err(format!(
                    "model.merges[{i}] {m}: the second token {b:?} is shorter than the continuing_subword_prefix {prefix:?} (or splits a character)"
                ));
            }
        }
    }
    check_precompiled(v.get("normalizer"))
}

/// A `Precompiled` normalizer (also inside a `Sequence`) with an invalid `precompiled_charsmap`
/// panics ("Precompiled"); parse it here the way tokenizers does, from its JSON text.
fn check_precompiled(n: Option<&Value>) -> std::result::Result<(), String> {
    let Some(n) = n else { return Ok(()) };
    match n.get("type").and_then(Value::as_str) {
        Some("Sequence") => {
            let items = n.get("normalizers").and_then(Value::as_array);
            for x in items.into_iter().flatten() {
                check_precompiled(Some(x))?;
            }
        }
        Some("Precompiled") => {
            serde_json::from_str::<tokenizers::normalizers::Precompiled>(&n.to_string())
                .map_err(|e| format!("normalizer Precompiled: {e}"))?;
        }
        _ => {}
    }
    Ok(())
}
