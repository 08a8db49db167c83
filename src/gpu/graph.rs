//! The op graph: dispatches and copies recorded as data (`Graph`, `Bind`, `Cost`), the grid
//! helpers, and encoding into a command buffer. Depends on gpu's context only; knows no kernel.

use super::encode::QUERIES_PER_SET;
use super::GpuContext;

/// A storage binding: a whole buffer or a byte range of it.
#[derive(Clone)]
pub struct Bind {
    /// The buffer bound.
    pub buffer: wgpu::Buffer,
    /// Byte offset of the range (a multiple of the storage offset alignment).
    pub offset: u64,
    /// Byte length of the range; `None`: to the end of the buffer.
    pub size: Option<u64>,
}

impl From<&wgpu::Buffer> for Bind {
    fn from(b: &wgpu::Buffer) -> Self {
        Bind {
            buffer: b.clone(),
            offset: 0,
            size: None,
        }
    }
}

impl Bind {
    /// Bytes `offset..offset + size` of `b`.
    pub fn range(b: &wgpu::Buffer, offset: u64, size: u64) -> Self {
        Bind {
            buffer: b.clone(),
            offset,
            size: Some(size),
        }
    }
}

pub(super) enum Step {
    Dispatch {
        label: &'static str,
        pipeline: wgpu::ComputePipeline,
        params: Vec<u8>,
        binds: Vec<Bind>,
        groups: [u32; 3],
        cost: Cost,
    },
    Copy {
        src: wgpu::Buffer,
        src_offset: u64,
        dst: wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    },
}

/// Work of one dispatch: floating-point operations and bytes it must move at least.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes read and written at least.
    pub bytes: f64,
}

#[derive(Hash, PartialEq, Eq)]
pub(super) struct GroupKey {
    pub(super) pipeline: wgpu::ComputePipeline,
    pub(super) uniform: (u64, u64),
    pub(super) binds: Vec<(wgpu::Buffer, u64, Option<u64>)>,
}

/// Ops recorded in order; `submit` (or `encode`) turns them into one command buffer.
#[derive(Default)]
pub struct Graph {
    pub(super) steps: Vec<Step>,
}

/// Workgroup grid for `n` invocations of a 1-D kernel with workgroups of `wg`, spread over
/// x and y so that no dimension passes the 65,535 limit (shaders fold `gid.y` back in).
pub fn grid_1d(n: usize, wg: usize) -> [u32; 3] {
    let groups = n.div_ceil(wg).max(1);
    if groups <= 65535 {
        [groups as u32, 1, 1]
    } else {
        let y = groups.div_ceil(65535);
        [groups.div_ceil(y) as u32, y as u32, 1]
    }
}

/// One workgroup per row: grid over x and y.
pub fn grid_rows(rows: usize) -> [u32; 3] {
    grid_1d(rows, 1)
}

fn bind_entries<'a>(
    uniform: &'a wgpu::Buffer,
    offset: u64,
    size: u64,
    binds: &'a [Bind],
) -> Vec<wgpu::BindGroupEntry<'a>> {
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: uniform,
            offset,
            size: std::num::NonZeroU64::new(size),
        }),
    }];
    for (k, b) in binds.iter().enumerate() {
        entries.push(wgpu::BindGroupEntry {
            binding: k as u32 + 1,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &b.buffer,
                offset: b.offset,
                size: b.size.and_then(std::num::NonZeroU64::new),
            }),
        });
    }
    entries
}

