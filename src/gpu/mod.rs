//! GPU layer: adapter choice and options (here), the device context (`context`), buffers and
//! readback (`buffers`), and the op graph that records and submits dispatches (`graph`, `encode`).
//! Talks to wgpu directly; depends on nothing else in the crate (never on kernels or models).

#![warn(missing_docs)]

mod buffers;
mod context;
mod encode;
mod graph;

pub use context::{DeviceError, GpuContext};
pub use encode::{EncodeCache, Sample};
pub use graph::{grid_1d, grid_rows, Bind, Cost, Graph};

use anyhow::{bail, Result};

/// How long a single wait on the device may take before it is reported as hung.
const DEVICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

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
    /// Index for `--adapter`.
    pub index: usize,
    /// Name, backend, device type, driver.
    pub info: wgpu::AdapterInfo,
    /// The adapter's limits.
    pub limits: wgpu::Limits,
    /// The adapter's features.
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
