//! Opening a GGUF file: the header, metadata and tensor-info parser with its checks (version,
//! duplicates, alignment, dims, data inside the file). File format only: no wgpu, no models.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use memmap2::Mmap;

use super::cursor::Cursor;
use super::{GgmlType, GgufValue};

/// `general.alignment` when the file does not set it.
pub const DEFAULT_ALIGNMENT: u64 = 32;

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
    pub(super) path: PathBuf,
    pub(super) mmap: Mmap,
    pub(super) version: u32,
    pub(super) metadata: Vec<(String, GgufValue)>,
    pub(super) metadata_index: HashMap<String, usize>,
    pub(super) tensors: Vec<TensorInfo>,
    pub(super) tensor_index: HashMap<String, usize>,
    pub(super) alignment: u64,
    pub(super) data_offset: u64,
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
}
