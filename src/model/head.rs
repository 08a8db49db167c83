//! The token embedding and the LM head: vocabulary chunks (one storage binding each), the
//! embedding step, and logits = x · Wᵀ over the chunks. May use gpu and kernels; never studies.

use anyhow::{bail, Result};

use super::upload::{Chunk, Uploader};
use crate::config::{Arch, ModelConfig};
use crate::gpu::GpuContext;
use crate::kernels::{Bind, Graph, Kernels};

/// The embedding matrix `[V, D]` in vocabulary chunks, and the LM head's own chunks when the
/// checkpoint's head is not tied to it.
pub(crate) struct Embedding {
    pub wte: Vec<Chunk>,
    pub lm_head: Option<Vec<Chunk>>,
}

impl Embedding {
    /// Upload `emb` (e.g. `wte.weight`) and, when the config unties the head, the
    /// architecture's head tensor (`lm_head.weight`; GPT-NeoX `embed_out.weight`), both
    /// `[vocab_size, embed_dim]`.
    ///
    /// # Errors
    /// A head that the config and the file disagree on (tied in one, separate in the other).
    pub fn load(up: &mut Uploader, cfg: &ModelConfig, emb: &str) -> Result<Self> {
        let (v, d) = (cfg.vocab_size, cfg.embed_dim);
        let head = cfg.arch.weight_names().lm_head;
        // Kept in ggml blocks where the embedding has no position term to add (qembed.wgsl).
        let blocks = !matches!(cfg.arch, Arch::Gpt2 | Arch::Opt);
        let chunks = |up: &mut Uploader, name: &str| -> Result<Vec<Chunk>> {
            match blocks
                .then(|| up.quant_chunks(name, (v, d)))
                .transpose()?
                .flatten()
            {
                Some(c) => Ok(c),
                None => up.chunks(name, (v, d)),
            }
        };
        let wte = chunks(up, emb)?;
        let separate_head = up.contains(head) && !up.wf.same(head, emb);
        let path = up.wf.path().display().to_string();
        let lm_head = match (separate_head, cfg.tie_embeddings) {
            (true, false) => Some(chunks(up, head)?),
            (false, true) => None,
            (false, false) => bail!(
                "{path}: missing tensor '{head}' (the config says the head is not tied: tie_word_embeddings = false)"
            ),
            (true, true) => bail!(
                "{path}: holds a separate '{head}' but the config ties the head to '{emb}' (tie_word_embeddings = true), so transformers would not use it; set tie_word_embeddings to false to use the stored head"
            ),
        };
        Ok(Self { wte, lm_head })
    }

    fn head(&self) -> &[Chunk] {
        self.lm_head.as_deref().unwrap_or(&self.wte)
    }

    /// Vocabulary rows in the largest chunk (the LM head's widest matmul).
    pub fn chunk_rows(&self) -> usize {
        self.wte.iter().map(|c| c.count).max().unwrap_or(0)
    }

    /// logits = x `[m, D]` · Wᵀ over vocabulary chunks into a readback buffer; laid out
    /// chunk-major (`[chunk][m][count]`), split into row blocks whenever a chunk's output would
    /// pass the binding limit.
    ///
    /// # Errors
    /// Logits larger than the adapter's max_buffer_size, or a row block over the binding limit.
    pub fn lm_head(
        &self,
        ctx: &GpuContext,
        k: &Kernels,
        g: &mut Graph,
        (m, d, v): (usize, usize, usize),
        x: &wgpu::Buffer,
    ) -> Result<wgpu::Buffer> {
        let total = (m * v) as u64 * 4;
        if total > ctx.limits.max_buffer_size {
            bail!(
                "logits for {m} rows × {v} tokens need {} MiB, over the adapter's max_buffer_size of {} MiB; ask for fewer rows",
                total >> 20,
                ctx.limits.max_buffer_size >> 20
            );
        }
        let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("logits"),
            size: total.max(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        for c in self.head() {
            let per_row = c.count as u64 * 4;
            let block = (((ctx.max_binding / per_row) as usize) / 64 * 64)
                .max(64)
                .min(m.next_multiple_of(64));
            let block = block.max(1);
            if (block.min(m) as u64) * per_row > ctx.max_binding
                || (block.min(m) * d * 4) as u64 > ctx.max_binding
            {
                bail!(
                    "one row block of logits does not fit the adapter's max_storage_buffer_binding_size ({} bytes)",
                    ctx.max_binding
                );
            }
            let base = (m * c.start) as u64 * 4;
            let mut r0 = 0;
            while r0 < m {
                let rn = block.min(m - r0);
                let a = Bind::range(x, (r0 * d) as u64 * 4, (rn * d) as u64 * 4);
                let o = Bind::range(&out, base + r0 as u64 * per_row, rn as u64 * per_row);
                match &c.q {
                    Some(q) => k.qmatvec(g, rn, c.count, d, a, q, None, o, Default::default()),
                    None => k.matmul(g, rn, c.count, d, a, (&c.buf).into(), None, o, true),
                }
                r0 += rn;
            }
        }
        let rb = ctx.readback("logits readback", total)?;
        g.copy(&out, 0, &rb, 0, total);
        Ok(rb)
    }

    /// Chunk-major logits (as `lm_head` writes them) back to `[m, V]`.
    pub fn unchunk(&self, raw: &[f32], m: usize, v: usize) -> Vec<f32> {
        let chunks = self.head();
        if chunks.len() == 1 {
            return raw.to_vec();
        }
        let mut out = vec![0f32; m * v];
        for c in chunks {
            let base = m * c.start;
            for r in 0..m {
                out[r * v + c.start..r * v + c.start + c.count]
                    .copy_from_slice(&raw[base + r * c.count..base + (r + 1) * c.count]);
            }
        }
        out
    }
}
