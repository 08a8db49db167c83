//! A `tokenizers::Tokenizer` built from a GGUF file's metadata, the same one transformers builds
//! (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`, transformers 5.24,
//! `integrations/gguf/gguf_tokenizer_mapping.py`) for byte-level BPE files
//! (`tokenizer.ggml.model` = `"gpt2"`):
//!
//! * model: BPE over `tokenizer.ggml.tokens` (id = index) and `tokenizer.ggml.merges`
//!   (`"a b"` pairs, in rank order); no unk token, no byte fallback. A token that is not spelled
//!   in GPT-2's byte alphabet is respelled as the alphabet characters of its UTF-8 bytes.
//! * pre-tokenizer: for the `tokenizer.ggml.pre` values transformers knows (`llama-bpe`, `qwen2`,
//!   `tekken`, `gpt-4o`, ... see [`split_regex`]) a `Split(regex, isolated)` then
//!   `ByteLevel(add_prefix_space=false, use_regex=false)`; for any other value — SmolLM2's
//!   `"smollm"` included — GPT-2's plain `ByteLevel(add_prefix_space=false)` (GPT-2 regex).
//!   (llama.cpp splits `"smollm"` digits one by one; SmolLM2's vocabulary has no multi-digit
//!   tokens, so the ids agree on digits either way.)
//! * decoder: `ByteLevel`; no normalizer, no post-processor (nothing is added: the file says
//!   `add_bos_token = false`).
//! * added tokens: every token of type CONTROL (3) whose spelling is in the byte alphabet, and
//!   the tokens of `bos/eos/unknown/padding_token_id`, as special tokens (`normalized=false`);
//!   every USER_DEFINED (4) token in the vocabulary as a non-special added token.
//!
//! SentencePiece (`"llama"`) and other tokenizer models are a clear error.

use std::collections::HashSet;

use anyhow::{anyhow, bail, Context, Result};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::gguf::GgufFile;

/// llama.cpp's token type for control tokens (`<|im_start|>`).
pub const TOKEN_TYPE_CONTROL: i32 = 3;
/// llama.cpp's token type for user-defined added tokens (`<think>`).
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The special token ids a GGUF declares (`tokenizer.ggml.*_token_id`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GgufSpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (absent → `None`).
    pub add_bos: Option<bool>,
}

impl GgufSpecialTokens {
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let id = |k: &str| -> Result<Option<u32>> {
            let key = format!("tokenizer.ggml.{k}");
            g.get(&key).map(|_| g.get_u32(&key)).transpose()
        };
        let add_bos = g
            .get("tokenizer.ggml.add_bos_token")
            .map(|_| g.get_bool("tokenizer.ggml.add_bos_token"))
            .transpose()?;
        Ok(Self {
            bos: id("bos_token_id")?,
            eos: id("eos_token_id")?,
            unk: id("unknown_token_id")?,
            pad: id("padding_token_id")?,
            add_bos,
        })
    }
}

/// GPT-2's `bytes_to_unicode`: the character byte `b` is spelled with in a byte-level vocabulary.
pub fn bytes_to_unicode() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (b'!' as u32..=b'~' as u32).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b);
        out[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap()
        };
    }
    out
}

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The split regex transformers (`GGUF_PRE_TOKENIZER_SPLITS`) uses for a `tokenizer.ggml.pre`
/// value; `None` means GPT-2's plain ByteLevel pre-tokenizer.
pub fn split_regex(pre: &str) -> Option<&'static str> {
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" | "dbrx" | "smaug-bpe" => LLAMA3_SPLIT,
        "tekken" => TEKKEN_SPLIT,
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => QWEN2_SPLIT,
        "qwen35" => QWEN35_SPLIT,
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => GPT4O_SPLIT,
        _ => return None,
    })
}

