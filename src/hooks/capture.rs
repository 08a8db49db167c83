//! Cutting a captured GPU buffer into per-hook tensors of one sequence (`split_capture`).
//! Depends on the hook space and tensor only; never on wgpu, models or studies.

use super::{hooks_of, HookSpace, Src};
use crate::tensor::Tensor;

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
        sp.q_dim(),
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
        Src::Qkv(_) | Src::QkNorm(_) | Src::RotQk(_) => {
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
