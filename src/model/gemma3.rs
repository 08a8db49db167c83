//! Gemma 3 text models (Gemma-3-270M, …): weight names, two RoPE tables (full and sliding
//! layers), and the forward pass as a flat list of ops per block in the order of the model's
//! figure: √d-scaled embedding; per block input norm → q|k|v → per-head q/k norms → RoPE →
//! attention (sliding window on sliding layers) → o_proj → post-attention norm → residual add →
//! pre-feedforward norm → GeGLU MLP → post-feedforward norm → residual add; final norm.
//!
//! Gemma's RMSNorm is x / rms(x) · (1 + w) in f32 (transformers `Gemma3RMSNorm`): the (1 + w)
//! is computed once at load, in f32 as transformers does, and uploaded as the norm weight, so
//! the plain RMSNorm kernel applies it. Linear weights are uploaded as stored, so
//! `linear_weights` and `module_weights` report the checkpoint's own tensors.
//! Uses the op vocabulary of `pass`; never kernels or wgpu calls directly.

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

/// One Gemma 3 decoder layer. nn.Linear matrices are stored `[out, in]`; Q = H·Dh, Kv = Hkv·Dh.
struct Block {
    /// input_layernorm, as 1 + w `[D]`.
    input_layernorm: wgpu::Buffer,
    /// q_proj `[Q, D]`, k_proj and v_proj `[Kv, D]`, stacked: `[Q + 2 Kv, D]`.
    qkv_proj: Linear,
    /// q_norm | k_norm, as 1 + w `[2, Dh]`.
    qk_norm: wgpu::Buffer,
    /// o_proj `[D, Q]`.
    o_proj: Linear,
    /// post_attention_layernorm, as 1 + w `[D]`.
    post_attention_layernorm: wgpu::Buffer,
    /// pre_feedforward_layernorm, as 1 + w `[D]`.
    pre_feedforward_layernorm: wgpu::Buffer,
    /// gate_proj and up_proj `[I, D]`, stacked: `[2I, D]`.
    gate_up_proj: Linear,
    /// down_proj `[D, I]`.
    down_proj: Linear,
    /// post_feedforward_layernorm, as 1 + w `[D]`.
    post_feedforward_layernorm: wgpu::Buffer,
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

pub(crate) struct Gemma3 {
    cfg: ModelConfig,
    /// RoPE cos and sin tables `[n_positions, Dh/2]` of the full layers (rope_theta and its
    /// scaling) and of the sliding layers (rope_local_base_freq).
    rope_full: (wgpu::Buffer, wgpu::Buffer),
    rope_local: (wgpu::Buffer, wgpu::Buffer),
    blocks: Vec<Block>,
    norm: wgpu::Buffer,
}

/// A Gemma norm weight `name` of `shape` uploaded as 1 + w (f32, as `Gemma3RMSNorm` computes it).
fn gemma_norm(up: &mut Uploader, names: &[&str], len: usize) -> Result<wgpu::Buffer> {
    let mut all = Vec::with_capacity(names.len() * len);
    for n in names {
        all.extend(up.wf.load(n, &[len])?.iter().map(|w| 1.0 + w));
    }
    up.f32_buffer(names[0], &all)
}

/// A pair of RoPE tables as GPU buffers.
fn rope_buffers(
    up: &mut Uploader,
    cfg: &ModelConfig,
    theta: f32,
    factors: &[f32],
    what: &str,
) -> Result<(wgpu::Buffer, wgpu::Buffer)> {
    let (c, s) = rope_tables(cfg.n_positions, cfg.head_dim(), theta, factors);
    Ok((
        up.ctx
            .storage_init(&format!("rope cos ({what})"), bytemuck::cast_slice(&c))?,
        up.ctx
            .storage_init(&format!("rope sin ({what})"), bytemuck::cast_slice(&s))?,
    ))
}

/// Upload a Gemma 3 checkpoint (`layers.{l}.…`, `embed_tokens`, `norm`; the `model.` prefix
/// already resolved by the weight source) for `cfg`.
///
/// # Errors
/// A missing tensor or a wrong shape; a checkpoint holding vision-tower or projector tensors
/// (an image-text Gemma 3: only its text model could run), naming one of them.
pub(crate) fn load(cfg: &ModelConfig, up: &mut Uploader) -> Result<Box<dyn Architecture>> {
    // An image-text checkpoint (`Gemma3ForConditionalGeneration`) also holds `vision_tower.` and
    // `multi_modal_projector.` tensors: they only act on image inputs, which are not supported,
    // so they are not read; on text the language model computes what it computes alone.
    let (d, inner, qd, kvd, hd) = (
        cfg.n_embd,
        cfg.n_inner(),
        cfg.q_dim(),
        cfg.kv_dim(),
        cfg.head_dim(),
    );
    let mut blocks = Vec::with_capacity(cfg.n_layer);
    for l in 0..cfg.n_layer {
        let n = |s: &str| format!("layers.{l}.{s}.weight");
        let norm = |up: &mut Uploader, s: &str| gemma_norm(up, &[&n(s)], d);
        blocks.push(Block {
            input_layernorm: norm(up, "input_layernorm")?,
            qkv_proj: up.stacked(
                &[
                    (&n("self_attn.q_proj"), qd),
                    (&n("self_attn.k_proj"), kvd),
                    (&n("self_attn.v_proj"), kvd),
                ],
                false,
                d,
                InputWidth::D,
            )?,
            qk_norm: gemma_norm(up, &[&n("self_attn.q_norm"), &n("self_attn.k_norm")], hd)?,
            o_proj: up.linear(
                &n("self_attn.o_proj"),
                None,
                (qd, d),
                true,
                InputWidth::Heads,
            )?,
            post_attention_layernorm: norm(up, "post_attention_layernorm")?,
            pre_feedforward_layernorm: norm(up, "pre_feedforward_layernorm")?,
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
            post_feedforward_layernorm: norm(up, "post_feedforward_layernorm")?,
        });
    }
    let rope_full = rope_buffers(up, cfg, cfg.rope_theta, &cfg.rope_freq_factors, "full")?;
    let local = cfg.attn.rope_local_base_freq.unwrap_or(cfg.rope_theta);
    let rope_local = rope_buffers(up, cfg, local, &[], "sliding")?;
    Ok(Box::new(Gemma3 {
        cfg: cfg.clone(),
        rope_full,
        rope_local,
        blocks,
        norm: gemma_norm(up, &["norm.weight"], d)?,
    }))
}

impl Architecture for Gemma3 {
    /// The token embedding times √d (transformers multiplies by `hidden_size**0.5` as an f32):
    /// `hook_embed` is the scaled embedding, the residual stream's first value.
    fn embed(&self, p: &mut Pass, a: &Acts) -> Result<()> {
        p.embed(a, None);
        p.scale(&a.resid, (self.cfg.n_embd as f64).sqrt() as f32);
        p.hook_point(Src::Embed, &a.resid)
    }

