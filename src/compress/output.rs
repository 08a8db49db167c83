//! The study's outputs: `compress.md` tables, `compress.json` and the bar charts (drawn by the report).
//! Plain text over [`ModelStudy`]; depends on the study types and the report's charts, not on the GPU.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{labels, ModelStudy};

/// Markdown: one table per model (scheme, perplexity, × fp32, protected), and, for several
/// models, a comparison of × fp32 across them.
pub fn markdown(studies: &[ModelStudy]) -> String {
    let mut s = String::new();
    let names = labels(studies);
    for (st, label) in studies.iter().zip(&names) {
        s += &format!(
            "### {}\n\n{} windows, {} predicted tokens, on {}. fp32 perplexity {:.3}.\n",
            label, st.windows, st.tokens, st.device, st.baseline_ppl
        );
        if !st.protect.is_empty() {
            s += &format!(
                "Protected input channels: d {:?}, inner {:?}.\n",
                st.protect.d, st.protect.inner
            );
        } else if st.channel_stats.is_some() {
            s += "No outlier input channel found (nothing to protect).\n";
        }
        s += "\n| scheme | perplexity | × fp32 | protected | × fp32 |\n|---|---:|---:|---:|---:|\n";
        for r in &st.results {
            let (pp, pr) = match r.ppl_protected {
                Some(p) => (num(p), num(p / st.baseline_ppl)),
                None => ("–".into(), "–".into()),
            };
            s += &format!(
                "| `{}` | {} | {} | {pp} | {pr} |\n",
                r.scheme.name,
                num(r.ppl),
                num(r.ppl / st.baseline_ppl)
            );
        }
        s += "\n";
        for r in &st.results {
            for n in &r.notes {
                s += &format!("∞ `{}` {n}\n\n", r.scheme.name);
            }
        }
    }
    if studies.len() > 1 {
        s += "### Perplexity × fp32, side by side (protected in brackets)\n\n| scheme |";
        for label in &names {
            s += &format!(" {label} |");
        }
        s += "\n|---|";
        s += &"---:|".repeat(studies.len());
        s += "\n| fp32 perplexity |";
        for st in studies {
            s += &format!(" {:.3} |", st.baseline_ppl);
        }
        s += "\n";
        for (i, r) in studies[0].results.iter().enumerate() {
            s += &format!("| `{}` |", r.scheme.name);
            for st in studies {
                let r = &st.results[i];
                let prot = r
                    .ppl_protected
                    .map(|p| format!(" ({})", num(p / st.baseline_ppl)))
                    .unwrap_or_default();
                s += &format!(" {}{prot} |", num(r.ppl / st.baseline_ppl));
            }
            s += "\n";
        }
    }
    s
}

/// A perplexity or ratio for the tables: three decimals, or ∞ for a scheme that broke the
/// model (its note says why).
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "∞".into()
    }
}

/// Write compress.json, compress.md and the bar charts into `out`. Returns the files written.
pub fn write_outputs(studies: &[ModelStudy], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = Vec::new();
    let json = out.join("compress.json");
    std::fs::write(&json, serde_json::to_string_pretty(studies)?)
        .with_context(|| format!("writing {}", json.display()))?;
    files.push(json);
    let md = out.join("compress.md");
    std::fs::write(&md, markdown(studies)).with_context(|| format!("writing {}", md.display()))?;
    files.push(md);
    files.extend(crate::report::plots::compress_bars(studies, out)?);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{Protect, Scheme, SchemeResult, WeightStats};

    /// A scheme that broke the model shows ∞ with its note; the JSON holds null, not a number.
    #[test]
    fn broken_schemes_show_infinity_and_why() {
        let result = |name: &str, ppl: f64, notes: Vec<String>| SchemeResult {
            scheme: Scheme::parse(name).unwrap(),
            ppl,
            ppl_protected: Some(ppl * 0.5),
            weights: WeightStats::default(),
            notes,
        };
        let note = "plain: perplexity of w2t: non-finite values first appear at blocks.1.mlp.hook_pre (position 0, channel 5: inf; 3 of its 288 values are non-finite)";
        let st = ModelStudy {
            model: "m".into(),
            device: String::new(),
            windows: 1,
            tokens: 1,
            baseline_ppl: 2.0,
            protect: Protect::default(),
            channel_stats: None,
            results: vec![
                result("w8", 2.5, vec![]),
                result("w2t", f64::INFINITY, vec![note.into()]),
            ],
        };
        let md = markdown(std::slice::from_ref(&st));
        assert!(
            md.contains("| `w8` | 2.500 | 1.250 | 1.250 | 0.625 |"),
            "{md}"
        );
        assert!(md.contains("| `w2t` | ∞ | ∞ | ∞ | ∞ |"), "{md}");
        assert!(md.contains(&format!("∞ `w2t` {note}")), "{md}");
        let two = markdown(&[st.clone(), st.clone()]);
        assert!(two.contains("| `w2t` | ∞ (∞) | ∞ (∞) |"), "{two}");
        let j: serde_json::Value = serde_json::to_value(&st).unwrap();
        assert!(j["results"][1]["ppl"].is_null(), "{j}");
        assert_eq!(j["results"][1]["notes"][0], note);
    }
}
