//! Memory-mapped `model.safetensors`: tensor lookup under either GPT-2 naming scheme,
//! dtype conversion (f32, f16, bf16) to f32, and shape checks that name the tensor; the
//! [`WeightSource`] trait over it and GGUF files. Sharded checkpoints
//! (`model.safetensors.index.json`) and the refusal of pickled ones are in `weights/sharded.rs`.
//! File formats: depends on gguf and tensor; never on wgpu or models.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use safetensors::SafeTensors;

use crate::gguf::GgmlType;

mod gguf_rows;
mod sharded;

pub use gguf_rows::gather_rows;
pub use sharded::{refuse_pickled, ShardedWeights};

/// A safetensors file, mapped, with its header parsed once.
pub struct WeightFile {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    meta: Metadata,
    /// Prefix in front of the canonical names (`""` or `"transformer."`).
    prefix: String,
}

impl WeightFile {
    /// Map `path` and validate its header. `probe` is a canonical name (e.g. `wte.weight`)
    /// used to detect the naming scheme among `prefixes`.
    pub fn open(path: &Path, probe: &str, prefixes: &[&str]) -> Result<Self> {
        let mut wf = Self::open_unprobed(path)?;
        match prefixes
            .iter()
            .find(|p| wf.meta.info(&format!("{p}{probe}")).is_some())
        {
            Some(p) => wf.prefix = p.to_string(),
            None => {
                let mut names: Vec<_> = wf.meta.tensors().into_keys().collect();
                names.sort();
                names.truncate(8);
                bail!(
                    "{}: missing tensor '{probe}' (looked for it under the prefixes {prefixes:?}); the file holds e.g. {names:?}",
                    path.display()
                );
            }
        }
        Ok(wf)
    }

    /// Map `path` and validate its header, with the prefix left empty (a shard's caller sets it).
    fn open_unprobed(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: the file is opened read-only; outlier-probe never writes to it while mapped.
        let mmap =
            unsafe { Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))?;
        let (n, meta) = SafeTensors::read_metadata(&mmap).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid safetensors file ({} bytes): {e}{}",
                path.display(),
                mmap.len(),
                match e {
                    safetensors::SafeTensorError::MetadataIncompleteBuffer
                    | safetensors::SafeTensorError::InvalidHeaderLength
                    | safetensors::SafeTensorError::HeaderTooSmall =>
                        " (is the file truncated or still downloading?)",
                    _ => "",
                }
            )
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            data_start: 8 + n,
            meta,
            prefix: String::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn info(&self, name: &str) -> Option<(String, &TensorInfo)> {
        let full = format!("{}{name}", self.prefix);
        if let Some(i) = self.meta.info(&full) {
            return Some((full, i));
        }
        // Heads that live outside the transformer prefix (lm_head.weight).
        self.meta.info(name).map(|i| (name.to_string(), i))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.info(name).is_some()
    }

    /// The tensor `name` as f32, checked against `shape`. Borrowed from the map when stored as f32.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Cow<'_, [f32]>> {
        let (full, info) = self.info(name).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: missing tensor '{}{name}'",
                self.path.display(),
                self.prefix
            )
        })?;
        if info.shape != shape {
            bail!(
                "{}: tensor '{full}' has shape {:?} but config.json implies {:?}",
                self.path.display(),
                info.shape,
                shape
            );
        }
        let (a, b) = info.data_offsets;
        let bytes = &self.mmap[self.data_start + a..self.data_start + b];
        let n: usize = shape.iter().product();
        Ok(match info.dtype {
            Dtype::F32 => match bytemuck::try_cast_slice::<u8, f32>(bytes) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => Cow::Owned(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            },
            Dtype::F16 => Cow::Owned(
                bytes
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            Dtype::BF16 => Cow::Owned(
                bytes
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            other => bail!(
                "{}: tensor '{full}' is stored as {other:?}; supported dtypes are F32, F16 and BF16",
                self.path.display()
            ),
        })
        .and_then(|v: Cow<'_, [f32]>| {
            if v.len() != n {
                bail!("{}: tensor '{full}' holds {} values, expected {n}", self.path.display(), v.len());
            }
            Ok(v)
        })
    }

    /// Raw bytes of a tensor (for equality checks such as a tied head).
    pub fn raw(&self, name: &str) -> Option<&[u8]> {
        let (_, info) = self.info(name)?;
        let (a, b) = info.data_offsets;
        Some(&self.mmap[self.data_start + a..self.data_start + b])
    }
}

