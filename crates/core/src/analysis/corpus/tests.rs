//! The corpus accumulator on three planted sequences, added one at a time.
//! Test-only; depends on the analyses and their test data, never on the report or wgpu.

use super::*;
use crate::analysis::testutil::*;
use crate::analysis::{hook, ModelInfo, ModuleKind, ModuleWeight, Thresholds};

#[test]
fn corpus_of_three_sequences_one_at_a_time() {
    let model = ModelInfo {
        name: "planted".into(),
        n_layer: 6,
        n_embd: 256,
        n_head: 4,
        vocab_size: 0,
        n_inner: Some(1024),
    };
    let th = Thresholds {
        detail_sequences: 2,
        ..Default::default()
    };
    let mut acc = Accumulator::new(model, "3 planted sequences".into(), th);
    for seed in 1..=3u64 {
        let mut p = planted_sequence(seed);
        if seed == 3 {
            // No sink at all in the third sequence.
            for l in 0..p.n_layer {
                let mut rng = Rng::new(l as u64);
                let local = causal_pattern(p.h, 16, &mut rng, |_, i| vec![(i, 0.9)]);
                p.captures.insert(hook::pattern(l), local);
            }
        }
        acc.add_sequence(&p.tokens, &p.captures).unwrap();
        drop(p);
    }
    for l in 0..6 {
        acc.add_weight(&ModuleWeight {
            layer: l,
            kind: ModuleKind::Down,
            weight: planted_down_proj(l, 1024, 256),
        });
    }
    let r = acc.finish();
    let c = &r.corpus;
    assert_eq!(c.n_sequences, 3);
    assert_eq!(c.n_tokens, 48);
    assert_eq!(r.sequences.len(), 2);
    assert!((c.key0_outlier_fraction - 2.0 / 3.0).abs() < 1e-6);
    assert!((c.key0_sink_fraction - 2.0 / 3.0).abs() < 1e-6);
    assert_eq!(c.attention[0].key0_sink_fraction, 0.0);
    assert!((c.attention[1].key0_sink_fraction - 2.0 / 3.0).abs() < 1e-6);
    assert_eq!(c.block_output[3].top1_max, 5000.0);
    assert_eq!(c.block_output[3].holds_fraction, 1.0);
    assert_eq!(c.block_output[0].holds_fraction, 0.0);
    assert_eq!(
        c.block_output[2].top_channel.unwrap().channel,
        PLANT_CHANNEL
    );
    assert_eq!(
        c.block_channels[0],
        ChannelCount {
            channel: PLANT_CHANNEL,
            count: 9
        }
    );
    assert_eq!(c.outlier_token_classes.initial, 3);
    assert_eq!(c.outlier_token_classes.strong_delimiter, 3);
    assert_eq!(c.block_first_layer, vec![LayerCount { layer: 2, count: 3 }]);
    assert_eq!(
        c.block_vanish_layer,
        vec![LayerCount { layer: 5, count: 3 }]
    );
    assert_eq!(c.token_key_share_mean, Some(1.0));
    let cc = c.channel_consistency.as_ref().unwrap();
    assert_eq!((cc.rows.hits, cc.rows.of), (3, 3));
    assert_eq!(cc.columns_at_appearance, Some(true));
    assert!(r.sequences[1].channels.is_some());
}
