// Append this step's keys and values to the KV cache at each row's (sequence, position).
// qkv rows are [q (q_dim) | k (kv_dim) | v (kv_dim)]; the cache holds kv_dim per position
// (kv_dim < q_dim under grouped-query attention). Padding rows (valid = 0) write nothing.

struct Params {
    rows: u32,
    kv_dim: u32,
    cap: u32,   // positions per sequence in the cache
    q_dim: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;             // [rows, q_dim + 2 kv_dim]
@group(0) @binding(2) var<storage, read> rowinfo: array<vec4<u32>>;   // [rows] (seq, pos, valid, 0)
@group(0) @binding(3) var<storage, read_write> kcache: array<f32>;    // [seqs, cap, kv_dim]
@group(0) @binding(4) var<storage, read_write> vcache: array<f32>;    // [seqs, cap, kv_dim]

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.kv_dim) {
        return;
    }
    let r = i / p.kv_dim;
    let c = i % p.kv_dim;
    let info = rowinfo[r];
    if (info.z == 0u || info.y >= p.cap) {
        return;
    }
    let w = p.q_dim + 2u * p.kv_dim;
    let dst = (info.x * p.cap + info.y) * p.kv_dim + c;
    kcache[dst] = qkv[r * w + p.q_dim + c];
    vcache[dst] = qkv[r * w + p.q_dim + p.kv_dim + c];
}
