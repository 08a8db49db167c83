//! Checks of every selector a user types — hook globs, channels, positions, keys, layers —
//! against the model and the input. A selector that selects nothing, or a value out of range,
//! is an error naming the selector, the value and the limit; nothing is silently dropped.
//!
//! Two levels:
//! - [`check_forward`], run by every forward pass: hook globs must each match a hook point of the
//!   model; channels must be below the hook's width; layers below `n_layer`; positions and keys
//!   must exist in at least one sequence of the pass (cache included), so that a decode step may
//!   still name positions it has already passed.
//! - [`check_specs`], run by `ppl` before any pass over the corpus windows: positions must exist
//!   in *every* window (below the shortest window's length), and a knocked-out key must have a
//!   later query in every window (below the shortest length − 1), so that an intervention acts
//!   the same way on each window and none of it is a no-op.
//!
//! Data types: depends on hooks, intervene and forward; never on wgpu or models.

use anyhow::{bail, Result};

use crate::forward::ForwardOptions;
use crate::hooks::HookSpace;
use crate::intervene::{editable, expand, HookEdit, Knockout, Spec};

/// One concrete edit: an editable hook, channels below its width, one value per channel, and
/// positions (if given) below `longest`, the length of the longest sequence.
pub fn check_edit(e: &HookEdit, space: &HookSpace, longest: usize) -> Result<()> {
    let (_, _, width) = editable(&e.hook, space)?;
    if e.channels.is_empty() {
        bail!("edit of {}: no channel given", e.hook);
    }
    if e.channels.len() != e.values.len() {
        bail!(
            "edit of {}: {} channels but {} values",
            e.hook,
            e.channels.len(),
            e.values.len()
        );
    }
    if let Some(c) = e.channels.iter().find(|&&c| c >= width) {
        bail!(
            "edit of {}: channel {c} does not exist (the hook has {width} channels, 0 to {})",
            e.hook,
            width - 1
        );
    }
    if let Some(ps) = &e.positions {
        if ps.is_empty() {
            bail!("edit of {}: an empty position list selects nothing", e.hook);
        }
        if let Some(p) = ps.iter().find(|&&p| p >= longest) {
            bail!(
                "edit of {}: position {p} is beyond every sequence (the longest has {longest} tokens, positions 0 to {})",
                e.hook,
                longest.saturating_sub(1)
            );
        }
    }
    Ok(())
}

/// Knocked-out layers below `n_layer`, keys below `longest`, no empty list.
pub fn check_knockout(k: &Knockout, n_layer: usize, longest: usize) -> Result<()> {
    for r in &k.rules {
        if r.keys.is_empty() {
            bail!("knockout: an empty key list selects nothing");
        }
        if let Some(j) = r.keys.iter().find(|&&j| j >= longest) {
            bail!(
                "knockout key {j} is beyond every sequence (the longest has {longest} tokens, keys 0 to {})",
                longest.saturating_sub(1)
            );
        }
        if let Some(ls) = &r.layers {
            if ls.is_empty() {
                bail!("knockout: an empty layer list selects nothing");
            }
            if let Some(l) = ls.iter().find(|&&l| l >= n_layer) {
                bail!(
                    "knockout layer {l} does not exist: the model has {n_layer} layers, 0 to {}",
                    n_layer.saturating_sub(1)
                );
            }
        }
    }
    Ok(())
}

/// Everything a forward pass is asked to select. `lens[b]` is sequence b's length after the
/// pass (cached tokens plus new ones).
pub fn check_forward(opts: &ForwardOptions, space: &HookSpace, lens: &[usize]) -> Result<()> {
    opts.capture.check(space)?;
    let longest = lens.iter().copied().max().unwrap_or(0);
    for e in &opts.edits {
        check_edit(e, space, longest)?;
    }
    if let Some(k) = &opts.knockout {
        check_knockout(k, space.n_layer, longest)?;
    }
    Ok(())
}