impl Graph {
    /// Record a dispatch of `pipeline` over `groups` workgroups, with `params` as its uniform block
    /// (binding 0) and `binds` as bindings 1.. in order; `label` names it in profiles.
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        label: &'static str,
        pipeline: &wgpu::ComputePipeline,
        params: &P,
        binds: Vec<Bind>,
        groups: [u32; 3],
    ) {
        self.steps.push(Step::Dispatch {
            label,
            pipeline: pipeline.clone(),
            params: bytemuck::bytes_of(params).to_vec(),
            binds,
            groups,
            cost: Cost::default(),
        });
    }

    /// Set the work of the last dispatch (for profiles: achieved GFLOP/s and GB/s).
    pub fn cost(&mut self, flops: f64, bytes: f64) {
        if let Some(Step::Dispatch { cost, .. }) = self.steps.last_mut() {
            *cost = Cost { flops, bytes };
        }
    }

    /// Record a copy of `size` bytes (nothing when 0).
    pub fn copy(
        &mut self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    ) {
        if size == 0 {
            return;
        }
        self.steps.push(Step::Copy {
            src: src.clone(),
            src_offset,
            dst: dst.clone(),
            dst_offset,
            size,
        });
    }

    /// Nothing recorded.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Number of dispatches recorded.
    pub fn dispatches(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Dispatch { .. }))
            .count()
    }

    /// All parameter blocks in one byte string, each at an aligned offset.
    pub(super) fn pack_params(&self, ctx: &GpuContext) -> (Vec<u8>, Vec<u64>) {
        let align = ctx.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let mut params = Vec::new();
        let mut offsets = Vec::new();
        for s in &self.steps {
            if let Step::Dispatch { params: p, .. } = s {
                offsets.push(params.len() as u64);
                params.extend_from_slice(p);
                params.resize(params.len().next_multiple_of(align), 0);
            }
        }
        if params.is_empty() {
            params.resize(align, 0);
        }
        (params, offsets)
    }

    /// Encode into a command buffer of its own (a fresh uniform buffer and bind groups; for
    /// tests and one-off work). The forward pass uses `submit`.
    pub fn encode(self, ctx: &GpuContext) -> wgpu::CommandBuffer {
        let (params, offsets) = self.pack_params(ctx);
        let uniform = wgpu::util::DeviceExt::create_buffer_init(
            &ctx.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("op params"),
                contents: &params,
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("graph"),
            });
        self.record(
            ctx,
            &mut enc,
            &uniform,
            &offsets,
            None,
            &mut |ctx, key, entries| {
                ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("op"),
                    layout: &key.pipeline.get_bind_group_layout(0),
                    entries,
                })
            },
        );
        enc.finish()
    }

    /// Record the steps; `group` makes (or finds) each dispatch's bind group.
    pub(super) fn record(
        self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        uniform: &wgpu::Buffer,
        offsets: &[u64],
        timing: Option<&[wgpu::QuerySet]>,
        group: &mut dyn FnMut(&GpuContext, GroupKey, &[wgpu::BindGroupEntry]) -> wgpu::BindGroup,
    ) {
        let mut steps = self.steps.into_iter().peekable();
        let mut op = 0usize;
        while let Some(step) = steps.next() {
            match step {
                Step::Copy {
                    src,
                    src_offset,
                    dst,
                    dst_offset,
                    size,
                } => enc.copy_buffer_to_buffer(&src, src_offset, &dst, dst_offset, size),
                first @ Step::Dispatch { .. } => {
                    let tw = timing.map(|sets| wgpu::ComputePassTimestampWrites {
                        query_set: &sets[op / QUERIES_PER_SET],
                        beginning_of_pass_write_index: Some((2 * (op % QUERIES_PER_SET)) as u32),
                        end_of_pass_write_index: Some((2 * (op % QUERIES_PER_SET) + 1) as u32),
                    });
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("ops"),
                        timestamp_writes: tw,
                    });
                    let mut cur = Some(first);
                    while let Some(Step::Dispatch {
                        pipeline,
                        params: p,
                        binds,
                        groups,
                        ..
                    }) = cur.take()
                    {
                        let entries = bind_entries(uniform, offsets[op], p.len() as u64, &binds);
                        let key = GroupKey {
                            pipeline: pipeline.clone(),
                            uniform: (offsets[op], p.len() as u64),
                            binds: binds
                                .iter()
                                .map(|b| (b.buffer.clone(), b.offset, b.size))
                                .collect(),
                        };
                        let bg = group(ctx, key, &entries);
                        pass.set_pipeline(&pipeline);
                        pass.set_bind_group(0, &bg, &[]);
                        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                        op += 1;
                        // Profiled dispatches each get a pass of their own (pass timestamps).
                        if timing.is_none() && matches!(steps.peek(), Some(Step::Dispatch { .. })) {
                            cur = steps.next();
                        }
                    }
                }
            }
        }
    }
}
