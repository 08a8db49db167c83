//! Turning an intervention spec into concrete edits: constant values, or per-channel means
//! measured on a corpus. Depends on hooks and tensor only; never on wgpu or models.

use super::*;
use crate::hooks::HookSpace;
use anyhow::{anyhow, bail, Result};

/// Concrete edits of a spec with a constant action (zero or value). Mean edits need data: see
/// [`mean_edits`].
pub fn constant_edits(spec: &Spec, space: &HookSpace) -> Result<Vec<HookEdit>> {
    let Spec::Edit {
        hook,
        channels,
        positions,
        action,
    } = spec
    else {
        return Ok(vec![]);
    };
    let v = match action {
        Action::Zero => 0.0,
        Action::Value(x) => *x,
        Action::Mean => bail!("a mean edit needs a corpus to take the mean over"),
    };
    Ok(expand(hook, space)?
        .into_iter()
        .map(|h| HookEdit {
            hook: h,
            channels: channels.clone(),
            positions: positions.clone(),
            values: vec![v; channels.len()],
        })
        .collect())
}

/// Mean of each edited channel over the given captures (one map per sequence), taken at the
/// spec's positions (all positions when none are given).
pub fn mean_edits(
    spec: &Spec,
    space: &HookSpace,
    captures: &[std::collections::BTreeMap<String, crate::tensor::Tensor>],
) -> Result<Vec<HookEdit>> {
    let Spec::Edit {
        hook,
        channels,
        positions,
        ..
    } = spec
    else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for h in expand(hook, space)? {
        let mut sum = vec![0f64; channels.len()];
        let mut n = 0usize;
        for caps in captures {
            let t = caps
                .get(&h)
                .ok_or_else(|| anyhow!("mean of {h}: hook not captured"))?;
            let rows = t.shape[0];
            let width = t.numel() / rows;
            let pos: Vec<usize> = match positions {
                Some(p) => {
                    if let Some(q) = p.iter().find(|&&q| q >= rows) {
                        bail!("mean of {h}: position {q} is beyond a sequence of {rows} tokens");
                    }
                    p.clone()
                }
                None => (0..rows).collect(),
            };
            for p in pos {
                let row = t.row(p);
                for (k, &c) in channels.iter().enumerate() {
                    if c >= width {
                        bail!("{h} has {width} channels; channel {c} does not exist");
                    }
                    sum[k] += row[c] as f64;
                }
                n += 1;
            }
        }
        if n == 0 {
            bail!("mean of {h}: no token at the requested positions in the corpus");
        }
        out.push(HookEdit {
            hook: h,
            channels: channels.clone(),
            positions: positions.clone(),
            values: sum.iter().map(|s| (s / n as f64) as f32).collect(),
        });
    }
    Ok(out)
}
