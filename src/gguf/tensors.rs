//! [`GgufFile`]'s tensor access: infos, raw bytes, dequantized values and the transformers layout.
//! File format only: no wgpu, no models.

use anyhow::{anyhow, bail, Context, Result};

use super::ggml_type::supported_list;
use super::{dequantize, unpermute_qk, GgufFile, TensorInfo};

impl GgufFile {
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
        self.check_type(t)?;
        dequantize(t.ggml_type, self.tensor_bytes(name)?, t.n_elements as usize)
            .with_context(|| format!("GGUF {}: tensor `{name}`", self.path.display()))
    }

    /// Check that every tensor of the file has a type [`dequantize`] handles, as a model load
    /// needs: an error naming the file, the first tensor that does not, its type and the
    /// supported types.
    pub fn check_types(&self) -> Result<()> {
        self.tensors.iter().try_for_each(|t| self.check_type(t))
    }

    fn check_type(&self, t: &TensorInfo) -> Result<()> {
        if !t.ggml_type.is_supported() {
            bail!(
                "GGUF {}: tensor `{}` has type {}, which this reader cannot dequantize (supported: {})",
                self.path.display(),
                t.name,
                t.ggml_type,
                supported_list()
            );
        }
        Ok(())
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
