//! The summary section of `report.md` (headline numbers) and the token-class table.
//! Depends on the report and analysis types; never on wgpu, models or studies.

use std::fmt::Write;

use super::format::*;
use crate::report::Report;

/// The headline numbers of the first detailed sequence, the corpus and the weights.
pub(super) fn summary(o: &mut String, r: &Report) {
    let th = &r.thresholds;
    let s = &r.summary;
    let _ = writeln!(
        o,
        "## Summary{}\n",
        s.sequence
            .map_or(String::new(), |i| format!(" (sequence {i})"))
    );
    if s.massive_channels.is_empty() {
        let _ = writeln!(o, "- Massive channels (block output): none under the rule.");
    } else {
        let v: Vec<String> = s
            .massive_channels
            .iter()
            .take(5)
            .map(|c| {
                format!(
                    "**channel {}** (layers {}, max |h| {})",
                    c.channel,
                    ranges(&c.layers),
                    num(c.max_abs)
                )
            })
            .collect();
        let _ = writeln!(o, "- Massive channels (block output): {}.", v.join("; "));
    }
    if let Some(f) = crate::report::cross_model::f16_overflow(r) {
        let _ = writeln!(
            o,
            "- **Beyond the f16 range**: |h| up to {} (> 65,504) in layers {}: in half precision these activations overflow to ±inf.",
            num(f.max_abs),
            ranges(&f.layers)
        );
    }
    if s.mlp_channels.is_empty() {
        let _ = writeln!(
            o,
            "- MLP-intermediate outlier channels: none under the rule."
        );
    } else {
        let v: Vec<String> = s
            .mlp_channels
            .iter()
            .take(5)
            .map(|c| {
                format!(
                    "channel {} (layers {}, max |h| {})",
                    c.channel,
                    ranges(&c.layers),
                    num(c.max_abs)
                )
            })
            .collect();
        let _ = writeln!(o, "- MLP-intermediate outlier channels: {}.", v.join("; "));
    }
    o.push_str(&lifecycle_line("Block-output outliers", &s.block_lifecycle));
    o.push_str(&lifecycle_line(
        "MLP-intermediate outliers",
        &s.mlp_lifecycle,
    ));
    match &s.top_sink_excess {
        Some(t) => {
            let _ = writeln!(
                o,
                "- Top attention sink (excess rule): key {} {} at layer {} receives {} of {} queries ({:.1}%), {} more than uniform causal attention would give it ({}); mean per-head share of that layer's sink keys {:.2}.",
                t.key,
                show_token(&t.text),
                t.layer,
                num(t.colsum),
                t.n_queries,
                100.0 * t.share,
                num(t.excess),
                num(t.baseline),
                t.sink_ratio_mean
            );
        }
        None => {
            let _ = writeln!(
                o,
                "- Attention sinks (excess rule): none — no key receives {} × T more than uniform causal attention would give it, in any layer.",
                th.sink_excess_frac
            );
        }
    }
    match &s.top_sink {
        Some(t) => {
            let artefact = t.excess < th.sink_excess_frac * t.n_queries as f32;
            let _ = writeln!(
                o,
                "- Paper's rule (column sum ≥ {} × T): top key {} {} at layer {} receives {} of {} queries ({:.1}%); uniform causal attention would give it {} (excess {}); mean per-head sink ratio there {:.2}.{}",
                th.attention_key_frac,
                t.key,
                show_token(&t.text),
                t.layer,
                num(t.colsum),
                t.n_queries,
                100.0 * t.share,
                num(t.baseline),
                num(t.excess),
                t.sink_ratio_mean,
                if artefact {
                    format!(
                        " Its excess is below the sink threshold ({}), so it is not counted as a sink.",
                        num(th.sink_excess_frac * t.n_queries as f32)
                    )
                } else {
                    String::new()
                }
            );
        }
        None => {
            let _ = writeln!(
                o,
                "- Paper's rule (column sum ≥ {} × T): no outlier key in any layer.",
                th.attention_key_frac
            );
        }
    }
    match &s.down_proj_max {
        Some(d) => {
            let _ = writeln!(
                o,
                "- Down projection: largest ratio {} at layer {}, intermediate channel (row) {} writing mostly into residual channels {}; that layer's median ratio {}.",
                num(d.ratio),
                d.layer,
                d.channel,
                list(&d.columns),
                num(d.median_ratio)
            );
        }
        None => {
            let _ = writeln!(o, "- Weights: not analysed.");
        }
    }
    if !s.module_max.is_empty() {
        let v: Vec<String> = s
            .module_max
            .iter()
            .map(|k| {
                format!(
                    "{} {} (layer {})",
                    k.kind.label(),
                    num(k.max_ratio),
                    k.layer
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "- Module comparison, largest max(row, column) ratio: {}.",
            v.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "- Consistency (a), MLP outlier channels among down-proj outlier rows: {}.",
        frac(s.channel_rows)
    );
    let _ = writeln!(
        o,
        "- Consistency (b), residual outlier channels among the columns those rows write: {}; at the appearance layer: {}.",
        frac(s.channel_columns),
        match s.columns_at_appearance {
            Some(true) => "yes",
            Some(false) => "no",
            None => "not computed",
        }
    );
    let _ = writeln!(
        o,
        "- Attention-outlier keys that are activation-outlier tokens of the layer input: {}.\n",
        s.token_key_share
            .map_or("no layer with both".into(), |x| format!(
                "{:.0}% on average",
                100.0 * x
            ))
    );
    if !s.outlier_tokens.is_empty() {
        let _ = writeln!(
            o,
            "| position | token | class | layers | max \\|h\\| | channel |"
        );
        let _ = writeln!(o, "|---:|---|---|---|---:|---:|");
        for t in &s.outlier_tokens {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                t.position,
                show_token(&t.text),
                t.class.label(),
                ranges(&t.layers),
                num(t.max_abs),
                t.channel
            );
        }
        o.push('\n');
    }
}

/// Classes of the outlier tokens and attention-outlier keys over the corpus.
pub(super) fn token_classes(o: &mut String, r: &Report) {
    let c = &r.corpus;
    let _ = writeln!(o, "## Token classes ({} sequence(s))\n", c.n_sequences);
    class_table(
        o,
        "outlier tokens",
        &c.outlier_token_classes,
        "attention-outlier keys",
        &c.outlier_key_classes,
    );
}
