//! GGUF reader (format versions 2 and 3, little-endian), memory-mapped, with dequantization of
//! F32, F16, BF16, Q8_0, Q4_0 and Q4_1 tensors to `f32`.
//!
//! Layout of a file (all integers little-endian):
//!
//! ```text
//! "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//! kv_count  × (string key | u32 value_type | value)
//! tensor_count × (string name | u32 n_dims | n_dims × u64 dim | u32 ggml_type | u64 offset)
//! padding to `general.alignment` (default 32)
//! data section: each tensor at data_offset + offset (offset a multiple of the alignment)
//! ```
//!
//! Strings are `u64 length | bytes`; arrays are `u32 element_type | u64 count | elements` (arrays of
//! arrays and of strings included). Version 1 (u32 counts) and big-endian files are rejected.
//!
//! GGUF stores a tensor's dims fastest-varying first (`ne[0]` is the row length), so
//! [`TensorInfo::shape`] reverses them into the row-major shape PyTorch/transformers give the
//! dequantized tensor: `token_embd.weight` has dims `[576, 49152]` and shape `[49152, 576]`.
//!
//! # GGUF names → Hugging Face (transformers `LlamaForCausalLM`) names
//!
//! | GGUF                         | transformers                                    |
//! |------------------------------|-------------------------------------------------|
//! | `token_embd.weight`          | `model.embed_tokens.weight`                      |
//! | `blk.N.attn_norm.weight`     | `model.layers.N.input_layernorm.weight`          |
//! | `blk.N.attn_q.weight`        | `model.layers.N.self_attn.q_proj.weight` (*)     |
//! | `blk.N.attn_k.weight`        | `model.layers.N.self_attn.k_proj.weight` (*)     |
//! | `blk.N.attn_v.weight`        | `model.layers.N.self_attn.v_proj.weight`         |
//! | `blk.N.attn_output.weight`   | `model.layers.N.self_attn.o_proj.weight`         |
//! | `blk.N.ffn_norm.weight`      | `model.layers.N.post_attention_layernorm.weight` |
//! | `blk.N.ffn_gate.weight`      | `model.layers.N.mlp.gate_proj.weight`            |
//! | `blk.N.ffn_up.weight`        | `model.layers.N.mlp.up_proj.weight`              |
//! | `blk.N.ffn_down.weight`      | `model.layers.N.mlp.down_proj.weight`            |
//! | `output_norm.weight`         | `model.norm.weight`                              |
//! | `output.weight`              | `lm_head.weight` (absent when tied: SmolLM2 has none, `lm_head` = `embed_tokens`) |
//!
//! Every tensor's values are the dequantized GGUF values unchanged, except (*): llama.cpp's
//! `convert_hf_to_gguf.py` permutes the rows of Q and K (per head, from HF's "rotate half" RoPE
//! layout to GGML's interleaved pairs), and transformers undoes it on load
//! (`LlamaTensorProcessor._reverse_permute_weights`, with `n_head` = `attention.head_count` for Q
//! and `attention.head_count_kv` for K). [`unpermute_qk`] is that inverse; see it for the exact
//! index map. [`GgufFile::tensor_f32_hf`] applies it.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use half::f16;
use memmap2::Mmap;

/// `general.alignment` when the file does not set it.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// A ggml tensor type, by its id in the file. Unknown ids are kept (and rejected at open, since
/// their byte size is unknown).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType(pub u32);

/// (name, id, elements per block, bytes per block), as `gguf.constants.GGML_QUANT_SIZES`.
const GGML_TYPES: &[(&str, u32, u64, u64)] = &[
    ("F32", 0, 1, 4),
    ("F16", 1, 1, 2),
    ("Q4_0", 2, 32, 18),
    ("Q4_1", 3, 32, 20),
    ("Q5_0", 6, 32, 22),
    ("Q5_1", 7, 32, 24),
    ("Q8_0", 8, 32, 34),
    ("Q8_1", 9, 32, 40),
    ("Q2_K", 10, 256, 84),
    ("Q3_K", 11, 256, 110),
    ("Q4_K", 12, 256, 144),
    ("Q5_K", 13, 256, 176),
    ("Q6_K", 14, 256, 210),
    ("Q8_K", 15, 256, 292),
    ("IQ2_XXS", 16, 256, 66),
    ("IQ2_XS", 17, 256, 74),
    ("IQ3_XXS", 18, 256, 98),
    ("IQ1_S", 19, 256, 50),
    ("IQ4_NL", 20, 32, 18),
    ("IQ3_S", 21, 256, 110),
    ("IQ2_S", 22, 256, 82),
    ("IQ4_XS", 23, 256, 136),
    ("I8", 24, 1, 1),
    ("I16", 25, 1, 2),
    ("I32", 26, 1, 4),
    ("I64", 27, 1, 8),
    ("F64", 28, 1, 8),
    ("IQ1_M", 29, 256, 56),
    ("BF16", 30, 1, 2),
    ("TQ1_0", 34, 256, 54),
    ("TQ2_0", 35, 256, 66),
    ("MXFP4", 39, 32, 17),
    ("NVFP4", 40, 64, 36),
    ("Q1_0", 41, 128, 18),
];

