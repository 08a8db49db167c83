//! The fuzz targets: which committed fixtures seed them, how their inputs are mutated, and how
//! an input is loaded through the crate's public loaders (the ones `Model::load` uses).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use outlier_probe::config::ModelConfig;
use outlier_probe::gguf::GgufFile;
use outlier_probe::model_files::ModelFiles;
use outlier_probe::tokenizer::Tokenizer;

use crate::mutate::{byte_mutation, Rng};
use crate::{gguf_mut, json_mut};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// GGUF header, metadata, tensor infos, every tensor dequantized, config and HF weights.
    Gguf,
    /// The tokenizer built from GGUF metadata, then encode/decode.
    #[value(name = "gguf_tokenizer")]
    GgufTokenizer,
    /// `model.safetensors` (header, dtypes, offsets) with its config, every tensor read.
    Safetensors,
    /// `tokenizer.json`, then encode/decode.
    Tokenizer,
    /// `config.json` (GPT-2 and Llama).
    Config,
}

/// One seed: the input file, and the directory whose other files go next to it (a
/// safetensors input needs its `config.json`).
pub struct Seed {
    pub data: Vec<u8>,
    pub dir: PathBuf,
}

const SAMPLES: &[&str] = &[
    "Summer is warm. Winter is cold.\n",
    "  héllo wörld 12345 <|endoftext|> <|im_start|>",
    "",
    "\u{0}\u{7f}\u{ff}😀\r\n\t x",
];

