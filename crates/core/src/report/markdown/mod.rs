//! `report.md`: a summary a person reads first, then per-layer tables, the weights, the corpus and
//! the pictures. Depends on the report and analysis types; never on wgpu, models or studies.

mod corpus;
mod format;
mod layers;
mod summary;

use std::fmt::Write;
use std::path::PathBuf;

use super::Report;

pub use format::{ranges, show_token};

/// Render the report as markdown; `pictures` are file names relative to the markdown file.
pub fn render(r: &Report, pictures: &[PathBuf]) -> String {
    let mut o = String::new();
    header(&mut o, r);
    summary::summary(&mut o, r);
    summary::token_classes(&mut o, r);
    layers::sequences(&mut o, r);
    corpus::weights(&mut o, r);
    corpus::corpus(&mut o, r);
    pictures_section(&mut o, pictures);
    o
}

/// Title, model and input line, and the rules with their thresholds.
fn header(o: &mut String, r: &Report) {
    let m = &r.model;
    let _ = writeln!(
        o,
        "# Systematic-outlier probe: {}\n",
        if m.name.is_empty() { "model" } else { &m.name }
    );
    let _ = writeln!(
        o,
        "{} layers, n_embd {}, {} heads, MLP width {}, vocabulary {}. Input: {} ({} sequence(s), {} tokens).\n",
        m.n_layer,
        m.n_embd,
        m.n_head,
        m.n_inner.map_or("?".into(), |i| i.to_string()),
        m.vocab_size,
        r.input.source.escape_debug(),
        r.input.n_sequences,
        r.corpus.n_tokens
    );
    let th = &r.thresholds;
    let _ = writeln!(
        o,
        "Rules: activation outlier when |h| > max({} × mean|h|, {} × median|h|, {}); top {} channels; attention-outlier key (paper) when column sum ≥ {} × T; attention sink when the column sum exceeds what uniform causal attention gives the key (Σ_{{i≥j}} 1/(i+1)) by ≥ {} × T; weight ratio max|w| / (mean|w| + 1e-8), top {} rows, {} written columns each.\n",
        th.activation.ratio_to_mean,
        th.activation.ratio_to_median,
        th.activation.min_abs,
        th.top_channels,
        th.attention_key_frac,
        th.sink_excess_frac,
        th.weight_top_rows,
        th.weight_top_columns
    );
}

/// Links to the pictures (PNG shown, SVG named).
fn pictures_section(o: &mut String, pictures: &[PathBuf]) {
    let pngs: Vec<&PathBuf> = pictures
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    if !pngs.is_empty() {
        let _ = writeln!(o, "## Pictures\n");
        for p in pngs {
            let name = p.display().to_string();
            let _ = writeln!(
                o,
                "![{}]({name})  ",
                p.file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            );
            let _ = writeln!(o, "({name}, SVG: {})\n", p.with_extension("svg").display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_tokens() {
        assert_eq!(ranges(&[2, 3, 4, 7, 9, 10]), "2–4, 7, 9–10");
        assert_eq!(ranges(&[]), "—");
        assert_eq!(show_token("\n"), "`\"\\n\"`");
        assert_eq!(show_token("Ġa|b"), "`\" a\\|b\"`");
    }
}
