//! Submitting graphs with what the device keeps between them (`EncodeCache`: the shared uniform
//! buffer, bind groups by contents) and, while profiling, per-dispatch timestamps (`Sample`).
//! Depends on gpu's context and graph only.

use super::graph::{Cost, Graph, GroupKey, Step};
use super::GpuContext;

/// One timed dispatch of a profiled run.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The dispatch's label (`Graph::dispatch`).
    pub label: &'static str,
    /// GPU time, milliseconds.
    pub ms: f64,
    /// Its work, for achieved rates.
    pub cost: Cost,
}

/// What `Graph::submit` keeps per device between graphs: one growing uniform buffer for the
/// parameter blocks, bind groups by their exact contents (so a decode loop creates none after
/// its first step), and, while profiling, the timed dispatches.
#[derive(Default)]
pub struct EncodeCache {
    uniform: Option<wgpu::Buffer>,
    groups: std::collections::HashMap<GroupKey, wgpu::BindGroup>,
    /// Bind groups created by `Graph::submit` so far.
    pub bind_groups_created: u64,
    /// Bind groups found in the cache so far.
    pub bind_groups_reused: u64,
    /// The timed dispatches while profiling (`None`: not profiling).
    pub profile: Option<Vec<Sample>>,
    /// Dispatches submitted per label since the last `GpuContext::take_dispatch_counts`.
    pub dispatches: std::collections::BTreeMap<&'static str, u64>,
}

impl EncodeCache {
    /// Drop the cached bind groups (and the buffers they hold alive).
    pub fn forget_groups(&mut self) {
        self.groups.clear();
    }
}

/// Bind groups kept at most; past this the cache starts again. (Models, sessions and the
/// activation pool also clear it when they let buffers go, so it never keeps them alive long.)
const MAX_CACHED_GROUPS: usize = 2048;
/// Dispatches timed per query set (two timestamps each).
pub(super) const QUERIES_PER_SET: usize = 2048;

impl Graph {
    /// Encode and submit with the device's cached uniform buffer and bind groups: one command
    /// buffer, no bind group created for a graph seen before. While the context is profiling
    /// (and the adapter offers TIMESTAMP_QUERY), each dispatch gets its own pass with
    /// timestamps, and the submit waits to read them.
    pub fn submit(self, ctx: &GpuContext) -> anyhow::Result<()> {
        let mut guard = ctx.encode.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *guard;
        let (params, offsets) = self.pack_params(ctx);
        if st
            .uniform
            .as_ref()
            .is_none_or(|u| u.size() < params.len() as u64)
        {
            let size = (params.len() as u64).next_power_of_two().max(1 << 16);
            st.uniform = Some(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("op params (shared)"),
                size,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
            st.groups.clear();
        }
        let uniform = st.uniform.clone().expect("uniform buffer");
        ctx.queue.write_buffer(&uniform, 0, &params);
        if st.groups.len() > MAX_CACHED_GROUPS {
            st.groups.clear();
        }
        let n = self.dispatches();
        for s in &self.steps {
            if let Step::Dispatch { label, .. } = s {
                *st.dispatches.entry(label).or_default() += 1;
            }
        }
        let profiling = st.profile.is_some() && ctx.has(wgpu::Features::TIMESTAMP_QUERY) && n > 0;
        let timing = if profiling {
            let sets: Vec<wgpu::QuerySet> = (0..n.div_ceil(QUERIES_PER_SET))
                .map(|_| {
                    ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                        label: Some("dispatch timestamps"),
                        ty: wgpu::QueryType::Timestamp,
                        count: (2 * QUERIES_PER_SET) as u32,
                    })
                })
                .collect();
            Some(sets)
        } else {
            None
        };
        // What the timestamps will be attributed to (only while profiling).
        let labels: Vec<(&'static str, Cost)> = if timing.is_some() {
            self.steps
                .iter()
                .filter_map(|s| match s {
                    Step::Dispatch { label, cost, .. } => Some((*label, *cost)),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("forward"),
            });
        let (mut made, mut reused) = (0u64, 0u64);
        self.record(
            ctx,
            &mut enc,
            &uniform,
            &offsets,
            timing.as_deref(),
            &mut |ctx, key, entries| {
                if let Some(bg) = st.groups.get(&key) {
                    reused += 1;
                    return bg.clone();
                }
                made += 1;
                let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("op"),
                    layout: &key.pipeline.get_bind_group_layout(0),
                    entries,
                });
                st.groups.insert(key, bg.clone());
                bg
            },
        );
        st.bind_groups_created += made;
        st.bind_groups_reused += reused;
        let Some(sets) = timing else {
            ctx.queue.submit([enc.finish()]);
            return Ok(());
        };
        let bytes = (2 * QUERIES_PER_SET * 8) as u64;
        let mut reads = Vec::new();
        for set in &sets {
            let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            enc.resolve_query_set(set, 0..(2 * QUERIES_PER_SET) as u32, &resolve, 0);
            let rb = ctx.readback("timestamps readback", bytes)?;
            enc.copy_buffer_to_buffer(&resolve, 0, &rb, 0, bytes);
            reads.push(rb);
        }
        ctx.queue.submit([enc.finish()]);
        let words: Vec<(&wgpu::Buffer, usize)> =
            reads.iter().map(|b| (b, 4 * QUERIES_PER_SET)).collect();
        let data = ctx.read_f32(&words)?;
        let period = ctx.queue.get_timestamp_period() as f64;
        let profile = st.profile.get_or_insert_with(Vec::new);
        for (i, (label, cost)) in labels.into_iter().enumerate() {
            let w: &[u32] = bytemuck::cast_slice(&data[i / QUERIES_PER_SET]);
            let j = i % QUERIES_PER_SET;
            let t = |q: usize| (w[2 * q] as u64) | ((w[2 * q + 1] as u64) << 32);
            let (t0, t1) = (t(2 * j), t(2 * j + 1));
            profile.push(Sample {
                label,
                ms: t1.saturating_sub(t0) as f64 * period / 1e6,
                cost,
            });
        }
        Ok(())
    }
}
