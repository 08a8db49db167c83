//! Attention against the KV cache (softmax and its variants, capture, knockout): attention.wgsl,
//! its wrappers and CPU reference. Depends on gpu and the kernels registry only.

use super::{Kernels, Shader};
use crate::gpu::{Bind, Graph};

const ATTENTION: Shader = Shader::main("attention.wgsl", include_str!("attention.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[ATTENTION];

/// Parameters of attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttnParams {
    /// Query rows in this call.
    pub rows: u32,
    /// Query heads.
    pub n_head: u32,
    /// Head width.
    pub head_dim: u32,
    /// Query width (n_head × head_dim).
    pub d: u32,
    /// Positions per sequence in the KV cache.
    pub cap: u32,
    /// 1: write scores and probabilities.
    pub capture: u32,
    /// Key stride of the capture buffers.
    pub cap_keys: u32,
    /// Score scale, usually 1/√head_dim.
    pub scale: f32,
    /// 1: remove the keys marked in the knockout mask from later queries' attention.
    pub knock_on: u32,
    /// Width of the fused q|k|v rows (0: 3 × d).
    pub qkv_width: u32,
    /// Key/value width per cached position (0: d).
    pub kv_dim: u32,
    /// Query heads per key/value head (0: 1).
    pub group: u32,
    /// Attention variant code (see attention.wgsl; 0 = softmax).
    pub variant: u32,
    /// Clipped softmax (variant 7): γ in clip((η − γ)·softmax(s) + γ, 0, 1).
    pub clip_gamma: f32,
    /// Clipped softmax (variant 7): η.
    pub clip_eta: f32,
    /// Sigmoid attention's T (0: the number of keys the query sees).
    pub sig_t: u32,
    /// Sliding window (0: none): the query at position i sees keys j with i − j < window
    /// (transformers' `sliding_window_overlay`); the others score −inf and weigh 0.
    pub window: u32,
    /// Padding (uniform blocks in 16-byte steps).
    pub pad: [u32; 3],
}

impl Kernels {
    /// z = softmax(q·kᵀ·scale, causal) · v per (row, head) against the cache;
    /// with `p.capture`, also the scores and probabilities.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        g: &mut Graph,
        p: AttnParams,
        qkv: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
        z: &wgpu::Buffer,
        scores: &wgpu::Buffer,
        probs: &wgpu::Buffer,
    ) {
        self.attention_knockout(g, p, qkv, rowinfo, k, v, z, scores, probs, None);
    }

    /// `attention` with every optional input: knockout mask, k′|v′ `[2, H, Dh]` and the p′ capture `[rows, H]`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_full(
        &self,
        g: &mut Graph,
        p: AttnParams,
        qkv: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
        z: &wgpu::Buffer,
        scores: &wgpu::Buffer,
        probs: &wgpu::Buffer,
        knock: Option<&wgpu::Buffer>,
        prime: Option<&wgpu::Buffer>,
        extra: &wgpu::Buffer,
    ) {
        self.attention_dispatch(
            g,
            p,
            [qkv, rowinfo, k, v, z, scores, probs],
            knock,
            prime,
            extra,
        );
    }

    /// `attention` with a knockout mask over absolute key positions (`p.knock_on` is set from it).
    #[allow(clippy::too_many_arguments)]
    pub fn attention_knockout(
        &self,
        g: &mut Graph,
        p: AttnParams,
        qkv: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
        z: &wgpu::Buffer,
        scores: &wgpu::Buffer,
        probs: &wgpu::Buffer,
        knock: Option<&wgpu::Buffer>,
    ) {
        self.attention_dispatch(
            g,
            p,
            [qkv, rowinfo, k, v, z, scores, probs],
            knock,
            None,
            &self.dummy2,
        );
    }

    fn attention_dispatch(
        &self,
        g: &mut Graph,
        mut p: AttnParams,
        b: [&wgpu::Buffer; 7],
        knock: Option<&wgpu::Buffer>,
        prime: Option<&wgpu::Buffer>,
        extra: &wgpu::Buffer,
    ) {
        let rows = p.rows as usize;
        let gx = rows.clamp(1, 65535);
        p.knock_on = knock.is_some() as u32;
        if p.qkv_width == 0 {
            p.qkv_width = 3 * p.d;
        }
        if p.kv_dim == 0 {
            p.kv_dim = p.d;
        }
        if p.group == 0 {
            p.group = 1;
        }
        let mut binds: Vec<Bind> = b.iter().map(|x| (*x).into()).collect();
        binds.push(knock.unwrap_or(&self.dummy).into());
        binds.push(prime.unwrap_or(&self.dummy).into());
        binds.push(extra.into());
        g.dispatch(
            "attention",
            self.main_pipeline(&ATTENTION),
            &p,
            binds,
            [gx as u32, p.n_head, rows.div_ceil(gx).max(1) as u32],
        );
        {
            // Causal: on average half the keys; K and V read once (the floor), q and z once.
            let (r, h, hd, keys) = (
                rows as f64,
                p.n_head as f64,
                p.head_dim as f64,
                p.cap_keys.max(1) as f64,
            );
            let kv = 2.0 * keys * p.kv_dim as f64 * 4.0;
            g.cost(2.0 * r * h * hd * keys, kv + 8.0 * r * h * hd);
        }
    }
}

/// CPU reference of softmax attention for one query head, in f64: the scores
/// s_j = q·k_j·scale over the keys the query sees (`keys[j]`, each as long as q), the
/// probabilities softmax(s), and the output z = Σ_j p_j·v_j. Returns (scores, probs, z).
pub fn attention_head_ref(
    q: &[f32],
    keys: &[&[f32]],
    values: &[&[f32]],
    scale: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let s: Vec<f64> = keys
        .iter()
        .map(|k| {
            q.iter()
                .zip(*k)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum::<f64>()
                * scale
        })
        .collect();
    let mx = s.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
    let sum: f64 = e.iter().sum();
    let mut z = vec![0f64; q.len()];
    for (j, ej) in e.iter().enumerate() {
        let pj = ej / sum;
        for (zt, vt) in z.iter_mut().zip(values[j]) {
            *zt += pj * *vt as f64;
        }
    }
    let p = e.iter().map(|x| x / sum).collect();
    (s, p, z)
}

#[cfg(test)]
mod tests;
