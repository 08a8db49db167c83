//! The gated MLP's activation and down projection as one op of a [`Pass`]: SwiGLU / GeGLU
//! then the down projection, or — one row, nothing looking at the activation — the one-row
//! matvec reading the gate | up rows itself (issue 15: one dispatch fewer per layer and token).
//! Part of the op vocabulary of `pass.rs`; never names an architecture.

use anyhow::Result;

use super::pass::Pass;
use super::upload::Linear;
use crate::hooks::Src;
use crate::kernels::Epilogue;

impl Pass<'_> {
    /// A gated MLP's activation and down projection: post = act(gate)·up from the gate|up rows
    /// `[R, 2I]` (SwiGLU, or GeGLU with `gelu`; hook `hook`), then `down` = (r, branch, sum):
    /// sum = r + post·W (hook `down_hook` on post·W, see `residual_linear`), or without r,
    /// branch = post·W. With one row, nothing looking at `hook` and no input quantization, the
    /// one-row matvec reads the GLU itself (`post` is never written: one dispatch fewer) —
    /// for f32/f16 weights; weights kept in ggml blocks (`w.q`) always run unfused.
    #[allow(clippy::too_many_arguments)]
    pub fn glu_down(
        &mut self,
        (hook, gelu): (Src, bool),
        gate_up: &wgpu::Buffer,
        post: &wgpu::Buffer,
        w: &Linear,
        down_hook: Src,
        (resid, branch, sum): (Option<&wgpu::Buffer>, &wgpu::Buffer, &wgpu::Buffer),
    ) -> Result<()> {
        // Weights kept in ggml blocks run qmatvec, which has no GLU prologue: unfused there.
        let fuse = self.k.glu_fusable(self.rows)
            && w.q.is_empty()
            && !self.touches(hook)
            && !self.quantizes_inputs();
        if !fuse {
            if gelu {
                self.geglu(gate_up, post);
            } else {
                self.swiglu(gate_up, post);
            }
            self.hook_point(hook, post)?;
            return match resid {
                Some(r) => self.residual_linear(down_hook, post, w, (r, branch, sum)),
                None => {
                    self.linear(post, w, branch);
                    Ok(())
                }
            };
        }
        let glu = Epilogue {
            glu: Some(gelu),
            ..Default::default()
        };
        match resid {
            Some(r) if !self.touches(down_hook) => {
                let epi = Epilogue {
                    resid: Some(r),
                    ..glu
                };
                self.linear_epi(gate_up, w, sum, epi);
            }
            Some(r) => {
                self.linear_epi(gate_up, w, branch, glu);
                self.hook_point(down_hook, branch)?;
                let n = self.rows * w.n;
                self.k.add(&mut self.g, n, r, branch, sum);
            }
            None => self.linear_epi(gate_up, w, branch, glu),
        }
        Ok(())
    }
}
