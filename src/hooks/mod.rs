//! Hook points, named as TransformerLens names them, and how each is cut out of the GPU buffers.
//!
//! | hook | shape (one prompt of T new tokens, K = past + T keys) |
//! |---|---|
//! | `hook_embed` | [T, E]: the embedding matrix's rows (E = D except OPT with `word_embed_proj_dim`) |
//! | `hook_project_in` (OPT with E ≠ D) | [T, D], project_in(hook_embed): the token term added to the residual stream |
//! | `hook_pos_embed` | [T, D] |
//! | `blocks.{l}.hook_resid_pre`, `.ln1.hook_normalized`, `.hook_attn_out`, `.hook_resid_mid` (not in parallel-residual blocks), `.ln2.hook_normalized`, `.hook_mlp_out`, `.hook_resid_post` | [T, D] |
//! | `blocks.{l}.attn.hook_q`, `hook_z` | [T, H, Dh] (H·Dh = D except with an explicit head_dim: Gemma 3, Qwen3) |
//! | `blocks.{l}.attn.hook_k`, `hook_v` | [T, Hkv, Dh] (Hkv = H for GPT-2) |
//! | `blocks.{l}.attn.q_norm.hook_normalized`, `attn.k_norm.hook_normalized` (Gemma 3, Qwen3) | q and k after their per-head RMSNorm, before RoPE: [T, H, Dh], [T, Hkv, Dh] |
//! | `blocks.{l}.attn.hook_rot_q`, `hook_rot_k` (RoPE models) | after RoPE (GPT-NeoX: on the first `rope_dims` of each head only), [T, H, Dh] and [T, Hkv, Dh] |
//! | `blocks.{l}.ln1_post.hook_normalized`, `ln2_post.hook_normalized` (Gemma 3) | [T, D], the attention / MLP output after its post-norm; `hook_attn_out` / `hook_mlp_out` are the same values (TransformerLens hooks them after `ln1_post` / `ln2_post`) |
//! | `blocks.{l}.attn.hook_attn_scores` | [H, T, K], scaled, masked entries −inf, pre-softmax |
//! | `blocks.{l}.attn.hook_pattern` | [H, T, K], the weight each value gets (softmax probabilities; masked entries 0) |
//! | `blocks.{l}.attn.hook_extra_prob` (variants with an extra key) | [H, T], p′ |
//! | `blocks.{l}.attn.hook_scale` (context_scale, gated) | [T, H], the per-head factor |
//! | `blocks.{l}.mlp.hook_pre`, `mlp.hook_post` | [T, I] (I = 4D for GPT-2); the pre-activation (GPT-2: c_fc out, before GELU; Llama: gate_proj out, before SiLU) |
//! | `blocks.{l}.mlp.hook_pre_linear` (Llama) | [T, I], up_proj out; `hook_post` = silu(hook_pre) · hook_pre_linear |
//! | `ln_final.hook_normalized` | [T, D] (absent when the model has no final norm: post-LN OPT) |
//! | `hook_project_out` (OPT with E ≠ D) | [T, E], project_out of the final state: the LM head's input |
//! | `logits` | [T, V] |
//!
//! Every name is TransformerLens's (`HookedTransformer`, `GatedMLP` for Llama: `hook_pre` is
//! x·W_gate, `hook_pre_linear` x·W_in) except `attn.hook_extra_prob` and `attn.hook_scale` (the
//! attention variants, which TransformerLens does not have) and `logits` (TransformerLens returns
//! the logits; it has no hook for them) and OPT's `hook_project_in` / `hook_project_out` (named after
//! the modules they follow). Post-LN blocks (OPT `do_layer_norm_before = false`) have no norm
//! before attention or the MLP: there `ln1.hook_normalized` is LN(resid_pre + attn_out) and is also
//! `hook_resid_mid` (the stream the MLP reads and adds to), `ln2.hook_normalized` is
//! LN(resid_mid + mlp_out) and is also `hook_resid_post`; pre-LN hooks sit as in GPT-2. Aliases from before the TransformerLens names, Llama only,
//! select the same tensors, which are then named by their TransformerLens names:
//! `mlp.hook_gate` = `mlp.hook_pre`, `mlp.hook_up` = `mlp.hook_pre_linear`.
//! Data types: depends on config and tensor only; never on wgpu, models or studies.

