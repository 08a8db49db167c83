//! The activation buffers of one forward pass, each named by the hook it feeds (as llm.c's
//! `ActivationTensors`), and the pool that keeps them between passes. May use the GPU context only.
//! Never names an architecture.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use anyhow::Result;

use crate::gpu::GpuContext;
use crate::hooks::{HookSpace, Src};

/// Activation buffers by name, kept from one forward pass to the next of the same size.
pub(crate) type PoolMap = Mutex<HashMap<&'static str, wgpu::Buffer>>;

/// Activations come from the pool: a decode loop allocates nothing after its first step.
/// Reused buffers are not cleared: every kernel writes all of its output's valid rows, and
/// nothing reads a padding row's values. The pool is held for the whole pass; a pass running
/// meanwhile on another thread (or from inside a capture sink) gets fresh buffers instead of waiting.
pub(crate) struct Pool<'a> {
    ctx: &'a GpuContext,
    guard: RefCell<Option<MutexGuard<'a, HashMap<&'static str, wgpu::Buffer>>>>,
}

impl<'a> Pool<'a> {
    pub fn new(ctx: &'a GpuContext, map: &'a PoolMap) -> Self {
        Self {
            ctx,
            guard: RefCell::new(map.try_lock().ok()),
        }
    }

    /// The pooled buffer `name` of at least `bytes` (a fresh one when the size changed).
    pub fn get(&self, name: &'static str, bytes: u64) -> Result<wgpu::Buffer> {
        let mut guard = self.guard.borrow_mut();
        let Some(pool) = guard.as_mut() else {
            return self.ctx.storage(name, bytes);
        };
        let size = bytes.max(16).next_multiple_of(4);
        if let Some(b) = pool.get(name).filter(|b| b.size() == size) {
            return Ok(b.clone());
        }
        let b = self.ctx.storage(name, bytes)?;
        if pool.insert(name, b.clone()).is_some() {
            // The replaced buffer must not stay alive in cached bind groups.
            self.ctx.forget_bind_groups();
        }
        Ok(b)
    }

    /// A pooled buffer holding `data`.
    pub fn upload(&self, name: &'static str, data: &[u8]) -> Result<wgpu::Buffer> {
        let b = self.get(name, data.len() as u64)?;
        self.ctx.queue.write_buffer(&b, 0, data);
        Ok(b)
    }
}

/// Activations of one pass over `rows` rows (R), named by the hook they feed. D model width,
/// H heads, Dh head width, I MLP inner width, K keys of the longest sequence.
pub(crate) struct Acts {
    pub resid: wgpu::Buffer,      // [R, D]  resid_pre of the current block
    pub resid_next: wgpu::Buffer, // [R, D]  resid_post of the current block
    pub tok_emb: wgpu::Buffer,    // [R, max(D, E)]  hook_embed, E wide (E = embed_dim)
    pub pos_emb: wgpu::Buffer,    // [R, D]  hook_pos_embed (learned positions)
    pub ln1: wgpu::Buffer,        // [R, D]  ln1.hook_normalized
    pub qkv: wgpu::Buffer,        // [R, D + 2 Dkv]  hook_q | hook_k | hook_v
    pub z: wgpu::Buffer,          // [R, H, Dh]  attn.hook_z
    pub branch: wgpu::Buffer, // [R, D]  a branch's output after its post-norm (Gemma: ln1_post, ln2_post)
    pub attn_out: wgpu::Buffer, // [R, D]  hook_attn_out (when looked at)
    pub resid_mid: wgpu::Buffer, // [R, D]  hook_resid_mid
    pub ln2: wgpu::Buffer,    // [R, D]  ln2.hook_normalized
    pub mlp_pre: wgpu::Buffer, // [R, I] mlp.hook_pre, or gate|up [R, 2I]
    pub mlp_post: wgpu::Buffer, // [R, I]  mlp.hook_post
    pub mlp_out: wgpu::Buffer, // [R, D]  hook_mlp_out (when looked at)
    pub ln_final: wgpu::Buffer, // [R, max(D, E)]  LM head input (ln_final or hook_project_out)
    pub extra: wgpu::Buffer,  // [R, H]  attn.hook_extra_prob (variants; else a placeholder)
    pub fac: wgpu::Buffer,    // [R, H]  attn.hook_scale (variants; else a placeholder)
    pub scores: wgpu::Buffer, // [R, H, K]  attn.hook_attn_scores (when captured)
    pub pattern: wgpu::Buffer, // [R, H, K]  attn.hook_pattern (when captured)
}

impl Acts {
    /// Allocate (or reuse) every activation of a pass of `rows` rows; the attention capture
    /// buffers only when `want_att` (fresh and zeroed: captures read masked entries too).
    ///
    /// # Errors
    /// A buffer the device cannot hold, or attention captures over the binding limit.
    pub fn new(
        ctx: &GpuContext,
        pool: &Pool,
        space: &HookSpace,
        rows: usize,
        want_att: bool,
        cap_keys: usize,
    ) -> Result<Self> {
        let f = 4u64;
        let (d, h) = (space.d as u64, space.n_head as u64);
        let r = rows as u64;
        let rd = r * d * f;
        // The embedding rows and the LM head's input are E wide (OPT's word_embed_proj_dim).
        let re = r * d.max(space.d_embed as u64) * f;
        let width = |src| r * space.row_width(src) as u64 * f;
        // Variant-only activations, [rows, H]; a placeholder otherwise.
        let rh = |on: bool| if on { r * h * f } else { 16 };
        let (scores, pattern) = if want_att {
            let bytes = r * h * cap_keys as u64 * f;
            ctx.check_binding("capture of attention scores [rows, n_head, keys]", bytes)?;
            (
                ctx.storage("attn scores", bytes)?,
                ctx.storage("attn pattern", bytes)?,
            )
        } else {
            (pool.get("no scores", 16)?, pool.get("no pattern", 16)?)
        };
        let up = if space.arch.hook_layout().gated_mlp {
            Src::GateUp(0)
        } else {
            Src::MlpPre(0)
        };
        Ok(Self {
            resid: pool.get("resid a", rd)?,
            resid_next: pool.get("resid b", rd)?,
            tok_emb: pool.get("hook_embed", re)?,
            pos_emb: pool.get("hook_pos_embed", rd)?,
            ln1: pool.get("ln1", rd)?,
            qkv: pool.get("qkv", width(Src::Qkv(0)))?,
            z: pool.get("z", width(Src::Z(0)))?,
            branch: if space.arch.hook_layout().post_norms {
                pool.get("branch post-norm", rd)?
            } else {
                pool.get("no branch post-norm", 16)?
            },
            attn_out: pool.get("attn_out", rd)?,
            resid_mid: pool.get("resid_mid", rd)?,
            ln2: pool.get("ln2", rd)?,
            mlp_pre: pool.get("mlp_pre", width(up))?,
            mlp_post: pool.get("mlp_post", width(Src::MlpPost(0)))?,
            mlp_out: pool.get("mlp_out", rd)?,
            ln_final: pool.get("ln_final", re)?,
            extra: ctx.storage("attn extra prob", rh(space.extra_prob))?,
            fac: pool.get("attn head factor", rh(space.scale))?,
            scores,
            pattern,
        })
    }

    /// After a block: its resid_post is the next block's resid_pre.
    pub fn next_block(&mut self) {
        std::mem::swap(&mut self.resid, &mut self.resid_next);
    }
}
