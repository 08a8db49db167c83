//! Putting a checkpoint's tensors into GPU storage buffers: vectors, block matrices (f32 or packed
//! f16), stacked matrices and vocabulary chunks. May use the GPU context and weight sources; never kernels.

use anyhow::{Context, Result};

use crate::gpu::GpuContext;
pub use crate::kernels::pack_f16;
use crate::weights::WeightSource;

pub(crate) fn bytes_f32(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

/// Which input width a linear layer reads: the model width d, the MLP's inner width, or the
/// attention heads' n_head · head_dim (z, when it differs from d: Gemma 3's o_proj).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum InputWidth {
    D,
    Inner,
    Heads,
}

/// One linear layer on the GPU: out `[rows, n]` = x `[rows, k]` · W (+ b). W is stored `[k, n]`
/// (Conv1D) or `[n, k]` (`b_t`, nn.Linear), as f32 or as packed f16 pairs (`f16`).
pub(crate) struct Linear {
    pub w: wgpu::Buffer,
    pub b: Option<wgpu::Buffer>,
    pub k: usize,
    pub n: usize,
    pub b_t: bool,
    pub f16: bool,
    pub input: InputWidth,
    /// Kept in ggml blocks (`upload_quant.rs`): the matrices writing its output columns, read
    /// by `qmatvec` (then `w` is the first one's buffer); empty for f32/f16 weights.
    pub q: Vec<crate::kernels::qmatmul::QWeight>,
}

/// A slice of vocabulary rows of an embedding matrix, small enough for one storage binding.
pub(crate) struct Chunk {
    pub buf: wgpu::Buffer,
    pub start: usize,
    pub count: usize,
    /// Kept in ggml blocks (`upload_quant.rs`; then `buf` is its buffer), else f32 rows.
    pub q: Option<crate::kernels::qmatmul::QWeight>,
}

/// Uploads tensors of one weight source, counting the bytes put on the GPU.
pub(crate) struct Uploader<'a> {
    pub ctx: &'a GpuContext,
    pub wf: &'a dyn WeightSource,
    /// Store the blocks' linear-layer matrices as f16.
    pub f16: bool,
    /// Keep them in ggml blocks: as stored (GGUF), or quantized to Q8_0 (`upload_quant.rs`).
    pub weights: super::upload_quant::Weights,
    /// Bytes of weights on the GPU so far.
    pub bytes: u64,
    /// Of those, bytes of matrices kept in ggml blocks.
    pub quant_bytes: u64,
    /// The most weights of one linear layer kept in ggml blocks (the prefill scratch's size).
    pub quant_max_elems: usize,
}

