//! GPU context: adapter choice, device limits and features, buffer helpers, readback.
//!
//! Everything that talks to wgpu directly but knows nothing of transformers lives here.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use wgpu::util::DeviceExt;

/// How long a single wait on the device may take before it is reported as hung.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(600);

const NO_ADAPTER_HELP: &str = "no GPU adapter found. outlier-probe needs a Vulkan, Metal or DX12 driver. \
On Linux without a GPU install Mesa's software Vulkan driver (lavapipe): \
`sudo apt-get install mesa-vulkan-drivers libvulkan1` (Debian/Ubuntu) or `dnf install mesa-vulkan-drivers` (Fedora); \
check with `vulkaninfo --summary` or `outlier-probe devices`";

/// Which adapter to use and how to constrain it.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Backend name: vulkan, metal, dx12 or gl. `None`: all backends, or `WGPU_BACKEND`.
    pub backend: Option<String>,
    /// Index into the list printed by `outlier-probe devices`.
    pub adapter_index: Option<usize>,
    /// Substring of the adapter name (`WGPU_ADAPTER_NAME` is read when this is `None`).
    pub adapter_name: Option<String>,
    /// Pretend the adapter's `max_storage_buffer_binding_size` is at most this (tests of the chunked paths).
    pub max_binding_override: Option<u64>,
    /// Do not use SHADER_F16 / SUBGROUP even when offered (tests of the fallbacks).
    pub disable_optional_features: bool,
}

impl GpuOptions {
    /// Options from the environment only (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`).
    pub fn from_env() -> Self {
        Self::default()
    }
}

/// One adapter as `outlier-probe devices` shows it.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub index: usize,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.info;
        let l = &self.limits;
        writeln!(
            f,
            "[{}] {} ({:?}, {:?})",
            self.index, i.name, i.backend, i.device_type
        )?;
        writeln!(f, "    driver: {} {}", i.driver, i.driver_info)?;
        writeln!(f, "    vendor 0x{:04x} device 0x{:04x}", i.vendor, i.device)?;
        writeln!(
            f,
            "    max_buffer_size {} MiB, max_storage_buffer_binding_size {} MiB, storage buffers/stage {}",
            l.max_buffer_size >> 20,
            l.max_storage_buffer_binding_size >> 20,
            l.max_storage_buffers_per_shader_stage
        )?;
        writeln!(
            f,
            "    workgroup: {} invocations, {} B shared, {} groups/dim",
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size,
            l.max_compute_workgroups_per_dimension
        )?;
        let mut feats = Vec::new();
        for (flag, name) in [
            (wgpu::Features::SHADER_F16, "SHADER_F16"),
            (wgpu::Features::SUBGROUP, "SUBGROUP"),
            (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
            (
                wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
                "TIMESTAMP_QUERY_INSIDE_PASSES",
            ),
        ] {
            if self.features.contains(flag) {
                feats.push(name);
            }
        }
        write!(
            f,
            "    features: {}",
            if feats.is_empty() {
                "none of SHADER_F16/SUBGROUP/TIMESTAMP_QUERY".to_string()
            } else {
                feats.join(", ")
            }
        )
    }
}

fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => wgpu::Backends::VULKAN,
        "metal" | "mtl" => wgpu::Backends::METAL,
        "dx12" | "d3d12" => wgpu::Backends::DX12,
        "gl" | "gles" | "opengl" => wgpu::Backends::GL,
        "all" => wgpu::Backends::all(),
        other => bail!("unknown backend '{other}': use vulkan, metal, dx12 or gl"),
    })
}

fn instance_for(opts: &GpuOptions) -> Result<(wgpu::Instance, wgpu::Backends)> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if let Some(b) = &opts.backend {
        desc.backends = parse_backend(b)?;
    }
    let backends = desc.backends;
    Ok((wgpu::Instance::new(desc), backends))
}

/// Every adapter the instance can see, in the order `--adapter N` refers to.
pub fn list_adapters(opts: &GpuOptions) -> Result<Vec<AdapterSummary>> {
    let (instance, backends) = instance_for(opts)?;
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    Ok(adapters
        .iter()
        .enumerate()
        .map(|(index, a)| AdapterSummary {
            index,
            info: a.get_info(),
            limits: a.limits(),
            features: a.features(),
        })
        .collect())
}

