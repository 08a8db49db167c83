// LayerNorm over the last axis: y = (x - mean) / sqrt(var + eps) * gamma + beta, biased variance.
// One workgroup per row; two passes (mean, then centred variance) as PyTorch does in f32.

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [rows, d]
@group(0) @binding(2) var<storage, read> gamma: array<f32>;    // [d]
@group(0) @binding(3) var<storage, read> beta: array<f32>;     // [d]
@group(0) @binding(4) var<storage, read_write> y: array<f32>;  // [rows, d]

const WG: u32 = 128u;
var<workgroup> red: array<f32, WG>;

fn reduce_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = wg.x + wg.y * nwg.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.d;
    var s = 0.0;
    for (var c = lid; c < p.d; c = c + WG) {
        s = s + x[base + c];
    }
    let mean = reduce_sum(s, lid) / f32(p.d);
    var v = 0.0;
    for (var c = lid; c < p.d; c = c + WG) {
        let t = x[base + c] - mean;
        v = v + t * t;
    }
    let var_ = reduce_sum(v, lid) / f32(p.d);
    let inv = 1.0 / sqrt(var_ + p.eps);
    for (var c = lid; c < p.d; c = c + WG) {
        y[base + c] = (x[base + c] - mean) * inv * gamma[c] + beta[c];
    }
}
