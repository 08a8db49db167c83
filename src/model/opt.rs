//! OPT (the LLM.int8() and massive-activation papers' model; transformers `modeling_opt.py`):
//! weight names and the forward pass as a flat list of ops per block in the order of the model's
//! figure, pre-LN or post-LN (`ModelConfig::post_norm`). Uses the op vocabulary of `pass`;
//! never kernels or wgpu calls directly.
//!
//! Where each hook sits (x = hook_resid_pre):
//!
//! | hook | pre-LN (`do_layer_norm_before`) | post-LN |
//! |---|---|---|
//! | `ln1.hook_normalized` | self_attn_layer_norm(x), attention's input | self_attn_layer_norm(x + attn_out) |
//! | `attn.hook_q/k/v` | q/k/v_proj of ln1 (q before OPT's head_dim^-0.5) | q/k/v_proj of x |
//! | `hook_resid_mid` | x + attn_out | = ln1 (the stream the MLP reads and adds to) |
//! | `ln2.hook_normalized` | final_layer_norm(resid_mid), the MLP's input | final_layer_norm(resid_mid + mlp_out) |
//! | `mlp.hook_pre` / `hook_post` | fc1 out / its activation | same, fc1 reading resid_mid |
//! | `hook_resid_post` | resid_mid + mlp_out | = ln2 (the layer's output) |
//!
//! Around the blocks: `hook_embed` is embed_tokens' rows (`word_embed_proj_dim` wide), then
//! `hook_project_in` (project_in of them, when `word_embed_proj_dim` ≠ hidden_size),
//! `hook_pos_embed` (row p + 2 of embed_positions); at the end `ln_final.hook_normalized`
//! (decoder.final_layer_norm, pre-LN models only) and `hook_project_out` (the LM head's input).

use anyhow::Result;

use super::acts::Acts;
use super::pass::Pass;
use super::upload::{InputWidth, Linear, Uploader};
use super::{Architecture, LinearWeight};
use crate::analysis::{ModuleKind, ModuleWeight};
use crate::config::ModelConfig;
use crate::hooks::Src;
use crate::weights::WeightSource;

/// LayerNorm weight and bias, `[D]` each (ones and zeros without `layer_norm_elementwise_affine`).
type Norm = (wgpu::Buffer, wgpu::Buffer);

/// One OPT decoder layer. nn.Linear matrices are stored `[out, in]`.
struct Block {
    self_attn_layer_norm: Norm,
    /// q_proj, k_proj, v_proj `[D, D]` (+ biases) stacked: `[3D, D]`.
    qkv_proj: Linear,
    /// out_proj `[D, D]` (+ bias).
    out_proj: Linear,
    final_layer_norm: Norm,
    /// fc1 `[I, D]` (+ bias).
    fc1: Linear,
    /// fc2 `[D, I]` (+ bias): the MLP's down projection.
    fc2: Linear,
}

pub(crate) struct Opt {
    cfg: ModelConfig,
    /// embed_positions `[n_positions + 2, D]`: position p is row p + 2.
    embed_positions: wgpu::Buffer,
    /// project_in `[D, E]` and project_out `[E, D]` (no bias) when E = word_embed_proj_dim ≠ D.
    project: Option<(Linear, Linear)>,
    blocks: Vec<Block>,
    /// decoder.final_layer_norm (pre-LN models without `_remove_final_layer_norm`).
    final_layer_norm: Option<Norm>,
}

/// The module names of one layer with their roles for the weight-outlier analysis: fc2 is the
/// "down projection" (the MLP's output, `[I, D]`), fc1 the ungated input projection.
const MODULES: [(&str, ModuleKind); 6] = [
    ("self_attn.q_proj", ModuleKind::Q),
    ("self_attn.k_proj", ModuleKind::K),
    ("self_attn.v_proj", ModuleKind::V),
    ("self_attn.out_proj", ModuleKind::O),
    ("fc1", ModuleKind::Fc),
    ("fc2", ModuleKind::Down),
];