/// Where a model's tensors come from, by canonical name (without the checkpoint's prefix):
/// a safetensors file or a GGUF file. Tensors come out as f32 in Hugging Face layout.
pub trait WeightSource {
    fn path(&self) -> &Path;
    fn contains(&self, name: &str) -> bool;
    /// The tensor as f32, checked against `shape` (errors name the file, tensor and both shapes).
    fn load(&self, name: &str, shape: &[usize]) -> Result<Cow<'_, [f32]>>;
    /// Whether two stored tensors hold the same bytes (a tied LM head saved twice).
    fn same(&self, a: &str, b: &str) -> bool;
    /// The tensor with its stored shape.
    fn tensor(&self, name: &str) -> Result<crate::tensor::Tensor>;
    /// Every stored tensor's canonical name (what [`Self::tensor`] takes), sorted. A GGUF lists
    /// only the tensors with a Hugging Face name (see [`crate::gguf::hf_name`]).
    fn names(&self) -> Vec<String>;
    /// A matrix `[rows, k]` as its stored ggml blocks (type, bytes), rows in the Hugging Face
    /// order [`Self::load`] gives; `None` when it is stored unquantized (F32, F16, BF16, and
    /// every safetensors tensor) or its rows are not a permutation of the stored ones.
    fn quantized(&self, name: &str, shape: [usize; 2]) -> Result<Option<(GgmlType, Vec<u8>)>> {
        let _ = (name, shape);
        Ok(None)
    }
}

impl WeightSource for WeightFile {
    fn path(&self) -> &Path {
        &self.path
    }
    fn contains(&self, name: &str) -> bool {
        WeightFile::contains(self, name)
    }
    fn load(&self, name: &str, shape: &[usize]) -> Result<Cow<'_, [f32]>> {
        self.f32(name, shape)
    }
    fn same(&self, a: &str, b: &str) -> bool {
        matches!((self.raw(a), self.raw(b)), (Some(x), Some(y)) if x == y)
    }
    fn tensor(&self, name: &str) -> Result<crate::tensor::Tensor> {
        let shape = self
            .info(name)
            .map(|(_, i)| i.shape.clone())
            .ok_or_else(|| anyhow::anyhow!("{}: missing tensor '{name}'", self.path.display()))?;
        let data = self.f32(name, &shape)?.into_owned();
        Ok(crate::tensor::Tensor::new(shape, data))
    }
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .meta
            .tensors()
            .into_keys()
            .map(|k| match k.strip_prefix(self.prefix.as_str()) {
                Some(rest) => rest.to_string(),
                None => k,
            })
            .collect();
        names.sort();
        names
    }
}

/// A GGUF file seen through Hugging Face names (`layers.0.self_attn.q_proj.weight`), dequantized
/// at load, in the layout transformers' GGUF loader gives (Q and K un-permuted for `llama`, …):
/// both per the file's [`GgufArch`](crate::gguf_config::GgufArch).
pub struct GgufWeights {
    pub file: crate::gguf::GgufFile,
    arch: &'static crate::gguf_config::GgufArch,
    /// Canonical (prefix-less) HF name -> GGUF tensor name.
    names: std::collections::HashMap<String, String>,
}

impl GgufWeights {
    /// # Errors
    /// An unsupported `general.architecture` (named, with the file).
    pub fn new(file: crate::gguf::GgufFile) -> Result<Self> {
        let arch = crate::gguf_config::arch_of(&file)?;
        let names = file
            .tensors()
            .iter()
            .filter_map(|t| {
                let hf = (arch.hf_name)(&t.name)?;
                let canon = hf.strip_prefix("model.").map(str::to_string).unwrap_or(hf);
                Some((canon, t.name.clone()))
            })
            .collect();
        Ok(Self { file, arch, names })
    }

    fn hf(&self, gguf_name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        (self.arch.tensor_hf)(&self.file, gguf_name)
    }
}

impl WeightSource for GgufWeights {
    fn path(&self) -> &Path {
        self.file.path()
    }
    fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }
    fn load(&self, name: &str, shape: &[usize]) -> Result<Cow<'_, [f32]>> {
        let g = self.names.get(name).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: missing tensor for '{name}'",
                self.file.path().display()
            )
        })?;
        let (data, got) = self.hf(g)?;
        if got != shape {
            bail!(
                "{}: tensor '{g}' ({name}) has shape {got:?} but the metadata implies {shape:?}",
                self.file.path().display()
            );
        }
        Ok(Cow::Owned(data))
    }
    fn same(&self, a: &str, b: &str) -> bool {
        match (self.names.get(a), self.names.get(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }
    fn tensor(&self, name: &str) -> Result<crate::tensor::Tensor> {
        let g = self.names.get(name).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: missing tensor for '{name}'",
                self.file.path().display()
            )
        })?;
        let (data, shape) = self.hf(g)?;
        Ok(crate::tensor::Tensor::new(shape, data))
    }
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names.keys().cloned().collect();
        names.sort();
        names
    }
    fn quantized(&self, name: &str, shape: [usize; 2]) -> Result<Option<(GgmlType, Vec<u8>)>> {
        let Some(g) = self.names.get(name) else {
            return Ok(None);
        };
        let info = self.file.tensor_info(g)?;
        let ty = info.ggml_type;
        if matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) || info.shape() != shape {
            return Ok(None);
        }
        let bytes = self.file.tensor_bytes(g)?;
        let order = gguf_rows::hf_row_order(ty, bytes, &self.hf(g)?.0, shape)?;
        Ok(order.map(|o| (ty, gguf_rows::gather_rows(bytes, shape[0], &o))))
    }
}
