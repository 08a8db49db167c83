//! Unit tests of intervention specs: parsing, masks, expansion, edits.
//! Test code of intervene only.

use super::*;

#[test]
fn parses_the_grammar() {
    assert_eq!(
        Spec::parse("blocks.*.hook_resid_post:ch=447,138:pos=0:zero").unwrap(),
        Spec::Edit {
            hook: "blocks.*.hook_resid_post".into(),
            channels: vec![447, 138],
            positions: Some(vec![0]),
            action: Action::Zero
        }
    );
    assert_eq!(
        Spec::parse("blocks.1.mlp.hook_post:ch=3:value=-2.5").unwrap(),
        Spec::Edit {
            hook: "blocks.1.mlp.hook_post".into(),
            channels: vec![3],
            positions: None,
            action: Action::Value(-2.5)
        }
    );
    assert_eq!(
        Spec::parse("knockout:keys=0:layers=2,3").unwrap(),
        Spec::Knockout {
            keys: vec![0],
            layers: Some(vec![2, 3])
        }
    );
    for bad in [
        "",
        "blocks.0.hook_resid_pre:zero",
        "blocks.0.hook_resid_pre:ch=1",
        "x:ch=a:zero",
        "knockout",
        "h:ch=1:frob",
        "knockout:keys=0:ch=1",
        "knockout:keys=0:layers=1:zero",
        "blocks.0.hook_resid_pre:ch=1:layers=0:zero",
        "blocks.0.hook_resid_pre:ch=1:keys=0:zero",
        "blocks.0.hook_resid_pre:ch=1:zero:mean",
        "blocks.0.hook_resid_pre:ch=1:ch=2:zero",
        "knockout:keys=0:keys=1",
    ] {
        assert!(Spec::parse(bad).is_err(), "{bad:?} should not parse");
    }
    let row = Spec::parse_row("knockout:keys=0:layers=1; blocks.0.hook_z:ch=1:zero").unwrap();
    assert_eq!(row.len(), 2);
    assert!(Spec::parse_row(" ; ").is_err());
    assert!(Spec::parse_row("knockout:keys=0;h:ch=1").is_err());
}

#[test]
fn knockout_rules_add_up_per_layer() {
    let mut k = Knockout::new(vec![3, 0], Some(vec![0]));
    k.add(vec![5, 0], Some(vec![2]));
    k.add(vec![1], None);
    assert_eq!(k.keys_in(0), vec![0, 1, 3]);
    assert_eq!(k.keys_in(1), vec![1]);
    assert_eq!(k.keys_in(2), vec![0, 1, 5]);
    let (masks, per) = k.layer_masks(4, 6);
    assert_eq!(per, vec![Some(0), Some(1), Some(2), Some(1)]);
    assert_eq!(masks[0], vec![1, 1, 0, 1, 0, 0]);
    assert_eq!(masks[1], vec![0, 1, 0, 0, 0, 0]);
    assert_eq!(masks[2], vec![1, 1, 0, 0, 0, 1]);
    let (masks, per) = Knockout::new(vec![0], Some(vec![1])).layer_masks(2, 3);
    assert_eq!((masks.len(), per), (1, vec![None, Some(0)]));
}

#[test]
fn editable_hooks_and_offsets() {
    let sp = HookSpace::gpt2(2, 72, 3);
    assert_eq!(
        editable("blocks.1.attn.hook_k", &sp).unwrap(),
        (Src::Qkv(1), 72, 72)
    );
    assert_eq!(
        editable("blocks.0.mlp.hook_post", &sp).unwrap(),
        (Src::MlpPost(0), 0, 288)
    );
    assert!(editable("blocks.0.attn.hook_pattern", &sp).is_err());
    assert!(editable("blocks.9.hook_resid_pre", &sp).is_err());
    assert!(editable("blocks.0.mlp.hook_gate", &sp).is_err());
    assert_eq!(
        expand("blocks.*.hook_resid_post", &HookSpace::gpt2(3, 72, 3))
            .unwrap()
            .len(),
        3
    );
    let ll = HookSpace {
        arch: crate::config::Arch::Llama,
        n_layer: 2,
        d: 96,
        n_head: 6,
        n_kv_head: 2,
        head_dim: 16,
        inner: 200,
        extra_prob: false,
        scale: false,
        resid_mid: true,
        d_embed: 96,
        final_norm: true,
    };
    assert_eq!(
        editable("blocks.1.attn.hook_v", &ll).unwrap(),
        (Src::Qkv(1), 96 + 32, 32)
    );
    assert_eq!(
        editable("blocks.0.attn.hook_rot_k", &ll).unwrap(),
        (Src::RotQk(0), 96, 32)
    );
    assert_eq!(
        editable("blocks.0.mlp.hook_pre_linear", &ll).unwrap(),
        (Src::GateUp(0), 200, 200)
    );
    // The old name is an alias of the same tensor.
    assert_eq!(
        editable("blocks.0.mlp.hook_up", &ll).unwrap(),
        (Src::GateUp(0), 200, 200)
    );
    assert_eq!(
        editable("blocks.0.mlp.hook_gate", &ll).unwrap(),
        editable("blocks.0.mlp.hook_pre", &ll).unwrap()
    );
    assert_eq!(
        expand("blocks.*.mlp.hook_up", &ll).unwrap(),
        [
            "blocks.0.mlp.hook_pre_linear",
            "blocks.1.mlp.hook_pre_linear"
        ]
    );
}

#[test]
fn means_are_taken_at_the_positions() {
    use crate::tensor::Tensor;
    let mk = |a: f32| {
        let mut m = std::collections::BTreeMap::new();
        m.insert(
            "blocks.0.hook_resid_pre".to_string(),
            Tensor::new(vec![2, 3], vec![a, 1.0, 2.0, 10.0, 11.0, 12.0]),
        );
        m
    };
    let spec = Spec::parse("blocks.0.hook_resid_pre:ch=0,2:pos=0:mean").unwrap();
    let sp = HookSpace::gpt2(1, 3, 1);
    let e = mean_edits(&spec, &sp, &[mk(4.0), mk(8.0)]).unwrap();
    assert_eq!(e[0].values, vec![6.0, 2.0]);
    let spec = Spec::parse("blocks.0.hook_resid_pre:ch=0:mean").unwrap();
    let e = mean_edits(&spec, &sp, &[mk(4.0)]).unwrap();
    assert_eq!(e[0].values, vec![7.0]);
}