    fn block(&self, p: &mut Pass, a: &Acts, l: usize) -> Result<()> {
        let w = &self.blocks[l];
        let rope = match self.cfg.window(l) {
            Some(_) => &self.rope_local,
            None => &self.rope_full,
        };
        p.hook_point(Src::ResidPre(l), &a.resid)?;
        p.rmsnorm(&a.resid, &w.input_layernorm, &a.ln1);
        p.hook_point(Src::Ln1(l), &a.ln1)?;
        p.linear(&a.ln1, &w.qkv_proj, &a.qkv);
        p.hook_point(Src::Qkv(l), &a.qkv)?;
        p.head_norm(&a.qkv, &w.qk_norm);
        p.hook_point(Src::QkNorm(l), &a.qkv)?;
        p.rope(&a.qkv, rope);
        p.hook_point(Src::RotQk(l), &a.qkv)?;
        p.attention(l, &a.ln1, a, &Default::default())?;
        p.hook_point(Src::Z(l), &a.z)?;
        p.linear(&a.z, &w.o_proj, &a.attn_out);
        p.rmsnorm(&a.attn_out, &w.post_attention_layernorm, &a.branch);
        p.hook_point(Src::Ln1Post(l), &a.branch)?;
        p.hook_point(Src::AttnOut(l), &a.branch)?;
        p.add(&a.resid, &a.branch, &a.resid_mid);
        p.hook_point(Src::ResidMid(l), &a.resid_mid)?;
        p.rmsnorm(&a.resid_mid, &w.pre_feedforward_layernorm, &a.ln2);
        p.hook_point(Src::Ln2(l), &a.ln2)?;
        p.linear(&a.ln2, &w.gate_up_proj, &a.mlp_pre);
        p.hook_point(Src::GateUp(l), &a.mlp_pre)?;
        p.glu_down(
            (Src::MlpPost(l), true),
            &a.mlp_pre,
            &a.mlp_post,
            &w.down_proj,
            Src::MlpOut(l),
            (None, &a.mlp_out, &a.mlp_out),
        )?;
        p.rmsnorm(&a.mlp_out, &w.post_feedforward_layernorm, &a.branch);
        p.hook_point(Src::Ln2Post(l), &a.branch)?;
        p.hook_point(Src::MlpOut(l), &a.branch)?;
        p.add(&a.resid_mid, &a.branch, &a.resid_next);
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
