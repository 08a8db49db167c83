//! `tokenizer.json` (Hugging Face tokenizers format) for encoding prompts and decoding output.
//!
//! # Special tokens (BOS)
//!
//! Encoding follows the files the way transformers' `tokenizer(text)` (`add_special_tokens=True`)
//! and llama.cpp do: the tokenizer's post-processor (`TemplateProcessing`, `RobertaProcessing`,
//! `BertProcessing`, ..., or for a GGUF the one built from `tokenizer.ggml.add_bos_token` /
//! `add_eos_token`, see [`crate::gguf_tokenizer`]) decides which special tokens go before the text
//! (the *prefix*, e.g. Llama 3's `<|begin_of_text|>`) and after it (the *suffix*, e.g. an EOS a
//! file asks for). GPT-2's `tokenizer.json` (post-processor `ByteLevel`) adds none.
//! [`Tokenizer::encode_with_special`]`(text, false)` leaves them out.
//!
//! Truncation and padding settings stored in a `tokenizer.json` are dropped, as transformers does
//! for a call without `truncation=`/`padding=`: a long text is never cut silently.
//!
//! A `tokenizer_config.json` next to the file is not read (transformers 5 rebuilds the
//! post-processor from its `add_bos_token` only for some tokenizer classes).

use std::path::Path;

use anyhow::{anyhow, Result};
use serde_json::Value;
use tokenizers::{Encoding, Token};

/// A tokenizer with the special tokens its post-processor adds around one text.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    origin: String,
}

