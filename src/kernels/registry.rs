//! The shader registry's data types: what an op module declares about its WGSL (`Shader`), the
//! key a pipeline is found by (`PipelineKey`), and compiling them all. Depends on gpu only.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::gpu::GpuContext;

/// Pipeline-overridable constants (`override` declarations) and the values to compile with.
pub type Overrides = &'static [(&'static str, f64)];

/// A compiled variant of every entry point of a shader, besides the default one.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    /// Appended to the pipeline label in parentheses: "matmul.wgsl (f16 weights)".
    pub label: &'static str,
    /// Constants and values, e.g. `&[("W_F16", 1.0)]`.
    pub overrides: Overrides,
}

/// One WGSL module as an op module declares it.
///
/// Binding convention for every kernel: binding 0 is a uniform parameter block, bindings 1..
/// are storage buffers in the order the shader declares them.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    /// File name, also the module's label ("layernorm.wgsl").
    pub name: &'static str,
    /// The source as compiled: the file with the shared functions it uses appended.
    pub source: &'static str,
    /// Its compute entry points, in declaration order: `main`, except where one concern takes
    /// steps.
    pub entry_points: &'static [&'static str],
    /// Override sets compiled besides the defaults (each for every entry point).
    pub variants: &'static [Variant],
    /// Optional device features the source uses (`wgpu::Features::SUBGROUP`): the shader is
    /// compiled only where the device was granted all of them (empty for most shaders).
    pub needs: wgpu::Features,
}

/// The entry points of most shaders.
pub const MAIN: &[&str] = &["main"];

impl Shader {
    /// A shader with a single `main` and no variants.
    pub const fn main(name: &'static str, source: &'static str) -> Self {
        Shader {
            name,
            source,
            entry_points: MAIN,
            variants: &[],
            needs: wgpu::Features::empty(),
        }
    }

    /// The key of this shader's pipeline for `entry` compiled with `overrides` (`&[]`: defaults).
    pub const fn key(&self, entry: &'static str, overrides: Overrides) -> PipelineKey {
        PipelineKey {
            shader: self.name,
            entry,
            overrides,
        }
    }
}

/// What a pipeline is found by: shader file name, entry point, overrides.
#[derive(Clone, Copy, Debug)]
pub struct PipelineKey {
    /// File name of the shader.
    pub shader: &'static str,
    /// Entry point.
    pub entry: &'static str,
    /// Overrides it was compiled with (`&[]`: the defaults).
    pub overrides: Overrides,
}

impl PartialEq for PipelineKey {
    fn eq(&self, o: &Self) -> bool {
        self.shader == o.shader
            && self.entry == o.entry
            && self.overrides.len() == o.overrides.len()
            && self
                .overrides
                .iter()
                .zip(o.overrides)
                .all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits())
    }
}

impl Eq for PipelineKey {}

impl Hash for PipelineKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.shader.hash(h);
        self.entry.hash(h);
        for (name, v) in self.overrides {
            name.hash(h);
            v.to_bits().hash(h);
        }
    }
}

/// Compile every shader of `registry` whose `needs` the device was granted and create the
/// pipeline of each entry point, with the default overrides and with each variant's. Errors
/// surface through the caller's error scope (`GpuContext::checked`).
pub fn compile(
    ctx: &GpuContext,
    registry: &'static [&'static [Shader]],
) -> HashMap<PipelineKey, wgpu::ComputePipeline> {
    let mut map = HashMap::new();
    for shader in registry.iter().flat_map(|s| s.iter()) {
        if !ctx.features.contains(shader.needs) {
            continue;
        }
        let module = ctx.shader(shader.name, shader.source);
        let sets = std::iter::once(None).chain(shader.variants.iter().map(Some));
        for variant in sets {
            for &entry in shader.entry_points {
                let mut label = shader.name.to_string();
                if shader.entry_points != MAIN {
                    label = format!("{label}:{entry}");
                }
                if let Some(v) = variant {
                    label = format!("{label} ({})", v.label);
                }
                let overrides = variant.map_or(&[][..], |v| v.overrides);
                let pipeline = ctx.pipeline(&label, &module, entry, overrides);
                map.insert(shader.key(entry, overrides), pipeline);
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use crate::kernels::{shaders, REGISTRY};

    /// Every registered shader parses and validates with naga (all validation flags, default
    /// capabilities: no f16, no subgroups unless the shader `needs` SUBGROUP), has exactly the compute entry points it declares
    /// (`main`, except the steps of one concern: head scale, quantization), and declares every
    /// override its variants set; no two shaders share a name.
    #[test]
    fn shaders_validate_with_naga() {
        use naga::valid::{Capabilities, ValidationFlags, Validator};
        // unpack2x16float (f16 weights) is a downlevel capability every Vulkan, Metal, DX12
        // and GL ES 3 device has; nothing else beyond the defaults (no f16 type, no subgroups).
        let caps = Capabilities::default() | Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        assert!(!REGISTRY.is_empty());
        let mut failures = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for shader in shaders() {
            let (name, src) = (shader.name, shader.source);
            if !names.insert(name) {
                failures.push(format!("{name}: registered twice"));
            }
            let module = match naga::front::wgsl::parse_str(src) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!(
                        "{name}: parse error:\n{}",
                        e.emit_to_string_with_path(src, name)
                    ));
                    continue;
                }
            };
            let mut validator = if shader.needs.contains(wgpu::Features::SUBGROUP) {
                let mut v = Validator::new(ValidationFlags::all(), caps | Capabilities::SUBGROUP);
                v.subgroup_stages(naga::valid::ShaderStages::COMPUTE)
                    .subgroup_operations(naga::valid::SubgroupOperationSet::all());
                v
            } else {
                Validator::new(ValidationFlags::all(), caps)
            };
            if let Err(e) = validator.validate(&module) {
                failures.push(format!(
                    "{name}: validation error:\n{}",
                    e.emit_to_string_with_path(src, name)
                ));
            }
            let eps: Vec<_> = module
                .entry_points
                .iter()
                .map(|e| (e.name.as_str(), e.stage))
                .collect();
            let want: Vec<&str> = shader.entry_points.to_vec();
            let got: Vec<&str> = eps.iter().map(|e| e.0).collect();
            if got.as_slice() != &want[..] || eps.iter().any(|e| e.1 != naga::ShaderStage::Compute)
            {
                failures.push(format!(
                    "{name}: expected the compute entry points {want:?}, found {eps:?}"
                ));
            }
            for v in shader.variants {
                for (o, _) in v.overrides {
                    if !module
                        .overrides
                        .iter()
                        .any(|(_, d)| d.name.as_deref() == Some(*o))
                    {
                        failures.push(format!("{name} ({}): no override named {o}", v.label));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}
