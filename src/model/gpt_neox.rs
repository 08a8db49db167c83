//! GPT-NeoX (Pythia): weight names, the per-head q|k|v reordered at load, partial RoPE tables,
//! and the forward pass as a flat list of ops per block in the order of the model's figure,
//! parallel (`x + attn(ln1(x)) + mlp(ln2(x))`) or sequential residual. Uses the op vocabulary
//! of `pass`; never kernels or wgpu calls directly.

use anyhow::{bail, Result};

use super::acts::Acts;
use super::pass::Pass;
use super::upload::{InputWidth, Linear, Uploader};
use super::{Architecture, LinearWeight};
use crate::analysis::{ModuleKind, ModuleWeight};
use crate::config::{neox_qkv_rows, ModelConfig};
use crate::hooks::Src;
use crate::rope::rope_tables;
use crate::tensor::Tensor;
use crate::weights::WeightSource;

/// LayerNorm weight and bias, `[D]` each.
type Norm = (wgpu::Buffer, wgpu::Buffer);

/// One GPT-NeoX layer. nn.Linear matrices are stored `[out, in]`.
struct Block {
    input_layernorm: Norm,
    /// attention.query_key_value `[3D, D]` (+ bias), its rows reordered from per head
    /// (`[h0: q k v, h1: q k v, …]`) to q | k | v (see [`neox_qkv_rows`]).
    query_key_value: Linear,
    /// attention.dense `[D, D]` (+ bias).
    dense: Linear,
    post_attention_layernorm: Norm,
    /// mlp.dense_h_to_4h `[I, D]` + bias.
    dense_h_to_4h: Linear,
    /// mlp.dense_4h_to_h `[D, I]` + bias: the MLP's down projection.
    dense_4h_to_h: Linear,
}

pub(crate) struct GptNeox {
    cfg: ModelConfig,
    /// Partial RoPE cos and sin tables `[n_positions, rope_dims/2]`.
    rope: (wgpu::Buffer, wgpu::Buffer),
    blocks: Vec<Block>,
    final_layer_norm: Norm,
}

/// Upload a GPT-NeoX checkpoint (`layers.{l}.…`, `embed_in`, `final_layer_norm`; the
/// `gpt_neox.` prefix already resolved by the weight source) for `cfg`.
pub(crate) fn load(cfg: &ModelConfig, up: &mut Uploader) -> Result<Box<dyn Architecture>> {
    let (d, inner) = (cfg.n_embd, cfg.n_inner());
    let bias = cfg.qkv_bias;
    let norm = |up: &mut Uploader, n: &str| -> Result<Norm> {
        Ok((
            up.vector(&format!("{n}.weight"), &[d])?,
            up.vector(&format!("{n}.bias"), &[d])?,
        ))
    };
    let rows = neox_qkv_rows(cfg.n_head, cfg.head_dim());
    let mut blocks = Vec::with_capacity(cfg.n_layer);
    for l in 0..cfg.n_layer {
        let n = |s: &str| format!("layers.{l}.{s}");
        let lin = |up: &mut Uploader, s: &str, has_bias: bool, kn, input| {
            let b = has_bias.then(|| n(&format!("{s}.bias")));
            up.linear(&n(&format!("{s}.weight")), b.as_deref(), kn, true, input)
        };
        let qkv_bias = bias.then(|| n("attention.query_key_value.bias"));
        blocks.push(Block {
            input_layernorm: norm(up, &n("input_layernorm"))?,
            query_key_value: up.permuted(
                &n("attention.query_key_value.weight"),
                qkv_bias.as_deref(),
                (d, 3 * d),
                &rows,
                InputWidth::D,
            )?,
            dense: lin(up, "attention.dense", bias, (d, d), InputWidth::D)?,
            post_attention_layernorm: norm(up, &n("post_attention_layernorm"))?,
            dense_h_to_4h: lin(up, "mlp.dense_h_to_4h", true, (d, inner), InputWidth::D)?,
            dense_4h_to_h: lin(up, "mlp.dense_4h_to_h", true, (inner, d), InputWidth::Inner)?,
        });
    }
    let (c, s) = rope_tables(cfg.n_positions, cfg.rope_dims(), cfg.rope_theta, &[]);
    let rope = (
        up.ctx.storage_init("rope cos", bytemuck::cast_slice(&c))?,
        up.ctx.storage_init("rope sin", bytemuck::cast_slice(&s))?,
    );
    Ok(Box::new(GptNeox {
        cfg: cfg.clone(),
        rope,
        blocks,
        final_layer_norm: norm(up, "final_layer_norm")?,
    }))
}

impl Architecture for GptNeox {
    fn embed(&self, p: &mut Pass, a: &Acts) -> Result<()> {
        p.embed(a, None);
        p.hook_point(Src::Embed, &a.tok_emb)
    }