const JSON_DICT: &[&str] = &[
    "gpt2",
    "llama",
    "gelu",
    "gelu_new",
    "silu",
    "clipped",
    "sigmoid",
    "softmax1",
    "value_bias",
    "context_scale",
    "gated",
    "default",
    "yarn",
    "rope_type",
    "rope_theta",
    "head_dim",
    "n_inner",
    "num_key_value_heads",
    "clip_gamma",
    "clip_eta",
    "sigmoid_fixed_t",
    "BPE",
    "WordPiece",
    "WordLevel",
    "Unigram",
    "ByteLevel",
    "Metaspace",
    "Sequence",
    "Split",
    "NFKC",
    "Precompiled",
    "precompiled_charsmap",
    "Replace",
    "Strip",
    "ByteFallback",
    "Fuse",
    "CTC",
    "Lowercase",
    "Prepend",
    "Punctuation",
    "Digits",
    "Whitespace",
    "UnicodeScripts",
    "RobertaProcessing",
    "BertProcessing",
    "TemplateProcessing",
    "BertPreTokenizer",
    "Regex",
    "unk_token",
    "<|endoftext|>",
    "Ġ",
    "a b",
    "(?:",
];

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Self::Gguf => "gguf",
            Self::GgufTokenizer => "gguf_tokenizer",
            Self::Safetensors => "safetensors",
            Self::Tokenizer => "tokenizer",
            Self::Config => "config",
        }
    }

    /// The name the input is written under in its directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Gguf | Self::GgufTokenizer => "model.gguf",
            Self::Safetensors => "model.safetensors",
            Self::Tokenizer => "tokenizer.json",
            Self::Config => "config.json",
        }
    }

    pub fn seeds(self, root: &Path) -> Result<Vec<Seed>> {
        let fx = root.join("tests/fixtures");
        let files: Vec<PathBuf> = match self {
            Self::Gguf | Self::GgufTokenizer => [
                "gguf/tiny.gguf",
                "gguf/tiny_align64.gguf",
                "fuzz/tiny-llama.gguf",
                "gguf-converted/qwen2-odd-a.f32.gguf",
                "gguf-converted/qwen3-odd-a.f32.gguf",
                "gpt-neox-odd-a/model-f32.gguf",
                "spm/spm-llama.gguf",
                "spm/spm-gemma.gguf",
            ]
            .iter()
            .map(|f| fx.join(f))
            .collect(),
            Self::Safetensors => [
                "gpt2-odd-a",
                "gpt2-odd-b",
                "llama-odd-b",
                "gemma3-odd-a",
                "gpt-neox-odd-a",
                "opt-odd-b",
            ]
            .iter()
            .map(|d| fx.join(d).join("model.safetensors"))
            .collect(),
            Self::Tokenizer => ["gpt2-odd-a", "gpt2-odd-b"]
                .iter()
                .map(|d| fx.join(d).join("tokenizer.json"))
                .collect(),
            Self::Config => [
                "gpt2-odd-a",
                "llama-odd-a",
                "llama-odd-b",
                "qwen2-odd-a",
                "qwen3-odd-a",
                "gemma3-odd-a",
                "gpt-neox-odd-a",
                "gpt-neox-odd-b",
                "opt-odd-a",
                "opt-odd-b",
            ]
            .iter()
            .map(|d| fx.join(d).join("config.json"))
            .chain(
                ["clipped", "sigmoid", "context_scale", "attn_bias"]
                    .iter()
                    .map(|v| fx.join("variants").join(v).join("config.json")),
            )
            .collect(),
        };
        files
            .into_iter()
            .map(|f| {
                let data = std::fs::read(&f)
                    .map_err(|e| anyhow::anyhow!("reading seed {}: {e}", f.display()))?;
                Ok(Seed {
                    data,
                    dir: f.parent().expect("a file in a directory").to_path_buf(),
                })
            })
            .collect()
    }

    /// The companion files (besides the input itself) to copy from a seed's directory.
    pub fn companions(self) -> &'static [&'static str] {
        match self {
            Self::Safetensors => &["config.json"],
            _ => &[],
        }
    }

    /// 1–3 stacked mutations, format-aware ones most of the time.
    pub fn mutate(self, rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], limit: usize) {
        for _ in 0..1 + rng.below(3) {
            let aware = !rng.one_in(4)
                && match self {
                    Self::Gguf | Self::GgufTokenizer => gguf_mut::mutate(rng, data),
                    Self::Safetensors => json_mut::mutate_safetensors(rng, data),
                    Self::Tokenizer | Self::Config => json_mut::mutate_json(rng, data, JSON_DICT),
                };
            if !aware {
                if self == Self::Safetensors && data.len() > 64 && !rng.one_in(8) {
                    // Keep byte-level changes mostly inside the header (the tensor data is inert).
                    let n = (u64::from_le_bytes(data[..8].try_into().expect("8 bytes")) as usize)
                        .min(data.len() - 8);
                    let mut head = data[..8 + n].to_vec();
                    byte_mutation(rng, &mut head, other, limit);
                    data.splice(..8 + n, head);
                } else {
                    byte_mutation(rng, data, other, limit);
                }
            }
        }
        data.truncate(limit);
    }

    /// Load the input at `dir/file_name()`; `Ok` carries a short summary of what loaded.
    /// Panics on a loader result that contradicts itself (e.g. a tensor of the wrong size).
    pub fn run(self, dir: &Path) -> Result<String> {
        let path = dir.join(self.file_name());
        match self {
            Self::Gguf => run_gguf(&path),
            Self::GgufTokenizer => {
                let g = outlier_probe::gguf::GgufFile::open(&path)?;
                exercise_tokenizer(&outlier_probe::gguf_tokenizer::load(&g)?)
            }
            Self::Safetensors => run_files(dir),
            Self::Tokenizer => exercise_tokenizer(&Tokenizer::from_file(&path)?),
            Self::Config => {
                let c = ModelConfig::from_dir_config(&path)?;
                check_config(&c);
                Ok(format!("config {:?}", c.arch))
            }
        }
    }
}