fn device_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// The device the model runs on, with the limits it was granted.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// Limits granted to the device (the adapter's own limits).
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Largest storage binding the engine will use (adapter limit, or the test override).
    pub max_binding: u64,
    /// Uniform buffer, bind groups and profile kept between submitted graphs.
    pub encode: std::sync::Mutex<crate::kernels::EncodeCache>,
    /// Most buffer memory seen live at a `note_memory` call, bytes.
    peak_memory: std::sync::atomic::AtomicU64,
}

impl GpuContext {
    /// Pick an adapter (best available unless told otherwise) and open a device with its own limits.
    pub fn new(opts: &GpuOptions) -> Result<Arc<Self>> {
        let (instance, backends) = instance_for(opts)?;
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        if adapters.is_empty() {
            bail!("{NO_ADAPTER_HELP}");
        }
        let name = opts
            .adapter_name
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .map(|s| s.to_lowercase());
        let adapter = if let Some(i) = opts.adapter_index {
            let n = adapters.len();
            adapters.into_iter().nth(i).ok_or_else(|| {
                anyhow!("--adapter {i}: only {n} adapter(s) found (see `outlier-probe devices`)")
            })?
        } else if let Some(name) = name {
            let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
            adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&name))
                .ok_or_else(|| anyhow!("no adapter name contains '{name}'; adapters: {names:?}"))?
        } else {
            let mut v = adapters;
            v.sort_by_key(|a| device_rank(a.get_info().device_type));
            v.into_iter().next().expect("non-empty")
        };
        Self::from_adapter(adapter, opts)
    }

    fn from_adapter(adapter: wgpu::Adapter, opts: &GpuOptions) -> Result<Arc<Self>> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let offered = adapter.features();
        let mut wanted = wgpu::Features::TIMESTAMP_QUERY;
        if !opts.disable_optional_features {
            wanted |= wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP;
        }
        let features = offered & wanted;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("outlier-probe device"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .with_context(|| {
            format!(
                "opening a device on adapter '{}' ({:?})",
                info.name, info.backend
            )
        })?;
        device.on_uncaptured_error(Arc::new(|e| {
            eprintln!("outlier-probe: uncaptured GPU error: {e}");
        }));
        let mut max_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        if let Some(o) = opts.max_binding_override {
            max_binding = max_binding.min(o);
        }
        // Keep bindings a multiple of 256 bytes so chunk offsets stay aligned.
        max_binding &= !255;
        Ok(Arc::new(Self {
            device,
            queue,
            info,
            limits,
            features,
            max_binding,
            encode: Default::default(),
            peak_memory: Default::default(),
        }))
    }

    pub fn has(&self, f: wgpu::Features) -> bool {
        self.features.contains(f)
    }

    /// Storage buffer holding `data`, checked against the binding limit.
    pub fn storage_init(&self, label: &str, data: &[u8]) -> Result<wgpu::Buffer> {
        self.check_binding(label, data.len() as u64)?;
        Ok(self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: data,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            }))
    }

    /// Zero-filled storage buffer of `bytes` bytes (at least 4).
    pub fn storage(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.check_binding(label, bytes)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// A buffer the host can map for reading after a copy into it.
    pub fn readback(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        if bytes > self.limits.max_buffer_size {
            bail!(
                "{label}: a readback of {} MiB exceeds the adapter's max_buffer_size ({} MiB)",
                bytes >> 20,
                self.limits.max_buffer_size >> 20
            );
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    pub fn check_binding(&self, label: &str, bytes: u64) -> Result<()> {
        if bytes > self.max_binding {
            bail!(
                "{label} needs {bytes} bytes ({:.1} MiB) in one storage binding, over the adapter's \
                 max_storage_buffer_binding_size of {} bytes ({:.1} MiB) on '{}'",
                bytes as f64 / 1048576.0,
                self.max_binding,
                self.max_binding as f64 / 1048576.0,
                self.info.name
            );
        }
        Ok(())
    }

    /// Wait for all submitted work, failing (instead of hanging) after a long timeout.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(DEVICE_TIMEOUT),
            })
            .map_err(|e| anyhow!("waiting for the GPU on '{}': {e}", self.info.name))?;
        Ok(())
    }

    /// Map `buffers` (MAP_READ) and copy each one's first `len` f32 values out.
    pub fn read_f32(&self, buffers: &[(&wgpu::Buffer, usize)]) -> Result<Vec<Vec<f32>>> {
        let (tx, rx) = mpsc::channel();
        for (i, (b, len)) in buffers.iter().enumerate() {
            let tx = tx.clone();
            let bytes = (*len as u64 * 4).max(4);
            b.slice(0..bytes).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send((i, r));
            });
        }
        drop(tx);
        // Another thread's poll may be the one that runs our callbacks, a little after our own
        // poll returns: wait for every callback, polling again meanwhile, up to the timeout.
        let start = std::time::Instant::now();
        let mut ok = vec![false; buffers.len()];
        let mut left = buffers.len();
        self.wait()?;
        while left > 0 {
            match rx.recv_timeout(Duration::from_millis(5)) {
                Ok((i, r)) => {
                    r.map_err(|e| anyhow!("mapping a readback buffer failed: {e}"))?;
                    ok[i] = true;
                    left -= 1;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if start.elapsed() > DEVICE_TIMEOUT {
                        bail!(
                            "GPU readback did not complete within {DEVICE_TIMEOUT:?} on '{}'",
                            self.info.name
                        );
                    }
                    self.wait()?;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("GPU readback was dropped on '{}'", self.info.name);
                }
            }
        }
        let mut out = Vec::with_capacity(buffers.len());
        for (b, len) in buffers {
            let bytes = (*len as u64 * 4).max(4);
            {
                let view = b
                    .slice(0..bytes)
                    .get_mapped_range()
                    .map_err(|e| anyhow!("reading a mapped buffer: {e:?}"))?;
                let mut v: Vec<f32> = bytemuck::cast_slice(&view[..]).to_vec();
                v.truncate(*len);
                out.push(v);
            }
            b.unmap();
        }
        Ok(out)
    }

    /// Bytes of GPU buffer memory live now (wgpu's own accounting).
    pub fn buffer_memory(&self) -> u64 {
        self.device
            .get_internal_counters()
            .hal
            .buffer_memory
            .read()
            .max(0) as u64
    }

    /// Record the live buffer memory now into the peak (called where a forward pass holds
    /// all its buffers).
    pub fn note_memory(&self) {
        self.peak_memory
            .fetch_max(self.buffer_memory(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Highest `note_memory` reading since the last reset; resets it to the live memory.
    pub fn take_peak_memory(&self) -> u64 {
        // Let wgpu free the buffers already dropped, so they do not count as live.
        let _ = self.wait();
        let now = self.buffer_memory();
        self.peak_memory
            .swap(now, std::sync::atomic::Ordering::Relaxed)
            .max(now)
    }

    /// Start timing every dispatch of submitted graphs (TIMESTAMP_QUERY); false when the
    /// adapter does not offer timestamps.
    pub fn start_profile(&self) -> bool {
        let mut st = self.encode.lock().unwrap_or_else(|e| e.into_inner());
        st.profile = Some(Vec::new());
        self.has(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Stop profiling and return the timed dispatches.
    pub fn take_profile(&self) -> Vec<crate::kernels::Sample> {
        let mut st = self.encode.lock().unwrap_or_else(|e| e.into_inner());
        st.profile.take().unwrap_or_default()
    }

    /// Drop the cached bind groups (they hold their buffers alive): called when a model, a
    /// session or a pooled buffer goes away.
    pub fn forget_bind_groups(&self) {
        let mut st = self.encode.lock().unwrap_or_else(|e| e.into_inner());
        st.forget_groups();
    }

    /// (bind groups created, bind groups reused) by `Graph::submit` so far.
    pub fn bind_group_counts(&self) -> (u64, u64) {
        let st = self.encode.lock().unwrap_or_else(|e| e.into_inner());
        (st.bind_groups_created, st.bind_groups_reused)
    }

    /// Copy the first `len` f32 values of a storage buffer to the host.
    pub fn read_storage(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let bytes = len as u64 * 4;
        let rb = self.readback("storage readback", bytes)?;
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        enc.copy_buffer_to_buffer(buffer, 0, &rb, 0, bytes);
        self.queue.submit([enc.finish()]);
        Ok(self.read_f32(&[(&rb, len)])?.remove(0))
    }

    /// Run `f` inside error scopes; turn validation and out-of-memory errors into a Result.
    pub fn checked<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let r = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            bail!(
                "{what}: the GPU '{}' ran out of memory: {e}",
                self.info.name
            );
        }
        if let Some(e) = v {
            bail!("{what}: GPU validation error: {e}");
        }
        r
    }

    /// Compile a WGSL module (labelled by its file name).
    pub fn shader(&self, label: &str, source: &str) -> wgpu::ShaderModule {
        self.device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            })
    }

    /// Compute pipeline with an automatic layout.
    pub fn pipeline(
        &self,
        label: &str,
        module: &wgpu::ShaderModule,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> wgpu::ComputePipeline {
        self.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
    }
}
