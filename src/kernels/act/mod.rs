//! Elementwise activations: gelu.wgsl (tanh and erf GELU, ReLU), swiglu.wgsl, add.wgsl; wrappers and
//! CPU references. Depends on gpu and the kernels registry only.

use super::{Kernels, Shader, P4};
use crate::gpu::{grid_1d, Graph};

const GELU: Shader = Shader::main(
    "gelu.wgsl",
    concat!(
        include_str!("gelu.wgsl"),
        include_str!("../common/gelu_fn.wgsl")
    ),
);
const SWIGLU: Shader = Shader::main(
    "swiglu.wgsl",
    concat!(
        include_str!("swiglu.wgsl"),
        include_str!("../common/gelu_fn.wgsl")
    ),
);
const ADD: Shader = Shader::main("add.wgsl", include_str!("add.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[GELU, SWIGLU, ADD];

impl Kernels {
    /// y = gelu_new(x) over n values.
    pub fn gelu(&self, g: &mut Graph, n: usize, x: &wgpu::Buffer, y: &wgpu::Buffer) {
        self.gelu_mode(g, n, false, x, y);
    }

    /// GELU: the tanh form (`exact` false, GPT-2's gelu_new) or the erf form (torch nn.GELU()).
    pub fn gelu_mode(
        &self,
        g: &mut Graph,
        n: usize,
        exact: bool,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) {
        g.dispatch(
            "gelu",
            self.main_pipeline(&GELU),
            &P4 {
                a: n as u32,
                b: exact as u32,
                c: 0,
                d: 0,
            },
            vec![x.into(), y.into()],
            grid_1d(n, 256),
        );
        g.cost(10.0 * n as f64, 8.0 * n as f64);
    }

    /// y = max(x, 0) over n values (OPT's MLP; gelu.wgsl's mode 2).
    pub fn relu(&self, g: &mut Graph, n: usize, x: &wgpu::Buffer, y: &wgpu::Buffer) {
        g.dispatch(
            "relu",
            self.main_pipeline(&GELU),
            &P4 {
                a: n as u32,
                b: 2,
                c: 0,
                d: 0,
            },
            vec![x.into(), y.into()],
            grid_1d(n, 256),
        );
        g.cost(n as f64, 8.0 * n as f64);
    }

    /// post = silu(gate) · up from the fused `[rows, 2I]` gate|up buffer.
    pub fn swiglu(
        &self,
        g: &mut Graph,
        rows: usize,
        inner: usize,
        gu: &wgpu::Buffer,
        post: &wgpu::Buffer,
    ) {
        self.glu(g, rows, inner, false, gu, post);
    }

    /// post = act(gate) · up from the fused `[rows, 2I]` gate|up buffer: act = silu (SwiGLU)
    /// or, with `gelu`, the tanh GELU (GeGLU, Gemma's `gelu_pytorch_tanh`).
    pub fn glu(
        &self,
        g: &mut Graph,
        rows: usize,
        inner: usize,
        gelu: bool,
        gu: &wgpu::Buffer,
        post: &wgpu::Buffer,
    ) {
        g.dispatch(
            if gelu { "geglu" } else { "swiglu" },
            self.main_pipeline(&SWIGLU),
            &P4 {
                a: rows as u32,
                b: inner as u32,
                c: gelu as u32,
                d: 0,
            },
            vec![gu.into(), post.into()],
            grid_1d(rows * inner, 256),
        );
        g.cost(6.0 * (rows * inner) as f64, 12.0 * (rows * inner) as f64);
    }

    /// y = a + b over n values.
    pub fn add(
        &self,
        g: &mut Graph,
        n: usize,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) {
        g.dispatch(
            "add",
            self.main_pipeline(&ADD),
            &P4 {
                a: n as u32,
                b: 0,
                c: 0,
                d: 0,
            },
            vec![a.into(), b.into(), y.into()],
            grid_1d(n, 256),
        );
        g.cost(n as f64, 12.0 * n as f64);
    }
}

/// CPU reference of the tanh GELU (GPT-2's gelu_new) in f64.
pub fn gelu_tanh_ref(v: f64) -> f64 {
    let u = (2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v);
    0.5 * v * (1.0 + u.tanh())
}

/// CPU reference of the exact (erf) GELU in f64 (test builds: libm is a dev-dependency).
#[cfg(test)]
pub(crate) fn gelu_erf_ref(a: f64) -> f64 {
    0.5 * a * (1.0 + libm::erf(a / std::f64::consts::SQRT_2))
}

/// CPU reference of `swiglu` in f64: post `[rows, inner]` = silu(gate)·up from gu
/// `[rows, 2·inner]` (gate | up side by side).
pub fn swiglu_ref(rows: usize, inner: usize, gu: &[f32]) -> Vec<f64> {
    let mut post = Vec::with_capacity(rows * inner);
    for r in 0..rows {
        for c in 0..inner {
            let g = gu[r * 2 * inner + c] as f64;
            let u = gu[r * 2 * inner + inner + c] as f64;
            post.push(g / (1.0 + (-g).exp()) * u);
        }
    }
    post
}

/// CPU reference of `glu` with `gelu` in f64: post = gelu_tanh(gate)·up (GeGLU).
pub fn geglu_ref(rows: usize, inner: usize, gu: &[f32]) -> Vec<f64> {
    let mut post = Vec::with_capacity(rows * inner);
    for r in 0..rows {
        for c in 0..inner {
            let g = gu[r * 2 * inner + c] as f64;
            let u = gu[r * 2 * inner + inner + c] as f64;
            post.push(gelu_tanh_ref(g) * u);
        }
    }
    post
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::{geglu_ref, swiglu_ref};
    use super::{gelu_erf_ref, gelu_tanh_ref};
    use crate::gpu::Graph;
    use crate::kernels::test_util::*;
    use crate::kernels::Kernels;

    #[test]
    fn gelu_matches_tanh_formula() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(4);
        let n = 1000;
        // 200 values evenly over [-30, 30], then N(0, 3²).
        let mut x: Vec<f32> = (0..200).map(|i| -30.0 + 60.0 * i as f32 / 199.0).collect();
        x.extend(randn(&mut rng, n - 200, 3.0));
        let (xb, y) = (upload(&ctx, &x), zeros(&ctx, n));
        let mut g = Graph::default();
        kern.gelu(&mut g, n, &xb, &y);
        run(&ctx, g);
        let got = read(&ctx, &y, n);
        let want: Vec<f64> = f64s(&x).iter().map(|&v| gelu_tanh_ref(v)).collect();
        check("gelu n=1000, |x| <= 30", &got, &want, TOL);
        // The same bound relative to the N(0, 3²) part alone (max|y| ~ 10 rather than 30).
        check("gelu, N(0,3^2) part", &got[200..], &want[200..], TOL);
    }

    /// ReLU over a size that is not a multiple of 256, with exact zeros, negatives and
    /// positives: max(x, 0) exactly.
    #[test]
    fn relu_is_max_zero() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(62);
        let n = 777;
        let mut x = randn(&mut rng, n, 3.0);
        x[5] = 0.0;
        x[6] = -0.0;
        let (xb, y) = (upload(&ctx, &x), zeros(&ctx, n));
        let mut g = Graph::default();
        kern.relu(&mut g, n, &xb, &y);
        run(&ctx, g);
        let want: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
        assert!(want.iter().any(|&v| v > 0.0) && want.iter().filter(|&&v| v == 0.0).count() > 100);
        assert_eq!(read(&ctx, &y, n), want, "relu");
    }

    #[test]
    fn add_is_exact() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(5);
        let n = 1000;
        let a = randn(&mut rng, n, 1.0);
        let b = randn(&mut rng, n, 100.0);
        let (ab, bb, y) = (upload(&ctx, &a), upload(&ctx, &b), zeros(&ctx, n));
        let mut g = Graph::default();
        kern.add(&mut g, n, &ab, &bb, &y);
        run(&ctx, g);
        let got = read(&ctx, &y, n);
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert!(want.iter().any(|&v| v != 0.0));
        assert_eq!(got, want, "add is one f32 addition per element");
    }

    /// The exact (erf) GELU of nanoGPT against f64 erf, over ±30 and N(0, 3²).
    #[test]
    fn exact_gelu_matches_erf() {
        use rand::{Rng, SeedableRng};
        let ctx = ctx();
        let kern = Kernels::new(&ctx).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut x: Vec<f32> = (0..201).map(|i| -30.0 + 0.3 * i as f32).collect();
        x.extend((0..800).map(|_| rng.random_range(-9.0f32..9.0)));
        let n = x.len();
        let xb = ctx.storage_init("x", bytemuck::cast_slice(&x)).unwrap();
        let yb = ctx.storage("y", (n * 4) as u64).unwrap();
        let rb = ctx.readback("rb", (n * 4) as u64).unwrap();
        let mut g = Graph::default();
        kern.gelu_mode(&mut g, n, true, &xb, &yb);
        g.copy(&yb, 0, &rb, 0, (n * 4) as u64);
        ctx.queue.submit([g.encode(&ctx)]);
        let y = ctx.read_f32(&[(&rb, n)]).unwrap().pop().unwrap();
        let mut worst = 0f64;
        for (a, b) in x.iter().zip(&y) {
            let a = *a as f64;
            let want = gelu_erf_ref(a);
            assert!(b.is_finite());
            worst = worst.max((*b as f64 - want).abs() / want.abs().max(1.0));
        }
        assert!(worst < 5e-6, "exact GELU: error {worst:.2e}");
    }

    /// swiglu.wgsl over a size that is not a multiple of its 256-wide workgroups, gates up to
    /// |x| ≈ 15.
    #[test]
    fn swiglu_matches_cpu() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(81);
        let (rows, inner) = (7, 333);
        let gu = randn(&mut rng, rows * 2 * inner, 4.0);
        let (gb, post) = (upload(&ctx, &gu), zeros(&ctx, rows * inner));
        let mut g = Graph::default();
        kern.swiglu(&mut g, rows, inner, &gb, &post);
        run(&ctx, g);
        check(
            "swiglu",
            &read(&ctx, &post, rows * inner),
            &swiglu_ref(rows, inner, &gu),
            TOL,
        );
    }

    /// The GeGLU mode of swiglu.wgsl (Gemma) at the same odd size.
    #[test]
    fn geglu_matches_cpu() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(82);
        let (rows, inner) = (7, 333);
        let gu = randn(&mut rng, rows * 2 * inner, 4.0);
        let (gb, post) = (upload(&ctx, &gu), zeros(&ctx, rows * inner));
        let mut g = Graph::default();
        kern.glu(&mut g, rows, inner, true, &gb, &post);
        run(&ctx, g);
        check(
            "geglu",
            &read(&ctx, &post, rows * inner),
            &geglu_ref(rows, inner, &gu),
            TOL,
        );
    }
}
