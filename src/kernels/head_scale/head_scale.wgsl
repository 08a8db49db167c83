// Per-head output scaling (attention variants "context_scale" (e) and "gated").
// `factor`: logits [rows, H] = Linear(ln_1 output) become in place the factor
//           mult · σ(logit)  (mult 2 for context scale S_c(x) = 2σ(Wx + b), 1 for the gate σ(Gx + c)).
// `apply`:  z[r, h, :] *= factor[r, h], before the heads are merged and c_proj reads them.

struct Params {
    rows: u32,
    n_head: u32,
    head_dim: u32,
    mult: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> fac: array<f32>;  // [rows, H]
@group(0) @binding(2) var<storage, read_write> z: array<f32>;    // [rows, H * Dh]

@compute @workgroup_size(256)
fn factor(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.n_head) {
        return;
    }
    fac[i] = p.mult / (1.0 + exp(-fac[i]));
}

@compute @workgroup_size(256)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.n_head * p.head_dim) {
        return;
    }
    z[i] = z[i] * fac[i / p.head_dim];
}
