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

    /// The attention kernel's key masks ([cap] u32, 1 = removed; keys ≥ cap are left out): the
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
    let (d, kvd) = (space.d, space.kv_dim());
    // TransformerLens names and their aliases (mlp.hook_gate, mlp.hook_up).
    let Some((src, i)) = space.locate(hook) else {
        bail!("unknown hook point '{hook}'")
    };
    match src {
        Src::Qkv(_) | Src::RotQk(_) => Ok((src, [0, d, d + kvd][i], [d, kvd, kvd][i])),
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
    crate::select::check_patterns([&pat], space)?;
    Ok(space.matching(&pat))
}

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

#[cfg(test)]
mod tests {
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
            inner: 200,
            extra_prob: false,
            scale: false,
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
}
