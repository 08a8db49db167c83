//! Appending keys and values to the KV cache: kv_store.wgsl, its wrapper and CPU reference.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Shader, P4};
use crate::gpu::{grid_1d, Graph};

const KV_STORE: Shader = Shader::main("kv_store.wgsl", include_str!("kv_store.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[KV_STORE];

impl Kernels {
    /// Append the k and v parts of the qkv rows (3 × d wide) to the cache at each valid row's (seq, pos).
    #[allow(clippy::too_many_arguments)]
    pub fn kv_store(
        &self,
        g: &mut Graph,
        rows: usize,
        d: usize,
        cap: usize,
        qkv: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
    ) {
        self.kv_store_gqa(g, rows, d, d, cap, qkv, rowinfo, k, v);
    }

    /// `kv_store` for rows `[q (q_dim) | k (kv_dim) | v (kv_dim)]`; the cache holds kv_dim per position.
    #[allow(clippy::too_many_arguments)]
    pub fn kv_store_gqa(
        &self,
        g: &mut Graph,
        rows: usize,
        q_dim: usize,
        kv_dim: usize,
        cap: usize,
        qkv: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
    ) {
        g.dispatch(
            "kv_store",
            self.main_pipeline(&KV_STORE),
            &P4 {
                a: rows as u32,
                b: kv_dim as u32,
                c: cap as u32,
                d: q_dim as u32,
            },
            vec![qkv.into(), rowinfo.into(), k.into(), v.into()],
            grid_1d(rows * kv_dim, 256),
        );
    }
}

/// CPU reference of `kv_store_gqa`: for each valid row r (`rowinfo[r] = [seq, pos, valid, _]`)
/// of qkv `[rows, q_dim + 2·kv_dim]`, copy its k and v parts to position (seq, pos) of the
/// caches k and v `[seqs, cap, kv_dim]`; padding rows (valid 0) write nothing.
pub fn kv_store_ref(
    q_dim: usize,
    kv_dim: usize,
    cap: usize,
    qkv: &[f32],
    rowinfo: &[[u32; 4]],
    k: &mut [f32],
    v: &mut [f32],
) {
    let w = q_dim + 2 * kv_dim;
    for (r, i) in rowinfo.iter().enumerate() {
        if i[2] != 0 {
            let dst = (i[0] as usize * cap + i[1] as usize) * kv_dim;
            k[dst..dst + kv_dim].copy_from_slice(&qkv[r * w + q_dim..][..kv_dim]);
            v[dst..dst + kv_dim].copy_from_slice(&qkv[r * w + q_dim + kv_dim..][..kv_dim]);
        }
    }
}
