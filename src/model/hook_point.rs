//! Hook points of a forward pass being recorded: where a hook's buffer is ready, edits are
//! applied, captures are queued for readback, and whether an op may be fused is decided — all in
//! one place, `HookPoints::tap`. May use gpu, kernels and hooks; never a model architecture.

use anyhow::Result;

use crate::config::ModelConfig;
use crate::gpu::GpuContext;
use crate::hooks::{HookFilter, HookSpace, Src};
use crate::intervene::{editable, HookEdit};
use crate::kernels::{Graph, Kernels};

/// One edit's GPU inputs: source, row width, column offset, position mask, channels, values.
pub(crate) struct EditBuffers {
    src: Src,
    width: usize,
    offset: usize,
    mask: wgpu::Buffer,
    channels: wgpu::Buffer,
    values: wgpu::Buffer,
    n: usize,
}

/// The GPU inputs of every edit (channels, positions and values were checked by
/// `select::check_forward` before the pass).
pub(crate) fn edit_buffers(
    ctx: &GpuContext,
    cfg: &ModelConfig,
    space: &HookSpace,
    edits: &[HookEdit],
) -> Result<Vec<EditBuffers>> {
    let mut out = Vec::new();
    for e in edits {
        let (src, offset, _) = editable(&e.hook, space)?;
        let mut mask = vec![0u32; cfg.n_positions];
        match &e.positions {
            None => mask.fill(1),
            Some(ps) => {
                let n = mask.len();
                ps.iter().filter(|&&p| p < n).for_each(|&p| mask[p] = 1)
            }
        }
        let chans: Vec<u32> = e.channels.iter().map(|&c| c as u32).collect();
        out.push(EditBuffers {
            src,
            width: space.row_width(src),
            offset,
            mask: ctx.storage_init("edit positions", bytemuck::cast_slice(&mask))?,
            channels: ctx.storage_init("edit channels", bytemuck::cast_slice(&chans))?,
            values: ctx.storage_init("edit values", bytemuck::cast_slice(&e.values))?,
            n: chans.len(),
        });
    }
    Ok(out)
}

/// Applies edits where a hook is produced and queues captured sources for readback.
pub(crate) struct HookPoints<'a> {
    pub k: &'a Kernels,
    pub ctx: &'a GpuContext,
    pub filter: &'a HookFilter,
    pub rows: usize,
    pub info: wgpu::Buffer,
    pub edits: Vec<EditBuffers>,
    pending: Vec<(Src, wgpu::Buffer, usize)>,
}

impl<'a> HookPoints<'a> {
    pub fn new(
        k: &'a Kernels,
        ctx: &'a GpuContext,
        filter: &'a HookFilter,
        rows: usize,
        info: wgpu::Buffer,
        edits: Vec<EditBuffers>,
    ) -> Self {
        Self {
            k,
            ctx,
            filter,
            rows,
            info,
            edits,
            pending: Vec::new(),
        }
    }

    /// Whether anything looks at `src` (a capture or an edit): if not, the op that makes it
    /// may be fused into the next one.
    pub fn touches(&self, src: Src) -> bool {
        self.filter.wants_src(src) || self.edits.iter().any(|e| e.src == src)
    }

    /// `buf` now holds `src` (`floats` values): edit it, then copy it out if it is captured.
    pub fn tap(
        &mut self,
        g: &mut Graph,
        src: Src,
        buf: &wgpu::Buffer,
        floats: usize,
    ) -> Result<()> {
        for e in &self.edits {
            if e.src == src {
                self.k.edit(
                    g,
                    self.rows,
                    e.width,
                    e.offset,
                    e.n,
                    &self.info,
                    &e.mask,
                    &e.channels,
                    &e.values,
                    buf,
                );
            }
        }
        if self.filter.wants_src(src) {
            let bytes = floats as u64 * 4;
            let rb = self.ctx.readback(&format!("capture {src:?}"), bytes)?;
            g.copy(buf, 0, &rb, 0, bytes);
            self.pending.push((src, rb, floats));
        }
        Ok(())
    }

    /// Submit what is recorded so far and hand the captured sources to `deliver`.
    pub fn flush(
        &mut self,
        g: &mut Graph,
        deliver: &mut dyn FnMut(Src, Vec<f32>) -> Result<()>,
    ) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.ctx.note_memory();
        std::mem::take(g).submit(self.ctx)?;
        let pending = std::mem::take(&mut self.pending);
        let reads: Vec<(&wgpu::Buffer, usize)> = pending.iter().map(|(_, b, n)| (b, *n)).collect();
        for ((src, _, _), data) in pending.iter().zip(self.ctx.read_f32(&reads)?) {
            deliver(*src, data)?;
        }
        Ok(())
    }
}
