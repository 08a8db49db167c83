// GELU, elementwise. mode 0: GPT-2's gelu_new, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
// (the tanh argument clamped to ±15, where tanh is ±1 in f32, so no driver's exp overflows);
// mode 1: the exact 0.5 x (1 + erf(x / sqrt 2)) of torch's nn.GELU() (nanoGPT), with erf from
// Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7); mode 2: ReLU (OPT). `gelu` itself lives in
// gelu_fn.wgsl, appended at build time (matmul's epilogue uses the same one).

struct Params {
    n: u32,
    mode: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    y[i] = gelu(x[i], p.mode);
}
