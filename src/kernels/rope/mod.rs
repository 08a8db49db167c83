//! Rotary position embedding applied in place to the q and k heads: rope.wgsl and its wrapper.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Shader, P4};
use crate::gpu::{grid_1d, Graph};

const ROPE: Shader = Shader::main("rope.wgsl", include_str!("rope.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[ROPE];

impl Kernels {
    /// RoPE in place on the first `heads` heads (query then key heads) of each qkv row.
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &self,
        g: &mut Graph,
        rows: usize,
        heads: usize,
        head_dim: usize,
        qkv_width: usize,
        rowinfo: &wgpu::Buffer,
        cos: &wgpu::Buffer,
        sin: &wgpu::Buffer,
        qkv: &wgpu::Buffer,
    ) {
        g.dispatch(
            "rope",
            self.main_pipeline(&ROPE),
            &P4 {
                a: rows as u32,
                b: heads as u32,
                c: head_dim as u32,
                d: qkv_width as u32,
            },
            vec![rowinfo.into(), cos.into(), sin.into(), qkv.into()],
            grid_1d(rows * heads * (head_dim / 2), 256),
        );
    }
}

/// CPU reference of `rope` in f64: qkv `[rows, qkv_width]` after rotating the first `heads`
/// heads of each valid row (`rowinfo[r] = [seq, pos, valid, _]`) by the `[n_positions,
/// head_dim / 2]` tables at the row's position ("rotate_half" pairs i, i + head_dim/2).
#[allow(clippy::too_many_arguments)]
pub fn rope_ref(
    heads: usize,
    head_dim: usize,
    qkv_width: usize,
    rowinfo: &[[u32; 4]],
    cos: &[f32],
    sin: &[f32],
    qkv: &[f32],
) -> Vec<f64> {
    let half = head_dim / 2;
    let mut out: Vec<f64> = qkv.iter().map(|&v| v as f64).collect();
    for (r, info) in rowinfo.iter().enumerate() {
        if info[2] == 0 {
            continue;
        }
        for h in 0..heads {
            for j in 0..half {
                let (c, s) = (
                    cos[info[1] as usize * half + j] as f64,
                    sin[info[1] as usize * half + j] as f64,
                );
                let b = r * qkv_width + h * head_dim + j;
                let (x1, x2) = (qkv[b] as f64, qkv[b + half] as f64);
                out[b] = x1 * c - x2 * s;
                out[b + half] = x2 * c + x1 * s;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::rope_ref;
    use crate::gpu::Graph;
    use crate::kernels::test_util::*;

    /// rope.wgsl on 3 query heads and 1 key head (head_dim 10) of q|k|v rows at scattered
    /// positions, with a padding row: v and the padding row stay exactly as they were.
    #[test]
    fn rope_matches_cpu() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(82);
        let (heads, head_dim, n_pos) = (4, 10, 21);
        let width = (3 + 2) * head_dim;
        let half = head_dim / 2;
        let angles = randn(&mut rng, n_pos * half, 3.0);
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        let info: Vec<[u32; 4]> = vec![
            [0, 0, 1, 0],
            [0, 20, 1, 0],
            [1, 3, 1, 0],
            [1, 17, 0, 0],
            [0, 5, 1, 0],
            [1, 11, 1, 0],
            [0, 9, 1, 0],
        ];
        let rows = info.len();
        let qkv = randn(&mut rng, rows * width, 1.0);
        let (ib, cb, sb, qb) = (
            upload(&ctx, &info),
            upload(&ctx, &cos),
            upload(&ctx, &sin),
            upload(&ctx, &qkv),
        );
        let mut g = Graph::default();
        kern.rope(&mut g, rows, heads, head_dim, width, &ib, &cb, &sb, &qb);
        run(&ctx, g);
        let got = read(&ctx, &qb, rows * width);
        let want = rope_ref(heads, head_dim, width, &info, &cos, &sin, &qkv);
        check("rope", &got, &want, TOL);
        for (r, i) in info.iter().enumerate() {
            let untouched = if i[2] == 0 { 0 } else { heads * head_dim };
            let row = r * width..(r + 1) * width;
            assert_eq!(
                &got[row.clone()][untouched..],
                &qkv[row][untouched..],
                "row {r}: values past the rotated heads changed"
            );
        }
    }
}
