//! Checking hook-name globs against a model's hooks, with hints for globs that select nothing
//! (layer range, another architecture's hook, the nearest name). Depends on hooks and config only.

use anyhow::{bail, Result};

use super::HookSpace;
use crate::config::Arch;

/// "this 2-layer GPT-2 model".
pub fn describe(space: &HookSpace) -> String {
    format!("this {}-layer {} model", space.n_layer, space.arch.name())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Why a glob that matches none of the model's hooks matches nothing: a layer the model does
/// not have, a hook of the other architecture or of attention variants, or a near miss.
fn hint(pattern: &glob::Pattern, space: &HookSpace) -> String {
    let matches_in = |sp: HookSpace| sp.hooks().iter().any(|h| pattern.matches(h));
    let deep = HookSpace {
        n_layer: space.n_layer.max(1000),
        ..*space
    };
    if matches_in(deep) {
        return format!(
            "the layers are blocks.0 to blocks.{}",
            space.n_layer.saturating_sub(1)
        );
    }
    if !space.resid_mid
        && matches_in(HookSpace {
            resid_mid: true,
            ..deep
        })
    {
        return "this model's blocks have a parallel residual (use_parallel_residual): attention and MLP both read hook_resid_pre and add to the residual together, so there is no hook_resid_mid".into();
    }
    let variants = HookSpace {
        extra_prob: true,
        scale: true,
        ..deep
    };
    if matches_in(variants) {
        return "only attention variants with an extra key or a per-head factor have that hook"
            .into();
    }
    if !space.final_norm
        && matches_in(HookSpace {
            final_norm: true,
            ..variants
        })
    {
        return "this model has no final norm (OPT with do_layer_norm_before = false or _remove_final_layer_norm): its last block's output goes to the head".into();
    }
    if matches_in(HookSpace {
        d_embed: space.d + 1,
        ..variants
    }) {
        return "only OPT models whose word_embed_proj_dim differs from hidden_size have hook_project_in/out".into();
    }
    let owners: Vec<&str> = Arch::ALL
        .into_iter()
        .filter(|a| *a != space.arch)
        .filter(|&other| {
            matches_in(HookSpace {
                arch: other,
                ..variants
            })
        })
        .map(|a| a.name())
        .collect();
    if let Some((last, rest)) = owners.split_last() {
        let who = if rest.is_empty() {
            last.to_string()
        } else {
            format!("{} and {last}", rest.join(", "))
        };
        return format!("that is a hook of {who} models");
    }
    let p = pattern.as_str();
    let best = space
        .hooks()
        .into_iter()
        .map(|h| (edit_distance(p, &h), h))
        .min();
    match best {
        Some((dist, h)) if dist <= 3.max(p.len() / 5) => format!("did you mean '{h}'?"),
        _ => "see the hook table in `outlier-probe capture --help` or the README".into(),
    }
}

/// Every glob must match at least one hook point of the model; the error lists each one that
/// matches none, with a hint (layer range, other architecture, nearest name).
pub fn check_patterns<'a>(
    patterns: impl IntoIterator<Item = &'a glob::Pattern>,
    space: &HookSpace,
) -> Result<()> {
    // A pattern may select a hook by its TransformerLens name or by its alias.
    let bad: Vec<String> = patterns
        .into_iter()
        .filter(|p| space.matching(p).is_empty())
        .map(|p| format!("'{}' ({})", p.as_str(), hint(p, space)))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    bail!(
        "hook patterns that select no hook point of {}: {}",
        describe(space),
        bad.join(", ")
    )
}
