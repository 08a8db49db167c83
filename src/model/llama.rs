//! Llama-family models (SmolLM2, TinyLlama, …; Qwen2 is this block with q/k/v biases, `qkv_bias`;
//! Qwen3 with per-head q/k norms, `attn.qk_norm`, and q width n_head·head_dim): weight names, RoPE tables, and the forward pass
//! as a flat list of ops per block in the order of the model's figure. Uses the op vocabulary of
//! `pass`; never kernels or wgpu calls directly.

use anyhow::Result;

use super::acts::Acts;
use super::gated;
use super::pass::Pass;
use super::upload::{InputWidth, Linear, Uploader};
use super::{Architecture, LinearWeight};
use crate::analysis::ModuleWeight;
use crate::config::ModelConfig;
use crate::hooks::Src;
use crate::rope::rope_tables;
use crate::weights::WeightSource;

/// One Llama decoder layer. nn.Linear matrices are stored `[out, in]`.
struct Block {
    /// input_layernorm `[D]`.
    input_layernorm: wgpu::Buffer,
    /// q_proj `[Q, D]` (Q = H·Dh, = D but in Qwen3), k_proj and v_proj `[Dkv, D]`, stacked:
    /// `[Q + 2 Dkv, D]`.
    qkv_proj: Linear,
    /// q_norm | k_norm `[2, Dh]` (Qwen3).
    qk_norm: Option<wgpu::Buffer>,
    /// o_proj `[D, Q]`.
    o_proj: Linear,
    /// post_attention_layernorm `[D]`.
    post_attention_layernorm: wgpu::Buffer,
    /// gate_proj and up_proj `[I, D]`, stacked: `[2I, D]`.
    gate_up_proj: Linear,
    /// down_proj `[D, I]`.
    down_proj: Linear,
}

impl Block {
    fn linears(&self) -> gated::Linears<'_> {
        [
            &self.qkv_proj,
            &self.o_proj,
            &self.gate_up_proj,
            &self.down_proj,
        ]
    }
}

pub(crate) struct Llama {
    cfg: ModelConfig,
    /// RoPE cos and sin tables `[n_positions, Dh/2]`.
    rope: (wgpu::Buffer, wgpu::Buffer),
    blocks: Vec<Block>,
    norm: wgpu::Buffer,
}

/// Upload a Llama checkpoint (`layers.{l}.…`, `embed_tokens`, `norm`; the `model.` prefix and
/// GGUF names already resolved by the weight source) for `cfg`.
pub(crate) fn load(cfg: &ModelConfig, up: &mut Uploader) -> Result<Box<dyn Architecture>> {
    let (d, inner, kvd, qd) = (cfg.n_embd, cfg.n_inner(), cfg.kv_dim(), cfg.q_dim());
    // z is d wide unless head_dim is explicit (then its channels are not residual channels).
    let z_width = if qd == d {
        InputWidth::D
    } else {
        InputWidth::Heads
    };
    let mut blocks = Vec::with_capacity(cfg.n_layer);
    for l in 0..cfg.n_layer {
        let n = |s: &str| format!("layers.{l}.{s}.weight");
        blocks.push(Block {
            input_layernorm: up.vector(&n("input_layernorm"), &[d])?,
            qkv_proj: up.stacked(
                &[
                    (&n("self_attn.q_proj"), qd),
                    (&n("self_attn.k_proj"), kvd),
                    (&n("self_attn.v_proj"), kvd),
                ],
                cfg.qkv_bias,
                d,
                InputWidth::D,
            )?,
            qk_norm: if cfg.attn.qk_norm {
                let mut w = up
                    .wf
                    .load(&n("self_attn.q_norm"), &[cfg.head_dim()])?
                    .into_owned();
                w.extend_from_slice(&up.wf.load(&n("self_attn.k_norm"), &[cfg.head_dim()])?);
                Some(up.f32_buffer(&n("self_attn.q_norm"), &w)?)
            } else {
                None
            },
            o_proj: up.linear(&n("self_attn.o_proj"), None, (qd, d), true, z_width)?,
            post_attention_layernorm: up.vector(&n("post_attention_layernorm"), &[d])?,
            gate_up_proj: up.stacked(
                &[(&n("mlp.gate_proj"), inner), (&n("mlp.up_proj"), inner)],
                false,
                d,
                InputWidth::D,
            )?,
            down_proj: up.linear(
                &n("mlp.down_proj"),
                None,
                (inner, d),
                true,
                InputWidth::Inner,
            )?,
        });
    }
    let (c, s) = rope_tables(
        cfg.n_positions,
        cfg.head_dim(),
        cfg.rope_theta,
        &cfg.rope_freq_factors,
    );
    let rope = (
        up.ctx.storage_init("rope cos", bytemuck::cast_slice(&c))?,
        up.ctx.storage_init("rope sin", bytemuck::cast_slice(&s))?,
    );
    Ok(Box::new(Llama {
        cfg: cfg.clone(),
        rope,
        blocks,
        norm: up.vector("norm.weight", &[d])?,
    }))
}

