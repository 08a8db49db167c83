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
//! * decoder: `ByteLevel`; no normalizer.
//! * post-processor: when the file has `tokenizer.ggml.add_bos_token` or `add_eos_token`, a
//!   `TemplateProcessing` putting the BOS (`bos_token_id`) before the text and the EOS
//!   (`eos_token_id`) after it as those flags say (transformers' `update_post_processor`; a flag
//!   whose token id is missing adds nothing); llama.cpp honours both flags the same way. Without
//!   either key nothing is added, as transformers does; llama.cpp then adds a BOS for some
//!   `tokenizer.ggml.pre` values (`llama-bpe`, ...), which [`GgufSpecialTokens::origin`] mentions.
//!   SmolLM2's file says `add_bos_token = false`: no BOS, in transformers and llama.cpp alike.
//! * added tokens: every token of type CONTROL (3) whose spelling is in the byte alphabet, and
//!   the tokens of `bos/eos/unknown/padding_token_id`, as special tokens (`normalized=false`);
//!   every USER_DEFINED (4) token in the vocabulary as a non-special added token.
//!
//! SentencePiece (`"llama"`) and other tokenizer models are a clear error.
//! File formats: depends on gguf and tokenizer; never on wgpu or models.

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
use crate::tokenizer::Tokenizer;

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
    /// `tokenizer.ggml.add_eos_token` (absent → `None`).
    pub add_eos: Option<bool>,
}

impl GgufSpecialTokens {
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let id = |k: &str| -> Result<Option<u32>> {
            let key = format!("tokenizer.ggml.{k}");
            g.get(&key).map(|_| g.get_u32(&key)).transpose()
        };
        let flag = |k: &str| -> Result<Option<bool>> {
            let key = format!("tokenizer.ggml.{k}");
            g.get(&key).map(|_| g.get_bool(&key)).transpose()
        };
        let add_bos = flag("add_bos_token")?;
        let add_eos = flag("add_eos_token")?;
        Ok(Self {
            bos: id("bos_token_id")?,
            eos: id("eos_token_id")?,
            unk: id("unknown_token_id")?,
            pad: id("padding_token_id")?,
            add_bos,
            add_eos,
        })
    }

    /// The special tokens an encoding adds before and after the text: `(bos, eos)`, each present
    /// when its flag is true and its id is declared.
    pub fn added(&self) -> (Option<u32>, Option<u32>) {
        (
            self.bos.filter(|_| self.add_bos == Some(true)),
            self.eos.filter(|_| self.add_eos == Some(true)),
        )
    }

    /// Where the BOS rule comes from, for messages; `pre` is `tokenizer.ggml.pre`.
    pub fn origin(&self, pre: Option<&str>) -> String {
        let flag = |name: &str, v: Option<bool>, id: Option<u32>| match (v, id) {
            (Some(true), None) => Some(format!(
                "tokenizer.ggml.add_{name}_token = true but no {name}_token_id"
            )),
            (Some(v), _) => Some(format!("tokenizer.ggml.add_{name}_token = {v}")),
            (None, _) => None,
        };
        let flags: Vec<String> = [
            flag("bos", self.add_bos, self.bos),
            flag("eos", self.add_eos, self.eos),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !flags.is_empty() {
            return format!("{} in the GGUF", flags.join(", "));
        }
        let mut s = "the GGUF, which has no tokenizer.ggml.add_bos_token (transformers then adds \
                     nothing"
            .to_string();
        if let Some(p) = pre.filter(|p| LLAMA_CPP_BOS_BY_DEFAULT.contains(p)) {
            s.push_str(&format!(
                "; llama.cpp adds a BOS for tokenizer.ggml.pre = {p:?}: write it at the start \
                 of the prompt to match"
            ));
        }
        s.push(')');
        s
    }
}

/// `tokenizer.ggml.pre` values for which llama.cpp (`llama-vocab.cpp`) adds a BOS when the file
/// has no `add_bos_token`.
const LLAMA_CPP_BOS_BY_DEFAULT: &[&str] = &[
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
];

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
    if ids.add_bos.is_some() || ids.add_eos.is_some() {
        let (bos, eos) = ids.added();
        let name = |id: u32| tokens[id as usize].to_string();
        tok.with_post_processor(Some(template(
            bos.map(|id| (name(id), id)),
            eos.map(|id| (name(id), id)),
        )?));
    }
    Ok(tok)
}

/// transformers' `update_post_processor` template: `[bos] $A [eos]`, pair
/// `[bos] $A [eos] [bos]:1 $B:1 [eos]:1`. Built through serde so that any token spelling
/// (`:` and spaces included) is taken literally.
fn template(
    bos: Option<(String, u32)>,
    eos: Option<(String, u32)>,
) -> Result<tokenizers::processors::template::TemplateProcessing> {
    let special = |(t, _): &(String, u32), type_id: u32| serde_json::json!({"SpecialToken": {"id": t, "type_id": type_id}});
    let seq =
        |id: &str, type_id: u32| serde_json::json!({"Sequence": {"id": id, "type_id": type_id}});
    let mut single = Vec::new();
    single.extend(bos.iter().map(|b| special(b, 0)));
    single.push(seq("A", 0));
    single.extend(eos.iter().map(|e| special(e, 0)));
    let mut pair = single.clone();
    pair.extend(bos.iter().map(|b| special(b, 1)));
    pair.push(seq("B", 1));
    pair.extend(eos.iter().map(|e| special(e, 1)));
    let mut specials = serde_json::Map::new();
    for (t, id) in bos.iter().chain(eos.iter()) {
        specials.insert(
            t.clone(),
            serde_json::json!({"id": t, "ids": [id], "tokens": [t]}),
        );
    }
    let json = serde_json::json!({
        "type": "TemplateProcessing",
        "single": single,
        "pair": pair,
        "special_tokens": specials,
    });
    serde_json::from_value(json).map_err(|e| anyhow!("building the BOS/EOS template: {e}"))
}

/// Open `path` and build its tokenizer.
pub fn tokenizer_from_gguf_path(path: &std::path::Path) -> Result<tokenizers::Tokenizer> {
    let g = GgufFile::open(path)?;
    tokenizer_from_gguf(&g).with_context(|| format!("tokenizer of {}", path.display()))
}

/// The project's [`Tokenizer`] for a GGUF: [`tokenizer_from_gguf`] with the special-token rule
/// of the file (see the module docs). Errors name the file.
pub fn load(g: &GgufFile) -> Result<Tokenizer> {
    let file = g.path().display().to_string();
    let inner = tokenizer_from_gguf(g).with_context(|| format!("tokenizer of {file}"))?;
    let pre = match g.get("tokenizer.ggml.pre") {
        Some(_) => Some(g.get_str("tokenizer.ggml.pre")?),
        None => None,
    };
    let origin = GgufSpecialTokens::from_gguf(g)?.origin(pre);
    Tokenizer::with_origin(inner, origin).with_context(|| format!("tokenizer of {file}"))
}
