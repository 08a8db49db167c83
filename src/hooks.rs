//! Hook points, named as TransformerLens names them, and how each is cut out of the GPU buffers.
//!
//! | hook | shape (one prompt of T new tokens, K = past + T keys) |
//! |---|---|
//! | `hook_embed`, `hook_pos_embed` | [T, D] |
//! | `blocks.{l}.hook_resid_pre`, `.ln1.hook_normalized`, `.hook_attn_out`, `.hook_resid_mid`, `.ln2.hook_normalized`, `.hook_mlp_out`, `.hook_resid_post` | [T, D] |
//! | `blocks.{l}.attn.hook_q`, `hook_z` | [T, H, Dh] |
//! | `blocks.{l}.attn.hook_k`, `hook_v` | [T, Hkv, Dh] (Hkv = H for GPT-2) |
//! | `blocks.{l}.attn.hook_rot_q`, `hook_rot_k` (Llama) | after RoPE, [T, H, Dh] and [T, Hkv, Dh] |
//! | `blocks.{l}.attn.hook_attn_scores` | [H, T, K], scaled, masked entries −inf, pre-softmax |
//! | `blocks.{l}.attn.hook_pattern` | [H, T, K], the weight each value gets (softmax probabilities; masked entries 0) |
//! | `blocks.{l}.attn.hook_extra_prob` (variants with an extra key) | [H, T], p′ |
//! | `blocks.{l}.attn.hook_scale` (context_scale, gated) | [T, H], the per-head factor |
//! | `blocks.{l}.mlp.hook_pre`, `mlp.hook_post` | [T, I] (I = 4D for GPT-2); the pre-activation (GPT-2: c_fc out, before GELU; Llama: gate_proj out, before SiLU) |
//! | `blocks.{l}.mlp.hook_pre_linear` (Llama) | [T, I], up_proj out; `hook_post` = silu(hook_pre) · hook_pre_linear |
//! | `ln_final.hook_normalized` | [T, D] |
//! | `logits` | [T, V] |
//!
//! Every name is TransformerLens's (`HookedTransformer`, `GatedMLP` for Llama: `hook_pre` is
//! x·W_gate, `hook_pre_linear` x·W_in) except `attn.hook_extra_prob` and `attn.hook_scale` (the
//! attention variants, which TransformerLens does not have) and `logits` (TransformerLens returns
//! the logits; it has no hook for them). Aliases from before the TransformerLens names, Llama only,
//! select the same tensors, which are then named by their TransformerLens names:
//! `mlp.hook_gate` = `mlp.hook_pre`, `mlp.hook_up` = `mlp.hook_pre_linear`.

use crate::config::{Arch, ModelConfig};
use crate::tensor::Tensor;

/// A GPU buffer the forward pass can copy out; several hooks may come from one source (q, k, v).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Src {
    Embed,
    PosEmbed,
    ResidPre(usize),
    Ln1(usize),
    Qkv(usize),
    /// q and k after RoPE (Llama).
    RotQk(usize),
    Scores(usize),
    Pattern(usize),
    /// p′ of the extra key, [rows, H] (attention variants).
    ExtraProb(usize),
    /// Per-head output factor, [rows, H] (attention variants).
    Scale(usize),
    Z(usize),
    AttnOut(usize),
    ResidMid(usize),
    Ln2(usize),
    MlpPre(usize),
    /// gate and up projections (Llama).
    GateUp(usize),
    MlpPost(usize),
    MlpOut(usize),
    ResidPost(usize),
    LnFinal,
    Logits,
}