impl GgmlType {
    pub const F32: Self = Self(0);
    pub const F16: Self = Self(1);
    pub const Q4_0: Self = Self(2);
    pub const Q4_1: Self = Self(3);
    pub const Q8_0: Self = Self(8);
    pub const Q2_K: Self = Self(10);
    pub const BF16: Self = Self(30);

    /// The types [`dequantize`] handles.
    pub const SUPPORTED: [Self; 6] = [
        Self::F32,
        Self::F16,
        Self::BF16,
        Self::Q8_0,
        Self::Q4_0,
        Self::Q4_1,
    ];

    fn entry(self) -> Option<&'static (&'static str, u32, u64, u64)> {
        GGML_TYPES.iter().find(|e| e.1 == self.0)
    }

    /// The type from its name (`"Q4_1"`), as ggml spells it.
    pub fn from_name(name: &str) -> Option<Self> {
        GGML_TYPES.iter().find(|e| e.0 == name).map(|e| Self(e.1))
    }

    /// ggml's name for the type (`"Q4_1"`), or `"type#N"` for an id this reader does not know.
    pub fn name(self) -> String {
        match self.entry() {
            Some(e) => e.0.to_string(),
            None => format!("type#{}", self.0),
        }
    }

    /// `(elements per block, bytes per block)`; `None` for an unknown id.
    pub fn block(self) -> Option<(u64, u64)> {
        self.entry().map(|e| (e.2, e.3))
    }

    pub fn is_supported(self) -> bool {
        Self::SUPPORTED.contains(&self)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Debug for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// One metadata value, of any GGUF value type.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl GgufValue {
    /// The GGUF type name: `u8`, `i8`, ..., `f64`, `bool`, `string`, `array`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::U8(_) => "u8",
            Self::I8(_) => "i8",
            Self::U16(_) => "u16",
            Self::I16(_) => "i16",
            Self::U32(_) => "u32",
            Self::I32(_) => "i32",
            Self::F32(_) => "f32",
            Self::Bool(_) => "bool",
            Self::String(_) => "string",
            Self::Array(_) => "array",
            Self::U64(_) => "u64",
            Self::I64(_) => "i64",
            Self::F64(_) => "f64",
        }
    }

    /// Any integer value, widened (bools and floats are not integers).
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Self::U8(v) => v.into(),
            Self::I8(v) => v.into(),
            Self::U16(v) => v.into(),
            Self::I16(v) => v.into(),
            Self::U32(v) => v.into(),
            Self::I32(v) => v.into(),
            Self::U64(v) => v.into(),
            Self::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// An f32 or f64 value, as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short rendering for error messages (arrays by length and first element).
    fn brief(&self) -> String {
        match self {
            Self::String(s) if s.chars().count() > 40 => {
                format!("{:?}...", s.chars().take(40).collect::<String>())
            }
            Self::String(s) => format!("{s:?}"),
            Self::Array(a) => match a.first() {
                Some(v) => format!("[{} × {}]", a.len(), v.type_name()),
                None => "[]".to_string(),
            },
            v => format!("{v:?}"),
        }
    }
}

/// Where and how one tensor is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dims as GGUF stores them: fastest-varying first (`dims[0]` = row length).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    pub n_elements: u64,
    /// Size of the data in bytes.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Row-major shape (reversed dims), as PyTorch/transformers see the dequantized tensor.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// An open, memory-mapped GGUF file.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

