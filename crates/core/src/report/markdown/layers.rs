//! The per-layer tables of `report.md`, one block per detailed sequence.
//! Depends on the report and analysis types; never on wgpu, models or studies.

use std::fmt::Write;

use super::format::*;
use crate::analysis::activation::ActivationStats;
use crate::report::Report;

/// Per-layer tables of every detailed sequence.
pub(super) fn sequences(o: &mut String, r: &Report) {
    for seq in &r.sequences {
        let _ = writeln!(
            o,
            "## Sequence {} ({} tokens)\n",
            seq.index,
            seq.tokens.len()
        );
        if seq.tokens.len() <= 64 {
            let v: Vec<String> = seq
                .tokens
                .iter()
                .enumerate()
                .map(|(i, t)| format!("{i}:{}", show_token(t)))
                .collect();
            let _ = writeln!(o, "Tokens: {}\n", v.join(" "));
        }
        let block: Vec<(usize, &ActivationStats)> = seq
            .layers
            .iter()
            .filter_map(|l| l.block_output.as_ref().map(|s| (l.layer, s)))
            .collect();
        if !block.is_empty() {
            let _ = writeln!(o, "### Block outputs (`hook_resid_post`)\n");
            activation_table(o, &block, &seq.tokens);
        }
        let mlp: Vec<(usize, &ActivationStats)> = seq
            .layers
            .iter()
            .filter_map(|l| l.mlp.as_ref().map(|s| (l.layer, s)))
            .collect();
        if !mlp.is_empty() {
            let _ = writeln!(o, "### MLP intermediates (`mlp.hook_post`)\n");
            activation_table(o, &mlp, &seq.tokens);
        }
        if seq.layers.iter().any(|l| l.attention.is_some()) {
            let _ = writeln!(
                o,
                "### Attention (`attn.hook_pattern`, head-averaged column sums)\n"
            );
            let _ = writeln!(
                o,
                "Outlier keys by the paper's rule: column sum ≥ {} × T. Baseline: what uniform causal attention gives the key (Σ_{{i≥j}} 1/(i+1); key 0: H(T) ≈ ln T + 0.58, ≥ 0.1 × T for T ≤ 43); excess = column sum − baseline; sink when excess ≥ {} × T.\n",
                r.thresholds.attention_key_frac, r.thresholds.sink_excess_frac
            );
            let _ = writeln!(
                o,
                "| layer | top-1 key | top-2 key | median colsum | outlier keys (paper) | sink ratio mean [min, max] | top excess key (excess / baseline) | sinks (excess rule) | input outlier tokens that are keys |"
            );
            let _ = writeln!(o, "|---:|---|---|---:|---|---|---|---|---|");
            for la in &seq.layers {
                let Some(a) = &la.attention else { continue };
                let key = |i: usize| {
                    a.top
                        .get(i)
                        .map(|k| {
                            format!(
                                "{} {} ({})",
                                k.key,
                                seq.tokens
                                    .get(k.key)
                                    .map(|t| show_token(t))
                                    .unwrap_or_default(),
                                num(k.colsum)
                            )
                        })
                        .unwrap_or_default()
                };
                let tk = seq
                    .token_key
                    .layers
                    .iter()
                    .find(|x| x.layer == la.layer)
                    .map_or("—".into(), |x| {
                        format!(
                            "{} of keys {}, tokens {}",
                            list(&x.common),
                            list(&x.outlier_keys),
                            list(&x.outlier_tokens)
                        )
                    });
                let ex = a.top1_excess().map_or("—".into(), |k| {
                    format!(
                        "{} {} ({} / {})",
                        k.key,
                        seq.tokens
                            .get(k.key)
                            .map(|t| show_token(t))
                            .unwrap_or_default(),
                        num(k.excess),
                        num(k.baseline)
                    )
                });
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {:.2} [{:.2}, {:.2}] | {ex} | {} | {tk} |",
                    la.layer,
                    key(0),
                    key(1),
                    num(a.median_colsum),
                    list(&a.outlier_keys),
                    a.sink_ratio_mean,
                    a.sink_ratio_min,
                    a.sink_ratio_max,
                    list(&a.sink_keys)
                );
            }
            o.push('\n');
        }
        if let Some(cc) = &seq.channels {
            let _ = writeln!(o, "### Channel consistency (weights vs activations)\n");
            let _ = writeln!(
                o,
                "| layer | MLP channels | rule holds | down-proj outlier rows | common | residual channels | rule holds | written columns | common |"
            );
            let _ = writeln!(o, "|---:|---|---|---|---|---|---|---|---|");
            for x in &cc.layers {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    x.layer,
                    list(&x.mlp_channels),
                    if x.mlp_holds { "yes" } else { "no" },
                    list(&x.weight_rows),
                    list(&x.common_rows),
                    list(&x.residual_channels),
                    if x.residual_holds { "yes" } else { "no" },
                    list(&x.written_columns),
                    list(&x.common_columns)
                );
            }
            o.push('\n');
        }
    }
}
