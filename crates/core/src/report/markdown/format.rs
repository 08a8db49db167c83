//! Formatting helpers of `report.md`: numbers, layer lists, token cells and the shared tables.
//! Depends on the analysis types only; never on wgpu, models or studies.

use std::fmt::Write;

use crate::analysis::activation::{ActivationStats, Entry};
use crate::analysis::consistency::{Fraction, Lifecycle};
use crate::analysis::tokens::{normalize_token, ClassCounts, TokenClass};

/// A token string shown in a table cell: escaped (`\n`), quoted, pipes escaped.
pub fn show_token(raw: &str) -> String {
    let s = normalize_token(raw)
        .escape_debug()
        .to_string()
        .replace('|', "\\|")
        .replace('`', "'");
    format!("`\"{s}\"`")
}

pub(super) fn num(x: f32) -> String {
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

pub(super) fn opt_layer(x: Option<usize>) -> String {
    x.map_or("—".into(), |l| l.to_string())
}

pub(super) fn list(v: &[usize]) -> String {
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

pub(super) fn frac(f: Option<Fraction>) -> String {
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

pub(super) fn lifecycle_line(name: &str, l: &Lifecycle) -> String {
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

pub(super) fn entry(e: &Entry, tokens: &[String]) -> String {
    let tok = tokens
        .get(e.token)
        .map(|t| show_token(t))
        .unwrap_or_default();
    format!("{} @({} {tok}, ch {})", num(e.value), e.token, e.channel)
}

pub(super) fn class_table(
    out: &mut String,
    title_a: &str,
    a: &ClassCounts,
    title_b: &str,
    b: &ClassCounts,
) {
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

pub(super) fn activation_table(
    out: &mut String,
    layers: &[(usize, &ActivationStats)],
    tokens: &[String],
) {
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
