//! The KV cache of a batch of sequences (`Session`) and the checks on the tokens a forward pass
//! is given. May use the GPU context; never kernels' internals, studies or frontends.

use std::sync::Arc;

use anyhow::{bail, Result};

use super::Model;
use crate::gpu::GpuContext;

/// KV cache for a batch of sequences: one K and one V buffer per layer, `[seqs, cap, Dkv]` f32.
/// Positions advance only through successful forward passes.
pub struct Session {
    ctx: Arc<GpuContext>,
    /// Sequences in the batch.
    pub seqs: usize,
    /// Positions each sequence's cache holds.
    pub cap: usize,
    pub(crate) k: Vec<wgpu::Buffer>,
    pub(crate) v: Vec<wgpu::Buffer>,
    lens: Vec<usize>,
}

/// The cached bind groups hold the KV buffers: let them go with the session.
impl Drop for Session {
    fn drop(&mut self) {
        self.ctx.forget_bind_groups();
    }
}

impl Session {
    /// Tokens already in the cache, per sequence.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// Forget everything after the first `len` tokens of sequence `b` (the next pass overwrites
    /// those positions): rewinds a decode loop, e.g. to time the same step again.
    ///
    /// # Errors
    /// `b` not in the batch, or `len` beyond what the cache holds for it.
    pub fn truncate(&mut self, b: usize, len: usize) -> Result<()> {
        match self.lens.get_mut(b) {
            None => bail!("sequence {b}: the batch has {} sequences", self.seqs),
            Some(l) if len > *l => {
                bail!(
                    "sequence {b}: cannot truncate {} cached tokens to {len}",
                    *l
                )
            }
            Some(l) => {
                *l = len;
                Ok(())
            }
        }
    }

    /// Count `n` more tokens as cached for sequence `b` (a pass wrote them).
    pub(crate) fn advance(&mut self, b: usize, n: usize) {
        self.lens[b] += n;
    }
}

impl Model {
    /// A KV cache for `seqs` sequences of up to `cap` tokens each.
    ///
    /// # Errors
    /// No sequence, `cap` beyond `n_positions`, or the cache not fitting the device.
    pub fn session(&self, seqs: usize, cap: usize) -> Result<Session> {
        if seqs == 0 {
            bail!("a batch needs at least one sequence");
        }
        if cap > self.cfg.n_positions {
            bail!(
                "{cap} tokens are longer than the model's n_positions = {}",
                self.cfg.n_positions
            );
        }
        let cap = cap.max(1);
        let bytes = (seqs * cap * self.cfg.kv_dim() * 4) as u64;
        let mut k = Vec::new();
        let mut v = Vec::new();
        self.ctx.checked("allocating the KV cache", || {
            for l in 0..self.cfg.n_layer {
                k.push(self.ctx.storage(&format!("kv cache k{l}"), bytes)?);
                v.push(self.ctx.storage(&format!("kv cache v{l}"), bytes)?);
            }
            Ok(())
        })?;
        Ok(Session {
            ctx: self.ctx.clone(),
            seqs,
            cap,
            k,
            v,
            lens: vec![0; seqs],
        })
    }

    /// The new tokens fit the batch, the cache, `n_positions` and the vocabulary.
    pub(crate) fn check_tokens(&self, sess: &Session, new: &[&[u32]]) -> Result<()> {
        if new.len() != sess.seqs {
            bail!(
                "{} token lists given for a batch of {} sequences",
                new.len(),
                sess.seqs
            );
        }
        if new.iter().all(|t| t.is_empty()) {
            bail!("empty prompt: at least one token is needed");
        }
        for (b, toks) in new.iter().enumerate() {
            let total = sess.lens[b] + toks.len();
            if total > self.cfg.n_positions {
                bail!(
                    "sequence {b}: {total} tokens are longer than the model's n_positions = {}",
                    self.cfg.n_positions
                );
            }
            if total > sess.cap {
                bail!(
                    "sequence {b}: {total} tokens do not fit the session's KV cache of {} positions",
                    sess.cap
                );
            }
            if let Some((i, t)) = toks
                .iter()
                .enumerate()
                .find(|(_, t)| **t as usize >= self.cfg.vocab_size)
            {
                bail!(
                    "sequence {b}: token id {t} at position {i} is not in the vocabulary (vocab_size {})",
                    self.cfg.vocab_size
                );
            }
        }
        Ok(())
    }
}
