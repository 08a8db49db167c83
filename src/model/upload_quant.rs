//! Linear layers kept in ggml block quantization on the GPU (`--weights stored|q8`): the stored
//! GGUF blocks (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) with their rows in Hugging Face
//! order, or f32 weights quantized to Q8_0 at load; matrices a format cannot hold (another type,
//! rows not a whole number of blocks) keep the dequantized path. May use the GPU context, weight
//! sources and the kernels' block layout.

use std::str::FromStr;

use anyhow::{bail, Result};

use super::upload::{Chunk, InputWidth, Linear, Uploader};
use crate::kernels::qmatmul::{quantize_q8_0, repack, QType, QWeight};

/// How the blocks' linear-layer matrices are stored on the GPU (`--weights`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Weights {
    /// As the file stores them: a GGUF's quantized blocks stay quantized (types the kernels
    /// decode; others are dequantized to f32); safetensors weights become f32.
    #[default]
    Stored,
    /// Dequantized to f32 at load.
    F32,
    /// Rounded to f16 (packed pairs), f32 math.
    F16,
    /// Quantized to Q8_0 at load (blocks of 32 along the input dimension, f16 scale).
    Q8,
}

impl Weights {
    /// The `--weights` value.
    pub fn name(self) -> &'static str {
        match self {
            Weights::Stored => "stored",
            Weights::F32 => "f32",
            Weights::F16 => "f16",
            Weights::Q8 => "q8",
        }
    }
}

impl FromStr for Weights {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "stored" => Weights::Stored,
            "f32" => Weights::F32,
            "f16" => Weights::F16,
            "q8" => Weights::Q8,
            _ => bail!("--weights {s:?}: expected f32, f16, q8 or stored"),
        })
    }
}

impl std::fmt::Display for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Linear {
    /// A layer whose weights are the quantized matrices `q` (nn.Linear layout).
    pub(crate) fn quantized(
        q: Vec<QWeight>,
        b: Option<wgpu::Buffer>,
        (k, n): (usize, usize),
        input: InputWidth,
    ) -> Self {
        Linear {
            w: q[0].buf.clone(),
            b,
            k,
            n,
            b_t: true,
            f16: false,
            input,
            q,
        }
    }
}

impl Uploader<'_> {
    /// The matrices `names` (`(name, rows)`, each `[rows, k]`, or `[k, rows]` without `b_t`),
    /// stacked along the output, as quantized GPU matrices — one per run of the same type —
    /// with output rows reordered by `perm` (output row `i` = stored row `perm[i]`); `None` when
    /// the layer stays dense: f32/f16 weights asked for, or some part stored in a type (or with
    /// a row length) the kernels cannot hold.
    pub(crate) fn quant_parts(
        &mut self,
        names: &[(&str, usize)],
        k: usize,
        b_t: bool,
        perm: Option<&[usize]>,
    ) -> Result<Option<Vec<QWeight>>> {
        let mut blocks: Vec<(QType, usize, Vec<u8>)> = Vec::new();
        for &(name, rows) in names {
            let part = match self.weights {
                Weights::F32 | Weights::F16 => return Ok(None),
                Weights::Stored => {
                    if !b_t {
                        return Ok(None);
                    }
                    match self.wf.quantized(name, [rows, k])? {
                        Some((ty, bytes)) => match QType::from_ggml(ty) {
                            Some(q) if k % q.block_elems() == 0 => (q, bytes),
                            _ => return Ok(None),
                        },
                        None => return Ok(None),
                    }
                }
                Weights::Q8 => {
                    if k % 32 != 0 {
                        return Ok(None);
                    }
                    let shape = if b_t { [rows, k] } else { [k, rows] };
                    let data = self.wf.load(name, &shape)?;
                    let rowmajor: Vec<f32> = if b_t {
                        data.into_owned()
                    } else {
                        (0..rows)
                            .flat_map(|j| (0..k).map(move |i| (i, j)))
                            .map(|(i, j)| data[i * rows + j])
                            .collect()
                    };
                    if let Some(i) = rowmajor.iter().position(|x| !x.is_finite()) {
                        bail!(
                            "{}: --weights q8: {name} holds {} at flat index {i} (row-major [{rows}, {k}]); Q8_0 needs finite weights",
                            self.wf.path().display(),
                            rowmajor[i]
                        );
                    }
                    (QType::Q8_0, quantize_q8_0(&rowmajor))
                }
            };
            match blocks.last_mut() {
                Some((ty, r, bytes)) if *ty == part.0 => {
                    bytes.extend_from_slice(&part.1);
                    *r += rows;
                }
                _ => blocks.push((part.0, rows, part.1)),
            }
        }
        if let Some(perm) = perm {
            if blocks.len() != 1 {
                bail!("a row-permuted layer is one matrix");
            }
            let (_, rows, bytes) = &mut blocks[0];
            *bytes = crate::weights::gather_rows(bytes, *rows, perm);
        }
        let n: usize = names.iter().map(|n| n.1).sum();
        self.quant_max_elems = self.quant_max_elems.max(n * k);
        let mut out = Vec::new();
        let mut col_off = 0;
        for (ty, rows, bytes) in blocks {
            let name = names[0].0;
            let qm = repack(ty, rows, k, &bytes)
                .map_err(|e| anyhow::anyhow!("{}: {name}: {e}", self.wf.path().display()))?;
            self.bytes += qm.words.len() as u64 * 4;
            self.quant_bytes += qm.words.len() as u64 * 4;
            let buf = self.ctx.storage_init(
                &format!("{}:{name} ({ty:?})", self.wf.path().display()),
                bytemuck::cast_slice(&qm.words),
            )?;
            out.push(QWeight {
                ty,
                buf,
                rows,
                col_off,
                hoff: qm.hoff,
            });
            col_off += rows;
        }
        Ok(Some(out))
    }
}