/// An id no vocabulary uses, to find where the post-processor puts the text.
const SENTINEL: u32 = u32::MAX;

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
        Self::with_origin(inner, format!("the post-processor of {}", path.display()))
            .map_err(|e| anyhow!("tokenizer {}: {e:#}", path.display()))
    }

    /// Wrap a tokenizer built elsewhere (e.g. from GGUF metadata); its post-processor decides the
    /// special tokens. `origin` says where that post-processor came from, for messages.
    pub fn with_origin(mut inner: tokenizers::Tokenizer, origin: String) -> Result<Self> {
        inner
            .with_truncation(None)
            .map_err(|e| anyhow!("turning truncation off: {e}"))?;
        inner.with_padding(None);
        let (prefix, suffix) = added_around_text(&inner)?;
        Ok(Self {
            inner,
            prefix,
            suffix,
            origin,
        })
    }

    /// Wrap a tokenizer built elsewhere; see [`Tokenizer::with_origin`].
    pub fn from_inner(inner: tokenizers::Tokenizer) -> Result<Self> {
        Self::with_origin(inner, "the tokenizer's post-processor".into())
    }

    /// Token ids of `text` as the model's files ask for it: with the special tokens the
    /// post-processor adds (a BOS for Llama 3 style files, nothing for GPT-2).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with_special(text, true)
    }

    /// Token ids of `text`; `add_special` adds the post-processor's special tokens before
    /// ([`Tokenizer::special_prefix`]) and after ([`Tokenizer::special_suffix`]) the text, as
    /// transformers' `add_special_tokens` does. Special tokens written in the text itself
    /// (`<|begin_of_text|>`) are recognised either way.
    pub fn encode_with_special(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizing {text:?}: {e}"))?;
        let ids = enc.get_ids();
        if !add_special {
            return Ok(ids.to_vec());
        }
        let mut out = Vec::with_capacity(self.prefix.len() + ids.len() + self.suffix.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(ids);
        out.extend_from_slice(&self.suffix);
        Ok(out)
    }

    /// Special tokens put before every text (the BOS), empty when the files ask for none.
    pub fn special_prefix(&self) -> &[u32] {
        &self.prefix
    }

    /// Special tokens put after every text (an EOS some files ask for), usually empty.
    pub fn special_suffix(&self) -> &[u32] {
        &self.suffix
    }

    /// Where the special-token rule comes from (e.g. "GGUF tokenizer.ggml.add_bos_token = true").
    pub fn special_origin(&self) -> &str {
        &self.origin
    }

    /// One line saying which special tokens an encoding with `add_special` gets, e.g.
    /// `BOS <|begin_of_text|> (id 498) added (per the post-processor of …/tokenizer.json)`.
    pub fn describe_special(&self, add_special: bool) -> String {
        let names = |ids: &[u32]| -> String {
            ids.iter()
                .map(|&i| format!("{} (id {i})", self.token_str(i)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let asked = [self.prefix.as_slice(), self.suffix.as_slice()].concat();
        if !add_special {
            return if asked.is_empty() {
                format!("no BOS added (none asked for, per {})", self.origin)
            } else {
                format!(
                    "no BOS added: left out on request ({} asked for, per {})",
                    names(&asked),
                    self.origin
                )
            };
        }
        let mut s = if self.prefix.is_empty() {
            format!("no BOS added (none asked for, per {})", self.origin)
        } else {
            format!("BOS {} added (per {})", names(&self.prefix), self.origin)
        };
        if !self.suffix.is_empty() {
            s.push_str(&format!("; {} appended to prompts", names(&self.suffix)));
        }
        s
    }

    /// Text of `ids` as a reader sees it: special tokens (`<|endoftext|>`, BOS) left out, as
    /// transformers' `decode(ids, skip_special_tokens=True)`. Bytes of a character cut off at the
    /// end come out as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.decode_with_special(ids, false)
    }

    /// Text of `ids`, with the special tokens spelled out when `keep_special`.
    pub fn decode_with_special(&self, ids: &[u32], keep_special: bool) -> Result<String> {
        self.inner
            .decode(ids, !keep_special)
            .map_err(|e| anyhow!("decoding {ids:?}: {e}"))
    }

    /// The string of one token as the model sees it (after byte-level decoding); special tokens
    /// are spelled out (`<|begin_of_text|>`).
    pub fn token_str(&self, id: u32) -> String {
        self.decode_with_special(&[id], true).unwrap_or_default()
    }

    /// Whether `id` is a special token (left out of [`Tokenizer::decode`]).
    pub fn is_special(&self, id: u32) -> bool {
        self.inner
            .id_to_token(id)
            .is_some_and(|t| self.inner.get_added_vocabulary().is_special_token(&t))
    }

    /// Whether `id` is a SentencePiece byte-fallback token (`<0xE2>`): one byte of a character
    /// the vocabulary has no piece for.
    pub fn is_byte_token(&self, id: u32) -> bool {
        self.inner.id_to_token(id).is_some_and(|t| {
            t.len() == 6
                && t.starts_with("<0x")
                && t.ends_with('>')
                && t[3..5].bytes().all(|b| b.is_ascii_hexdigit())
        })
    }

    pub fn token_to_id(&self, tok: &str) -> Option<u32> {
        self.inner.token_to_id(tok)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// The ids the post-processor puts before and after a one-sequence text, found by post-processing
/// a one-token encoding of [`SENTINEL`].
fn added_around_text(inner: &tokenizers::Tokenizer) -> Result<(Vec<u32>, Vec<u32>)> {
    let enc = Encoding::from_tokens(vec![Token::new(SENTINEL, String::new(), (0, 0))], 0);
    let out = inner
        .post_process(enc, None, true)
        .map_err(|e| anyhow!("applying the post-processor: {e}"))?;
    let ids = out.get_ids();
    match ids.iter().position(|&i| i == SENTINEL) {
        Some(k) if ids.iter().filter(|&&i| i == SENTINEL).count() == 1 => {
            Ok((ids[..k].to_vec(), ids[k + 1..].to_vec()))
        }
        _ => Err(anyhow!(
            "the post-processor does not keep the text in one piece: {ids:?}"
        )),
    }
}

/// Streamed decoding: feed generated tokens one at a time and get back only text whose bytes
/// form whole characters, so a character split across tokens (an emoji in three byte-level
/// tokens) prints once, whole, and special tokens never print. The pieces add up to
/// [`Tokenizer::decode`] of all the tokens once [`TextStream::finish`] is called.
///
/// Each step decodes a short window: the tokens since the last point where all text was complete,
/// plus the token before it as context (decoders such as Metaspace treat a sequence's first token
/// differently) — or, when that text ended in SentencePiece byte-fallback tokens (`<0xF0>`) or
/// special tokens, everything from the last token that is neither (a run of bytes is decoded as
/// one; a special token gives no context).
pub struct TextStream<'a> {
    tok: &'a Tokenizer,
    /// Context token(s), then the tokens whose text is not yet all shown.
    window: Vec<u32>,
    /// The decoded text of `window` already shown (context included).
    shown: String,
}

impl<'a> TextStream<'a> {
    /// A stream with nothing decoded yet.
    pub fn new(tok: &'a Tokenizer) -> Self {
        Self {
            tok,
            window: Vec::new(),
            shown: String::new(),
        }
    }

    /// Add one token; returns the text that became complete (often empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.window.push(id);
        let text = self.tok.decode(&self.window)?;
        let Some(tail) = text.strip_prefix(self.shown.as_str()) else {
            // The decoder rewrote earlier text (no common decoder does); wait for more tokens.
            return Ok(String::new());
        };
        // A character whose bytes are not all there yet decodes as a trailing U+FFFD.
        let whole = tail.trim_end_matches('\u{FFFD}');
        let new = whole.to_string();
        if whole.len() == tail.len() {
            // Everything decoded is whole: keep only the last token as context — or, when the
            // text ends in byte-fallback tokens or special tokens, from the last token that is
            // neither. A ByteFallback decoder turns a whole run of bytes into U+FFFDs when any
            // byte of it is invalid, so a run must never be cut; a special token decodes to
            // nothing, and a decoder that strips the text's first space (SentencePiece) would
            // then strip the next token's.
            let keep = self
                .window
                .iter()
                .rposition(|&id| !self.tok.is_byte_token(id) && !self.tok.is_special(id))
                .unwrap_or(0);
            self.window.drain(..keep.min(self.window.len() - 1));
            self.shown = self.tok.decode(&self.window)?;
        } else {
            self.shown.push_str(whole);
        }
        Ok(new)
    }

    /// The text still held back (a character whose bytes never completed comes out as U+FFFD,
    /// as [`Tokenizer::decode`] writes it).
    pub fn finish(self) -> Result<String> {
        let text = self.tok.decode(&self.window)?;
        Ok(text
            .strip_prefix(self.shown.as_str())
            .unwrap_or_default()
            .to_string())
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
