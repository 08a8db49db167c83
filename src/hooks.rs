//! Hook points, named as TransformerLens names them, and how each is cut out of the GPU buffers.
//!
//! | hook | shape (one prompt of T new tokens, K = past + T keys) |
//! |---|---|
//! | `hook_embed`, `hook_pos_embed` | [T, D] |
//! | `blocks.{l}.hook_resid_pre`, `.ln1.hook_normalized`, `.hook_attn_out`, `.hook_resid_mid`, `.ln2.hook_normalized`, `.hook_mlp_out`, `.hook_resid_post` | [T, D] |
//! | `blocks.{l}.attn.hook_q`, `hook_k`, `hook_v`, `hook_z` | [T, H, Dh] |
//! | `blocks.{l}.attn.hook_attn_scores` | [H, T, K], scaled, masked entries −inf, pre-softmax |
//! | `blocks.{l}.attn.hook_pattern` | [H, T, K], probabilities (masked entries 0) |
//! | `blocks.{l}.mlp.hook_pre`, `mlp.hook_post` | [T, I] (I = 4D for GPT-2) |
//! | `ln_final.hook_normalized` | [T, D] |
//! | `logits` | [T, V] |

use crate::tensor::Tensor;

/// A GPU buffer the forward pass can copy out; several hooks may come from one source (q, k, v).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Src {
    Embed,
    PosEmbed,
    ResidPre(usize),
    Ln1(usize),
    Qkv(usize),
    Scores(usize),
    Pattern(usize),
    Z(usize),
    AttnOut(usize),
    ResidMid(usize),
    Ln2(usize),
    MlpPre(usize),
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
        Src::Scores(l) => vec![b(l, "attn.hook_attn_scores")],
        Src::Pattern(l) => vec![b(l, "attn.hook_pattern")],
        Src::Z(l) => vec![b(l, "attn.hook_z")],
        Src::AttnOut(l) => vec![b(l, "hook_attn_out")],
        Src::ResidMid(l) => vec![b(l, "hook_resid_mid")],
        Src::Ln2(l) => vec![b(l, "ln2.hook_normalized")],
        Src::MlpPre(l) => vec![b(l, "mlp.hook_pre")],
        Src::MlpPost(l) => vec![b(l, "mlp.hook_post")],
        Src::MlpOut(l) => vec![b(l, "hook_mlp_out")],
        Src::ResidPost(l) => vec![b(l, "hook_resid_post")],
        Src::LnFinal => vec!["ln_final.hook_normalized".into()],
        Src::Logits => vec!["logits".into()],
    }
}

/// Every source of an `n_layer` model, in forward order.
pub fn all_sources(n_layer: usize) -> Vec<Src> {
    let mut v = vec![Src::Embed, Src::PosEmbed];
    for l in 0..n_layer {
        v.extend([
            Src::ResidPre(l),
            Src::Ln1(l),
            Src::Qkv(l),
            Src::Scores(l),
            Src::Pattern(l),
            Src::Z(l),
            Src::AttnOut(l),
            Src::ResidMid(l),
            Src::Ln2(l),
            Src::MlpPre(l),
            Src::MlpPost(l),
            Src::MlpOut(l),
            Src::ResidPost(l),
        ]);
    }
    v.extend([Src::LnFinal, Src::Logits]);
    v
}

/// Every hook name of an `n_layer` model, in forward order.
pub fn all_hooks(n_layer: usize) -> Vec<String> {
    all_sources(n_layer)
        .into_iter()
        .flat_map(hooks_of)
        .collect()
}

