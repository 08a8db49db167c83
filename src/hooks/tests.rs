//! Unit tests of the hook grammar: names, globs, aliases, capture cutting.
//! Test code of hooks only.

use super::*;

#[test]
fn globs_select_hooks() {
    let f = HookFilter::parse("blocks.*.attn.hook_pattern, logits").unwrap();
    assert!(f.wants("blocks.11.attn.hook_pattern"));
    assert!(f.wants("logits"));
    assert!(!f.wants("blocks.1.hook_resid_pre"));
    let sp = HookSpace::gpt2(2, 8, 2);
    assert_eq!(f.resolve(&sp).unwrap().len(), 3);
    assert!(HookFilter::parse("nothing.here")
        .unwrap()
        .resolve(&sp)
        .is_err());
    // One pattern that selects nothing fails the whole filter, even next to one that does.
    let e = HookFilter::parse("logits,blocks.0.hook_resid_psot")
        .unwrap()
        .resolve(&sp)
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("'blocks.0.hook_resid_psot'"),
        "{e:#}"
    );
    assert!(HookFilter::parse("").unwrap().resolve(&sp).is_err());
    assert!(HookFilter::none().check(&sp).is_ok());
    assert!(f.wants_src(Src::Pattern(3)));
    assert!(!f.wants_src(Src::Qkv(0)));
    assert!(HookFilter::parse("blocks.0.attn.hook_k")
        .unwrap()
        .wants_src(Src::Qkv(0)));
}

#[test]
fn llama_aliases_select_the_transformerlens_hooks() {
    let gpt2 = HookSpace::gpt2(2, 8, 2);
    let llama = HookSpace {
        arch: Arch::Llama,
        ..gpt2
    };
    let f = HookFilter::parse("blocks.1.mlp.hook_gate,blocks.0.mlp.hook_up").unwrap();
    assert_eq!(
        f.resolve(&llama).unwrap(),
        ["blocks.0.mlp.hook_pre_linear", "blocks.1.mlp.hook_pre"]
    );
    assert!(f.wants_nth(Src::GateUp(1), 0) && !f.wants_nth(Src::GateUp(1), 1));
    // GPT-2 has no gate: the alias does not stand for its mlp.hook_pre.
    assert!(f.resolve(&gpt2).is_err());
    assert_eq!(gpt2.locate("blocks.0.mlp.hook_gate"), None);
    assert_eq!(
        llama.locate("blocks.0.mlp.hook_up"),
        llama.locate("blocks.0.mlp.hook_pre_linear")
    );
    assert_eq!(
        llama.locate("blocks.0.mlp.hook_up"),
        Some((Src::GateUp(0), 1))
    );
    let pat = glob::Pattern::new("blocks.*.mlp.hook_gate").unwrap();
    assert_eq!(
        llama.matching(&pat),
        ["blocks.0.mlp.hook_pre", "blocks.1.mlp.hook_pre"]
    );
}

#[test]
fn every_hook_listed_once() {
    let mut sp = HookSpace::gpt2(3, 8, 2);
    for (arch, n) in [(Arch::Gpt2, 2 + 3 * 15 + 2), (Arch::Llama, 1 + 3 * 18 + 2)] {
        sp.arch = arch;
        let all = sp.hooks();
        let mut s = all.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), all.len());
        assert_eq!(all.len(), n, "{arch:?}");
    }
    sp.extra_prob = true;
    sp.scale = true;
    let all = sp.hooks();
    assert!(all.contains(&"blocks.2.attn.hook_extra_prob".to_string()));
    assert!(all.contains(&"blocks.2.attn.hook_scale".to_string()));
}
