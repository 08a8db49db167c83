// RMSNorm over the last axis (Llama): y = x / sqrt(mean(x²) + eps) · weight.
// One workgroup per row.

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [rows, d]
@group(0) @binding(2) var<storage, read> weight: array<f32>;   // [d]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // [rows, d]

const WG: u32 = 128u;
var<workgroup> red: array<f32, WG>;

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
        let v = x[base + c];
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
    let inv = inverseSqrt(red[0] / f32(p.d) + p.eps);
    for (var c = lid; c < p.d; c = c + WG) {
        y[base + c] = weight[c] * (x[base + c] * inv);
    }
}
