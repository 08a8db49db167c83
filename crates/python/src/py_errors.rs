//! Rust errors as Python exceptions, and running engine work with the GIL released and panics
//! caught. Bindings layer: uses the library's public API only.
//!
//! | Rust error | Python exception |
//! |---|---|
//! | a `std::io::Error` of kind NotFound anywhere in the chain | `FileNotFoundError` |
//! | `gpu::DeviceError` (out of memory, validation, a hung device), no adapter | `RuntimeError` |
//! | `finite::NonFinite`, `ppl::PplOverflow` (the numbers, not the input) | `RuntimeError` |
//! | anything else: bad input found before or while running | `ValueError` (or `RuntimeError` where the caller says the input was checked) |
//! | a panic inside the engine (a bug) | `RuntimeError` naming it, never an unwinding panic |
//!
//! The message is the whole `anyhow` chain (`{:#}`), the same text the CLI prints.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyAny;

use outlier_probe::finite::NonFinite;
use outlier_probe::gpu::DeviceError;
use outlier_probe::ppl::PplOverflow;

/// What an error is, unless its chain says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// Bad input (a file that does not parse, a selector that selects nothing): ValueError.
    Input,
    /// The input was checked before the work ran: what is left is the device's (RuntimeError).
    Device,
}

/// The Python exception for `e`: FileNotFoundError, RuntimeError or ValueError (see the module
/// table), with the full Rust message.
pub fn to_py(e: anyhow::Error, fallback: Fallback) -> PyErr {
    let msg = format!("{e:#}");
    let not_found = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    });
    if not_found {
        return PyFileNotFoundError::new_err(msg);
    }
    let device = e
        .chain()
        .any(|c| c.is::<DeviceError>() || c.is::<NonFinite>() || c.is::<PplOverflow>());
    if device || fallback == Fallback::Device {
        PyRuntimeError::new_err(msg)
    } else {
        PyValueError::new_err(msg)
    }
}

/// A ValueError with `msg` (argument checks done in the bindings themselves).
pub fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// Run `f` (engine work: GPU passes, file reading, analyses) with the GIL released, so that
/// other Python threads run meanwhile; a panic inside becomes a RuntimeError instead of
/// unwinding into Python.
pub fn detached<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> PyResult<T> + Send,
{
    py.detach(|| {
        catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Err(PyRuntimeError::new_err(format!(
                "internal error in outlier-probe (a bug, please report it): {what}"
            )))
        })
    })
}

/// JSON text (a serde value of the library: report, table, config) as Python objects, through
/// the standard `json` module: the dict has exactly the keys of the files the CLI writes.
pub fn json_to_py<'py>(py: Python<'py>, json: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (json,))
}

/// `value` as JSON text, for [`json_to_py`].
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> PyResult<String> {
    serde_json::to_string(value)
        .map_err(|e| PyRuntimeError::new_err(format!("serializing to JSON: {e}")))
}