impl Architecture for Llama {
    fn embed(&self, p: &mut Pass, a: &Acts) -> Result<()> {
        p.embed(a, None);
        p.hook_point(Src::Embed, &a.tok_emb)
    }

    fn block(&self, p: &mut Pass, a: &Acts, l: usize) -> Result<()> {
        let w = &self.blocks[l];
        p.hook_point(Src::ResidPre(l), &a.resid)?;
        p.rmsnorm(&a.resid, &w.input_layernorm, &a.ln1);
        p.hook_point(Src::Ln1(l), &a.ln1)?;
        p.linear(&a.ln1, &w.qkv_proj, &a.qkv);
        p.hook_point(Src::Qkv(l), &a.qkv)?;
        if let Some(qk) = &w.qk_norm {
            p.head_norm(&a.qkv, qk);
            p.hook_point(Src::QkNorm(l), &a.qkv)?;
        }
        p.rope(&a.qkv, &self.rope);
        p.hook_point(Src::RotQk(l), &a.qkv)?;
        p.attention(l, &a.ln1, a, &Default::default())?;
        p.hook_point(Src::Z(l), &a.z)?;
        p.residual_linear(
            Src::AttnOut(l),
            &a.z,
            &w.o_proj,
            (&a.resid, &a.attn_out, &a.resid_mid),
        )?;
        p.hook_point(Src::ResidMid(l), &a.resid_mid)?;
        p.rmsnorm(&a.resid_mid, &w.post_attention_layernorm, &a.ln2);
        p.hook_point(Src::Ln2(l), &a.ln2)?;
        p.linear(&a.ln2, &w.gate_up_proj, &a.mlp_pre);
        p.hook_point(Src::GateUp(l), &a.mlp_pre)?;
        p.glu_down(
            (Src::MlpPost(l), false),
            &a.mlp_pre,
            &a.mlp_post,
            &w.down_proj,
            Src::MlpOut(l),
            (Some(&a.resid_mid), &a.mlp_out, &a.resid_next),
        )?;
        p.hook_point(Src::ResidPost(l), &a.resid_next)
    }

    fn final_norm(&self, p: &mut Pass, a: &Acts) -> Result<()> {
        p.rmsnorm(&a.resid, &self.norm, &a.ln_final);
        p.hook_point(Src::LnFinal, &a.ln_final)
    }

    fn linear_weights(&self) -> Vec<LinearWeight> {
        gated::linear_weights(&self.cfg, self.blocks.iter().map(Block::linears))
    }

    fn block_matmuls(&self) -> Vec<(&'static str, usize, usize, bool)> {
        gated::block_matmuls(self.blocks.first().map(Block::linears))
    }

    fn module_weights(&self, wf: &dyn WeightSource, l: usize) -> Result<Vec<ModuleWeight>> {
        gated::module_weights(wf, l)
    }
}
