//! The SentencePiece (`tokenizer.ggml.model = "llama"`) half of [`super`]: the BPE model with
//! byte fallback that transformers (`integrations/gguf/gguf_tokenizer_mapping.py`,
//! `sentencepiece_tokenizer` / `gemma_tokenizer` / `phi3_tokenizer`, with `LlamaTokenizer` and
//! `GemmaTokenizer`) rebuilds from the pieces, and the merges it derives from their scores
//! (`tokenization_utils_base.generate_merges`). See the module docs of [`super`].
//! Depends on the GGUF reader and `tokenizers`; never on wgpu or models.

use std::cmp::Ordering;
use std::collections::HashSet;

use anyhow::{anyhow, bail, Result};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use super::{Built, TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED};
use crate::gguf::GgufFile;

/// SentencePiece's word boundary mark, which stands for a space in the pieces.
pub const SPACE_MARK: char = '\u{2581}';

/// Which of transformers' SentencePiece builders a file gets (chosen by `general.architecture`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// `LlamaTokenizer`: `Metaspace` (prepend "▁" to the text's first piece), merges by score.
    Llama,
    /// `GemmaTokenizer` (`gemma`, `gemma2`, `gemma3`): spaces become "▁", nothing prepended,
    /// merges by position in the file, whitespace-only pieces respelled with "▁".
    Gemma,
    /// `phi3`: a normalizer prepends "▁" to every text and replaces spaces; no pre-tokenizer.
    Phi3,
}

impl Flavour {
    /// The builder transformers' `select_tokenizer_builder` picks for `arch`.
    pub fn of(arch: &str) -> Self {
        match arch {
            "gemma" | "gemma2" | "gemma3" => Self::Gemma,
            "phi3" => Self::Phi3,
            _ => Self::Llama,
        }
    }

    /// Whether the built tokenizer puts a "▁" before the text (llama.cpp's `add_space_prefix`).
    pub fn prepends_space(self) -> bool {
        self != Self::Gemma
    }

    /// The special tokens the tokenizer class declares by default; transformers adds each as a
    /// special token (here: only those in the vocabulary, see the module docs).
    fn default_specials(self) -> &'static [&'static str] {
        match self {
            Self::Gemma => &["<unk>", "<bos>", "<eos>", "<pad>", "<mask>"],
            Self::Llama | Self::Phi3 => &["<unk>", "<s>", "</s>"],
        }
    }
}

/// Python's `str.isspace` (Unicode White_Space plus the separators U+001C..U+001F).
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Gemma's respelling: a piece of two or more whitespace characters that contains a space
/// (`"  "`) is stored with real spaces but looked up as "▁▁" (one "▁" per character).
fn gemma_spelling(t: &str) -> String {
    if t.contains(' ') && t.chars().all(py_isspace) {
        SPACE_MARK.to_string().repeat(t.chars().count())
    } else {
        t.to_string()
    }
}

/// transformers' `generate_merges(vocab, vocab_scores)`: every split of every piece into two
/// pieces of the vocabulary, best score first; among equal scores the longer left part first,
/// then the longer right part, then file order. `score(id)` is the key of the piece whose last
/// occurrence in `pieces` has that id (Python dicts keep the first key order and the last value).
pub fn generate_merges(
    pieces: &[String],
    vocab: &Vocab,
    score: impl Fn(u32) -> f64,
) -> Vec<(String, String)> {
    // (left, right, score, chars of left, chars of right, position): the position breaks ties,
    // making the unstable sort below behave as Python's stable one.
    let mut merges: Vec<(&str, &str, f64, u32, u32, u32)> = Vec::new();
    let mut local: Vec<(u32, u32, &str, &str)> = Vec::new();
    let mut dups: HashSet<&str> = HashSet::new();
    for (i, piece) in pieces.iter().enumerate() {
        let last = vocab[piece.as_str()];
        // Only a piece's first occurrence counts; earlier ones of a repeated piece are in dups.
        let first = if last as usize != i {
            dups.insert(piece.as_str())
        } else {
            dups.is_empty() || !dups.contains(piece.as_str())
        };
        if !first {
            continue;
        }
        let s = score(last);
        local.clear();
        for (k, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(k);
            if let (Some(&il), Some(&ir)) = (vocab.get(l), vocab.get(r)) {
                local.push((il, ir, l, r));
            }
        }
        local.sort_unstable_by_key(|&(il, ir, _, _)| (il, ir));
        for &(_, _, l, r) in &local {
            let n = merges.len() as u32;
            merges.push((
                l,
                r,
                s,
                l.chars().count() as u32,
                r.chars().count() as u32,
                n,
            ));
        }
    }
    // Python's sorted(key, reverse=True) is stable: equal keys keep their order.
    merges.sort_unstable_by(|a, b| {
        b.2.partial_cmp(&a.2)
            .unwrap_or(Ordering::Equal)
            .then(b.3.cmp(&a.3))
            .then(b.4.cmp(&a.4))
            .then(a.5.cmp(&b.5))
    });
    merges
        .into_iter()
        .map(|(l, r, ..)| (l.to_string(), r.to_string()))
        .collect()
}