use crate::config::{Arch, ModelConfig};

/// A GPU buffer the forward pass can copy out; several hooks may come from one source (q, k, v).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Src {
    Embed,
    /// project_in of the embedding (OPT with word_embed_proj_dim ≠ hidden_size), [rows, D].
    ProjectIn,
    PosEmbed,
    ResidPre(usize),
    Ln1(usize),
    Qkv(usize),
    /// q and k after their per-head RMSNorm, before RoPE (Gemma 3, Qwen3); the q|k|v row width.
    QkNorm(usize),
    /// q and k after RoPE (Llama, Qwen2, GPT-NeoX, Gemma 3, Qwen3).
    RotQk(usize),
    Scores(usize),
    Pattern(usize),
    /// p′ of the extra key, [rows, H] (attention variants).
    ExtraProb(usize),
    /// Per-head output factor, [rows, H] (attention variants).
    Scale(usize),
    Z(usize),
    /// The attention output after its post-norm (Gemma's `post_attention_layernorm`).
    Ln1Post(usize),
    AttnOut(usize),
    ResidMid(usize),
    Ln2(usize),
    MlpPre(usize),
    /// gate and up projections (Llama).
    GateUp(usize),
    MlpPost(usize),
    /// The MLP output after its post-norm (Gemma's `post_feedforward_layernorm`).
    Ln2Post(usize),
    MlpOut(usize),
    ResidPost(usize),
    LnFinal,
    /// project_out of the final state, the LM head's input (OPT with word_embed_proj_dim ≠
    /// hidden_size), [rows, E].
    ProjectOut,
    Logits,
}