/// Parsed `--intervene` specs against the model and corpus windows of at least `shortest`
/// tokens, before anything runs: globs, channels, layers, and positions and keys that act in
/// every window.
pub fn check_specs(specs: &[Spec], space: &HookSpace, shortest: usize) -> Result<()> {
    for spec in specs {
        match spec {
            Spec::Edit {
                hook,
                channels,
                positions,
                ..
            } => {
                for h in expand(hook, space)? {
                    let (_, _, width) = editable(&h, space)?;
                    if let Some(c) = channels.iter().find(|&&c| c >= width) {
                        bail!(
                            "'{hook}': channel {c} does not exist in {h} ({width} channels, 0 to {})",
                            width - 1
                        );
                    }
                }
                if let Some(p) = positions.iter().flatten().find(|&&p| p >= shortest) {
                    bail!(
                        "'{hook}': position {p} is not in every window (the shortest has {shortest} tokens, positions 0 to {})",
                        shortest.saturating_sub(1)
                    );
                }
            }
            Spec::Knockout { keys, layers } => {
                if let Some(j) = keys.iter().find(|&&j| j + 1 >= shortest) {
                    bail!(
                        "knockout key {j}: no later query attends to it in every window (the shortest has {shortest} tokens; keys 0 to {} can be knocked out)",
                        shortest.saturating_sub(2)
                    );
                }
                let k = Knockout::new(keys.clone(), layers.clone());
                check_knockout(&k, space.n_layer, shortest)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::HookFilter;

    fn err(r: Result<()>) -> String {
        format!("{:#}", r.expect_err("should fail"))
    }

    #[test]
    fn every_pattern_must_select_something() {
        let sp = HookSpace::gpt2(2, 8, 2);
        let f = |s: &str| HookFilter::parse(s).unwrap().check(&sp);
        assert!(f("logits,blocks.*.attn.hook_pattern,logits").is_ok());
        let e = err(f("logits,blocks.0.hook_resid_psot"));
        assert!(e.contains("'blocks.0.hook_resid_psot'"), "{e}");
        assert!(e.contains("did you mean 'blocks.0.hook_resid_post'"), "{e}");
        assert!(e.contains("2-layer GPT-2"), "{e}");
        let e = err(f("blocks.5.hook_resid_post"));
        assert!(e.contains("blocks.0 to blocks.1"), "{e}");
        let e = err(f("blocks.0.attn.hook_rot_q,blocks.*.attn.hook_extra_prob"));
        assert!(
            e.contains("a hook of Llama, Qwen2, GPT-NeoX, Gemma 3 and Qwen3 models"),
            "{e}"
        );
        assert!(e.contains("attention variants"), "{e}");
        let e = err(f("zzz"));
        assert!(e.contains("'zzz'") && !e.contains("did you mean"), "{e}");
    }

    #[test]
    fn ranges_are_checked() {
        let sp = HookSpace::gpt2(2, 8, 2);
        let edit = |ch: usize, pos: Option<Vec<usize>>| HookEdit {
            hook: "blocks.1.hook_resid_post".into(),
            channels: vec![ch],
            positions: pos,
            values: vec![0.0],
        };
        assert!(check_edit(&edit(7, Some(vec![4])), &sp, 5).is_ok());
        assert!(err(check_edit(&edit(8, None), &sp, 5)).contains("channel 8"));
        let e = err(check_edit(&edit(0, Some(vec![5])), &sp, 5));
        assert!(e.contains("position 5") && e.contains("5 tokens"), "{e}");
        assert!(check_edit(&edit(0, Some(vec![])), &sp, 5).is_err());
        let k = |keys: Vec<usize>, layers| Knockout::new(keys, layers);
        assert!(check_knockout(&k(vec![4], Some(vec![1])), 2, 5).is_ok());
        let e = err(check_knockout(&k(vec![0], Some(vec![7])), 2, 5));
        assert!(e.contains("layer 7") && e.contains("2 layers"), "{e}");
        assert!(err(check_knockout(&k(vec![5], None), 2, 5)).contains("key 5"));
    }

    #[test]
    fn specs_must_act_in_every_window() {
        let sp = HookSpace::gpt2(2, 8, 2);
        let c = |s: &str, t| check_specs(&[Spec::parse(s).unwrap()], &sp, t);
        assert!(c("blocks.*.hook_resid_post:ch=7:pos=9:zero", 10).is_ok());
        assert!(err(c("blocks.*.hook_resid_post:ch=7:pos=10:zero", 10)).contains("position 10"));
        assert!(err(c("blocks.*.hook_resid_post:ch=8:zero", 10)).contains("channel 8"));
        assert!(err(c("blocks.9.hook_resid_post:ch=1:zero", 10)).contains("blocks.9"));
        assert!(c("knockout:keys=8:layers=1", 10).is_ok());
        assert!(err(c("knockout:keys=9", 10)).contains("no later query"));
        assert!(err(c("knockout:keys=0:layers=2", 10)).contains("layer 2"));
    }
}
