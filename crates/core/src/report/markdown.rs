//! `report.md`: a summary a person reads first, then per-layer tables.

use std::fmt::Write;
use std::path::PathBuf;

use super::Report;
use crate::analysis::activation::{ActivationStats, Entry};
use crate::analysis::consistency::{Fraction, Lifecycle};
use crate::analysis::tokens::{normalize_token, ClassCounts, TokenClass};
use crate::analysis::weights::ModuleKind;

/// A token string shown in a table cell: escaped (`\n`), quoted, pipes escaped.
pub fn show_token(raw: &str) -> String {
    let s = normalize_token(raw)
        .escape_debug()
        .to_string()
        .replace('|', "\\|")
        .replace('`', "'");
    format!("`\"{s}\"`")
}

fn num(x: f32) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 1e5 || x.abs() < 1e-3 {
        format!("{x:.3e}")
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn opt_layer(x: Option<usize>) -> String {
    x.map_or("—".into(), |l| l.to_string())
}

fn list(v: &[usize]) -> String {
    if v.is_empty() {
        "—".into()
    } else {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Compact layer list: `2–4, 7`.
pub fn ranges(v: &[usize]) -> String {
    if v.is_empty() {
        return "—".into();
    }
    let mut out = Vec::new();
    let mut start = v[0];
    let mut prev = v[0];
    for &x in &v[1..] {
        if x != prev + 1 {
            out.push(if start == prev {
                start.to_string()
            } else {
                format!("{start}–{prev}")
            });
            start = x;
        }
        prev = x;
    }
    out.push(if start == prev {
        start.to_string()
    } else {
        format!("{start}–{prev}")
    });
    out.join(", ")
}

fn frac(f: Option<Fraction>) -> String {
    match f {
        None => "not computed (no weights)".into(),
        Some(f) if f.of == 0 => "no layer where the rule holds".into(),
        Some(f) => format!(
            "{}/{} layers ({:.0}%)",
            f.hits,
            f.of,
            100.0 * f.value().unwrap_or(0.0)
        ),
    }
}

fn lifecycle_line(name: &str, l: &Lifecycle) -> String {
    if l.first_layer.is_none() {
        return format!("- {name}: no layer satisfies the rule.\n");
    }
    format!(
        "- {name}: appear at layer {}, peak at layer {}, last hold at layer {}, vanish at layer {} (holding in layers {}).\n",
        opt_layer(l.first_layer),
        opt_layer(l.peak_layer),
        opt_layer(l.last_layer),
        l.vanish_layer.map_or("— (hold to the last layer)".into(), |v| v.to_string()),
        ranges(&l.layers_holding)
    )
}

fn entry(e: &Entry, tokens: &[String]) -> String {
    let tok = tokens
        .get(e.token)
        .map(|t| show_token(t))
        .unwrap_or_default();
    format!("{} @({} {tok}, ch {})", num(e.value), e.token, e.channel)
}

fn class_table(out: &mut String, title_a: &str, a: &ClassCounts, title_b: &str, b: &ClassCounts) {
    let _ = writeln!(out, "| class | {title_a} | share | {title_b} | share |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for c in TokenClass::ALL {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1}% | {} | {:.1}% |",
            c.label(),
            a.get(c),
            100.0 * a.share(c),
            b.get(c),
            100.0 * b.share(c)
        );
    }
    let top = |c: &ClassCounts| {
        c.top_texts(8)
            .iter()
            .map(|(t, n)| format!("{} ×{n}", show_token(t)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "\nMost frequent {title_a}: {}  ", top(a));
    let _ = writeln!(out, "Most frequent {title_b}: {}\n", top(b));
}

fn activation_table(out: &mut String, layers: &[(usize, &ActivationStats)], tokens: &[String]) {
    let _ = writeln!(
        out,
        "| layer | top-1 | top-2 | top-3 | median | mean | top-1/median | threshold | outlier tokens | top channels |"
    );
    let _ = writeln!(out, "|---:|---|---|---|---:|---:|---:|---:|---|---|");
    for (l, s) in layers {
        let top = |i: usize| s.top.get(i).map(|e| entry(e, tokens)).unwrap_or_default();
        let toks = s
            .outlier_tokens
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e.token,
                    tokens
                        .get(e.token)
                        .map(|t| show_token(t))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let chans = s
            .top_channels
            .iter()
            .map(|c| format!("{} ({})", c.channel, num(c.max_abs)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| {l} | {} | {} | {} | {} | {} | {} | {} | {} | {chans} |",
            top(0),
            top(1),
            top(2),
            num(s.median_abs),
            num(s.mean_abs),
            num(s.top1_over_median),
            num(s.threshold),
            if toks.is_empty() { "—".into() } else { toks },
        );
    }
    out.push('\n');
}

/// Render the report as markdown; `pictures` are file names relative to the markdown file.
pub fn render(r: &Report, pictures: &[PathBuf]) -> String {
    let mut o = String::new();
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

    // ---- summary
    let s = &r.summary;
    let seq = r.sequences.first();
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

    // ---- token classes
    let c = &r.corpus;
    let _ = writeln!(o, "## Token classes ({} sequence(s))\n", c.n_sequences);
    class_table(
        &mut o,
        "outlier tokens",
        &c.outlier_token_classes,
        "attention-outlier keys",
        &c.outlier_key_classes,
    );

    // ---- per-layer tables of the detailed sequences
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
            activation_table(&mut o, &block, &seq.tokens);
        }
        let mlp: Vec<(usize, &ActivationStats)> = seq
            .layers
            .iter()
            .filter_map(|l| l.mlp.as_ref().map(|s| (l.layer, s)))
            .collect();
        if !mlp.is_empty() {
            let _ = writeln!(o, "### MLP intermediates (`mlp.hook_post`)\n");
            activation_table(&mut o, &mlp, &seq.tokens);
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

    // ---- weights
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

    // ---- corpus
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

    // ---- pictures
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
    o
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