/// Upload an OPT checkpoint (`layers.{l}.…`, `embed_tokens`, `embed_positions`,
/// `final_layer_norm`, `project_in/out`; the `model.decoder.` prefix already resolved) for `cfg`.
pub(crate) fn load(cfg: &ModelConfig, up: &mut Uploader) -> Result<Box<dyn Architecture>> {
    let (d, inner, e) = (cfg.n_embd, cfg.n_inner(), cfg.embed_dim);
    let norm = |up: &mut Uploader, n: &str| -> Result<Norm> {
        if cfg.norm_affine {
            Ok((
                up.vector(&format!("{n}.weight"), &[d])?,
                up.vector(&format!("{n}.bias"), &[d])?,
            ))
        } else {
            unused(up, &format!("{n}.weight"), "layer_norm_elementwise_affine")?;
            unused(up, &format!("{n}.bias"), "layer_norm_elementwise_affine")?;
            Ok((
                up.f32_buffer(&format!("{n} (no affine: ones)"), &vec![1.0; d])?,
                up.f32_buffer(&format!("{n} (no affine: zeros)"), &vec![0.0; d])?,
            ))
        }
    };
    let bias = cfg.linear_bias;
    let lin = |up: &mut Uploader, n: &str, kn, input| {
        let b = format!("{n}.bias");
        if !bias {
            unused(up, &b, "enable_bias")?;
        }
        up.linear(&format!("{n}.weight"), bias.then_some(&*b), kn, true, input)
    };
    let mut blocks = Vec::with_capacity(cfg.n_layer);
    for l in 0..cfg.n_layer {
        let n = |s: &str| format!("layers.{l}.{s}");
        let w = |s: &str| format!("layers.{l}.self_attn.{s}.weight");
        let (q, k, v) = (w("q_proj"), w("k_proj"), w("v_proj"));
        blocks.push(Block {
            self_attn_layer_norm: norm(up, &n("self_attn_layer_norm"))?,
            qkv_proj: up.stacked(&[(&q, d), (&k, d), (&v, d)], bias, d, InputWidth::D)?,
            out_proj: lin(up, &n("self_attn.out_proj"), (d, d), InputWidth::D)?,
            final_layer_norm: norm(up, &n("final_layer_norm"))?,
            fc1: lin(up, &n("fc1"), (d, inner), InputWidth::D)?,
            fc2: lin(up, &n("fc2"), (inner, d), InputWidth::Inner)?,
        });
    }
    let project = if e != d {
        let p_in = up.linear("project_in.weight", None, (e, d), true, InputWidth::D)?;
        let p_out = up.linear("project_out.weight", None, (d, e), true, InputWidth::D)?;
        Some((p_in, p_out))
    } else {
        None
    };
    let rows = cfg.n_positions + cfg.pos_offset;
    Ok(Box::new(Opt {
        cfg: cfg.clone(),
        embed_positions: up.vector("embed_positions.weight", &[rows, d])?,
        project,
        blocks,
        final_layer_norm: match cfg.final_norm {
            true => Some(norm(up, "final_layer_norm")?),
            false => None,
        },
    }))
}

/// A tensor the config says the model does not have (transformers would not load it) is refused
/// rather than silently left unused.
fn unused(up: &Uploader, name: &str, field: &str) -> Result<()> {
    if up.contains(name) {
        anyhow::bail!(
            "{}: holds '{name}' but the config sets {field} = false, so transformers would not use it",
            up.wf.path().display()
        );
    }
    Ok(())
}

