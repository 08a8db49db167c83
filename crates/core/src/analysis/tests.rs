//! The analyses end to end on a planted model (the report's summary of it: report/tests).
//! Test-only; depends on the analyses and their test data, never on the report or wgpu.

use super::testutil::*;
use super::*;
use crate::tensor::Tensor;

fn planted_report(weights: bool) -> CorpusAnalysis {
    analyze(&planted_probe_input(weights), &Thresholds::default()).unwrap()
}

#[test]
fn planted_block_output_outliers_channels_tokens_lifecycle() {
    let r = planted_report(false);
    let s = &r.sequences[0];
    for la in &s.layers {
        let b = la.block_output.as_ref().unwrap();
        if PLANT_LAYERS.contains(&la.layer) {
            assert_eq!(
                b.outlier_token_positions(),
                vec![0, 3],
                "layer {}",
                la.layer
            );
            assert_eq!(b.outlier_channels, vec![PLANT_CHANNEL]);
            assert_eq!(b.top_channels[0].channel, PLANT_CHANNEL);
            assert_eq!(b.top1(), 5000.0);
        } else {
            assert!(!b.holds(), "layer {} holds", la.layer);
        }
    }
    assert_eq!(s.block_lifecycle.first_layer, Some(2));
    assert_eq!(s.block_lifecycle.last_layer, Some(4));
    assert_eq!(s.block_lifecycle.vanish_layer, Some(5));
    assert_eq!(s.block_lifecycle.peak_layer, Some(2));
    assert_eq!(s.mlp_lifecycle.first_layer, Some(2));
    assert_eq!(s.outlier_token_classes.initial, 1);
    assert_eq!(s.outlier_token_classes.strong_delimiter, 1);
    assert_eq!(s.outlier_token_classes.total(), 2);
}

#[test]
fn planted_sink_and_token_key_coincidence() {
    let r = planted_report(false);
    let s = &r.sequences[0];
    let a0 = s.layers[0].attention.as_ref().unwrap();
    assert!(
        a0.outlier_keys.is_empty() && a0.sink_keys.is_empty(),
        "no sink in layer 0: {:?} {:?}",
        a0.top,
        a0.top_excess
    );
    for la in &s.layers[1..] {
        let a = la.attention.as_ref().unwrap();
        assert_eq!(a.outlier_keys, vec![0], "layer {}", la.layer);
        assert_eq!(a.sink_keys, vec![0], "layer {}", la.layer);
        let k0 = a.key0.unwrap();
        assert!(k0.excess > 0.3 * 16.0 && k0.excess == a.top_excess[0].excess);
        assert!(
            a.sink_ratio_max > 0.65 && a.sink_ratio_min < 0.4,
            "{:?}",
            a.head_sink_ratio
        );
    }
    // Attention layers 3..=5 read block outputs 2..=4: tokens {0, 3}, keys {0}.
    let tk = &s.token_key;
    assert_eq!(tk.n_compared, 3);
    assert_eq!(tk.mean_share_of_keys, Some(1.0));
    let l3 = tk.layers.iter().find(|x| x.layer == 3).unwrap();
    assert_eq!(l3.common, vec![0]);
    assert_eq!(l3.share_of_tokens, 0.5);
    assert_eq!(r.corpus.key0_outlier_fraction, 1.0);
    assert_eq!(r.corpus.key0_sink_fraction, 1.0);
    assert_eq!(s.outlier_key_classes.initial, 1);
    // The summary's top sink: report/tests.rs, planted_summary_top_sink_and_down_proj_max.
}

#[test]
fn planted_weight_and_activation_channels_coincide() {
    let r = planted_report(true);
    let w = r.weights.as_ref().unwrap();
    for d in &w.down_proj {
        if PLANT_LAYERS.contains(&d.layer) {
            assert_eq!(d.top_rows[0].channel, PLANT_ROW);
            assert_eq!(d.writes[0].columns[0].column, PLANT_CHANNEL);
            assert!(d.max_ratio > 20.0, "{}", d.max_ratio);
        } else {
            assert!(d.max_ratio < 8.0, "layer {} {}", d.layer, d.max_ratio);
        }
    }
    let c = r.sequences[0].channels.as_ref().unwrap();
    assert_eq!((c.rows.hits, c.rows.of), (3, 3));
    assert_eq!((c.columns.hits, c.columns.of), (3, 3));
    assert_eq!(c.columns_at_appearance, Some(true));
    // The summary's down-projection maximum: report/tests.rs.
}

#[test]
fn clean_model_finds_nothing() {
    let r = analyze(&clean_probe_input(), &Thresholds::default()).unwrap();
    let s = &r.sequences[0];
    assert_eq!(s.block_lifecycle.first_layer, None);
    assert_eq!(s.mlp_lifecycle.first_layer, None);
    assert_eq!(s.outlier_token_classes.total(), 0);
    // Local attention: no key collects 0.1 × T. (Uniform causal attention would: key 0 gets
    // H_T ≈ ln T + 0.58, above 0.1 × T for T ≤ 43 — a short-sequence artefact of the rule,
    // which the excess rule does not share: see attention.rs.)
    assert!(s.outlier_key_positions().is_empty());
    assert_eq!(r.corpus.key0_outlier_fraction, 0.0);
    assert_eq!(r.corpus.key0_sink_fraction, 0.0);
    // The summary's emptiness: report/tests.rs, clean_model_summary_is_empty.
}

#[test]
fn shape_errors_name_the_hook() {
    let mut p = planted_sequence(3);
    p.captures
        .insert(hook::resid_post(1), Tensor::new(vec![3, 2], vec![0.0; 6]));
    let err =
        analyze_sequence(0, &p.tokens, &p.captures, p.n_layer, &Thresholds::default()).unwrap_err();
    assert!(
        err.to_string().contains("blocks.1.hook_resid_post"),
        "{err}"
    );
}
