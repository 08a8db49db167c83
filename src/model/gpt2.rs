//! GPT-2 (and the paper's nanoGPT attention variants): weight names, and the forward pass as a
//! flat list of ops per block in the order of the model's figure. Uses the op vocabulary of
//! `pass`; never kernels or wgpu calls directly.

use anyhow::Result;

use super::acts::Acts;
use super::attention::AttnExtras;
use super::pass::Pass;
use super::upload::{InputWidth, Linear, Uploader};
use super::{Architecture, LinearWeight};
use crate::analysis::ModuleWeight;
use crate::config::ModelConfig;
use crate::hooks::Src;
use crate::weights::WeightSource;

/// LayerNorm weight and bias, `[D]` each.
type Norm = (wgpu::Buffer, wgpu::Buffer);

/// One GPT-2 block. Conv1D matrices are stored `[in, out]`.
struct Block {
    ln_1: Norm,
    /// c_attn `[D, 3D]` + bias: q | k | v.
    c_attn: Linear,
    /// attn.c_proj `[D, D]` + bias.
    c_proj: Linear,
    ln_2: Norm,
    /// mlp.c_fc `[D, I]` + bias.
    c_fc: Linear,
    /// mlp.c_proj `[I, D]` + bias.
    mlp_c_proj: Linear,
    /// The attention variant's tensors (k′, v′, per-head factor).
    attn: AttnExtras,
}

pub(crate) struct Gpt2 {
    cfg: ModelConfig,
    /// wpe `[n_positions, D]`: learned positions.
    wpe: wgpu::Buffer,
    blocks: Vec<Block>,
    ln_f: Norm,
}

/// Upload a GPT-2 checkpoint (`h.{l}.…`, `wte`, `wpe`, `ln_f`; prefixes already resolved by the
/// weight source) for `cfg`.
pub(crate) fn load(cfg: &ModelConfig, up: &mut Uploader) -> Result<Box<dyn Architecture>> {
    let (d, inner) = (cfg.n_embd, cfg.n_inner());
    let norm = |up: &mut Uploader, n: &str| -> Result<Norm> {
        Ok((
            up.vector(&format!("{n}.weight"), &[d])?,
            up.vector(&format!("{n}.bias"), &[d])?,
        ))
    };
    let lin = |up: &mut Uploader, n: &str, kn, input| {
        up.linear(
            &format!("{n}.weight"),
            Some(&format!("{n}.bias")),
            kn,
            false,
            input,
        )
    };
    let mut blocks = Vec::with_capacity(cfg.n_layer);
    for l in 0..cfg.n_layer {
        let n = |s: &str| format!("h.{l}.{s}");
        let attn = AttnExtras::load(up, cfg, &n("attn."))?;
        blocks.push(Block {
            attn,
            ln_1: norm(up, &n("ln_1"))?,
            c_attn: lin(up, &n("attn.c_attn"), (d, 3 * d), InputWidth::D)?,
            c_proj: lin(up, &n("attn.c_proj"), (d, d), InputWidth::D)?,
            ln_2: norm(up, &n("ln_2"))?,
            c_fc: lin(up, &n("mlp.c_fc"), (d, inner), InputWidth::D)?,
            mlp_c_proj: lin(up, &n("mlp.c_proj"), (inner, d), InputWidth::Inner)?,
        });
    }
    Ok(Box::new(Gpt2 {
        cfg: cfg.clone(),
        wpe: up.vector("wpe.weight", &[cfg.n_positions, d])?,
        blocks,
        ln_f: norm(up, "ln_f")?,
    }))
}

impl Architecture for Gpt2 {
    fn embed(&self, p: &mut Pass, a: &Acts) -> Result<()> {
        p.embed(a, Some(&self.wpe));
        p.hook_point(Src::Embed, &a.tok_emb)?;
        p.hook_point(Src::PosEmbed, &a.pos_emb)
    }

    fn block(&self, p: &mut Pass, a: &Acts, l: usize) -> Result<()> {
        let w = &self.blocks[l];
        p.hook_point(Src::ResidPre(l), &a.resid)?;
        p.layernorm(&a.resid, &w.ln_1, &a.ln1);
        p.hook_point(Src::Ln1(l), &a.ln1)?;
        p.linear(&a.ln1, &w.c_attn, &a.qkv);
        p.hook_point(Src::Qkv(l), &a.qkv)?;
        p.attention(l, &a.ln1, a, &w.attn)?;
        p.hook_point(Src::Z(l), &a.z)?;
        p.residual_linear(
            Src::AttnOut(l),
            &a.z,
            &w.c_proj,
            (&a.resid, &a.attn_out, &a.resid_mid),
        )?;
        p.hook_point(Src::ResidMid(l), &a.resid_mid)?;
        p.layernorm(&a.resid_mid, &w.ln_2, &a.ln2);
        p.hook_point(Src::Ln2(l), &a.ln2)?;
        p.linear_gelu(
            Src::MlpPre(l),
            &a.ln2,
            &w.c_fc,
            (&a.mlp_pre, &a.mlp_post),
            self.cfg.gelu_exact,
        )?;
        p.hook_point(Src::MlpPost(l), &a.mlp_post)?;
        p.residual_linear(
            Src::MlpOut(l),
            &a.mlp_post,
            &w.mlp_c_proj,
            (&a.resid_mid, &a.mlp_out, &a.resid_next),
        )?;
        p.hook_point(Src::ResidPost(l), &a.resid_next)
    }

    fn final_norm(&self, p: &mut Pass, a: &Acts) -> Result<()> {
        p.layernorm(&a.resid, &self.ln_f, &a.ln_final);
        p.hook_point(Src::LnFinal, &a.ln_final)
    }

    fn linear_weights(&self) -> Vec<LinearWeight> {
        let mut out = Vec::new();
        for (l, w) in self.blocks.iter().enumerate() {
            let n = |s: &str| format!("h.{l}.{s}.weight");
            out.push(LinearWeight::whole(n("attn.c_attn"), &w.c_attn));
            out.push(LinearWeight::whole(n("attn.c_proj"), &w.c_proj));
            out.push(LinearWeight::whole(n("mlp.c_fc"), &w.c_fc));
            out.push(LinearWeight::whole(n("mlp.c_proj"), &w.mlp_c_proj));
            if let (Some((sw, _)), Some((m, _))) = (&w.attn.scale, self.cfg.variant.scale()) {
                out.push(LinearWeight::whole(n(&format!("attn.{m}")), sw));
            }
        }
        out
    }

    fn block_matmuls(&self) -> Vec<(&'static str, usize, usize, bool)> {
        let Some(w) = self.blocks.first() else {
            return Vec::new();
        };
        [
            ("qkv", &w.c_attn),
            ("attn out", &w.c_proj),
            ("mlp up", &w.c_fc),
            ("mlp down", &w.mlp_c_proj),
        ]
        .map(|(s, l)| (s, l.n, l.k, l.b_t))
        .to_vec()
    }

    fn module_weights(&self, wf: &dyn WeightSource, l: usize) -> Result<Vec<ModuleWeight>> {
        crate::analysis::weights::gpt2_layer_weights(l, |n| wf.tensor(n).ok())
    }
}
