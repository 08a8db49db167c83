// Per-head RMSNorm in place on the q and k heads of the fused q|k|v rows (Gemma 3's and Qwen3's
// q_norm / k_norm, before RoPE): for each row and head h < heads (the n_q query heads, then the
// key heads; consecutive in the row),
//   x <- x / sqrt(mean(x²) + eps) · w,   w = weight[0..Dh] for query heads, weight[Dh..2Dh] for key heads.
// One workgroup per (row, head); each invocation writes back only the entries it read.

struct Params {
    rows: u32,
    heads: u32,      // query heads + key heads
    n_q: u32,        // query heads
    head_dim: u32,
    qkv_width: u32,
    eps: f32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weight: array<f32>;       // [2, Dh]: q_norm | k_norm
@group(0) @binding(2) var<storage, read_write> qkv: array<f32>;    // [rows, qkv_width]

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = wg.x + wg.y * nwg.x;
    if (i >= p.rows * p.heads) {
        return;
    }
    let r = i / p.heads;
    let h = i % p.heads;
    let base = r * p.qkv_width + h * p.head_dim;
    let wb = select(p.head_dim, 0u, h < p.n_q);
    var s = 0.0;
    for (var c = lid; c < p.head_dim; c = c + WG) {
        let v = qkv[base + c];
        s = s + v * v;
    }
    red[lid] = s;
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st = st / 2u) {
        if (lid < st) {
            red[lid] = red[lid] + red[lid + st];
        }
        workgroupBarrier();
    }
    let inv = inverseSqrt(red[0] / f32(p.head_dim) + p.eps);
    for (var c = lid; c < p.head_dim; c = c + WG) {
        qkv[base + c] = weight[wb + c] * (qkv[base + c] * inv);
    }
}
