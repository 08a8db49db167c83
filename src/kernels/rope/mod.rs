//! Rotary position embedding applied in place to the q and k heads, whole or partial (the first
//! `rot_dims` dimensions of each head, GPT-NeoX): rope.wgsl, its wrapper and CPU reference.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Shader};
use crate::gpu::{grid_1d, Graph};

const ROPE: Shader = Shader::main("rope.wgsl", include_str!("rope.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[ROPE];

/// rope.wgsl's parameter block (eight u32 words: a uniform's size is a multiple of 16 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RopeParams {
    rows: u32,
    heads: u32,
    head_dim: u32,
    qkv_width: u32,
    rot_dims: u32,
    _pad: [u32; 3],
}

impl Kernels {
    /// RoPE in place on the first `heads` heads (query then key heads) of each qkv row, every
    /// dimension of each head rotated (tables `[n_positions, head_dim / 2]`).
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
        let dims = (head_dim, head_dim);
        self.rope_partial(g, rows, heads, dims, qkv_width, rowinfo, cos, sin, qkv);
    }

    /// RoPE on the first `rot_dims` dimensions of each of the first `heads` heads
    /// (`(head_dim, rot_dims)`, `rot_dims` even and ≤ `head_dim`; tables `[n_positions,
    /// rot_dims / 2]`, pairs i, i + rot_dims/2); the other dimensions are left as they are.
    #[allow(clippy::too_many_arguments)]
    pub fn rope_partial(
        &self,
        g: &mut Graph,
        rows: usize,
        heads: usize,
        (head_dim, rot_dims): (usize, usize),
        qkv_width: usize,
        rowinfo: &wgpu::Buffer,
        cos: &wgpu::Buffer,
        sin: &wgpu::Buffer,
        qkv: &wgpu::Buffer,
    ) {
        g.dispatch(
            "rope",
            self.main_pipeline(&ROPE),
            &RopeParams {
                rows: rows as u32,
                heads: heads as u32,
                head_dim: head_dim as u32,
                qkv_width: qkv_width as u32,
                rot_dims: rot_dims as u32,
                _pad: [0; 3],
            },
            vec![rowinfo.into(), cos.into(), sin.into(), qkv.into()],
            grid_1d(rows * heads * (rot_dims / 2), 256),
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
    let dims = (head_dim, head_dim);
    rope_ref_partial(heads, dims, qkv_width, rowinfo, cos, sin, qkv)
}

/// CPU reference of `rope_partial`: as [`rope_ref`] on the first `rot_dims` dimensions of each
/// head only (tables `[n_positions, rot_dims / 2]`, pairs i, i + rot_dims/2).
#[allow(clippy::too_many_arguments)]
pub fn rope_ref_partial(
    heads: usize,
    (head_dim, rot_dims): (usize, usize),
    qkv_width: usize,
    rowinfo: &[[u32; 4]],
    cos: &[f32],
    sin: &[f32],
    qkv: &[f32],
) -> Vec<f64> {
    let half = rot_dims / 2;
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

    use super::{rope_ref, rope_ref_partial};
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

    /// rope_partial on 3 query heads and 3 key heads of odd head_dim 17, 6 dims rotated (the
    /// GPT-NeoX case), at scattered positions with a padding row: dims 6..17 of every head, v
    /// and the padding row stay exactly as they were.
    #[test]
    fn partial_rope_matches_cpu() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(83);
        let (heads, head_dim, rot, n_pos) = (6, 17, 6, 13);
        let width = 9 * head_dim;
        let angles = randn(&mut rng, n_pos * rot / 2, 3.0);
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        let info: Vec<[u32; 4]> = vec![
            [0, 0, 1, 0],
            [0, 12, 1, 0],
            [1, 3, 0, 0],
            [1, 7, 1, 0],
            [0, 5, 1, 0],
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
        let dims = (head_dim, rot);
        kern.rope_partial(&mut g, rows, heads, dims, width, &ib, &cb, &sb, &qb);
        run(&ctx, g);
        let got = read(&ctx, &qb, rows * width);
        let want = rope_ref_partial(heads, dims, width, &info, &cos, &sin, &qkv);
        check("partial rope", &got, &want, TOL);
        for (r, i) in info.iter().enumerate() {
            for c in 0..width {
                let rotated = i[2] == 1 && c < heads * head_dim && c % head_dim < rot;
                let x = r * width + c;
                if !rotated {
                    assert_eq!(got[x], qkv[x], "row {r} column {c} changed");
                } else if c % head_dim < rot / 2 {
                    assert_ne!(got[x], qkv[x], "row {r} column {c} was not rotated");
                }
            }
        }
    }
}