impl Architecture for Opt {
    fn embed(&self, p: &mut Pass, a: &Acts) -> Result<()> {
        let off = self.cfg.pos_offset;
        match &self.project {
            None => {
                p.embed_offset(a, &self.embed_positions, off);
                p.hook_point(Src::Embed, &a.tok_emb)?;
                p.hook_point(Src::PosEmbed, &a.pos_emb)
            }
            Some((project_in, _)) => {
                p.embed_tokens_only(a);
                p.hook_point(Src::Embed, &a.tok_emb)?;
                p.positions_only(a, &self.embed_positions, off);
                p.hook_point(Src::PosEmbed, &a.pos_emb)?;
                // resid = project_in(embed) + positions; project_in's output is hook_project_in.
                let resid = Some((&a.pos_emb, &a.resid));
                p.projection(Src::ProjectIn, &a.tok_emb, project_in, &a.ln1, resid)
            }
        }
    }

    fn block(&self, p: &mut Pass, a: &Acts, l: usize) -> Result<()> {
        if self.cfg.post_norm {
            return self.block_post_ln(p, a, l);
        }
        let w = &self.blocks[l];
        p.hook_point(Src::ResidPre(l), &a.resid)?;
        p.layernorm(&a.resid, &w.self_attn_layer_norm, &a.ln1);
        p.hook_point(Src::Ln1(l), &a.ln1)?;
        p.linear(&a.ln1, &w.qkv_proj, &a.qkv);
        p.hook_point(Src::Qkv(l), &a.qkv)?;
        p.attention(l, &a.ln1, a, &Default::default())?;
        p.hook_point(Src::Z(l), &a.z)?;
        let attn = (&a.resid, &a.attn_out, &a.resid_mid);
        p.residual_linear(Src::AttnOut(l), &a.z, &w.out_proj, attn)?;
        p.hook_point(Src::ResidMid(l), &a.resid_mid)?;
        p.layernorm(&a.resid_mid, &w.final_layer_norm, &a.ln2);
        p.hook_point(Src::Ln2(l), &a.ln2)?;
        self.mlp(p, a, l, &a.ln2)?;
        let mlp = (&a.resid_mid, &a.mlp_out, &a.resid_next);
        p.residual_linear(Src::MlpOut(l), &a.mlp_post, &w.fc2, mlp)?;
        p.hook_point(Src::ResidPost(l), &a.resid_next)
    }

    fn final_norm(&self, p: &mut Pass, a: &Acts) -> Result<()> {
        // The LM head reads a.ln_final: the final norm's output, or project_out's.
        let x = match &self.final_layer_norm {
            Some(n) => {
                let out = if self.project.is_some() {
                    &a.ln2
                } else {
                    &a.ln_final
                };
                p.layernorm(&a.resid, n, out);
                p.hook_point(Src::LnFinal, out)?;
                out
            }
            None => &a.resid,
        };
        match &self.project {
            Some((_, project_out)) => {
                p.projection(Src::ProjectOut, x, project_out, &a.ln_final, None)
            }
            None => {
                if self.final_layer_norm.is_none() {
                    p.copy_rows(x, &a.ln_final, self.cfg.n_embd);
                }
                Ok(())
            }
        }
    }

    fn linear_weights(&self) -> Vec<LinearWeight> {
        let d = self.cfg.n_embd;
        let mut out = Vec::new();
        for (l, w) in self.blocks.iter().enumerate() {
            let n = |s: &str| format!("model.decoder.layers.{l}.{s}.weight");
            let part = LinearWeight::part;
            out.push(part(n("self_attn.q_proj"), &w.qkv_proj, 0, d));
            out.push(part(n("self_attn.k_proj"), &w.qkv_proj, d * d, d));
            out.push(part(n("self_attn.v_proj"), &w.qkv_proj, 2 * d * d, d));
            out.push(LinearWeight::whole(n("self_attn.out_proj"), &w.out_proj));
            out.push(LinearWeight::whole(n("fc1"), &w.fc1));
            out.push(LinearWeight::whole(n("fc2"), &w.fc2));
        }
        out
    }