/// Names of the hooks fed by a source.
pub fn hooks_of(src: Src) -> Vec<String> {
    let b = |l: usize, s: &str| format!("blocks.{l}.{s}");
    match src {
        Src::Embed => vec!["hook_embed".into()],
        Src::PosEmbed => vec!["hook_pos_embed".into()],
        Src::ResidPre(l) => vec![b(l, "hook_resid_pre")],
        Src::Ln1(l) => vec![b(l, "ln1.hook_normalized")],
        Src::Qkv(l) => vec![
            b(l, "attn.hook_q"),
            b(l, "attn.hook_k"),
            b(l, "attn.hook_v"),
        ],
        Src::RotQk(l) => vec![b(l, "attn.hook_rot_q"), b(l, "attn.hook_rot_k")],
        Src::Scores(l) => vec![b(l, "attn.hook_attn_scores")],
        Src::Pattern(l) => vec![b(l, "attn.hook_pattern")],
        Src::ExtraProb(l) => vec![b(l, "attn.hook_extra_prob")],
        Src::Scale(l) => vec![b(l, "attn.hook_scale")],
        Src::Z(l) => vec![b(l, "attn.hook_z")],
        Src::AttnOut(l) => vec![b(l, "hook_attn_out")],
        Src::ResidMid(l) => vec![b(l, "hook_resid_mid")],
        Src::Ln2(l) => vec![b(l, "ln2.hook_normalized")],
        Src::MlpPre(l) => vec![b(l, "mlp.hook_pre")],
        Src::GateUp(l) => vec![b(l, "mlp.hook_pre"), b(l, "mlp.hook_pre_linear")],
        Src::MlpPost(l) => vec![b(l, "mlp.hook_post")],
        Src::MlpOut(l) => vec![b(l, "hook_mlp_out")],
        Src::ResidPost(l) => vec![b(l, "hook_resid_post")],
        Src::LnFinal => vec!["ln_final.hook_normalized".into()],
        Src::Logits => vec!["logits".into()],
    }
}

/// Older names of a source's hooks, still accepted in selections and edits (same order as
/// `hooks_of`; empty for sources without aliases). Only Llama's gated MLP has them.
pub fn aliases_of(src: Src) -> Vec<String> {
    match src {
        Src::GateUp(l) => vec![
            format!("blocks.{l}.mlp.hook_gate"),
            format!("blocks.{l}.mlp.hook_up"),
        ],
        _ => Vec::new(),
    }
}

/// The hook points a model has, and the sizes that cut them out of the GPU buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookSpace {
    pub arch: Arch,
    pub n_layer: usize,
    pub d: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub inner: usize,
    /// The attention variant has p′ (`hook_extra_prob`).
    pub extra_prob: bool,
    /// The attention variant has a per-head factor (`hook_scale`).
    pub scale: bool,
}

impl HookSpace {
    pub fn of(cfg: &ModelConfig) -> Self {
        Self {
            arch: cfg.arch,
            n_layer: cfg.n_layer,
            d: cfg.n_embd,
            n_head: cfg.n_head,
            n_kv_head: cfg.n_kv_head,
            inner: cfg.n_inner(),
            extra_prob: cfg.variant.has_extra_prob(),
            scale: cfg.variant.scale().is_some(),
        }
    }

    /// A GPT-2 of `n_layer` layers (sizes only matter for cutting captures).
    pub fn gpt2(n_layer: usize, d: usize, n_head: usize) -> Self {
        Self {
            arch: Arch::Gpt2,
            n_layer,
            d,
            n_head,
            n_kv_head: n_head,
            inner: 4 * d,
            extra_prob: false,
            scale: false,
        }
    }

    pub fn head_dim(&self) -> usize {
        self.d / self.n_head
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim()
    }

    /// Every source, in forward order.
    pub fn sources(&self) -> Vec<Src> {
        let lay = self.arch.hook_layout();
        let mut v = vec![Src::Embed];
        if lay.pos_embed {
            v.push(Src::PosEmbed);
        }
        for l in 0..self.n_layer {
            v.extend([Src::ResidPre(l), Src::Ln1(l), Src::Qkv(l)]);
            if lay.rotary {
                v.push(Src::RotQk(l));
            }
            v.extend([Src::Scores(l), Src::Pattern(l)]);
            if self.extra_prob {
                v.push(Src::ExtraProb(l));
            }
            if self.scale {
                v.push(Src::Scale(l));
            }
            v.extend([Src::Z(l), Src::AttnOut(l), Src::ResidMid(l), Src::Ln2(l)]);
            v.push(if lay.gated_mlp {
                Src::GateUp(l)
            } else {
                Src::MlpPre(l)
            });
            v.extend([Src::MlpPost(l), Src::MlpOut(l), Src::ResidPost(l)]);
        }
        v.extend([Src::LnFinal, Src::Logits]);
        v
    }