/// Build the tokenizer a byte-level BPE GGUF describes (see the module docs).
pub fn tokenizer_from_gguf(g: &GgufFile) -> Result<tokenizers::Tokenizer> {
    let file = g.path().display().to_string();
    let model = g.get_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        bail!(
            "GGUF {file}: tokenizer.ggml.model is {model:?}; only \"gpt2\" (byte-level BPE) is supported"
        );
    }
    let tokens = g.get_str_array("tokenizer.ggml.tokens")?;
    let merges = g.get_str_array("tokenizer.ggml.merges")?;
    let token_types = match g.get("tokenizer.ggml.token_type") {
        Some(_) => g.get_i32_array("tokenizer.ggml.token_type")?,
        None => Vec::new(),
    };
    if !token_types.is_empty() && token_types.len() != tokens.len() {
        bail!(
            "GGUF {file}: {} token types for {} tokens",
            token_types.len(),
            tokens.len()
        );
    }

    let spelling = bytes_to_unicode();
    let alphabet: HashSet<char> = spelling.iter().copied().collect();
    let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
    let mut vocab = Vocab::default();
    for (id, tok) in tokens.iter().enumerate() {
        let spelled = if in_alphabet(tok) {
            tok.to_string()
        } else {
            tok.bytes().map(|b| spelling[b as usize]).collect()
        };
        vocab.insert(spelled, id as u32);
    }
    let merges = merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| anyhow!("GGUF {file}: merge {i} {m:?} is not two tokens"))
        })
        .collect::<Result<Vec<_>>>()?;
    let vocab_has = |t: &str| vocab.contains_key(t);
    let user_defined: Vec<AddedToken> = tokens
        .iter()
        .zip(&token_types)
        .filter(|(t, &ty)| ty == TOKEN_TYPE_USER_DEFINED && vocab_has(t))
        .map(|(t, _)| AddedToken::from(t.to_string(), false).normalized(false))
        .collect();

    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| anyhow!("GGUF {file}: building the BPE model: {e}"))?;
    let mut tok = tokenizers::Tokenizer::new(bpe);

    let pre = match g.get("tokenizer.ggml.pre") {
        Some(_) => Some(g.get_str("tokenizer.ggml.pre")?),
        None => None,
    };
    let pre_tokenizer: PreTokenizerWrapper = match pre.and_then(split_regex) {
        Some(re) => {
            let split = Split::new(
                SplitPattern::Regex(re.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| anyhow!("compiling the {pre:?} split regex: {e}"))?;
            Sequence::new(vec![
                split.into(),
                ByteLevel::new(false, true, false).into(),
            ])
            .into()
        }
        None => ByteLevel::new(false, true, true).into(),
    };
    tok.with_pre_tokenizer(Some(pre_tokenizer));
    tok.with_decoder(Some(ByteLevelDecoder::default()));

    // Special: CONTROL tokens spelled in the byte alphabet, then the bos/eos/unk/pad tokens.
    let mut special: Vec<AddedToken> = tokens
        .iter()
        .zip(&token_types)
        .filter(|(t, &ty)| ty == TOKEN_TYPE_CONTROL && in_alphabet(t))
        .map(|(t, _)| AddedToken::from(t.to_string(), true).normalized(false))
        .collect();
    let ids = GgufSpecialTokens::from_gguf(g)?;
    for id in [ids.bos, ids.eos, ids.unk, ids.pad].into_iter().flatten() {
        let t = tokens.get(id as usize).ok_or_else(|| {
            anyhow!(
                "GGUF {file}: special token id {id} is past the vocabulary ({} tokens)",
                tokens.len()
            )
        })?;
        special.push(AddedToken::from(t.to_string(), true).normalized(false));
    }
    tok.add_special_tokens(&special);
    if !user_defined.is_empty() {
        tok.add_tokens(&user_defined);
    }
    Ok(tok)
}

/// Open `path` and build its tokenizer.
pub fn tokenizer_from_gguf_path(path: &std::path::Path) -> Result<tokenizers::Tokenizer> {
    let g = GgufFile::open(path)?;
    tokenizer_from_gguf(&g).with_context(|| format!("tokenizer of {}", path.display()))
}