/// Which hooks to capture: glob patterns (`blocks.*.attn.hook_pattern`), comma-separated on the CLI.
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

    pub fn wants_src(&self, src: Src) -> bool {
        hooks_of(src).iter().any(|h| self.wants(h))
    }

    pub fn wants_any_src<const N: usize>(
        &self,
        n_layer: usize,
        f: impl Fn(usize) -> [Src; N],
    ) -> bool {
        (0..n_layer).any(|l| f(l).into_iter().any(|s| self.wants_src(s)))
    }

    /// The hooks of an `n_layer` model this filter selects (an error when it selects none).
    pub fn resolve(&self, n_layer: usize) -> anyhow::Result<Vec<String>> {
        let v: Vec<String> = all_hooks(n_layer)
            .into_iter()
            .filter(|h| self.wants(h))
            .collect();
        if v.is_empty() {
            anyhow::bail!(
                "the hook patterns select no hook point of this {n_layer}-layer model (e.g. 'blocks.0.hook_resid_pre', 'blocks.*.attn.hook_pattern', 'logits')"
            );
        }
        Ok(v)
    }
}

/// Where one sequence sits in the forward pass's buffers.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// First row of the sequence in the [rows, …] buffers.
    pub row0: usize,
    /// New tokens of the sequence.
    pub n: usize,
    /// Tokens already in the KV cache before this pass.
    pub past: usize,
    pub d: usize,
    pub h: usize,
    pub inner: usize,
    /// Key stride of the attention capture buffers.
    pub cap_keys: usize,
}

/// Cut one sequence's hook tensors out of a source buffer read back from the GPU.
pub fn split_capture(src: Src, data: &[f32], g: Geometry) -> Vec<(String, Tensor)> {
    let names = hooks_of(src);
    let rows = |w: usize| data[g.row0 * w..(g.row0 + g.n) * w].to_vec();
    let dh = g.d / g.h;
    match src {
        Src::Qkv(_) => {
            let w = 3 * g.d;
            (0..3)
                .map(|part| {
                    let mut v = Vec::with_capacity(g.n * g.d);
                    for t in 0..g.n {
                        let r = (g.row0 + t) * w + part * g.d;
                        v.extend_from_slice(&data[r..r + g.d]);
                    }
                    (names[part].clone(), Tensor::new(vec![g.n, g.h, dh], v))
                })
                .collect()
        }
        Src::Z(_) => vec![(names[0].clone(), Tensor::new(vec![g.n, g.h, dh], rows(g.d)))],
        Src::MlpPre(_) | Src::MlpPost(_) => {
            vec![(
                names[0].clone(),
                Tensor::new(vec![g.n, g.inner], rows(g.inner)),
            )]
        }
        Src::Scores(_) | Src::Pattern(_) => {
            let k = g.past + g.n;
            let fill = if matches!(src, Src::Scores(_)) {
                f32::NEG_INFINITY
            } else {
                0.0
            };
            let mut v = vec![fill; g.h * g.n * k];
            for hh in 0..g.h {
                for t in 0..g.n {
                    let base = ((g.row0 + t) * g.h + hh) * g.cap_keys;
                    let dst = (hh * g.n + t) * k;
                    let nk = g.past + t + 1;
                    v[dst..dst + nk].copy_from_slice(&data[base..base + nk]);
                }
            }
            vec![(names[0].clone(), Tensor::new(vec![g.h, g.n, k], v))]
        }
        Src::Logits => unreachable!("logits are read separately"),
        _ => vec![(names[0].clone(), Tensor::new(vec![g.n, g.d], rows(g.d)))],
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
        assert_eq!(f.resolve(2).unwrap().len(), 3);
        assert!(HookFilter::parse("nothing.here")
            .unwrap()
            .resolve(2)
            .is_err());
        assert!(f.wants_src(Src::Pattern(3)));
        assert!(!f.wants_src(Src::Qkv(0)));
        assert!(HookFilter::parse("blocks.0.attn.hook_k")
            .unwrap()
            .wants_src(Src::Qkv(0)));
    }

    #[test]
    fn every_hook_listed_once() {
        let all = all_hooks(3);
        let mut s = all.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), all.len());
        assert_eq!(all.len(), 2 + 3 * 15 + 2);
    }
}