/// Max nesting of arrays in metadata.
const MAX_DEPTH: usize = 8;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let remaining = (self.buf.len() - self.pos) as u64;
        if n > remaining {
            bail!(
                "GGUF {}: truncated or corrupt: {} needs {n} bytes at offset {}, but the file has {} bytes",
                self.path.display(),
                what(),
                self.pos,
                self.buf.len()
            );
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        Ok(self.take(N as u64, what)?.try_into().unwrap())
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string. Invalid UTF-8 is replaced by U+FFFD (as Python's `errors="replace"`).
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, ty: u32, depth: usize, what: &dyn Fn() -> String) -> Result<GgufValue> {
        Ok(match ty {
            0 => GgufValue::U8(self.array::<1>(what)?[0]),
            1 => GgufValue::I8(self.array::<1>(what)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => GgufValue::U32(self.u32(what)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => bail!(
                    "GGUF {}: {}: invalid bool byte {b}",
                    self.path.display(),
                    what()
                ),
            },
            8 => GgufValue::String(self.string(what)?),
            9 => {
                if depth >= MAX_DEPTH {
                    bail!(
                        "GGUF {}: {}: arrays nested deeper than {MAX_DEPTH}",
                        self.path.display(),
                        what()
                    );
                }
                let elem_ty = self.u32(what)?;
                let count = self.u64(what)?;
                // Every element takes at least this many bytes: reject absurd counts before allocating.
                let min_size: u64 = match elem_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => bail!(
                        "GGUF {}: {}: unknown array element type {t}",
                        self.path.display(),
                        what()
                    ),
                };
                let remaining = (self.buf.len() - self.pos) as u64;
                if count.saturating_mul(min_size) > remaining {
                    bail!(
                        "GGUF {}: truncated or corrupt: {} is an array of {count} elements at offset {}, more than the {remaining} bytes left in the file",
                        self.path.display(),
                        what(),
                        self.pos
                    );
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(elem_ty, depth + 1, what)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(what)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            t => bail!(
                "GGUF {}: {}: unknown metadata value type {t}",
                self.path.display(),
                what()
            ),
        })
    }
}

impl GgufFile {
    /// Open and parse `path` (header, metadata, tensor infos); tensor data stays mapped, not read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file =
            File::open(path).with_context(|| format!("opening GGUF file {}", path.display()))?;
        // SAFETY: the map is read-only; as with every memory-mapped reader, the file must not be
        // truncated or rewritten by another process while this GgufFile is alive.
        let mmap = unsafe { Mmap::map(&file) }
            .with_context(|| format!("memory-mapping GGUF file {}", path.display()))?;
        Self::parse(path.to_path_buf(), mmap)
    }

    fn parse(path: PathBuf, mmap: Mmap) -> Result<Self> {
        let buf: &[u8] = &mmap;
        let p = path.as_path();
        let mut c = Cursor {
            buf,
            pos: 0,
            path: p,
        };
        let magic = c.array::<4>(&|| "the magic".into())?;
        if &magic != b"GGUF" {
            bail!(
                "{} is not a GGUF file: magic is {:?}, expected \"GGUF\"",
                p.display(),
                String::from_utf8_lossy(&magic)
            );
        }
        let version = c.u32(&|| "the version".into())?;
        match version {
            2 | 3 => {}
            1 => bail!(
                "GGUF {}: version 1 (32-bit counts) is not supported; only versions 2 and 3 are",
                p.display()
            ),
            v if matches!(v.swap_bytes(), 2 | 3) => bail!(
                "GGUF {}: big-endian GGUF (version {}) is not supported; only little-endian files are",
                p.display(),
                v.swap_bytes()
            ),
            v => bail!(
                "GGUF {}: unsupported GGUF version {v}; only versions 2 and 3 are supported",
                p.display()
            ),
        }
        let n_tensors = c.u64(&|| "the tensor count".into())?;
        let n_kv = c.u64(&|| "the metadata count".into())?;

        let mut metadata = Vec::new();
        let mut metadata_index = HashMap::new();
        for i in 0..n_kv {
            let key = c.string(&|| format!("metadata entry {i}'s key"))?;
            let what = || format!("metadata `{key}`");
            let ty = c.u32(&what)?;
            let value = c.value(ty, 0, &what)?;
            if metadata_index.insert(key.clone(), metadata.len()).is_some() {
                bail!("GGUF {}: duplicate metadata key `{key}`", p.display());
            }
            metadata.push((key, value));
        }

        let alignment = match metadata_index.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(&i) => {
                let v = &metadata[i].1;
                match v.as_i128() {
                    Some(a) if a > 0 && (a as u64).is_power_of_two() && a <= u32::MAX as i128 => {
                        a as u64
                    }
                    _ => bail!(
                        "GGUF {}: general.alignment is {}, not a power of two",
                        p.display(),
                        v.brief()
                    ),
                }
            }
        };

        let mut tensors = Vec::new();
        let mut tensor_index = HashMap::new();
        for i in 0..n_tensors {
            let name = c.string(&|| format!("tensor info {i}'s name"))?;
            let what = || format!("tensor info of `{name}`");
            let n_dims = c.u32(&what)?;
            if n_dims > 8 {
                bail!(
                    "GGUF {}: tensor `{name}` has {n_dims} dims (corrupt file?)",
                    p.display()
                );
            }
            let dims = (0..n_dims)
                .map(|_| c.u64(&what))
                .collect::<Result<Vec<_>>>()?;
            let ggml_type = GgmlType(c.u32(&what)?);
            let offset = c.u64(&what)?;
            let (blck, type_size) = ggml_type.block().ok_or_else(|| {
                anyhow!(
                    "GGUF {}: tensor `{name}` has unknown ggml type id {}",
                    p.display(),
                    ggml_type.0
                )
            })?;
            let n_elements = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| {
                    anyhow!(
                        "GGUF {}: tensor `{name}` dims {dims:?} overflow",
                        p.display()
                    )
                })?;
            let row = dims.first().copied().unwrap_or(1);
            if row % blck != 0 {
                bail!(
                    "GGUF {}: tensor `{name}` ({ggml_type}) has rows of {row} elements, not a multiple of the block size {blck}",
                    p.display()
                );
            }
            let n_bytes = (n_elements / blck).checked_mul(type_size).ok_or_else(|| {
                anyhow!(
                    "GGUF {}: tensor `{name}` ({ggml_type}) dims {dims:?} claim {n_elements} elements, more than 2^64 bytes; the file has {} bytes",
                    p.display(),
                    buf.len()
                )
            })?;
            if offset % alignment != 0 {
                bail!(
                    "GGUF {}: tensor `{name}` data offset {offset} is not a multiple of the alignment {alignment}",
                    p.display()
                );
            }
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                bail!("GGUF {}: duplicate tensor name `{name}`", p.display());
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
                n_elements,
                n_bytes,
            });
        }

        let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
        let file_len = buf.len() as u64;
        for t in &tensors {
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.n_bytes));
            match (start, end) {
                (Some(_), Some(end)) if end <= file_len => {}
                _ => bail!(
                    "GGUF {}: truncated or corrupt: the data of tensor `{}` ({}, {} bytes at offset {}) runs past the end of the file ({file_len} bytes)",
                    p.display(),
                    t.name,
                    t.ggml_type,
                    t.n_bytes,
                    data_offset.saturating_add(t.offset)
                ),
            }
        }

        Ok(Self {
            path,
            mmap,
            version,
            metadata,
            metadata_index,
            tensors,
            tensor_index,
            alignment,
            data_offset,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 2 or 3.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// `general.alignment`, or 32.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte offset of the data section in the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// All metadata, in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &GgufValue)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// `general.architecture` (`"llama"`).
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The value of `key`; an error naming the key (and the file) when it is missing.
    pub fn get_value(&self, key: &str) -> Result<&GgufValue> {
        self.get(key).ok_or_else(|| {
            anyhow!(
                "GGUF {}: metadata key `{key}` is missing",
                self.path.display()
            )
        })
    }

    fn wrong_type(&self, key: &str, v: &GgufValue, wanted: &str) -> anyhow::Error {
        anyhow!(
            "GGUF {}: metadata `{key}` is {} {}, not {wanted}",
            self.path.display(),
            v.type_name(),
            v.brief()
        )
    }

    fn get_int<T: TryFrom<i128>>(&self, key: &str, wanted: &str) -> Result<T> {
        let v = self.get_value(key)?;
        v.as_i128()
            .and_then(|i| T::try_from(i).ok())
            .ok_or_else(|| self.wrong_type(key, v, wanted))
    }

    /// Any integer type whose value fits in a u32.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_int(key, "an integer that fits a u32")
    }

    /// Any integer type whose value fits in a u64.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_int(key, "an integer that fits a u64")
    }

    /// Any integer type whose value fits in an i32.
    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.get_int(key, "an integer that fits an i32")
    }

    /// Any integer type whose value fits in an i64.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.get_int(key, "an integer that fits an i64")
    }

    /// Any integer type whose value fits in a usize.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        self.get_int(key, "an integer that fits a usize")
    }

    /// An f32 (or an f64, rounded to f32).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.get_value(key)?;
        v.as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| self.wrong_type(key, v, "a float"))
    }

    /// An f64 (or an f32, widened).
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.get_value(key)?;
        v.as_f64().ok_or_else(|| self.wrong_type(key, v, "a float"))
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let v = self.get_value(key)?;
        v.as_bool().ok_or_else(|| self.wrong_type(key, v, "a bool"))
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.get_value(key)?;
        v.as_str()
            .ok_or_else(|| self.wrong_type(key, v, "a string"))
    }

    pub fn get_array(&self, key: &str) -> Result<&[GgufValue]> {
        let v = self.get_value(key)?;
        v.as_array()
            .ok_or_else(|| self.wrong_type(key, v, "an array"))
    }

    fn get_array_of<'s, T>(
        &'s self,
        key: &str,
        wanted: &str,
        f: impl Fn(&'s GgufValue) -> Option<T>,
    ) -> Result<Vec<T>> {
        let v = self.get_value(key)?;
        let items = v
            .as_array()
            .ok_or_else(|| self.wrong_type(key, v, wanted))?;
        items
            .iter()
            .enumerate()
            .map(|(i, x)| {
                f(x).ok_or_else(|| {
                    anyhow!(
                        "GGUF {}: metadata `{key}`[{i}] is {} {}, not {wanted}",
                        self.path.display(),
                        x.type_name(),
                        x.brief()
                    )
                })
            })
            .collect()
    }

    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.get_array_of(key, "an array of strings", GgufValue::as_str)
    }

    /// An array of f32 (or f64, rounded).
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.get_array_of(key, "an array of floats", |x| x.as_f64().map(|f| f as f32))
    }

    /// An array of integers that fit an i32.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.get_array_of(key, "an array of i32-sized integers", |x| {
            x.as_i128().and_then(|i| i32::try_from(i).ok())
        })
    }

    /// An array of integers that fit a u32.
    pub fn get_u32_array(&self, key: &str) -> Result<Vec<u32>> {
        self.get_array_of(key, "an array of u32-sized integers", |x| {
            x.as_i128().and_then(|i| u32::try_from(i).ok())
        })
    }

    /// An array of integers that fit an i64.
    pub fn get_i64_array(&self, key: &str) -> Result<Vec<i64>> {
        self.get_array_of(key, "an array of i64-sized integers", |x| {
            x.as_i128().and_then(|i| i64::try_from(i).ok())
        })
    }

    /// An array of bools.
    pub fn get_bool_array(&self, key: &str) -> Result<Vec<bool>> {
        self.get_array_of(key, "an array of bools", GgufValue::as_bool)
    }

    /// The tensor info of `name`; an error naming the tensor and the file when there is none.
    pub fn tensor_info(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor_index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| {
                anyhow!(
                    "GGUF {}: no tensor named `{name}` ({} tensors in the file)",
                    self.path.display(),
                    self.tensors.len()
                )
            })
    }

    /// The raw (still quantized) bytes of a tensor, straight from the map.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let t = self.tensor_info(name)?;
        let start = (self.data_offset + t.offset) as usize;
        Ok(&self.mmap[start..start + t.n_bytes as usize])
    }

    /// A tensor's values as f32, row-major over [`TensorInfo::shape`], exactly as
    /// `gguf.quants.dequantize` gives them (no Q/K unpermute: see [`Self::tensor_f32_hf`]).
    /// Unsupported types are an error naming the type and the tensor.
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.tensor_info(name)?;
        if !t.ggml_type.is_supported() {
            bail!(
                "GGUF {}: tensor `{name}` has type {}, which this reader cannot dequantize (supported: {})",
                self.path.display(),
                t.ggml_type,
                supported_list()
            );
        }
        dequantize(t.ggml_type, self.tensor_bytes(name)?, t.n_elements as usize)
            .with_context(|| format!("GGUF {}: tensor `{name}`", self.path.display()))
    }

    /// A tensor in the layout transformers loads it with: [`Self::tensor_f32`], and for
    /// `blk.N.attn_q.weight` / `blk.N.attn_k.weight` (Llama) [`unpermute_qk`] with
    /// `{arch}.attention.head_count` / `{arch}.attention.head_count_kv`. Returns the values and
    /// the row-major shape.
    pub fn tensor_f32_hf(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let t = self.tensor_info(name)?;
        let shape = t.shape();
        let w = self.tensor_f32(name)?;
        let is_q = name.contains(".attn_q.");
        let is_k = name.contains(".attn_k.");
        if !(is_q || is_k) || self.architecture()? != "llama" {
            return Ok((w, shape));
        }
        let arch = self.architecture()?;
        let n_head = self.get_usize(&format!("{arch}.attention.head_count"))?;
        let n_head = if is_k {
            match self.get(&format!("{arch}.attention.head_count_kv")) {
                Some(_) => self.get_usize(&format!("{arch}.attention.head_count_kv"))?,
                None => n_head,
            }
        } else {
            n_head
        };
        let (rows, cols) = match shape[..] {
            [r, c] => (r, c),
            [r] => (r, 1), // a bias
            _ => bail!(
                "GGUF {}: tensor `{name}` has shape {shape:?}, expected 2-D",
                self.path.display()
            ),
        };
        // rows % (2 × n_head) without the overflow of 2 × n_head (n_head comes from metadata).
        if n_head == 0 || rows % n_head != 0 || (rows / n_head) % 2 != 0 {
            bail!(
                "GGUF {}: tensor `{name}` has {rows} rows, not a multiple of 2 × {n_head} heads",
                self.path.display()
            );
        }
        Ok((unpermute_qk(&w, n_head, rows, cols), shape))
    }
}

