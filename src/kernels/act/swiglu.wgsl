// SwiGLU (Llama MLP): post[r, i] = silu(gate[r, i]) · up[r, i], with gate and up side by side
// in one [rows, 2I] buffer (the fused gate_proj | up_proj output). silu(x) = x / (1 + e^-x).
// With act = 1, GeGLU (Gemma): post = gelu_tanh(gate) · up (gelu() of common/gelu_fn.wgsl, mode 0).

struct Params {
    rows: u32,
    inner: u32,
    act: u32,       // 0: silu (SwiGLU), 1: tanh GELU (GeGLU)
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gu: array<f32>;          // [rows, 2I]
@group(0) @binding(2) var<storage, read_write> post: array<f32>;  // [rows, I]

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.inner) {
        return;
    }
    let r = i / p.inner;
    let c = i % p.inner;
    let g = gu[r * 2u * p.inner + c];
    let u = gu[r * 2u * p.inner + p.inner + c];
    if (p.act == 1u) {
        post[i] = gelu(g, 0u) * u;
    } else {
        post[i] = g / (1.0 + exp(-g)) * u;
    }
}