impl Uploader<'_> {
    fn label(&self, name: &str) -> String {
        format!("{}:{name}", self.wf.path().display())
    }

    /// Whether the source holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.wf.contains(name)
    }

    /// A tensor of `shape` as f32 (norm weights, biases, positions, variant tensors).
    pub fn vector(&mut self, name: &str, shape: &[usize]) -> Result<wgpu::Buffer> {
        let data = self.wf.load(name, shape)?;
        self.f32_buffer(name, &data)
    }

    /// Host values as an f32 buffer labelled `name`.
    pub fn f32_buffer(&mut self, name: &str, data: &[f32]) -> Result<wgpu::Buffer> {
        self.bytes += data.len() as u64 * 4;
        self.ctx.storage_init(&self.label(name), bytes_f32(data))
    }

    /// A block matrix as loaded; stored as f16, it must fit f16's range.
    fn load_matrix(&self, name: &str, shape: &[usize]) -> Result<std::borrow::Cow<'_, [f32]>> {
        let data = self.wf.load(name, shape)?;
        if self.f16 {
            crate::finite::check_f16_range(name, shape, &data)
                .with_context(|| self.wf.path().display().to_string())?;
        }
        Ok(data)
    }

    fn put_matrix(&mut self, name: &str, data: &[f32]) -> Result<wgpu::Buffer> {
        if self.f16 {
            let packed = pack_f16(data);
            self.bytes += packed.len() as u64 * 4;
            self.ctx
                .storage_init(&self.label(name), bytemuck::cast_slice(&packed))
        } else {
            self.f32_buffer(name, data)
        }
    }

    /// A block's linear layer: weight `name` of `shape` (`[k, n]`, or `[n, k]` with `b_t`),
    /// optional bias `[n]`.
    pub fn linear(
        &mut self,
        name: &str,
        bias: Option<&str>,
        (k, n): (usize, usize),
        b_t: bool,
        input: InputWidth,
    ) -> Result<Linear> {
        if let Some(q) = self.quant_parts(&[(name, n)], k, b_t, None)? {
            let b = bias.map(|b| self.vector(b, &[n])).transpose()?;
            return Ok(Linear::quantized(q, b, (k, n), input));
        }
        let shape = if b_t { [n, k] } else { [k, n] };
        let data = self.load_matrix(name, &shape)?.into_owned();
        let w = self.put_matrix(name, &data)?;
        let b = bias.map(|b| self.vector(b, &[n])).transpose()?;
        Ok(Linear {
            w,
            b,
            k,
            n,
            b_t,
            f16: self.f16,
            input,
            q: Vec::new(),
        })
    }

    /// An nn.Linear layer `[n, k]` (+ bias `[n]`) with its output rows reordered: row `i` of
    /// the uploaded layer is the stored row `rows[i]` (GPT-NeoX's per-head q|k|v to the
    /// engine's q | k | v).
    pub fn permuted(
        &mut self,
        name: &str,
        bias: Option<&str>,
        (k, n): (usize, usize),
        rows: &[usize],
        input: InputWidth,
    ) -> Result<Linear> {
        assert_eq!(rows.len(), n, "one source row per output row");
        let q = self.quant_parts(&[(name, n)], k, true, Some(rows))?;
        let data = self.load_matrix(name, &[n, k])?;
        let w = if q.is_none() {
            let w: Vec<f32> = rows
                .iter()
                .flat_map(|&r| data[r * k..(r + 1) * k].iter().copied())
                .collect();
            Some(self.put_matrix(name, &w)?)
        } else {
            None
        };
        let b = match bias {
            Some(bn) => {
                let b = self.wf.load(bn, &[n])?;
                let b: Vec<f32> = rows.iter().map(|&r| b[r]).collect();
                Some(self.f32_buffer(bn, &b)?)
            }
            None => None,
        };
        if let Some(q) = q {
            return Ok(Linear::quantized(q, b, (k, n), input));
        }
        Ok(Linear {
            w: w.expect("dense"),
            b,
            k,
            n,
            b_t: true,
            f16: self.f16,
            input,
            q: Vec::new(),
        })
    }

    /// nn.Linear matrices `[rows_i, k]` stacked along their first axis into one layer of
    /// width Σ rows_i (Llama's q|k|v, gate|up); with `bias`, their biases `[rows_i]` (named
    /// `{weight name without .weight}.bias`) stacked the same way (Qwen2's q|k|v).
    pub fn stacked(
        &mut self,
        names: &[(&str, usize)],
        bias: bool,
        k: usize,
        input: InputWidth,
    ) -> Result<Linear> {
        let q = self.quant_parts(names, k, true, None)?;
        let w = if q.is_none() {
            let mut all = Vec::new();
            for (name, rows) in names {
                all.extend_from_slice(&self.load_matrix(name, &[*rows, k])?);
            }
            Some(self.put_matrix(names[0].0, &all)?)
        } else {
            None
        };
        let b = if bias {
            let mut b = Vec::new();
            for (name, rows) in names {
                let bn = format!("{}.bias", name.trim_end_matches(".weight"));
                b.extend_from_slice(&self.wf.load(&bn, &[*rows])?);
            }
            let label = format!("{}.bias", names[0].0.trim_end_matches(".weight"));
            Some(self.f32_buffer(&label, &b)?)
        } else {
            None
        };
        let n = names.iter().map(|n| n.1).sum();
        if let Some(q) = q {
            return Ok(Linear::quantized(q, b, (k, n), input));
        }
        Ok(Linear {
            w: w.expect("dense"),
            b,
            k,
            n,
            b_t: true,
            f16: self.f16,
            input,
            q: Vec::new(),
        })
    }

    /// An embedding matrix `[v, d]` (always f32) in vocabulary chunks that each fit one binding.
    pub fn chunks(&mut self, name: &str, (v, d): (usize, usize)) -> Result<Vec<Chunk>> {
        let data = self.wf.load(name, &[v, d])?;
        let rows_per = ((self.ctx.max_binding / (d as u64 * 4)) as usize / 64 * 64).max(64);
        let mut out = Vec::new();
        let mut start = 0;
        while start < v {
            let count = rows_per.min(v - start);
            let l = format!("{name}[{start}..{}]", start + count);
            let buf = self
                .ctx
                .storage_init(&l, bytes_f32(&data[start * d..(start + count) * d]))
                .with_context(|| {
                    format!("{}: {name} in vocabulary chunks", self.wf.path().display())
                })?;
            out.push(Chunk {
                buf,
                start,
                count,
                q: None,
            });
            start += count;
        }
        self.bytes += data.len() as u64 * 4;
        Ok(out)
    }
}
