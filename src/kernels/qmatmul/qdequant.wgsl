// A matrix kept in ggml blocks (type = the override QTYPE) dequantized to f32 rows:
// out[(p.row_off + j) · d + c] = W[j, c] for j < p.rows — the prefill path writes a layer's
// matrices into one f32 scratch matrix and runs the tiled f32 matmul on it.

struct Params {
    rows: u32,
    d: u32,
    row_off: u32,
    p0: u32,
    hoff: u32,
    p1: u32,
    p2: u32,
    p3: u32,
}

override QTYPE: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.d) {
        return;
    }
    out[p.row_off * p.d + i] = weight(i / p.d, i % p.d);
}