    fn block(&self, p: &mut Pass, a: &Acts, l: usize) -> Result<()> {
        let w = &self.blocks[l];
        p.hook_point(Src::ResidPre(l), &a.resid)?;
        p.layernorm(&a.resid, &w.input_layernorm, &a.ln1);
        p.hook_point(Src::Ln1(l), &a.ln1)?;
        p.linear(&a.ln1, &w.query_key_value, &a.qkv);
        p.hook_point(Src::Qkv(l), &a.qkv)?;
        p.rope(&a.qkv, &self.rope);
        p.hook_point(Src::RotQk(l), &a.qkv)?;
        p.attention(l, &a.ln1, a, &Default::default())?;
        p.hook_point(Src::Z(l), &a.z)?;
        // resid_mid = resid_pre + attn_out (in a parallel block only a partial sum, no hook).
        p.residual_linear(
            Src::AttnOut(l),
            &a.z,
            &w.dense,
            (&a.resid, &a.attn_out, &a.resid_mid),
        )?;
        if self.cfg.parallel_residual {
            p.layernorm(&a.resid, &w.post_attention_layernorm, &a.ln2);
        } else {
            p.hook_point(Src::ResidMid(l), &a.resid_mid)?;
            p.layernorm(&a.resid_mid, &w.post_attention_layernorm, &a.ln2);
        }
        p.hook_point(Src::Ln2(l), &a.ln2)?;
        p.linear_gelu(
            Src::MlpPre(l),
            &a.ln2,
            &w.dense_h_to_4h,
            (&a.mlp_pre, &a.mlp_post),
            self.cfg.gelu_exact,
        )?;
        p.hook_point(Src::MlpPost(l), &a.mlp_post)?;
        p.residual_linear(
            Src::MlpOut(l),
            &a.mlp_post,
            &w.dense_4h_to_h,
            (&a.resid_mid, &a.mlp_out, &a.resid_next),
        )?;
        p.hook_point(Src::ResidPost(l), &a.resid_next)
    }

    fn final_norm(&self, p: &mut Pass, a: &Acts) -> Result<()> {
        p.layernorm(&a.resid, &self.final_layer_norm, &a.ln_final);
        p.hook_point(Src::LnFinal, &a.ln_final)
    }

    fn linear_weights(&self) -> Vec<LinearWeight> {
        let mut out = Vec::new();
        for (l, w) in self.blocks.iter().enumerate() {
            let n = |s: &str| format!("gpt_neox.layers.{l}.{s}.weight");
            // One Hugging Face tensor, its rows reordered (a row permutation: per-tensor and
            // per-output-row quantization and pruning see the same rows).
            out.push(LinearWeight::whole(
                n("attention.query_key_value"),
                &w.query_key_value,
            ));
            out.push(LinearWeight::whole(n("attention.dense"), &w.dense));
            out.push(LinearWeight::whole(
                n("mlp.dense_h_to_4h"),
                &w.dense_h_to_4h,
            ));
            out.push(LinearWeight::whole(
                n("mlp.dense_4h_to_h"),
                &w.dense_4h_to_h,
            ));
        }
        out
    }

    fn block_matmuls(&self) -> Vec<(&'static str, usize, usize, bool)> {
        let Some(w) = self.blocks.first() else {
            return Vec::new();
        };
        [
            ("qkv", &w.query_key_value),
            ("attn out", &w.dense),
            ("mlp up", &w.dense_h_to_4h),
            ("mlp down", &w.dense_4h_to_h),
        ]
        .map(|(s, l)| (s, l.n, l.k, l.b_t))
        .to_vec()
    }

    /// q, k and v cut out of the per-head query_key_value; attention.dense is O,
    /// dense_h_to_4h the MLP input (Fc), dense_4h_to_h the down projection (Down).
    fn module_weights(&self, wf: &dyn WeightSource, l: usize) -> Result<Vec<ModuleWeight>> {
        let (d, hd) = (self.cfg.n_embd, self.cfg.head_dim());
        let get = |s: &str| wf.tensor(&format!("layers.{l}.{s}.weight"));
        let qkv = get("attention.query_key_value")?;
        if qkv.shape != [3 * d, d] {
            bail!(
                "layers.{l}.attention.query_key_value.weight has shape {:?}, expected [{}, {d}]",
                qkv.shape,
                3 * d
            );
        }
        let rows = neox_qkv_rows(self.cfg.n_head, hd);
        let mw = |kind, weight: Tensor| ModuleWeight {
            layer: l,
            kind,
            weight,
        };
        let mut out = Vec::new();
        for (part, kind) in [ModuleKind::Q, ModuleKind::K, ModuleKind::V]
            .into_iter()
            .enumerate()
        {
            let data: Vec<f32> = rows[part * d..(part + 1) * d]
                .iter()
                .flat_map(|&r| qkv.data[r * d..(r + 1) * d].iter().copied())
                .collect();
            // nn.Linear stores [out, in]: transposed to [in, out].
            out.push(mw(kind, Tensor::new(vec![d, d], data).transposed()));
        }
        for (name, kind) in [
            ("attention.dense", ModuleKind::O),
            ("mlp.dense_h_to_4h", ModuleKind::Fc),
            ("mlp.dense_4h_to_h", ModuleKind::Down),
        ] {
            out.push(mw(kind, get(name)?.transposed()));
        }
        Ok(out)
    }
}
