//! A `tokenizers::Tokenizer` built from a GGUF file's metadata, the same one transformers builds
//! (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`, transformers 5.24,
//! `integrations/gguf/gguf_tokenizer_mapping.py`).
//!
//! # Byte-level BPE (`tokenizer.ggml.model` = `"gpt2"`, [`bpe`])
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
//! * added tokens: every token of type CONTROL (3) whose spelling is in the byte alphabet as a
//!   special token; every USER_DEFINED (4) token in the vocabulary as a non-special added token.
//!
//! # SentencePiece (`tokenizer.ggml.model` = `"llama"`, [`spm`])
//!
//! * model: BPE with byte fallback (a character outside the vocabulary becomes its UTF-8 bytes'
//!   `<0xXX>` tokens) over the pieces (id = index). The merges are `tokenizer.ggml.merges` when
//!   present, else derived from the vocabulary as transformers' `generate_merges` does: every
//!   split of a piece into two pieces, ordered by the piece's `tokenizer.ggml.scores` — for
//!   Gemma (`general.architecture` = `gemma`, `gemma2`, `gemma3`) by its position in the file
//!   instead, Gemma's scores not following its merge order (Gemma-3-270M's NORMAL pieces have
//!   scores falling strictly with position, so for it both orders, and llama.cpp's score-driven
//!   SentencePiece merging, agree).
//! * Llama and other architectures (`LlamaTokenizer`): pre-tokenizer `Metaspace("▁",
//!   prepend_scheme="first")` — spaces become "▁" and a "▁" goes before the text unless it
//!   starts with a space or follows a special token; no normalizer; no unk token in the model
//!   (a character with neither a piece nor byte tokens is dropped). Decoder: "▁" → " ",
//!   `ByteFallback`, `Fuse`, and one leading space stripped.
//! * Gemma (`GemmaTokenizer`): normalizer " " → "▁", nothing prepended; model unk `<unk>`;
//!   whitespace-only pieces with a space, stored as real spaces (`"  "`), are looked up as
//!   "▁▁"; decoder "▁" → " ", `ByteFallback`, `Fuse`.
//! * `phi3`: normalizer prepending "▁" to every text and replacing spaces; no pre-tokenizer.
//! * added tokens: every CONTROL (3) token, and those of the class's default special tokens
//!   (`<unk> <s> </s>`, Gemma `<unk> <bos> <eos> <pad> <mask>`) that the vocabulary has, as
//!   special tokens; USER_DEFINED (4) tokens in the vocabulary (Gemma's `\n`, `<table>`, ...) as
//!   non-special added tokens; UNKNOWN/UNUSED/BYTE types change nothing.
//! * `tokenizer.ggml.add_space_prefix` is read by neither transformers nor this module: the
//!   architecture decides (Llama: prepend, Gemma: not). llama.cpp follows the flag instead, so
//!   the two disagree on a `llama` file saying `false` (transformers and this module still
//!   prepend "▁"). Gemma files say `false`, Llama-2 files `true`: they agree there.
//! * `tokenizer.ggml.add_bos_token` absent means true (as transformers and llama.cpp do for
//!   SentencePiece vocabularies). Gemma-3 says true: every prompt starts with `<bos>` (id 2).
//! * Differences from transformers, all on files unlike any real one: a default special token
//!   the vocabulary lacks (`<s>` in a vocabulary without it) is not added (transformers appends
//!   it as a new id past the model's vocabulary), a whitespace-only CONTROL token is not
//!   added, and a `tokenizer.ggml.pre` naming a byte-level split regex is refused (transformers
//!   would swap the Metaspace pre-tokenizer for it).
//!
//! # Both
//!
//! * post-processor: when add_bos (see above) or `tokenizer.ggml.add_eos_token` is set, a
//!   `TemplateProcessing` putting the BOS (`bos_token_id`) before the text and the EOS
//!   (`eos_token_id`) after it as those flags say (transformers' `update_post_processor`; a flag
//!   whose token id is missing adds nothing); llama.cpp honours both flags the same way. Without
//!   either key a byte-level file gets nothing, as transformers does; llama.cpp then adds a BOS
//!   for some `tokenizer.ggml.pre` values (`llama-bpe`, ...), which [`GgufSpecialTokens::origin`]
//!   mentions. SmolLM2's file says `add_bos_token = false`: no BOS, in transformers and llama.cpp.
//! * the tokens of `bos/eos/unknown/padding_token_id` are special tokens (`normalized=false`).
//!
//! Other tokenizer models (`t5`, `gemma4`, `bert`, `rwkv`) are a clear error.
//! File formats: depends on gguf and tokenizer; never on wgpu or models.

pub mod bpe;
pub mod spm;

pub use bpe::{bytes_to_unicode, split_regex};

use anyhow::{anyhow, bail, Context, Result};
use tokenizers::AddedToken;

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

/// A tokenizer model with its normalizer, pre-tokenizer and decoder, and the added tokens its
/// vocabulary asks for (before the bos/eos/unk/pad tokens and the post-processor).
pub(crate) struct Built {
    tok: tokenizers::Tokenizer,
    special: Vec<AddedToken>,
    user_defined: Vec<AddedToken>,
}

/// `tokenizer.ggml.merges` (`"a b"`) as pairs; errors name the file and the merge.
fn split_merges(file: &str, merges: &[&str]) -> Result<Vec<(String, String)>> {
    merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| anyhow!("GGUF {file}: merge {i} {m:?} is not two tokens"))
        })
        .collect()
}

/// The special-token rule of `g`: [`GgufSpecialTokens::from_gguf`], with `add_bos` true when a
/// SentencePiece file does not say (transformers' `get_gguf_tokenizer`, llama.cpp alike).
pub fn special_tokens(g: &GgufFile) -> Result<GgufSpecialTokens> {
    let mut ids = GgufSpecialTokens::from_gguf(g)?;
    if g.get("tokenizer.ggml.model").and_then(|v| v.as_str()) == Some("llama") {
        ids.add_bos.get_or_insert(true);
    }
    Ok(ids)
}

/// Build the tokenizer a GGUF describes (see the module docs).
pub fn tokenizer_from_gguf(g: &GgufFile) -> Result<tokenizers::Tokenizer> {
    let file = g.path().display().to_string();
    let model = g.get_str("tokenizer.ggml.model")?;
    let tokens = g.get_str_array("tokenizer.ggml.tokens")?;
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
    let Built {
        mut tok,
        mut special,
        user_defined,
    } = match model {
        "gpt2" => bpe::build(g, &tokens, &token_types)?,
        "llama" => spm::build(g, &tokens, &token_types)?,
        _ => bail!(
            "GGUF {file}: tokenizer.ggml.model is {model:?}; only \"gpt2\" (byte-level BPE) and \
             \"llama\" (SentencePiece) are supported"
        ),
    };
    let ids = special_tokens(g)?;
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
    let raw = GgufSpecialTokens::from_gguf(g)?;
    let origin = if raw.add_bos.is_none() && g.get_str("tokenizer.ggml.model")? == "llama" {
        "the GGUF, a SentencePiece (\"llama\") vocabulary without tokenizer.ggml.add_bos_token, \
         which gets a BOS (transformers and llama.cpp alike)"
            .to_string()
    } else {
        raw.origin(pre)
    };
    Tokenizer::with_origin(inner, origin).with_context(|| format!("tokenizer of {file}"))
}
