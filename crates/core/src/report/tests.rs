//! End-to-end: a planted model → report.json, report.md and every picture.
//! Test-only; uses the analyses' test data (`analysis::testutil`), never wgpu or models.

use std::path::PathBuf;

use super::*;
use crate::analysis::testutil::*;
use crate::analysis::{analyze, ModuleKind, ModuleWeight, ProbeInput, Thresholds};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("outlier-probe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn planted_input() -> ProbeInput {
    let p = planted_sequence(1);
    let mut weights = Vec::new();
    for l in 0..p.n_layer {
        weights.push(ModuleWeight {
            layer: l,
            kind: ModuleKind::Down,
            weight: planted_down_proj(l, p.i, p.d),
        });
        for (k, kind) in [ModuleKind::Q, ModuleKind::K, ModuleKind::V, ModuleKind::O]
            .into_iter()
            .enumerate()
        {
            weights.push(ModuleWeight {
                layer: l,
                kind,
                weight: normal_tensor(&[p.d, p.d], 700 + 10 * l as u64 + k as u64),
            });
        }
    }
    ProbeInput {
        model: ModelInfo {
            name: "planted-6L".into(),
            n_layer: p.n_layer,
            n_embd: p.d,
            n_head: p.h,
            vocab_size: 50257,
            n_inner: Some(p.i),
        },
        source: "Summer is warm. Winter is cold.\n (planted)".into(),
        tokens: vec![p.tokens],
        captures: vec![p.captures],
        weights,
    }
}

/// A PNG that is not one flat colour: decode it and count distinct pixels.
fn png_colours(path: &std::path::Path) -> usize {
    let img = image::open(path).unwrap().to_rgb8();
    let mut seen = std::collections::BTreeSet::new();
    for p in img.pixels() {
        seen.insert(p.0);
        if seen.len() > 50 {
            break;
        }
    }
    seen.len()
}

#[test]
fn writes_report_json_markdown_and_pictures() {
    let input = planted_input();
    let report = build(analyze(&input, &Thresholds::default()).unwrap());
    let layer = PlotInputs::choose_layer(&report);
    assert_eq!(layer, 2, "peak layer of the planted outliers");
    let extras = PlotInputs::from_captures(&input.captures[0], &input.tokens[0], layer);
    let dir = temp_dir("report");
    let files = write_all(&report, &extras, &dir).unwrap();
    for f in &files {
        assert!(
            f.exists() && std::fs::metadata(f).unwrap().len() > 200,
            "{}",
            f.display()
        );
    }
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for stem in [
        "layerwise_block_output",
        "layerwise_mlp",
        "attention_colsums",
        "sink_ratio",
        "magnitude_layer2",
        "attention_layer2",
        "down_proj_ratio",
        "module_ratio",
        "token_classes",
    ] {
        for ext in ["png", "svg"] {
            assert!(
                names.contains(&format!("{stem}.{ext}")),
                "{stem}.{ext} missing: {names:?}"
            );
        }
    }
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
    {
        assert!(png_colours(f) > 5, "{} is (nearly) one colour", f.display());
    }
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "svg"))
    {
        let s = std::fs::read_to_string(f).unwrap();
        assert!(s.contains("<svg") && s.contains("<text"), "{}", f.display());
    }

    // JSON round trip.
    let back = Report::read_json(&dir.join("report.json")).unwrap();
    assert_eq!(back, report);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["schema_version"], 1);

    // Markdown mentions the planted channel, tokens, lifecycle and down-proj row.
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains(&format!("**channel {PLANT_CHANNEL}** (layers 2–4")),
        "{md}"
    );
    assert!(md.contains("appear at layer 2"), "{md}");
    assert!(md.contains("vanish at layer 5"), "{md}");
    assert!(
        md.contains(&format!("intermediate channel (row) {PLANT_ROW}")),
        "{md}"
    );
    assert!(md.contains("| 3 | `\".\"` | strong delimiter |"), "{md}");
    assert!(md.contains("![layerwise_block_output](layerwise_block_output.png)"));
    if std::env::var_os("OUTLIER_PROBE_KEEP_REPORT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("report kept in {}", dir.display());
    }
}

