//! Unit tests of the weights analysis on seeded synthetic data.
//! Test-only; depends on the weight analysis and the test data, never on the report or wgpu.

use super::*;
use crate::analysis::testutil::normal_tensor;

#[test]
fn planted_down_proj_row_is_found_with_its_ratio_and_column() {
    let (i, d) = (64, 16);
    let mut w = normal_tensor(&[i, d], 11);
    for x in w.data.iter_mut() {
        *x *= 0.02;
    }
    // Row 41 writes 3.0 into residual column 7, small elsewhere.
    w.data[41 * d + 7] = 3.0;
    let s = down_proj_stats(0, &w, 3, 2);
    assert_eq!(s.top_rows[0].channel, 41);
    let row41: Vec<f32> = w.row(41).iter().map(|x| x.abs()).collect();
    let mean = row41.iter().sum::<f32>() / d as f32;
    let expect = 3.0 / (mean + RATIO_EPS);
    assert!(
        (s.max_ratio - expect).abs() / expect < 1e-5,
        "{} vs {expect}",
        s.max_ratio
    );
    assert!(
        s.max_ratio > 8.0 && s.median_ratio < 4.0,
        "{} {}",
        s.max_ratio,
        s.median_ratio
    );
    assert_eq!(s.writes[0].row, 41);
    assert_eq!(s.writes[0].columns[0].column, 7);
    assert_eq!(s.writes[0].columns[0].weight, 3.0);
    assert!(s.written_columns().contains(&7));
}

#[test]
fn clean_weight_has_no_standout_row() {
    let w = normal_tensor(&[64, 256], 12);
    let s = down_proj_stats(0, &w, 3, 3);
    // Gaussian row of 256: max/mean ≈ 3.5–5.
    assert!(s.max_ratio < 6.0, "{}", s.max_ratio);
    assert!(s.max_ratio / s.median_ratio < 1.8);
}

#[test]
fn row_and_column_ratios_by_hand() {
    let w = Tensor::new(vec![2, 3], vec![1.0, -1.0, 4.0, 0.0, 0.0, 0.0]);
    let r = row_ratios(&w);
    assert!((r[0] - 2.0).abs() < 1e-6);
    assert_eq!(r[1], 0.0);
    let c = col_ratios(&w);
    assert!((c[2] - 2.0).abs() < 1e-6 && (c[0] - 2.0).abs() < 1e-6);
}

#[test]
fn module_comparison_and_gpt2_split() {
    let d = 8;
    let mut c_attn = normal_tensor(&[d, 3 * d], 13);
    c_attn.data[2 * (3 * d) + 2 * d + 5] = 100.0; // v, row 2, col 5
    let mut names = BTreeMap::new();
    names.insert("h.0.attn.c_attn.weight".to_string(), c_attn);
    names.insert(
        "h.0.attn.c_proj.weight".to_string(),
        normal_tensor(&[d, d], 14),
    );
    names.insert(
        "h.0.mlp.c_fc.weight".to_string(),
        normal_tensor(&[d, 4 * d], 15),
    );
    names.insert(
        "h.0.mlp.c_proj.weight".to_string(),
        normal_tensor(&[4 * d, d], 16),
    );
    let ws = gpt2_layer_weights(0, |n| names.get(n).cloned()).unwrap();
    assert_eq!(ws.len(), 6);
    let mut wa = WeightAnalysis::default();
    for m in &ws {
        wa.add(m, 3, 3);
    }
    let by = wa.max_by_kind();
    let v = by[&ModuleKind::V].0;
    assert!(
        by.iter().all(|(k, r)| *k == ModuleKind::V || r.0 < v),
        "{by:?}"
    );
    let vr = wa.modules.iter().find(|r| r.kind == ModuleKind::V).unwrap();
    assert_eq!(vr.rows.top[0].channel, 2);
    assert_eq!(vr.cols.top[0].channel, 5);
    assert_eq!(wa.down_proj.len(), 1);
    assert!(gpt2_layer_weights(1, |n| names.get(n).cloned()).is_err());
}
