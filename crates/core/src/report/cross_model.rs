//! Several probe reports side by side: one Markdown table with a row per finding of Wang et al.
//! (massive channels and magnitudes, the tokens carrying them, their lifecycle, the f16 range,
//! attention sinks, down-projection weight outliers, and whether weight and activation channels
//! coincide), optionally with the paper's own figures for LLaMA-2-7B as a further column
//! ([`LLAMA2_7B`]), and a per-layer table of the top key's attention share.
//! Reads [`Report`]s only: never wgpu, models or the study's code.

use super::Report;
use crate::analysis::ActivationStats;

/// Largest finite half-precision value: activations above it overflow to infinity in f16.
pub const F16_MAX: f32 = 65504.0;

/// Where a report's activations leave the f16 range: the layers whose block output or MLP
/// intermediate holds an entry with |h| > [`F16_MAX`] (in any detailed sequence), and the largest.
#[derive(Clone, Debug, PartialEq)]
pub struct F16Overflow {
    /// Layers, ascending.
    pub layers: Vec<usize>,
    /// The largest |h| among them.
    pub max_abs: f32,
}

/// `None` when every captured activation fits in f16 (|h| ≤ 65,504); else where it does not.
/// Half-precision inference of such a model turns those entries into ±inf.
pub fn f16_overflow(r: &Report) -> Option<F16Overflow> {
    let mut layers = std::collections::BTreeSet::new();
    let mut max_abs = 0f32;
    for q in &r.sequences {
        for l in &q.layers {
            for s in [&l.block_output, &l.mlp].into_iter().flatten() {
                if let Some(e) = s.top.first().filter(|e| e.abs > F16_MAX) {
                    layers.insert(l.layer);
                    max_abs = max_abs.max(e.abs);
                }
            }
        }
    }
    (!layers.is_empty()).then(|| F16Overflow {
        layers: layers.into_iter().collect(),
        max_abs,
    })
}

/// The layers as "a–b" when contiguous, else a list.
pub fn layers_text(l: &[usize]) -> String {
    match (l.first(), l.last()) {
        (Some(a), Some(b)) if l.len() == b - a + 1 => format!("{a}–{b}"),
        _ => format!("{l:?}"),
    }
}

/// The rows of the table, in order (the first cell of each row).
pub const ROWS: [&str; 11] = [
    "model",
    "probe input",
    "massive channels (block output), max \\|h\\|",
    "largest \\|h\\| and × median (its layer)",
    "tokens carrying them",
    "layers: appear · peak · last · vanish",
    "f16 range (65,504)",
    "top attention sink (excess rule)",
    "down-projection weight outlier (max/mean)",
    "weight row writes into the massive channel",
    "attention-sink keys that are outlier tokens",
];

