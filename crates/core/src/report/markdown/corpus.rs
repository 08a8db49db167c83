//! The weight and corpus sections of `report.md`.
//! Depends on the report and analysis types; never on wgpu, models or studies.

use std::fmt::Write;

use super::format::*;
use crate::analysis::weights::ModuleKind;
use crate::report::Report;

/// Down-projection rows and the module comparison (when weights were analysed).
pub(super) fn weights(o: &mut String, r: &Report) {
    if let Some(w) = &r.weights {
        if !w.down_proj.is_empty() {
            let _ = writeln!(o, "## Down projection (rows = intermediate channels)\n");
            let _ = writeln!(o, "| layer | max ratio | median ratio | top rows (ratio) | columns written by the top row |");
            let _ = writeln!(o, "|---:|---:|---:|---|---|");
            for d in &w.down_proj {
                let rows = d
                    .top_rows
                    .iter()
                    .map(|c| format!("{} ({})", c.channel, num(c.ratio)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let cols = d
                    .writes
                    .first()
                    .map(|w| {
                        w.columns
                            .iter()
                            .map(|c| format!("{} ({})", c.column, num(c.weight)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {rows} | {cols} |",
                    d.layer,
                    num(d.max_ratio),
                    num(d.median_ratio)
                );
            }
            o.push('\n');
        }
        if !w.modules.is_empty() {
            let mut kinds: Vec<ModuleKind> = w.modules.iter().map(|m| m.kind).collect();
            kinds.sort();
            kinds.dedup();
            let _ = writeln!(o, "## Module comparison: max(row ratio, column ratio)\n");
            let head: Vec<&str> = kinds.iter().map(|k| k.label()).collect();
            let _ = writeln!(o, "| layer | {} |", head.join(" | "));
            let _ = writeln!(o, "|---:|{}", "---:|".repeat(kinds.len()));
            let mut layers: Vec<usize> = w.modules.iter().map(|m| m.layer).collect();
            layers.dedup();
            for l in layers {
                let cells: Vec<String> = kinds
                    .iter()
                    .map(|k| {
                        w.modules
                            .iter()
                            .find(|m| m.layer == l && m.kind == *k)
                            .map_or("—".into(), |m| num(m.max_ratio))
                    })
                    .collect();
                let _ = writeln!(o, "| {l} | {} |", cells.join(" | "));
            }
            o.push('\n');
        }
    }
}

/// Corpus statistics (several sequences, or none detailed).
pub(super) fn corpus(o: &mut String, r: &Report) {
    let c = &r.corpus;
    let seq = r.sequences.first();
    if c.n_sequences > 1 || seq.is_none() {
        let _ = writeln!(
            o,
            "## Corpus ({} sequences, {} tokens)\n",
            c.n_sequences, c.n_tokens
        );
        let _ = writeln!(
            o,
            "Key 0 is an attention-outlier key (paper's rule) in {:.0}% of the sequences and an attention sink (excess rule) in {:.0}%. Block-output outliers appear at layer {} and vanish at layer {} (layer: sequences).\n",
            100.0 * c.key0_outlier_fraction,
            100.0 * c.key0_sink_fraction,
            c.block_first_layer.iter().map(|x| format!("{}: {}", x.layer, x.count)).collect::<Vec<_>>().join(", "),
            c.block_vanish_layer.iter().map(|x| format!("{}: {}", x.layer, x.count)).collect::<Vec<_>>().join(", "),
        );
        let chans = |v: &[crate::analysis::corpus::ChannelCount]| {
            v.iter()
                .map(|x| format!("{} ×{}", x.channel, x.count))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            o,
            "Block-output outlier channels (sequence × layer pairs): {}  ",
            chans(&c.block_channels)
        );
        let _ = writeln!(o, "MLP outlier channels: {}\n", chans(&c.mlp_channels));
        let _ = writeln!(
            o,
            "| layer | block top-1 mean | max | median mean | holds | top channel | MLP top-1 mean | max | holds | top key colsum mean | key 0 outlier | key 0 sink | sink ratio mean |"
        );
        let _ = writeln!(
            o,
            "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for l in 0..r.model.n_layer {
            let b = c.block_output.iter().find(|x| x.layer == l);
            let mm = c.mlp.iter().find(|x| x.layer == l);
            let a = c.attention.iter().find(|x| x.layer == l);
            let pct = |x: f32| format!("{:.0}%", 100.0 * x);
            let _ = writeln!(
                o,
                "| {l} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                b.map_or("—".into(), |b| num(b.top1_mean)),
                b.map_or("—".into(), |b| num(b.top1_max)),
                b.map_or("—".into(), |b| num(b.median_mean)),
                b.map_or("—".into(), |b| pct(b.holds_fraction)),
                b.and_then(|b| b.top_channel)
                    .map_or("—".into(), |t| format!("{} ({}×)", t.channel, t.count)),
                mm.map_or("—".into(), |b| num(b.top1_mean)),
                mm.map_or("—".into(), |b| num(b.top1_max)),
                mm.map_or("—".into(), |b| pct(b.holds_fraction)),
                a.map_or("—".into(), |a| num(a.top1_colsum_mean)),
                a.map_or("—".into(), |a| pct(a.key0_outlier_fraction)),
                a.map_or("—".into(), |a| pct(a.key0_sink_fraction)),
                a.map_or("—".into(), |a| format!("{:.2}", a.sink_ratio_mean)),
            );
        }
        o.push('\n');
        if let Some(cc) = &c.channel_consistency {
            let _ = writeln!(
                o,
                "Corpus channel consistency on majority channels: (a) {}; (b) {}; at appearance: {}.\n",
                frac(Some(cc.rows)),
                frac(Some(cc.columns)),
                cc.columns_at_appearance.map_or("not computed", |b| if b { "yes" } else { "no" })
            );
        }
    }
}
