// Append this step's keys and values (columns d..3d of the fused qkv rows) to the KV cache
// at each row's (sequence, position). Padding rows (valid = 0) write nothing.

struct Params {
    rows: u32,
    d: u32,
    cap: u32,   // positions per sequence in the cache
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;             // [rows, 3d]
@group(0) @binding(2) var<storage, read> rowinfo: array<vec4<u32>>;   // [rows] (seq, pos, valid, 0)
@group(0) @binding(3) var<storage, read_write> kcache: array<f32>;    // [seqs, cap, d]
@group(0) @binding(4) var<storage, read_write> vcache: array<f32>;    // [seqs, cap, d]

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.d) {
        return;
    }
    let r = i / p.d;
    let c = i % p.d;
    let info = rowinfo[r];
    if (info.z == 0u || info.y >= p.cap) {
        return;
    }
    let dst = (info.x * p.cap + info.y) * p.d + c;
    kcache[dst] = qkv[r * 3u * p.d + p.d + c];
    vcache[dst] = qkv[r * 3u * p.d + 2u * p.d + c];
}
