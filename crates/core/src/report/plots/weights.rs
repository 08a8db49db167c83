//! Weight charts: down-projection ratios and the module comparison per layer.
//! Depends on the analysis' weight statistics; never on wgpu or models.

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::prelude::*;

use super::common::*;
use crate::analysis::weights::WeightAnalysis;

/// The down-projection and module-comparison charts (each when its statistics exist).
pub(super) fn write_weights(
    files: &mut Vec<PathBuf>,
    dir: &Path,
    weights: Option<&WeightAnalysis>,
) -> Result<()> {
    if let Some(w) = weights.filter(|w| !w.down_proj.is_empty()) {
        let n = w.down_proj.iter().map(|d| d.layer + 1).max().unwrap_or(0);
        let val =
            |f: &dyn Fn(&crate::analysis::weights::DownProjStats) -> f32| -> Vec<Option<f32>> {
                (0..n).map(|l| w.down_proj_at(l).map(f)).collect()
            };
        let lines = vec![
            Line {
                label: "max ratio".into(),
                color: C_TOP1,
                values: val(&|d| d.max_ratio),
                dashed: false,
            },
            Line {
                label: "median ratio".into(),
                color: C_MED,
                values: val(&|d| d.median_ratio),
                dashed: false,
            },
        ];
        both!(files, dir, "down_proj_ratio", |root| lines_log(
            &root,
            "Down projection: max|w| / mean|w| per intermediate channel",
            "ratio",
            &lines
        ));
    }
    if let Some(w) = weights.filter(|w| !w.modules.is_empty()) {
        let n = w.modules.iter().map(|m| m.layer + 1).max().unwrap_or(0);
        let mut kinds: Vec<_> = w.modules.iter().map(|m| m.kind).collect();
        kinds.sort();
        kinds.dedup();
        let lines: Vec<Line> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| Line {
                label: k.label().into(),
                color: PALETTE[i % PALETTE.len()],
                values: (0..n)
                    .map(|l| {
                        w.modules
                            .iter()
                            .find(|m| m.layer == l && m.kind == *k)
                            .map(|m| m.max_ratio)
                    })
                    .collect(),
                dashed: false,
            })
            .collect();
        both!(files, dir, "module_ratio", |root| lines_log(
            &root,
            "Module comparison: max(row ratio, column ratio)",
            "ratio",
            &lines
        ));
    }
    Ok(())
}