    fn block_matmuls(&self) -> Vec<(&'static str, usize, usize, bool)> {
        let Some(w) = self.blocks.first() else {
            return Vec::new();
        };
        [
            ("qkv", &w.qkv_proj),
            ("attn out", &w.out_proj),
            ("mlp up", &w.fc1),
            ("mlp down", &w.fc2),
        ]
        .map(|(s, l)| (s, l.n, l.k, l.b_t))
        .to_vec()
    }

    fn module_weights(&self, wf: &dyn WeightSource, l: usize) -> Result<Vec<ModuleWeight>> {
        let mut out = Vec::new();
        for (name, kind) in MODULES {
            // nn.Linear stores [out, in]: transposed to [in, out].
            let w = wf.tensor(&format!("layers.{l}.{name}.weight"))?;
            out.push(ModuleWeight {
                layer: l,
                kind,
                weight: w.transposed(),
            });
        }
        Ok(out)
    }
}

impl Opt {
    /// fc1 → activation (ReLU, or GELU) on `x`, hooks `mlp.hook_pre` and `mlp.hook_post`.
    fn mlp(&self, p: &mut Pass, a: &Acts, l: usize, x: &wgpu::Buffer) -> Result<()> {
        let w = &self.blocks[l];
        let bufs = (&a.mlp_pre, &a.mlp_post);
        if self.cfg.relu {
            p.linear_relu(Src::MlpPre(l), x, &w.fc1, bufs)?;
        } else {
            p.linear_gelu(Src::MlpPre(l), x, &w.fc1, bufs, self.cfg.gelu_exact)?;
        }
        p.hook_point(Src::MlpPost(l), &a.mlp_post)
    }

    /// A post-LN block's linear input that is also its residual stream: a copy in `scratch`
    /// when linear layers fake-quantize their input in place (the compression study).
    fn linear_input<'b>(
        &self,
        p: &mut Pass,
        x: &'b wgpu::Buffer,
        scratch: &'b wgpu::Buffer,
    ) -> &'b wgpu::Buffer {
        if p.quantizes_inputs() {
            p.copy_rows(x, scratch, self.cfg.n_embd);
            scratch
        } else {
            x
        }
    }

    /// A post-LN block (OPT-350m): x = LN1(x + attn(x)), x = LN2(x + mlp(x)). The sums go to
    /// `resid_mid` and `ln2` (scratch here); the normalized streams are ln1 = resid_mid and
    /// ln2 = resid_post (see the module table).
    fn block_post_ln(&self, p: &mut Pass, a: &Acts, l: usize) -> Result<()> {
        let w = &self.blocks[l];
        p.hook_point(Src::ResidPre(l), &a.resid)?;
        let x = self.linear_input(p, &a.resid, &a.ln2);
        p.linear(x, &w.qkv_proj, &a.qkv);
        p.hook_point(Src::Qkv(l), &a.qkv)?;
        p.attention(l, x, a, &Default::default())?;
        p.hook_point(Src::Z(l), &a.z)?;
        let attn = (&a.resid, &a.attn_out, &a.resid_mid);
        p.residual_linear(Src::AttnOut(l), &a.z, &w.out_proj, attn)?;
        p.layernorm(&a.resid_mid, &w.self_attn_layer_norm, &a.ln1);
        p.hook_point(Src::Ln1(l), &a.ln1)?;
        p.hook_point(Src::ResidMid(l), &a.ln1)?;
        let x = self.linear_input(p, &a.ln1, &a.ln2);
        self.mlp(p, a, l, x)?;
        let mlp = (&a.ln1, &a.mlp_out, &a.ln2);
        p.residual_linear(Src::MlpOut(l), &a.mlp_post, &w.fc2, mlp)?;
        p.layernorm(&a.ln2, &w.final_layer_norm, &a.resid_next);
        p.hook_point(Src::Ln2(l), &a.resid_next)?;
        p.hook_point(Src::ResidPost(l), &a.resid_next)
    }
}