impl Uploader<'_> {
    /// An embedding (or LM head) matrix `[v, d]` kept in ggml blocks, in vocabulary chunks that
    /// each fit one binding (see [`Uploader::chunks`]): as stored, or quantized to Q8_0 with
    /// `--weights q8`; `None` when it stays f32 (f32/f16 asked for, an unquantized or
    /// undecodable type, `d` not a whole number of blocks).
    pub(crate) fn quant_chunks(
        &mut self,
        name: &str,
        (v, d): (usize, usize),
    ) -> Result<Option<Vec<Chunk>>> {
        let (ty, bytes) = match self.weights {
            Weights::F32 | Weights::F16 => return Ok(None),
            Weights::Stored => match self.wf.quantized(name, [v, d])? {
                Some((t, bytes)) => match QType::from_ggml(t) {
                    Some(q) if d % q.block_elems() == 0 => (q, bytes),
                    _ => return Ok(None),
                },
                None => return Ok(None),
            },
            Weights::Q8 => {
                if d % 32 != 0 {
                    return Ok(None);
                }
                let data = self.wf.load(name, &[v, d])?;
                if data.iter().any(|x| !x.is_finite()) {
                    bail!("{}: --weights q8: {name} holds a non-finite value; Q8_0 needs finite weights", self.wf.path().display());
                }
                (QType::Q8_0, quantize_q8_0(&data))
            }
        };
        let row_bytes = d / ty.block_elems() * ty.block_bytes();
        // Repacked rows take at most 212/210 of their GGUF bytes (Q6_K's padding).
        let per_row = row_bytes as u64 * 212 / 210 + 4;
        let rows_per = ((self.ctx.max_binding / per_row) as usize / 64 * 64).max(64);
        let mut out = Vec::new();
        let mut start = 0;
        while start < v {
            let count = rows_per.min(v - start);
            let qm = repack(
                ty,
                count,
                d,
                &bytes[start * row_bytes..(start + count) * row_bytes],
            )?;
            let label = format!("{name}[{start}..{}] ({ty:?})", start + count);
            let buf = self
                .ctx
                .storage_init(&label, bytemuck::cast_slice(&qm.words))?;
            self.bytes += qm.words.len() as u64 * 4;
            self.quant_bytes += qm.words.len() as u64 * 4;
            let q = QWeight {
                ty,
                buf: buf.clone(),
                rows: count,
                col_off: 0,
                hoff: qm.hoff,
            };
            out.push(Chunk {
                buf,
                start,
                count,
                q: Some(q),
            });
            start += count;
        }
        Ok(Some(out))
    }
}