/// Names of the hooks fed by a source.
pub fn hooks_of(src: Src) -> Vec<String> {
    let b = |l: usize, s: &str| format!("blocks.{l}.{s}");
    match src {
        Src::Embed => vec!["hook_embed".into()],
        Src::ProjectIn => vec!["hook_project_in".into()],
        Src::PosEmbed => vec!["hook_pos_embed".into()],
        Src::ResidPre(l) => vec![b(l, "hook_resid_pre")],
        Src::Ln1(l) => vec![b(l, "ln1.hook_normalized")],
        Src::Qkv(l) => vec![
            b(l, "attn.hook_q"),
            b(l, "attn.hook_k"),
            b(l, "attn.hook_v"),
        ],
        Src::QkNorm(l) => vec![
            b(l, "attn.q_norm.hook_normalized"),
            b(l, "attn.k_norm.hook_normalized"),
        ],
        Src::RotQk(l) => vec![b(l, "attn.hook_rot_q"), b(l, "attn.hook_rot_k")],
        Src::Scores(l) => vec![b(l, "attn.hook_attn_scores")],
        Src::Pattern(l) => vec![b(l, "attn.hook_pattern")],
        Src::ExtraProb(l) => vec![b(l, "attn.hook_extra_prob")],
        Src::Scale(l) => vec![b(l, "attn.hook_scale")],
        Src::Z(l) => vec![b(l, "attn.hook_z")],
        Src::Ln1Post(l) => vec![b(l, "ln1_post.hook_normalized")],
        Src::AttnOut(l) => vec![b(l, "hook_attn_out")],
        Src::ResidMid(l) => vec![b(l, "hook_resid_mid")],
        Src::Ln2(l) => vec![b(l, "ln2.hook_normalized")],
        Src::MlpPre(l) => vec![b(l, "mlp.hook_pre")],
        Src::GateUp(l) => vec![b(l, "mlp.hook_pre"), b(l, "mlp.hook_pre_linear")],
        Src::MlpPost(l) => vec![b(l, "mlp.hook_post")],
        Src::Ln2Post(l) => vec![b(l, "ln2_post.hook_normalized")],
        Src::MlpOut(l) => vec![b(l, "hook_mlp_out")],
        Src::ResidPost(l) => vec![b(l, "hook_resid_post")],
        Src::LnFinal => vec!["ln_final.hook_normalized".into()],
        Src::ProjectOut => vec!["hook_project_out".into()],
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
    /// Width of one head (d / n_head except with an explicit `head_dim`, Gemma 3).
    pub head_dim: usize,
    pub inner: usize,
    /// The attention variant has p′ (`hook_extra_prob`).
    pub extra_prob: bool,
    /// The attention variant has a per-head factor (`hook_scale`).
    pub scale: bool,
    /// The blocks have `hook_resid_mid`: false for parallel-residual blocks (GPT-NeoX
    /// `use_parallel_residual`), whose attention and MLP both read `hook_resid_pre`.
    pub resid_mid: bool,
    /// Width E of the embedding rows and the LM head's input (`ModelConfig::embed_dim`); E ≠ d
    /// adds `hook_project_in` and `hook_project_out`.
    pub d_embed: usize,
    /// The model has a final norm (`ln_final.hook_normalized`).
    pub final_norm: bool,
}

impl HookSpace {
    pub fn of(cfg: &ModelConfig) -> Self {
        Self {
            arch: cfg.arch,
            n_layer: cfg.n_layer,
            d: cfg.n_embd,
            n_head: cfg.n_head,
            n_kv_head: cfg.n_kv_head,
            head_dim: cfg.head_dim(),
            inner: cfg.n_inner(),
            extra_prob: cfg.variant.has_extra_prob(),
            scale: cfg.variant.scale().is_some(),
            resid_mid: !cfg.parallel_residual,
            d_embed: cfg.embed_dim,
            final_norm: cfg.final_norm,
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
            head_dim: d / n_head,
            inner: 4 * d,
            extra_prob: false,
            scale: false,
            resid_mid: true,
            d_embed: d,
            final_norm: true,
        }
    }

    /// The embedding is projected in and out (`hook_project_in`, `hook_project_out`).
    pub fn projected(&self) -> bool {
        self.d_embed != self.d
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Width of the query heads and of z (n_head · head_dim).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim()
    }

    /// Every source, in forward order.
    pub fn sources(&self) -> Vec<Src> {
        let lay = self.arch.hook_layout();
        let mut v = vec![Src::Embed];
        if self.projected() {
            v.push(Src::ProjectIn);
        }
        if lay.pos_embed {
            v.push(Src::PosEmbed);
        }
        for l in 0..self.n_layer {
            v.extend([Src::ResidPre(l), Src::Ln1(l), Src::Qkv(l)]);
            if lay.qk_norm {
                v.push(Src::QkNorm(l));
            }
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
            v.push(Src::Z(l));
            if lay.post_norms {
                v.push(Src::Ln1Post(l));
            }
            v.push(Src::AttnOut(l));
            if self.resid_mid {
                v.push(Src::ResidMid(l));
            }
            v.push(Src::Ln2(l));
            v.push(if lay.gated_mlp {
                Src::GateUp(l)
            } else {
                Src::MlpPre(l)
            });
            v.push(Src::MlpPost(l));
            if lay.post_norms {
                v.push(Src::Ln2Post(l));
            }
            v.extend([Src::MlpOut(l), Src::ResidPost(l)]);
        }
        if self.final_norm {
            v.push(Src::LnFinal);
        }
        if self.projected() {
            v.push(Src::ProjectOut);
        }
        v.push(Src::Logits);
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
            Src::Qkv(_) | Src::QkNorm(_) | Src::RotQk(_) => self.q_dim() + 2 * self.kv_dim(),
            Src::Z(_) => self.q_dim(),
            Src::GateUp(_) => 2 * self.inner,
            Src::MlpPre(_) | Src::MlpPost(_) => self.inner,
            Src::ExtraProb(_) | Src::Scale(_) => self.n_head,
            Src::Embed | Src::ProjectOut => self.d_embed,
            _ => self.d,
        }
    }
}

mod capture;
mod filter;
mod names;
#[cfg(test)]
mod tests;

pub use capture::{split_capture, Geometry};
pub use filter::HookFilter;
pub use names::{check_patterns, describe};