    /// Every hook name (TransformerLens's, see the module table), in forward order.
    pub fn hooks(&self) -> Vec<String> {
        self.sources().into_iter().flat_map(hooks_of).collect()
    }

    /// The source of a hook named by its TransformerLens name or an alias, and its index
    /// within `hooks_of(source)`; `None` when this model has no such hook.
    pub fn locate(&self, hook: &str) -> Option<(Src, usize)> {
        self.sources().into_iter().find_map(|src| {
            let i = hooks_of(src)
                .iter()
                .position(|n| n == hook)
                .or_else(|| aliases_of(src).iter().position(|n| n == hook))?;
            Some((src, i))
        })
    }

    /// The hooks (TransformerLens names, forward order) whose name or alias matches `pat`.
    pub fn matching(&self, pat: &glob::Pattern) -> Vec<String> {
        let mut v = Vec::new();
        for src in self.sources() {
            let aliases = aliases_of(src);
            for (i, h) in hooks_of(src).into_iter().enumerate() {
                if pat.matches(&h) || aliases.get(i).is_some_and(|a| pat.matches(a)) {
                    v.push(h);
                }
            }
        }
        v
    }

    /// Width of a source buffer's rows.
    pub fn row_width(&self, src: Src) -> usize {
        match src {
            Src::Qkv(_) | Src::RotQk(_) => self.d + 2 * self.kv_dim(),
            Src::GateUp(_) => 2 * self.inner,
            Src::MlpPre(_) | Src::MlpPost(_) => self.inner,
            Src::ExtraProb(_) | Src::Scale(_) => self.n_head,
            _ => self.d,
        }
    }
}

/// Which hooks to capture: glob patterns (`blocks.*.attn.hook_pattern`), comma-separated on the CLI.
/// Every pattern must select at least one hook point of the model it is used with: forward
/// passes and [`HookFilter::resolve`] refuse a filter with a pattern that matches nothing.
#[derive(Clone, Debug, Default)]
pub struct HookFilter {
    patterns: Vec<glob::Pattern>,
}

impl HookFilter {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn all() -> Self {
        Self::parse("*").expect("valid glob")
    }

    /// Comma-separated globs.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut patterns = Vec::new();
        for p in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            patterns.push(
                glob::Pattern::new(p).map_err(|e| anyhow::anyhow!("hook pattern '{p}': {e}"))?,
            );
        }
        Ok(Self { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn wants(&self, hook: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(hook))
    }

    /// Whether hook `i` of `src` (`hooks_of(src)[i]`) is selected, by its name or its alias.
    pub fn wants_nth(&self, src: Src, i: usize) -> bool {
        hooks_of(src).get(i).is_some_and(|h| self.wants(h))
            || aliases_of(src).get(i).is_some_and(|h| self.wants(h))
    }

    /// Whether any hook of `src` is selected (by name or alias).
    pub fn wants_src(&self, src: Src) -> bool {
        (0..hooks_of(src).len()).any(|i| self.wants_nth(src, i))
    }

    pub fn wants_any_src<const N: usize>(
        &self,
        n_layer: usize,
        f: impl Fn(usize) -> [Src; N],
    ) -> bool {
        (0..n_layer).any(|l| f(l).into_iter().any(|s| self.wants_src(s)))
    }

    /// The glob patterns, as given.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(glob::Pattern::as_str)
    }

    /// Every pattern selects at least one hook point of the model; the error names each one that
    /// selects none, with a hint (the model's layer range, a hook of another architecture, the
    /// nearest hook name). A filter without patterns passes (it captures nothing).
    pub fn check(&self, space: &HookSpace) -> anyhow::Result<()> {
        crate::select::check_patterns(&self.patterns, space)
    }

    /// The hooks of a model this filter selects, in forward order. An error when no pattern is
    /// given or when any pattern selects nothing (see [`HookFilter::check`]).
    pub fn resolve(&self, space: &HookSpace) -> anyhow::Result<Vec<String>> {
        if self.patterns.is_empty() {
            anyhow::bail!(
                "no hook pattern given: the hook patterns select no hook point (e.g. 'blocks.0.hook_resid_pre', 'blocks.*.attn.hook_pattern', 'logits')"
            );
        }
        self.check(space)?;
        Ok(space
            .sources()
            .into_iter()
            .flat_map(|src| {
                hooks_of(src)
                    .into_iter()
                    .enumerate()
                    .filter(move |&(i, _)| self.wants_nth(src, i))
                    .map(|(_, h)| h)
            })
            .collect())
    }
}