/// What a validated configuration promises the model builder (a violation panics: a finding).
fn check_config(c: &ModelConfig) {
    let sizes = [
        c.vocab_size,
        c.n_embd,
        c.n_layer,
        c.n_head,
        c.n_kv_head,
        c.n_inner,
    ];
    assert!(
        sizes.iter().all(|&v| v > 0 && v <= u32::MAX as usize),
        "sizes {sizes:?}"
    );
    assert!(c.n_positions > 0 && c.n_positions <= outlier_probe::config::MAX_POSITIONS);
    assert!(c.sigmoid_t <= u32::MAX as usize);
    // What the loader derives next (overflow-checked under `--profile fuzz`).
    let (hd, kvd, qkv, qd) = (c.head_dim(), c.kv_dim(), c.qkv_dim(), c.q_dim());
    assert!(hd > 0 && qd == c.n_head * hd && kvd <= qd && qkv == qd + 2 * kvd);
    assert!(c.attn.head_dim.is_some() || qd == c.n_embd);
    let floats = [c.norm_eps, c.attn_scale(), c.clip_gamma, c.clip_eta];
    assert!(floats.iter().all(|x| x.is_finite()), "floats {floats:?}");
    assert!(c.norm_eps > 0.0);
    if c.arch.hook_layout().rotary {
        assert!(
            c.rope_theta.is_finite() && c.rope_theta > 0.0,
            "rope_theta {}",
            c.rope_theta
        );
    }
}

fn exercise_tokenizer(t: &Tokenizer) -> Result<String> {
    let mut n = 0;
    for s in SAMPLES {
        let ids = t.encode(s)?;
        n += ids.len();
        t.decode(&ids)?;
    }
    let v = t.vocab_size();
    for id in 0..(v as u32).saturating_add(2).min(4096) {
        let s = t.token_str(id);
        if let Some(back) = t.token_to_id(&s) {
            let _ = t.token_str(back);
        }
    }
    Ok(format!("tokenizer ok: vocab {v}, {n} ids"))
}

fn run_gguf(path: &Path) -> Result<String> {
    let g = GgufFile::open(path)?;
    let mut errors = Vec::new();
    let mut ok = 0;
    for t in g.tensors() {
        match g.tensor_f32_hf(&t.name) {
            Ok((v, shape)) => {
                let n: usize = shape.iter().product();
                assert_eq!(
                    v.len(),
                    n,
                    "tensor {}: {} values for shape {shape:?}",
                    t.name,
                    v.len()
                );
                assert_eq!(g.tensor_bytes(&t.name)?.len() as u64, t.n_bytes);
                ok += 1;
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let cfg = outlier_probe::gguf_config::from_gguf(&g).map(|c| check_config(&c));
    let files = run_files(path);
    errors.sort();
    errors.dedup();
    Ok(format!(
        "gguf: {ok} ok, errors {errors:?}; config {}; files {}",
        cfg.map_or_else(|e| format!("{e:#}"), |_| "ok".into()),
        files.unwrap_or_else(|e| format!("{e:#}"))
    ))
}

/// The model path as `Model::load` opens it, then every weight read.
fn run_files(path: &Path) -> Result<String> {
    let files = ModelFiles::open(path)?;
    check_config(&files.cfg);
    let mut ok = 0;
    for name in files.weights.names() {
        let t = files.weights.tensor(&name)?;
        let n: usize = t.shape.iter().product();
        assert_eq!(
            t.data.len(),
            n,
            "tensor {name}: {} values for shape {:?}",
            t.data.len(),
            t.shape
        );
        files.weights.load(&name, &t.shape)?;
        ok += 1;
    }
    if files.weights.names().is_empty() {
        bail!("no tensors");
    }
    Ok(format!("files ok ({ok} tensors, {:?})", files.cfg.arch))
}

/// A behaviour signature: the outcome's lowercase words (numbers as `#`; paths, quoted
/// strings and long or capitalised words, which mostly echo mutated content, left out).
pub fn signature(s: &str, dir: &Path) -> String {
    let s = s.replace(&*dir.to_string_lossy(), "<dir>");
    let mut out = String::new();
    for w in s.split_whitespace() {
        let w = w.trim_matches(|c: char| "\"'`()[]{},:;".contains(c));
        let plain = !w.is_empty()
            && w.len() <= 40
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
        if plain && out.len() < 200 {
            out.push(' ');
            let mut last_digit = false;
            for c in w.chars() {
                if c.is_ascii_digit() {
                    if !last_digit {
                        out.push('#');
                    }
                    last_digit = true;
                } else {
                    out.push(c);
                    last_digit = false;
                }
            }
        }
    }
    out
}
