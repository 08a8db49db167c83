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

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::kv_store_ref;
    use crate::gpu::Graph;
    use crate::kernels::test_util::*;

    /// kv_store.wgsl with grouped-query rows (`[q (30) | k (10) | v (10)]`): each valid row's k
    /// and v land at (seq, pos) of the caches, padding rows write nothing; the caches start
    /// random so a stray write would show.
    #[test]
    fn kv_store_gqa_matches_cpu() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(85);
        let (q_dim, kv_dim, cap, seqs) = (30, 10, 8, 2);
        let info: Vec<[u32; 4]> = vec![[0, 0, 1, 0], [1, 7, 1, 0], [0, 3, 0, 0], [1, 2, 1, 0]];
        let rows = info.len();
        let qkv = randn(&mut rng, rows * (q_dim + 2 * kv_dim), 1.0);
        let mut kc = randn(&mut rng, seqs * cap * kv_dim, 1.0);
        let mut vc = randn(&mut rng, seqs * cap * kv_dim, 1.0);
        let (qb, ib, kb, vb) = (
            upload(&ctx, &qkv),
            upload(&ctx, &info),
            upload(&ctx, &kc),
            upload(&ctx, &vc),
        );
        let mut g = Graph::default();
        kern.kv_store_gqa(&mut g, rows, q_dim, kv_dim, cap, &qb, &ib, &kb, &vb);
        run(&ctx, g);
        kv_store_ref(q_dim, kv_dim, cap, &qkv, &info, &mut kc, &mut vc);
        assert_eq!(read(&ctx, &kb, kc.len()), kc, "K cache");
        assert_eq!(read(&ctx, &vb, vc.len()), vc, "V cache");
    }
}
