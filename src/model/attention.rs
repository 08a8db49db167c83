//! The attention step of a block: KV-cache store, attention (softmax or one of the paper's
//! variants, as parameters and extra tensors), its hook points, and the variants' per-head output
//! scale. Never names an architecture.

use anyhow::Result;

use super::acts::Acts;
use super::pass::Pass;
use super::upload::{InputWidth, Linear, Uploader};
use crate::config::ModelConfig;
use crate::hooks::Src;
use crate::kernels::AttnParams;

/// A layer's extra attention tensors for the paper's variants (none for softmax).
#[derive(Default)]
pub(crate) struct AttnExtras {
    /// k′ | v′ `[2, H, Dh]`: the extra key and value (variants with an extra key or value bias).
    pub prime: Option<wgpu::Buffer>,
    /// Per-head factor: W `[H, D]` (nn.Linear) with bias `[H]`, and its multiplier (2 for 2·σ).
    pub scale: Option<(Linear, f32)>,
}

impl AttnExtras {
    /// The tensors `cfg.variant` needs, named `{prefix}k_prime`, `{prefix}v_prime`,
    /// `{prefix}{module}.weight|bias` (the paper's nanoGPT names, e.g. `h.0.attn.`).
    ///
    /// # Errors
    /// A missing tensor or a wrong shape, naming the file and tensor.
    pub fn load(up: &mut Uploader, cfg: &ModelConfig, prefix: &str) -> Result<Self> {
        let var = cfg.variant;
        let (h, hd, d) = (cfg.n_head, cfg.head_dim(), cfg.n_embd);
        let prime = if var.has_v_prime() {
            let mut kv = if var.has_k_prime() {
                up.wf
                    .load(&format!("{prefix}k_prime"), &[h, hd])?
                    .into_owned()
            } else {
                vec![0.0; h * hd]
            };
            // [H, Dh], or flat [D] (h·Dh + d) as the paper's value-bias code stores it.
            let name = format!("{prefix}v_prime");
            let vp = match up.wf.load(&name, &[h, hd]) {
                Ok(v) => v,
                Err(_) => up.wf.load(&name, &[d])?,
            };
            kv.extend_from_slice(&vp);
            Some(up.f32_buffer(&name, &kv)?)
        } else {
            None
        };
        let scale = match var.scale() {
            Some((m, mult)) => {
                let w = up.vector(&format!("{prefix}{m}.weight"), &[h, d])?;
                let b = up.vector(&format!("{prefix}{m}.bias"), &[h])?;
                let lin = Linear {
                    w,
                    b: Some(b),
                    k: d,
                    n: h,
                    b_t: true,
                    f16: false,
                    input: InputWidth::D,
                    q: Vec::new(),
                };
                Some((lin, mult))
            }
            None => None,
        };
        Ok(Self { prime, scale })
    }
}

impl Pass<'_> {
    /// Layer `l`'s attention on the (rotated) q|k|v rows `a.qkv`: store k and v in the cache,
    /// attend (hooks `attn.hook_attn_scores`, `attn.hook_pattern`, `attn.hook_extra_prob`), write
    /// z `[R, H, Dh]` to `a.z`, and for variants with a per-head factor computed from `x` (the
    /// attention's input), scale z by it (hook `attn.hook_scale`). Hooks z is left to the caller.
    pub fn attention(
        &mut self,
        l: usize,
        x: &wgpu::Buffer,
        a: &Acts,
        ex: &AttnExtras,
    ) -> Result<()> {
        let cfg = self.cfg;
        let (d, h, hd, kvd, qkvw) = (
            cfg.q_dim(),
            cfg.n_head,
            cfg.head_dim(),
            cfg.kv_dim(),
            cfg.qkv_dim(),
        );
        let sess = self.sess;
        self.k.kv_store_gqa(
            &mut self.g,
            self.rows,
            d,
            kvd,
            sess.cap,
            &a.qkv,
            &self.info,
            &sess.k[l],
            &sess.v[l],
        );
        let p = AttnParams {
            rows: self.rows as u32,
            n_head: h as u32,
            head_dim: hd as u32,
            d: d as u32,
            cap: sess.cap as u32,
            capture: self.want_att as u32,
            cap_keys: self.cap_keys as u32,
            scale: cfg.attn_scale(),
            qkv_width: qkvw as u32,
            kv_dim: kvd as u32,
            group: (h / cfg.n_kv_head) as u32,
            variant: cfg.variant.code(),
            clip_gamma: cfg.clip_gamma,
            clip_eta: cfg.clip_eta,
            sig_t: cfg.sigmoid_t as u32,
            window: cfg.window(l).unwrap_or(0) as u32,
            ..Default::default()
        };
        let kn = self.knock_of_layer[l].map(|i| self.knock[i].clone());
        self.k.attention_full(
            &mut self.g,
            p,
            &a.qkv,
            &self.info,
            &sess.k[l],
            &sess.v[l],
            &a.z,
            &a.scores,
            &a.pattern,
            kn.as_ref(),
            ex.prime.as_ref(),
            &a.extra,
        );
        if self.want_att {
            self.hook_point(Src::Scores(l), &a.scores)?;
            self.hook_point(Src::Pattern(l), &a.pattern)?;
            if self.space.extra_prob {
                self.hook_point(Src::ExtraProb(l), &a.extra)?;
            }
        }
        if let Some((w, mult)) = &ex.scale {
            self.linear(x, w, &a.fac);
            self.k
                .head_scale(&mut self.g, self.rows, h, hd, *mult, &a.fac, &a.z);
            self.hook_point(Src::Scale(l), &a.fac)?;
        }
        Ok(())
    }
}
