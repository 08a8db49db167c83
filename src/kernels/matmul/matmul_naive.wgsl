// C[M, N] = A[M, K] · B[K, N] (+ bias[N]), one output per invocation, straight from global
// memory: the baseline the tiled kernel is measured against (benches only).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

const FLAG_BIAS: u32 = 1u;
const FLAG_B_T: u32 = 2u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let row = gid.y;
    if (row >= p.m || col >= p.n) {
        return;
    }
    var acc = 0.0;
    for (var k = 0u; k < p.k; k = k + 1u) {
        var w: f32;
        if ((p.flags & FLAG_B_T) != 0u) {
            w = b[col * p.k + k];
        } else {
            w = b[k * p.n + col];
        }
        acc = acc + a[row * p.k + k] * w;
    }
    if ((p.flags & FLAG_BIAS) != 0u) {
        acc = acc + bias[col];
    }
    c[row * p.n + col] = acc;
}
