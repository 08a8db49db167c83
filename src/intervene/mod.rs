//! Interventions: edit what flows on at a hook point, or knock out attention to chosen keys.
//!
//! Command-line grammar (one intervention per `--intervene`):
//!
//! | spec | meaning |
//! |---|---|
//! | `HOOK:ch=C1,C2[:pos=P1,P2]:zero` | set channels to 0 (at all positions unless `pos=`) |
//! | `HOOK:ch=C1,C2[:pos=…]:value=X` | set channels to X |
//! | `HOOK:ch=C1,C2[:pos=…]:mean` | set channels to their mean over a corpus, taken at the same positions |
//! | `knockout:keys=K1,K2[:layers=L1,L2]` | remove keys from the attention of every later query (a query keeps its own position) |
//!
//! `HOOK` is a hook name or glob (`blocks.*.hook_resid_post`); channels index the hook's last axis
//! flattened (`[H, Dh]` hooks use `h * Dh + d`); positions are absolute token positions.
//! Several specs joined by `;` act together (one `ppl` row): `knockout:keys=0:layers=1;HOOK:ch=3:zero`.
//! Knockout specs add up per layer: `knockout:keys=0:layers=0;knockout:keys=5:layers=1` removes
//! key 0 in layer 0 and key 5 in layer 1.
//!
//! Every selector is checked against the model and the input (see [`crate::select`]): a glob
//! that matches no hook point, a channel, layer, position or key out of range, or a part that
//! does not belong to the spec is an error, never silently dropped.

use anyhow::{anyhow, bail, Context, Result};

use crate::hooks::{HookSpace, Src};

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Zero,
    Value(f32),
    Mean,
}

/// One parsed `--intervene` spec.
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    Edit {
        hook: String,
        channels: Vec<usize>,
        positions: Option<Vec<usize>>,
        action: Action,
    },
    Knockout {
        keys: Vec<usize>,
        layers: Option<Vec<usize>>,
    },
}

/// An edit of one concrete hook, with one value per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct HookEdit {
    pub hook: String,
    pub channels: Vec<usize>,
    /// `None`: every position.
    pub positions: Option<Vec<usize>>,
    pub values: Vec<f32>,
}

/// One `knockout:` spec: keys (absolute positions) removed in all layers or the listed ones.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct KnockRule {
    pub keys: Vec<usize>,
    /// `None`: every layer.
    pub layers: Option<Vec<usize>>,
}

/// Keys removed from attention: the union, layer by layer, of one or more rules. A removed key
/// is hidden from every later query of the layer (a query always keeps its own position).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Knockout {
    pub rules: Vec<KnockRule>,
}

impl Knockout {
    /// One rule: `keys` in `layers` (`None`: every layer).
    pub fn new(keys: Vec<usize>, layers: Option<Vec<usize>>) -> Self {
        Self {
            rules: vec![KnockRule { keys, layers }],
        }
    }

    /// Add a rule; earlier rules keep their own layers.
    pub fn add(&mut self, keys: Vec<usize>, layers: Option<Vec<usize>>) {
        self.rules.push(KnockRule { keys, layers });
    }