#[test]
fn report_without_weights_or_sequences_still_renders() {
    let mut input = planted_input();
    input.weights.clear();
    let report = build(analyze(&input, &Thresholds::default()).unwrap());
    assert!(report.weights.is_none());
    assert!(report.summary.down_proj_max.is_none());
    let md = markdown::render(&report, &[]);
    assert!(md.contains("not computed (no weights)"));
    let empty = build(
        crate::analysis::Accumulator::new(
            ModelInfo::default(),
            String::new(),
            Thresholds::default(),
        )
        .finish(),
    );
    let dir = temp_dir("empty");
    let files = write_all(&empty, &PlotInputs::default(), &dir).unwrap();
    assert_eq!(files.len(), 2, "json + md only: {files:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The summary of the planted model (moved here from the analyses' tests, which check the rest).
#[test]
fn planted_summary_top_sink_and_down_proj_max() {
    let r = build(analyze(&planted_probe_input(false), &Thresholds::default()).unwrap());
    let top = r.summary.top_sink_excess.as_ref().unwrap();
    assert_eq!(top.key, 0);
    assert!(top.excess > 0.3 * 16.0 && top.baseline > 3.3 && top.baseline < 3.4);
    let r = build(analyze(&planted_probe_input(true), &Thresholds::default()).unwrap());
    assert_eq!(r.summary.down_proj_max.as_ref().unwrap().channel, PLANT_ROW);
}

#[test]
fn clean_model_summary_is_empty() {
    let r = build(analyze(&clean_probe_input(), &Thresholds::default()).unwrap());
    assert!(r.summary.top_sink_excess.is_none() && r.summary.top_sink.is_none());
    assert!(r.summary.massive_channels.is_empty());
}

/// The cross-model table: one row per finding, the planted model's channel, row, lifecycle and
/// sink in its column, the clean model's "none", the paper's column as given, and the f16 row
/// flagging only values above 65,504.
#[test]
fn cross_model_table_side_by_side() {
    use super::cross_model::{cells, sink_share_table, table, F16_MAX, LLAMA2_7B, ROWS};
    let planted = build(analyze(&planted_probe_input(true), &Thresholds::default()).unwrap());
    let clean = build(analyze(&clean_probe_input(), &Thresholds::default()).unwrap());
    let t = table(&[("planted", &planted), ("clean", &clean)], &[&LLAMA2_7B]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 2 + ROWS.len(), "{t}");
    assert!(lines[0].contains("planted") && lines[0].contains("LLaMA-2-7B (paper)"));
    for (row, line) in ROWS.iter().zip(&lines[2..]) {
        assert!(line.starts_with(&format!("| {row} |")), "{line}");
        assert_eq!(line.matches(" |").count(), 4, "{line}");
    }
    let p = cells(&planted);
    assert!(p[2].starts_with(&format!("{PLANT_CHANNEL} (")), "{}", p[2]);
    let (a, b) = (PLANT_LAYERS.start(), PLANT_LAYERS.end());
    assert!(p[5].starts_with(&format!("{a} · ")), "{}", p[5]);
    assert!(p[5].contains(&format!(" · {b} · ")), "{}", p[5]);
    assert!(p[8].contains(&format!("channel {PLANT_ROW}:")), "{}", p[8]);
    assert!(p[7].starts_with("key 0 "), "{}", p[7]);
    let max = planted.sequences[0]
        .layers
        .iter()
        .filter_map(|l| l.block_output.as_ref()?.top.first().map(|e| e.abs))
        .fold(0f32, f32::max);
    assert_eq!(p[6].starts_with("within"), max <= F16_MAX, "{}", p[6]);
    let c = cells(&clean);
    assert!(c[2].starts_with("none") && c[7] == "none", "{c:?}");
    assert!(t.contains("1415, 2533"));
    let s = sink_share_table(&[("planted", &planted)]);
    assert_eq!(s.lines().count(), 2 + planted.model.n_layer, "{s}");
    assert!(s.lines().nth(2 + a).unwrap().contains("| 0*"), "{s}");
}

/// f16 range: nothing flagged when every activation fits; a planted entry above 65,504 is
/// flagged at its layer, in the Markdown summary too.
#[test]
fn f16_overflow_is_flagged_where_activations_exceed_65504() {
    use super::cross_model::{f16_overflow, F16_MAX};
    let mut r = build(analyze(&planted_probe_input(true), &Thresholds::default()).unwrap());
    let fits = r.sequences[0].layers.iter().all(|l| {
        [&l.block_output, &l.mlp]
            .into_iter()
            .flatten()
            .all(|s| s.top.first().is_none_or(|e| e.abs <= F16_MAX))
    });
    assert_eq!(f16_overflow(&r).is_none(), fits);
    let bo = r.sequences[0].layers[3].block_output.as_mut().unwrap();
    bo.top[0].abs = 70000.0;
    let f = f16_overflow(&r).unwrap();
    assert!(f.layers.contains(&3) && f.max_abs >= 70000.0, "{f:?}");
    let md = super::markdown::render(&r, &[]);
    assert!(md.contains("Beyond the f16 range"), "{md}");
}
