//! Overwriting channels of a hook at marked positions (interventions): edit.wgsl and its wrapper.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Shader, P4};
use crate::gpu::{grid_1d, Graph};

const EDIT: Shader = Shader::main("edit.wgsl", include_str!("edit.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[EDIT];

impl Kernels {
    /// Overwrite `channels` of the hook occupying columns `offset..` of `x` [rows, width] with
    /// `values`, at the absolute positions marked in `posmask`.
    #[allow(clippy::too_many_arguments)]
    pub fn edit(
        &self,
        g: &mut Graph,
        rows: usize,
        width: usize,
        offset: usize,
        n_ch: usize,
        rowinfo: &wgpu::Buffer,
        posmask: &wgpu::Buffer,
        channels: &wgpu::Buffer,
        values: &wgpu::Buffer,
        x: &wgpu::Buffer,
    ) {
        g.dispatch(
            "edit",
            self.main_pipeline(&EDIT),
            &P4 {
                a: rows as u32,
                b: width as u32,
                c: offset as u32,
                d: n_ch as u32,
            },
            vec![
                rowinfo.into(),
                posmask.into(),
                channels.into(),
                values.into(),
                x.into(),
            ],
            grid_1d(rows * n_ch, 256),
        );
    }
}

/// CPU reference of `edit`: in x `[rows, width]`, set column `offset + channels[k]` to
/// `values[k]` in each valid row (`rowinfo[r] = [seq, pos, valid, _]`) whose position is marked
/// in `posmask`.
pub fn edit_ref(
    width: usize,
    offset: usize,
    rowinfo: &[[u32; 4]],
    posmask: &[u32],
    channels: &[u32],
    values: &[f32],
    x: &mut [f32],
) {
    for (r, info) in rowinfo.iter().enumerate() {
        if info[2] == 0 || posmask[info[1] as usize] == 0 {
            continue;
        }
        for (&c, &v) in channels.iter().zip(values) {
            x[r * width + offset + c as usize] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::edit_ref;
    use crate::gpu::Graph;
    use crate::kernels::test_util::*;

    /// edit.wgsl writes exactly the chosen channels of the hook's columns at the marked
    /// positions, and nothing in padding rows or unmarked positions.
    #[test]
    fn edit_matches_cpu() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(84);
        let (width, offset) = (50, 20);
        let info: Vec<[u32; 4]> = vec![
            [0, 0, 1, 0],
            [0, 2, 1, 0],
            [0, 5, 1, 0],
            [1, 2, 1, 0],
            [1, 5, 0, 0],
            [1, 3, 1, 0],
            [0, 7, 1, 0],
        ];
        let rows = info.len();
        let mut posmask = vec![0u32; 8];
        posmask[2] = 1;
        posmask[5] = 1;
        let channels: Vec<u32> = vec![0, 7, 29];
        let values: Vec<f32> = vec![-3.5, 1e4, 0.25];
        let x = randn(&mut rng, rows * width, 1.0);
        let xb = upload(&ctx, &x);
        let (ib, mb, cb, vb) = (
            upload(&ctx, &info),
            upload(&ctx, &posmask),
            upload(&ctx, &channels),
            upload(&ctx, &values),
        );
        let mut g = Graph::default();
        kern.edit(
            &mut g,
            rows,
            width,
            offset,
            channels.len(),
            &ib,
            &mb,
            &cb,
            &vb,
            &xb,
        );
        run(&ctx, g);
        let mut want = x.clone();
        edit_ref(
            width, offset, &info, &posmask, &channels, &values, &mut want,
        );
        assert_ne!(want, x, "the test edits something");
        assert_eq!(read(&ctx, &xb, rows * width), want, "edit");
    }
}
