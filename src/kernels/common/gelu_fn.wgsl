// GELU as a function, appended at build time to gelu.wgsl, matmul.wgsl and matvec.wgsl.

// Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), as in gelu.wgsl.
fn erf_as(v: f32) -> f32 {
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let r = 1.0 - poly * exp(-a * a);
    return select(r, -r, v < 0.0);
}

// mode 0: GPT-2's gelu_new (tanh argument clamped to ±15); mode 1: exact erf GELU;
// mode 2: ReLU, max(v, 0) (OPT's MLP; not a GELU, but the same elementwise slot).
fn gelu(v: f32, mode: u32) -> f32 {
    if (mode == 2u) {
        return max(v, 0.0);
    }
    if (mode == 1u) {
        return 0.5 * v * (1.0 + erf_as(v * 0.7071067811865476));
    }
    let u = clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -15.0, 15.0);
    return 0.5 * v * (1.0 + tanh(u));
}