/// A column given as text (a model not probed here), one cell per entry of [`ROWS`].
pub struct TextColumn {
    pub title: &'static str,
    pub cells: [&'static str; 11],
}

/// LLaMA-2-7B as the paper and its public code (an-yongqi/systematic-outliers) report it: activation
/// channels 1415 and 2533, down-projection channel 7890, 100 sequences.
pub const LLAMA2_7B: TextColumn = TextColumn {
    title: "LLaMA-2-7B (paper)",
    cells: [
        "32 layers, d = 4096, 32 heads",
        "100 sequences (corpus)",
        "1415, 2533 (≈ 2,400 and ≈ 1,400)",
        "≈ 2,400; median ≈ 0",
        "initial 50.0%, `.` 40.5%, `▁` 9.5% of outlier tokens",
        "appear at layer 2, stay to ≈ 30, vanish in the last two",
        "within (≈ 2,400)",
        "top key ≈ 520 of 1024 queries (0.51) from layer 3 on; mean head sink ratio 0.55–0.87 (layers 3–31)",
        "layer 2, channel 7890, ≈ 1170 (≈ 570–590 at layers 31–32; other modules < 250)",
        "yes: 100% in the feature dimension",
        "≈ 95% (unverified)",
    ],
};

fn thousands(x: f32) -> String {
    let r = x.round() as i64;
    let s = r.abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if r < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn opt(x: Option<usize>) -> String {
    x.map_or("—".into(), |v| v.to_string())
}

/// The block-output statistics of the first detailed sequence, by layer.
fn block_stats(r: &Report) -> Vec<(usize, &ActivationStats)> {
    r.sequences.first().map_or(Vec::new(), |s| {
        s.layers
            .iter()
            .filter_map(|l| l.block_output.as_ref().map(|b| (l.layer, b)))
            .collect()
    })
}

/// The cells of one probed model, one per entry of [`ROWS`].
pub fn cells(r: &Report) -> Vec<String> {
    let s = &r.summary;
    let m = &r.model;
    let mut c = vec![format!(
        "{} layers, d = {}, {} heads",
        m.n_layer, m.n_embd, m.n_head
    )];
    let first = r.sequences.first();
    c.push(match first {
        Some(q) => format!(
            "{:?}, {} tokens (first: `{}`)",
            r.input.source,
            q.tokens.len(),
            q.tokens.first().map_or("", |t| t.as_str())
        ),
        None => r.input.source.clone(),
    });
    c.push(if s.massive_channels.is_empty() {
        "none by the rule (\\|h\\| > 1000 × mean)".into()
    } else {
        s.massive_channels
            .iter()
            .take(3)
            .map(|ch| {
                format!(
                    "{} ({}; layers {})",
                    ch.channel,
                    thousands(ch.max_abs),
                    layers_text(&ch.layers)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    let stats = block_stats(r);
    let peak = stats.iter().max_by(|a, b| {
        let top = |s: &ActivationStats| s.top.first().map_or(0.0, |e| e.abs);
        top(a.1).total_cmp(&top(b.1))
    });
    c.push(
        match peak.and_then(|(l, b)| b.top.first().map(|e| (l, b, e))) {
            Some((l, b, e)) => format!(
                "{} (token {}, channel {}) = {}× the median {:.3} (layer {l})",
                thousands(e.abs),
                e.token,
                e.channel,
                thousands(b.top1_over_median),
                b.median_abs
            ),
            None => "—".into(),
        },
    );
    c.push(if s.outlier_tokens.is_empty() {
        "none".into()
    } else {
        s.outlier_tokens
            .iter()
            .take(4)
            .map(|o| {
                format!(
                    "{} `{}` ({:?}, {} layers)",
                    o.position,
                    o.text.trim(),
                    o.class,
                    o.layers.len()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    });
    let lc = &s.block_lifecycle;
    c.push(format!(
        "{} · {} · {} · {}",
        opt(lc.first_layer),
        opt(lc.peak_layer),
        opt(lc.last_layer),
        opt(lc.vanish_layer)
    ));
    let max = peak.and_then(|(_, b)| b.top.first()).map_or(0.0, |e| e.abs);
    c.push(match f16_overflow(r) {
        None => format!("within (max {})", thousands(max)),
        Some(o) => format!(
            "**exceeds** in {} layers ({}): max {} overflows to inf in f16",
            o.layers.len(),
            layers_text(&o.layers),
            thousands(o.max_abs)
        ),
    });
    c.push(match &s.top_sink_excess {
        Some(k) => {
            let sink_layers: Vec<usize> = first.map_or(Vec::new(), |q| {
                q.layers
                    .iter()
                    .filter(|l| {
                        l.attention
                            .as_ref()
                            .is_some_and(|a| a.sink_keys.contains(&k.key))
                    })
                    .map(|l| l.layer)
                    .collect()
            });
            format!(
                "key {} `{}`: {:.2} of {} queries ({:.2}) at layer {}, mean head share {:.2}; a sink in {} of {} layers",
                k.key,
                k.text.trim(),
                k.colsum,
                k.n_queries,
                k.share,
                k.layer,
                k.sink_ratio_mean,
                sink_layers.len(),
                m.n_layer
            )
        }
        None => "none".into(),
    });
    c.push(match &s.down_proj_max {
        Some(d) => format!(
            "layer {}, channel {}: {:.1} (layer median {:.1}); writes most into {:?}",
            d.layer, d.channel, d.ratio, d.median_ratio, d.columns
        ),
        None => "—".into(),
    });
    c.push(
        match (
            &s.down_proj_max,
            s.massive_channels.first(),
            &s.channel_columns,
        ) {
            (Some(d), Some(ch), cols) => {
                let hit = d.columns.contains(&ch.channel);
                let frac = cols.as_ref().map_or(String::new(), |f| {
                    format!("; outlier rows → channels {}/{}", f.hits, f.of)
                });
                format!(
                    "{}: row {} → {:?} vs channel {}{frac}",
                    if hit { "yes" } else { "no" },
                    d.channel,
                    d.columns,
                    ch.channel
                )
            }
            _ => "—".into(),
        },
    );
    c.push(
        s.token_key_share
            .map_or("—".into(), |x| format!("{:.2}", x)),
    );
    c
}

/// The side-by-side table: one column per `(title, report)`, then `extra` columns given as text.
pub fn table(reports: &[(&str, &Report)], extra: &[&TextColumn]) -> String {
    let cols: Vec<Vec<String>> = reports.iter().map(|(_, r)| cells(r)).collect();
    let mut t = String::from("| |");
    for (title, _) in reports {
        t += &format!(" {title} |");
    }
    for e in extra {
        t += &format!(" {} |", e.title);
    }
    t += &format!("\n|---|{}\n", "---|".repeat(reports.len() + extra.len()));
    for (i, row) in ROWS.iter().enumerate() {
        t += &format!("| {row} |");
        for c in &cols {
            t += &format!(" {} |", c[i].replace('|', "\\|"));
        }
        for e in extra {
            t += &format!(" {} |", e.cells[i]);
        }
        t.push('\n');
    }
    t
}

/// Per layer and model: the key with the largest head-averaged column sum and its share of the
/// queries (colsum / T), marked `*` when it is a sink by the excess rule.
pub fn sink_share_table(reports: &[(&str, &Report)]) -> String {
    let n = reports
        .iter()
        .map(|(_, r)| r.model.n_layer)
        .max()
        .unwrap_or(0);
    let mut t = String::from("| layer |");
    for (title, _) in reports {
        t += &format!(" {title}: top key, share |");
    }
    t += &format!("\n|---|{}\n", "---|".repeat(reports.len()));
    for l in 0..n {
        t += &format!("| {l} |");
        for (_, r) in reports {
            let a = r
                .sequences
                .first()
                .and_then(|q| q.layers.iter().find(|x| x.layer == l))
                .and_then(|x| x.attention.as_ref());
            t += &match a.and_then(|a| a.top.first().map(|k| (a, k))) {
                Some((a, k)) => format!(
                    " {}{} {:.2} |",
                    k.key,
                    if a.sink_keys.contains(&k.key) {
                        "*"
                    } else {
                        ""
                    },
                    k.colsum / a.n_queries.max(1) as f32
                ),
                None => " — |".into(),
            };
        }
        t.push('\n');
    }
    t
}
