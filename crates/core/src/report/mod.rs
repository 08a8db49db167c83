//! The report of a probe run: one serialisable [`Report`] (`report.json`, schema in
//! `docs/report-schema.md`), a readable `report.md` and pictures (PNG + SVG, drawn with plotters and a
//! bundled font, so no system font or fontconfig is needed).
//! Depends on analysis, tensor and the study's plain types; never on wgpu, models or the study's code.

pub mod cross_model;
pub mod markdown;
pub mod plots;
mod summary;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::analysis::corpus::{CorpusAnalysis, CorpusSummary};
use crate::analysis::weights::WeightAnalysis;
use crate::analysis::{SequenceAnalysis, Thresholds};

/// What model was probed (defined with the analyses' input; part of the report as `model`).
pub use crate::analysis::ModelInfo;
pub use plots::PlotInputs;
pub use summary::{ChannelLayers, DownProjMax, KindMax, OutlierToken, Summary, TopSink};

/// Version of the `report.json` layout; bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// What was fed to the model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InputInfo {
    /// The probe prompt, or a description of the corpus.
    pub source: String,
    pub n_sequences: usize,
    /// Token count of every sequence.
    pub tokens_per_sequence: Vec<usize>,
    /// How many sequences keep their full analysis in `sequences`.
    pub n_detailed: usize,
}

/// Everything a probe run found. Serialised as `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    pub model: ModelInfo,
    pub input: InputInfo,
    pub thresholds: Thresholds,
    pub summary: Summary,
    /// Full analyses of the first `input.n_detailed` sequences.
    pub sequences: Vec<SequenceAnalysis>,
    pub corpus: CorpusSummary,
    /// Weight outliers (absent when no weights were given).
    pub weights: Option<WeightAnalysis>,
}

impl Report {
    /// Write pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let s = serde_json::to_string_pretty(self)?;
        std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
    }

    /// Read a report written by [`Report::write_json`].
    pub fn read_json(path: &Path) -> Result<Self> {
        let s =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let r: Report =
            serde_json::from_str(&s).with_context(|| format!("parsing {}", path.display()))?;
        anyhow::ensure!(
            r.schema_version == SCHEMA_VERSION,
            "{}: schema_version {} (this build reads {SCHEMA_VERSION})",
            path.display(),
            r.schema_version
        );
        Ok(r)
    }
}

/// Assemble the report of a finished analysis ([`crate::analysis::Accumulator::finish`],
/// [`crate::analysis::analyze`]): its findings as they are, plus the [`Summary`].
pub fn build(analysis: CorpusAnalysis) -> Report {
    let CorpusAnalysis {
        model,
        source,
        tokens_per_sequence,
        thresholds,
        sequences,
        corpus,
        weights,
    } = analysis;
    let summary = summary::summarize(sequences.first(), weights.as_ref());
    Report {
        schema_version: SCHEMA_VERSION,
        model,
        input: InputInfo {
            source,
            n_sequences: tokens_per_sequence.len(),
            tokens_per_sequence,
            n_detailed: sequences.len(),
        },
        thresholds,
        summary,
        sequences,
        corpus,
        weights,
    }
}

/// Write `report.json`, every picture (PNG + SVG) and `report.md` (which links the pictures) into
/// `out_dir` (created if missing). Returns the files written.
pub fn write_all(report: &Report, extras: &PlotInputs, out_dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut files = Vec::new();
    let json = out_dir.join("report.json");
    report.write_json(&json)?;
    files.push(json);
    let pictures = plots::write_plots(report, extras, out_dir)?;
    let md = out_dir.join("report.md");
    let rel: Vec<PathBuf> = pictures
        .iter()
        .filter_map(|p| p.file_name().map(PathBuf::from))
        .collect();
    std::fs::write(&md, markdown::render(report, &rel))
        .with_context(|| format!("writing {}", md.display()))?;
    files.push(md);
    files.extend(pictures);
    Ok(files)
}

#[cfg(test)]
mod tests;