/// The SentencePiece tokenizer of `g` (before its bos/eos/unk/pad tokens and post-processor).
pub(super) fn build(g: &GgufFile, tokens: &[&str], token_types: &[i32]) -> Result<Built> {
    let file = g.path().display().to_string();
    let flavour = Flavour::of(g.architecture()?);
    if let Some(pre) = g.get("tokenizer.ggml.pre").and_then(|v| v.as_str()) {
        if super::split_regex(pre).is_some() {
            bail!(
                "GGUF {file}: tokenizer.ggml.pre = {pre:?} is a byte-level split, which a \
                 SentencePiece (\"llama\") vocabulary cannot use"
            );
        }
    }
    let pieces: Vec<String> = match flavour {
        Flavour::Gemma => tokens.iter().map(|t| gemma_spelling(t)).collect(),
        _ => tokens.iter().map(|t| t.to_string()).collect(),
    };
    let mut vocab = Vocab::with_capacity(pieces.len());
    for (id, p) in pieces.iter().enumerate() {
        vocab.insert(p.clone(), id as u32);
    }
    let merges = if g.get("tokenizer.ggml.merges").is_some() {
        super::split_merges(&file, &g.get_str_array("tokenizer.ggml.merges")?)?
    } else if flavour == Flavour::Gemma {
        // Gemma's scores do not follow its merge order; the position in the file does.
        generate_merges(&pieces, &vocab, |id| -(id as f64))
    } else {
        let scores = g.get_f32_array("tokenizer.ggml.scores").map_err(|e| {
            anyhow!("GGUF {file}: a SentencePiece vocabulary without merges needs tokenizer.ggml.scores: {e:#}")
        })?;
        if scores.len() != tokens.len() {
            bail!(
                "GGUF {file}: {} tokenizer.ggml.scores for {} tokens",
                scores.len(),
                tokens.len()
            );
        }
        generate_merges(&pieces, &vocab, |id| scores[id as usize] as f64)
    };

    let in_vocab = |t: &str| vocab.contains_key(t);
    let mut special: Vec<AddedToken> = flavour
        .default_specials()
        .iter()
        .copied()
        .filter(|t| in_vocab(t))
        .chain(
            tokens
                .iter()
                .zip(token_types)
                .filter(|(t, &ty)| ty == TOKEN_TYPE_CONTROL && in_vocab(t))
                .map(|(t, _)| *t),
        )
        .map(|t| AddedToken::from(t.to_string(), true).normalized(false))
        .collect();
    let mut seen = HashSet::new();
    special.retain(|t| seen.insert(t.content.clone()));
    let special_names: HashSet<&str> = special.iter().map(|t| t.content.as_str()).collect();
    let user_defined: Vec<AddedToken> = tokens
        .iter()
        .zip(token_types)
        .filter(|(t, &ty)| {
            ty == TOKEN_TYPE_USER_DEFINED && (in_vocab(t) || special_names.contains(**t))
        })
        .map(|(t, _)| AddedToken::from(t.to_string(), false).normalized(false))
        .collect();

    let unk = (flavour == Flavour::Gemma && in_vocab("<unk>")).then(|| "<unk>".to_string());
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk);
    }
    let bpe = builder
        .build()
        .map_err(|e| anyhow!("GGUF {file}: building the SentencePiece BPE model: {e}"))?;
    let mut tok = tokenizers::Tokenizer::new(bpe);

    let mark = SPACE_MARK.to_string();
    let replace = |from: &str, to: &str| {
        Replace::new(from, to).map_err(|e| anyhow!("building a Replace({from:?}, {to:?}): {e}"))
    };
    let mut decoders: Vec<DecoderWrapper> = vec![
        replace(&mark, " ")?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    match flavour {
        Flavour::Llama => {
            tok.with_pre_tokenizer(Some(Metaspace::new(
                SPACE_MARK,
                PrependScheme::First,
                false,
            )));
        }
        Flavour::Phi3 => {
            tok.with_normalizer(Some(NormalizerSequence::new(vec![
                Prepend::new(mark.clone()).into(),
                replace(" ", &mark)?.into(),
            ])));
        }
        Flavour::Gemma => {
            tok.with_normalizer(Some(replace(" ", &mark)?));
            let split = Split::new(
                SplitPattern::String(" ".into()),
                SplitDelimiterBehavior::MergedWithPrevious,
                false,
            )
            .map_err(|e| anyhow!("building the Gemma split: {e}"))?;
            tok.with_pre_tokenizer(Some(split));
        }
    }
    if flavour.prepends_space() {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tok.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(Built {
        tok,
        special,
        user_defined,
    })
}
