//! The tensor rows of the GGUF audit (src/gguf_keys/tensors.rs `TENSORS`): every tensor the llama
//! forward pass does not load is an error naming it (and why, when llama.cpp knows it), every
//! missing required tensor is named, and a stored `output.weight` unties the head. CPU only.

mod common;
mod gguf_writer;

use std::collections::BTreeSet;

use gguf_writer::audit::*;
use gguf_writer::*;
use outlier_probe::gguf_keys::{tensor_rule, Handling, TENSORS};

/// Tensors exercised by the tensor tests (a concrete name per row of TENSORS).
fn refused_tensors() -> Vec<(&'static str, Vec<usize>)> {
    let (d, ff) = (TINY.d, TINY.ff);
    let kvd = TINY.kv_heads * TINY.d / TINY.heads;
    vec![
        ("blk.0.attn_q.bias", vec![d]),
        ("blk.0.attn_k.bias", vec![kvd]),
        ("blk.1.attn_v.bias", vec![kvd]),
        ("blk.0.attn_output.bias", vec![d]),
        ("blk.0.attn_qkv.weight", vec![d + 2 * kvd, d]),
        ("blk.0.attn_qkv.bias", vec![d + 2 * kvd]),
        ("blk.0.ffn_gate.bias", vec![ff]),
        ("blk.0.ffn_up.bias", vec![ff]),
        ("blk.1.ffn_down.bias", vec![d]),
        ("blk.0.ffn_gate_inp.weight", vec![2, d]),
        ("blk.0.ffn_gate_exps.weight", vec![2, ff, d]),
        ("blk.0.ffn_up_exps.weight", vec![2, ff, d]),
        ("blk.0.ffn_down_exps.weight", vec![2, d, ff]),
        ("blk.0.ffn_gate_shexp.weight", vec![ff, d]),
        ("blk.0.ffn_up_shexp.weight", vec![ff, d]),
        ("blk.0.ffn_down_shexp.weight", vec![d, ff]),
        ("blk.0.attn_rot_embd.weight", vec![2]),
        ("rope_factors_long.weight", vec![2]),
        ("rope_factors_short.weight", vec![2]),
        ("blk.0.attn_q.scale", vec![1]),
        ("blk.0.ffn_up.input_scale", vec![1]),
    ]
}

const REQUIRED: &[&str] = &[
    "token_embd.weight",
    "output_norm.weight",
    "blk.0.attn_norm.weight",
    "blk.1.attn_q.weight",
    "blk.0.attn_k.weight",
    "blk.0.attn_v.weight",
    "blk.1.attn_output.weight",
    "blk.0.ffn_norm.weight",
    "blk.0.ffn_gate.weight",
    "blk.1.ffn_up.weight",
    "blk.0.ffn_down.weight",
];

#[test]
fn every_tensor_row_has_a_case() {
    let mut names: Vec<&str> = REQUIRED.to_vec();
    names.extend(["output.weight", "rope_freqs.weight"]);
    names.extend(refused_tensors().into_iter().map(|(n, _)| n));
    let hit: BTreeSet<&str> = names.iter().map(|n| tensor_rule(n).unwrap().name).collect();
    let missing: Vec<_> = TENSORS
        .iter()
        .map(|t| t.name)
        .filter(|n| !hit.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "tensor rows without a test case: {missing:?}"
    );
}

#[test]
fn unused_tensors_are_refused_by_name() {
    let base = tiny();
    let mut cases = refused_tensors();
    cases.push(("blk.2.attn_norm.weight", vec![TINY.d])); // past block_count
    cases.push(("mystery.weight", vec![4]));
    for (i, (name, shape)) in cases.into_iter().enumerate() {
        let mut b = base.clone();
        b.tensor(name, &shape, vec![0.5; shape.iter().product()]);
        let want: &str = match tensor_rule(name) {
            Some(r) if r.handling == Handling::Refused => r.reason,
            Some(_) => "past block_count",
            None => "not a tensor of the llama forward pass",
        };
        refused(
            &b,
            &format!("tensor-{i}"),
            &[&format!("tensor `{name}`"), want],
        );
    }
    // All problems in one message.
    let mut b = base.clone();
    b.tensor("blk.0.attn_q.bias", &[TINY.d], vec![0.0; TINY.d])
        .tensor("blk.1.attn_q.bias", &[TINY.d], vec![0.0; TINY.d]);
    refused(
        &b,
        "tensor-both",
        &["blk.0.attn_q.bias", "blk.1.attn_q.bias"],
    );
}

#[test]
fn missing_required_tensors_are_named() {
    for (i, name) in REQUIRED.iter().enumerate() {
        let mut b = tiny();
        b.remove_tensor(name);
        refused(
            &b,
            &format!("required-{i}"),
            &[&format!("required tensor `{name}` is missing")],
        );
    }
}

#[test]
fn output_weight_present_unties_the_head() {
    let mut b = tiny();
    assert!(ok(&b, "tied").tie_embeddings);
    let (v, d) = (TINY.vocab, TINY.d);
    b.tensor("output.weight", &[v, d], vec![0.25; v * d]);
    assert!(!ok(&b, "untied").tie_embeddings);
}
