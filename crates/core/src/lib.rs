//! outlier-probe-core: the host side of outlier-probe — plain tensors, the analyses of systematic
//! outliers (Wang et al., ICLR 2025) and the report they make (`report.json`, `report.md`, plots).
//!
//! What it holds, each module depending only on those above it:
//! - [`tensor`]: row-major f32 [`tensor::Tensor`]s and their elementwise comparison;
//! - [`study_types`]: the compression study's result types (schemes, perplexities per model);
//! - [`analysis`]: activation, attention and weight outliers, token classes, lifecycle and
//!   consistency, per sequence and over a corpus (depends on [`tensor`]);
//! - [`report`]: the serialisable [`report::Report`], its Markdown and its pictures (depends on
//!   [`analysis`], [`tensor`] and [`study_types`]).
//!
//! This crate cannot depend on wgpu, pollster or any GPU crate: its manifest lists none, so the
//! compiler checks that the analyses and the report never reach the engine. The root crate
//! `outlier-probe` runs the models on the GPU, captures the hooks and feeds them here; it
//! re-exports these modules under the same paths (`outlier_probe::tensor`, `::analysis`,
//! `::report`).

pub mod analysis;
pub mod report;
pub mod study_types;
pub mod tensor;
