//! The device the engine runs on: opening it, its limits and features, error scopes, shader
//! and pipeline creation, memory and profile bookkeeping. Depends on gpu's siblings only.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};

use super::{
    device_rank, instance_for, EncodeCache, GpuOptions, Sample, DEVICE_TIMEOUT, NO_ADAPTER_HELP,
};

/// An error the device itself reported (out of memory, a validation error): not the input's
/// fault. Frontends tell it apart from bad input with `anyhow::Error::chain` + `is::<DeviceError>()`
/// (the Python bindings raise RuntimeError for it, ValueError for bad input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceError(pub String);

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeviceError {}

/// The device the model runs on, with the limits it was granted.
pub struct GpuContext {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter's name, backend, device type and driver.
    pub info: wgpu::AdapterInfo,
    /// Limits granted to the device (the adapter's own limits).
    pub limits: wgpu::Limits,
    /// Optional features granted (TIMESTAMP_QUERY, SHADER_F16, SUBGROUP where offered).
    pub features: wgpu::Features,
    /// Largest storage binding the engine will use (adapter limit, or the test override).
    pub max_binding: u64,
    /// Uniform buffer, bind groups and profile kept between submitted graphs.
    pub encode: std::sync::Mutex<EncodeCache>,
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

    /// Whether the device was granted feature `f`.
    pub fn has(&self, f: wgpu::Features) -> bool {
        self.features.contains(f)
    }

    /// Wait for all submitted work, failing (instead of hanging) after a long timeout.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(DEVICE_TIMEOUT),
            })
            .map_err(|e| {
                anyhow!(DeviceError(format!(
                    "waiting for the GPU on '{}': {e}",
                    self.info.name
                )))
            })?;
        Ok(())
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
    pub fn take_profile(&self) -> Vec<Sample> {
        let mut st = self.encode.lock().unwrap_or_else(|e| e.into_inner());
        st.profile.take().unwrap_or_default()
    }

    /// Drop the cached bind groups (they hold their buffers alive): called when a model, a
    /// session or a pooled buffer goes away.
    pub fn forget_bind_groups(&self) {
        let mut st = self.encode.lock().unwrap_or_else(|e| e.into_inner());
        st.forget_groups();
    }

    /// Dispatches submitted per label since the last call (or since the context opened).
    pub fn take_dispatch_counts(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let mut st = self.encode.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut st.dispatches)
    }

    /// (bind groups created, bind groups reused) by `Graph::submit` so far.
    pub fn bind_group_counts(&self) -> (u64, u64) {
        let st = self.encode.lock().unwrap_or_else(|e| e.into_inner());
        (st.bind_groups_created, st.bind_groups_reused)
    }
    /// Run `f` inside error scopes; turn validation and out-of-memory errors into a Result.
    ///
    /// # Errors
    /// What `f` returns, or a [`DeviceError`] when the device reported out-of-memory or a
    /// validation error while `f` ran.
    pub fn checked<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let r = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            bail!(DeviceError(format!(
                "{what}: the GPU '{}' ran out of memory: {e}",
                self.info.name
            )));
        }
        if let Some(e) = v {
            bail!(DeviceError(format!("{what}: GPU validation error: {e}")));
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