    /// Keys removed in `layer`, sorted, without repeats (empty: attention is untouched there).
    pub fn keys_in(&self, layer: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .rules
            .iter()
            .filter(|r| r.layers.as_ref().is_none_or(|ls| ls.contains(&layer)))
            .flat_map(|r| r.keys.iter().copied())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The attention kernel's key masks (`[cap]` u32, 1 = removed; keys ≥ cap are left out): the
    /// distinct masks, and for each of `n_layer` layers the index of its mask (`None`: no knockout
    /// in that layer).
    pub fn layer_masks(&self, n_layer: usize, cap: usize) -> (Vec<Vec<u32>>, Vec<Option<usize>>) {
        let mut masks: Vec<Vec<u32>> = Vec::new();
        let mut sets: Vec<Vec<usize>> = Vec::new();
        let per_layer = (0..n_layer)
            .map(|l| {
                let keys = self.keys_in(l);
                if keys.is_empty() {
                    return None;
                }
                if let Some(i) = sets.iter().position(|s| *s == keys) {
                    return Some(i);
                }
                let mut m = vec![0u32; cap];
                keys.iter().filter(|&&j| j < cap).for_each(|&j| m[j] = 1);
                masks.push(m);
                sets.push(keys);
                Some(masks.len() - 1)
            })
            .collect();
        (masks, per_layer)
    }
}

fn list(s: &str, what: &str) -> Result<Vec<usize>> {
    let v = s
        .split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .map_err(|e| anyhow!("{what} '{x}': {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    if v.is_empty() {
        bail!("{what}: empty list");
    }
    Ok(v)
}

impl Spec {
    /// One intervention row: specs joined by `;`, acting together.
    pub fn parse_row(row: &str) -> Result<Vec<Self>> {
        row.split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Self::parse)
            .collect::<Result<Vec<_>>>()
            .and_then(|v| {
                if v.is_empty() {
                    bail!("intervention '{row}': no spec given");
                }
                Ok(v)
            })
    }

    /// One spec (see the module's grammar table). Parts that do not belong to the spec's kind
    /// (`ch=` on a knockout, `layers=` on an edit, two actions) are errors.
    pub fn parse(spec: &str) -> Result<Self> {
        let ctx =
            || format!("intervention '{spec}' (see `outlier-probe ppl --help` for the grammar)");
        let mut parts = spec.split(':');
        let head = parts.next().unwrap_or_default().trim();
        if head.is_empty() {
            return Err(anyhow!("missing hook name")).with_context(ctx);
        }
        let mut channels = None;
        let mut positions = None;
        let mut action = None;
        let mut keys = None;
        let mut layers = None;
        let knockout = head == "knockout";
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let k = k.trim();
            let allowed = if knockout {
                ["keys", "layers"].contains(&k)
            } else {
                ["ch", "pos", "zero", "mean", "value"].contains(&k)
            };
            if !allowed {
                let why = match (knockout, k) {
                    (true, "ch" | "pos" | "zero" | "mean" | "value") => {
                        "a knockout takes only keys= and layers="
                    }
                    (false, "keys" | "layers") => {
                        "an edit takes ch=, pos= and an action; keys= and layers= belong to knockout:"
                    }
                    _ => "unknown part",
                };
                return Err(anyhow!("'{k}': {why}")).with_context(ctx);
            }
            let set_action = |a: &mut Option<Action>, new: Action| {
                if a.is_some() {
                    return Err(anyhow!("two actions: give one of zero, mean or value=X"));
                }
                *a = Some(new);
                Ok(())
            };
            let repeated = |was: bool| {
                if was {
                    Err(anyhow!("'{k}=' given twice"))
                } else {
                    Ok(())
                }
            };
            match k {
                "ch" => {
                    repeated(channels.is_some()).with_context(ctx)?;
                    channels = Some(list(v, "channel").with_context(ctx)?)
                }
                "pos" => {
                    repeated(positions.is_some()).with_context(ctx)?;
                    positions = Some(list(v, "position").with_context(ctx)?)
                }
                "keys" => {
                    repeated(keys.is_some()).with_context(ctx)?;
                    keys = Some(list(v, "key").with_context(ctx)?)
                }
                "layers" => {
                    repeated(layers.is_some()).with_context(ctx)?;
                    layers = Some(list(v, "layer").with_context(ctx)?)
                }
                "zero" => set_action(&mut action, Action::Zero).with_context(ctx)?,
                "mean" => set_action(&mut action, Action::Mean).with_context(ctx)?,
                _ => {
                    let x = v
                        .trim()
                        .parse()
                        .map_err(|e| anyhow!("value '{v}': {e}"))
                        .with_context(ctx)?;
                    set_action(&mut action, Action::Value(x)).with_context(ctx)?
                }
            }
        }
        if knockout {
            let keys = keys
                .ok_or_else(|| anyhow!("knockout needs keys=…"))
                .with_context(ctx)?;
            return Ok(Spec::Knockout { keys, layers });
        }
        glob::Pattern::new(head)
            .map_err(|e| anyhow!("hook pattern: {e}"))
            .with_context(ctx)?;
        Ok(Spec::Edit {
            hook: head.to_string(),
            channels: channels
                .ok_or_else(|| anyhow!("an edit needs ch=…"))
                .with_context(ctx)?,
            positions,
            action: action
                .ok_or_else(|| anyhow!("an edit needs an action: zero, mean or value=X"))
                .with_context(ctx)?,
        })
    }
}

/// Where an editable hook lives: its source buffer, the column offset inside that buffer's rows,
/// and the hook's own width.
pub fn editable(hook: &str, space: &HookSpace) -> Result<(Src, usize, usize)> {
    let (d, kvd) = (space.q_dim(), space.kv_dim());
    // TransformerLens names and their aliases (mlp.hook_gate, mlp.hook_up).
    let Some((src, i)) = space.locate(hook) else {
        bail!("unknown hook point '{hook}'")
    };
    match src {
        Src::Qkv(_) | Src::QkNorm(_) | Src::RotQk(_) => {
            Ok((src, [0, d, d + kvd][i], [d, kvd, kvd][i]))
        }
        Src::GateUp(_) => Ok((src, i * space.inner, space.inner)),
        Src::Embed | Src::PosEmbed => {
            bail!("{hook} cannot be edited; edit blocks.0.hook_resid_pre instead")
        }
        Src::ExtraProb(_) | Src::Scale(_) => bail!("{hook} cannot be edited"),
        Src::Scores(_) | Src::Pattern(_) => {
            bail!("{hook} cannot be edited; use knockout:keys=… to remove keys from attention")
        }
        Src::Logits => bail!("logits cannot be edited"),
        _ => Ok((src, 0, space.row_width(src))),
    }
}

/// Expand an edit spec's glob into concrete hooks of a model (an error naming the glob when it
/// matches none).
pub fn expand(hook_glob: &str, space: &HookSpace) -> Result<Vec<String>> {
    let pat =
        glob::Pattern::new(hook_glob).map_err(|e| anyhow!("hook pattern '{hook_glob}': {e}"))?;
    crate::hooks::check_patterns([&pat], space)?;
    Ok(space.matching(&pat))
}

mod edits;
#[cfg(test)]
mod tests;

pub use edits::{constant_edits, mean_edits};
