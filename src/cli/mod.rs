//! The `outlier-probe` commands, one module each, and what they share (`common`, `prompt_args`).
//! Binary only (modules of the `outlier-probe` target, not of the library): library API only.
//! Frontend (the binary): uses the library's public API; nothing in the library uses it.

pub mod capture;
pub mod common;
pub mod compress;
pub mod devices;
pub mod generate;
pub mod ppl;
pub mod probe;
pub mod prompt_args;