/// Where one sequence sits in the forward pass's buffers.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub space: HookSpace,
    /// First row of the sequence in the [rows, …] buffers.
    pub row0: usize,
    /// New tokens of the sequence.
    pub n: usize,
    /// Tokens already in the KV cache before this pass.
    pub past: usize,
    /// Key stride of the attention capture buffers.
    pub cap_keys: usize,
}

/// Cut one sequence's hook tensors out of a source buffer read back from the GPU.
pub fn split_capture(src: Src, data: &[f32], g: Geometry) -> Vec<(String, Tensor)> {
    let names = hooks_of(src);
    let sp = g.space;
    let (d, h, hkv, dh, kvd, inner) = (
        sp.d,
        sp.n_head,
        sp.n_kv_head,
        sp.head_dim(),
        sp.kv_dim(),
        sp.inner,
    );
    let w = sp.row_width(src);
    // Columns [c0, c0 + width) of the sequence's rows.
    let cols = |c0: usize, width: usize| {
        let mut v = Vec::with_capacity(g.n * width);
        for t in 0..g.n {
            let r = (g.row0 + t) * w + c0;
            v.extend_from_slice(&data[r..r + width]);
        }
        v
    };
    match src {
        Src::Qkv(_) | Src::RotQk(_) => {
            let parts = [(0, h, d), (d, hkv, kvd), (d + kvd, hkv, kvd)];
            names
                .iter()
                .zip(parts)
                .map(|(n, (c0, heads, width))| {
                    (
                        n.clone(),
                        Tensor::new(vec![g.n, heads, dh], cols(c0, width)),
                    )
                })
                .collect()
        }
        Src::Z(_) => vec![(names[0].clone(), Tensor::new(vec![g.n, h, dh], cols(0, d)))],
        Src::GateUp(_) => vec![
            (
                names[0].clone(),
                Tensor::new(vec![g.n, inner], cols(0, inner)),
            ),
            (
                names[1].clone(),
                Tensor::new(vec![g.n, inner], cols(inner, inner)),
            ),
        ],
        Src::Scores(_) | Src::Pattern(_) => {
            let k = g.past + g.n;
            let fill = if matches!(src, Src::Scores(_)) {
                f32::NEG_INFINITY
            } else {
                0.0
            };
            let mut v = vec![fill; h * g.n * k];
            for hh in 0..h {
                for t in 0..g.n {
                    let base = ((g.row0 + t) * h + hh) * g.cap_keys;
                    let dst = (hh * g.n + t) * k;
                    let nk = g.past + t + 1;
                    v[dst..dst + nk].copy_from_slice(&data[base..base + nk]);
                }
            }
            vec![(names[0].clone(), Tensor::new(vec![h, g.n, k], v))]
        }
        Src::ExtraProb(_) => {
            // [rows, H] -> [H, T]
            let mut v = vec![0f32; h * g.n];
            for t in 0..g.n {
                for hh in 0..h {
                    v[hh * g.n + t] = data[(g.row0 + t) * h + hh];
                }
            }
            vec![(names[0].clone(), Tensor::new(vec![h, g.n], v))]
        }
        Src::Logits => unreachable!("logits are read separately"),
        _ => vec![(names[0].clone(), Tensor::new(vec![g.n, w], cols(0, w)))],
    }
}

#[cfg(test)]
mod tests {
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
}