fn supported_list() -> String {
    GgmlType::SUPPORTED
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Undo llama.cpp's RoPE permutation of a Q or K projection weight (`[rows, cols]` row-major,
/// rows = `n_head × head_dim`), exactly as transformers' GGUF loader does
/// (`w.reshape(n_head, head_dim/2, 2, cols).swapaxes(1, 2).reshape(rows, cols)`).
///
/// With `half = head_dim / 2`, for head `h`, `i < half`, `j < 2`:
/// `out[h·head_dim + j·half + i] = in[h·head_dim + 2·i + j]` (rows). So GGUF's interleaved pairs
/// (rows 2i, 2i+1 of a head) go back to HF's halves (rows i and half + i).
/// Use `n_head` = `attention.head_count` for Q and `attention.head_count_kv` for K.
///
/// # Panics
/// When `w.len() != rows × cols` or `rows` is not a multiple of `2 × n_head`.
pub fn unpermute_qk(w: &[f32], n_head: usize, rows: usize, cols: usize) -> Vec<f32> {
    permute_rows(w, n_head, rows, cols, false)
}

/// The forward permutation (llama.cpp's `convert_hf_to_gguf.py` `LlamaModel.permute`): HF layout
/// → GGUF layout. `unpermute_qk(&permute_qk(w, ..), ..) == w`.
///
/// # Panics
/// As [`unpermute_qk`].
pub fn permute_qk(w: &[f32], n_head: usize, rows: usize, cols: usize) -> Vec<f32> {
    permute_rows(w, n_head, rows, cols, true)
}

fn permute_rows(w: &[f32], n_head: usize, rows: usize, cols: usize, forward: bool) -> Vec<f32> {
    assert_eq!(
        w.len(),
        rows * cols,
        "permute_qk: {rows}×{cols} != {}",
        w.len()
    );
    assert!(
        n_head > 0 && rows % (2 * n_head) == 0,
        "permute_qk: {rows} rows is not a multiple of 2 × {n_head} heads"
    );
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_head {
        for i in 0..half {
            for j in 0..2 {
                let hf = h * head_dim + j * half + i;
                let gg = h * head_dim + 2 * i + j;
                let (dst, src) = if forward { (gg, hf) } else { (hf, gg) };
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[inline]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// Dequantize `n_elements` values of type `ty` from `data` (ggml block layouts, matching
/// `gguf.quants.dequantize` bit for bit):
///
/// * F32, F16, BF16: plain little-endian values.
/// * Q8_0 (34 bytes / 32): f16 `d`, 32 × i8 `q`; `x = q·d`.
/// * Q4_0 (18 bytes / 32): f16 `d`, 16 bytes; element `i < 16` is the low nibble of byte `i`,
///   element `16 + i` its high nibble; `x = (nibble − 8)·d`.
/// * Q4_1 (20 bytes / 32): f16 `d`, f16 `m`, 16 bytes (nibbles as Q4_0); `x = nibble·d + m`.
pub fn dequantize(ty: GgmlType, data: &[u8], n_elements: usize) -> Result<Vec<f32>> {
    let (blck, type_size) = ty
        .block()
        .ok_or_else(|| anyhow!("unknown ggml type {ty}"))?;
    let (blck, type_size) = (blck as usize, type_size as usize);
    if !ty.is_supported() {
        bail!(
            "cannot dequantize type {ty} (supported: {})",
            supported_list()
        );
    }
    if n_elements % blck != 0 {
        bail!("{n_elements} elements of {ty} is not a whole number of {blck}-element blocks");
    }
    let need = (n_elements / blck).checked_mul(type_size);
    if need != Some(data.len()) {
        bail!(
            "{n_elements} elements of {ty} take {} bytes, got {}",
            need.map_or("more than 2^64".to_string(), |n| n.to_string()),
            data.len()
        );
    }
    let mut out = Vec::with_capacity(n_elements);
    match ty {
        GgmlType::F32 => out.extend(
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
        ),
        GgmlType::F16 => out.extend(data.chunks_exact(2).map(|c| f16_at(c, 0))),
        GgmlType::BF16 => out.extend(
            data.chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)),
        ),
        GgmlType::Q8_0 => {
            for b in data.chunks_exact(34) {
                let d = f16_at(b, 0);
                out.extend(b[2..].iter().map(|&q| (q as i8) as f32 * d));
            }
        }
        GgmlType::Q4_0 => {
            for b in data.chunks_exact(18) {
                let d = f16_at(b, 0);
                let qs = &b[2..];
                out.extend(qs.iter().map(|&q| ((q & 0x0F) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in data.chunks_exact(20) {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let qs = &b[4..];
                out.extend(qs.iter().map(|&q| (q & 0x0F) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
        _ => unreachable!("checked by is_supported"),
    }
    Ok(out)
}

/// The transformers (`LlamaForCausalLM`) name of a Llama GGUF tensor, per the table in the
/// module docs; `None` for names outside it (e.g. `rope_freqs.weight`).
pub fn hf_name(gguf_name: &str) -> Option<String> {
    let (stem, suffix) = gguf_name.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let mapped = match stem {
        "token_embd" => "model.embed_tokens".to_string(),
        "output_norm" => "model.norm".to_string(),
        "output" => "lm_head".to_string(),
        _ => {
            let rest = stem.strip_prefix("blk.")?;
            let (layer, leaf) = rest.split_once('.')?;
            let layer: usize = layer.parse().ok()?;
            let leaf = match leaf {
                "attn_norm" => "input_layernorm",
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "ffn_norm" => "post_attention_layernorm",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                _ => return None,
            };
            format!("model.layers.{layer}.{leaf}")
        }
    };
    Some(format!("{mapped}.{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_roundtrip_and_index_map() {
        let (n_head, rows, cols) = (3, 12, 2);
        let w: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let u = unpermute_qk(&w, n_head, rows, cols);
        assert_eq!(permute_qk(&u, n_head, rows, cols), w);
        // head_dim 4, half 2: GGUF rows (0,1,2,3) = HF rows (0,2,1,3)
        let first_col: Vec<f32> = u.iter().step_by(cols).map(|x| x / 2.0).collect();
        assert_eq!(
            first_col,
            [0., 2., 1., 3., 4., 6., 5., 7., 8., 10., 9., 11.]
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            hf_name("blk.12.attn_output.weight").as_deref(),
            Some("model.layers.12.self_attn.o_proj.weight")
        );
        assert_eq!(
            hf_name("token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
        assert_eq!(GgmlType::from_name("Q4_1"), Some(GgmlType::Q4_1));
        assert_eq!(GgmlType(99).name(), "type#99");
    }
}
