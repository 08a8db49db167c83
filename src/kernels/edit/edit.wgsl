// Intervention on a hook point: overwrite chosen channels at chosen positions with given values.
// x is [rows, width]; the hook occupies columns offset .. offset + hook width (q, k, v share the
// qkv rows). posmask[p] = 1 marks absolute positions to edit; padding rows are never edited.

struct Params {
    rows: u32,
    width: u32,
    offset: u32,
    n_ch: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rowinfo: array<vec4<u32>>;  // [rows] (seq, pos, valid, 0)
@group(0) @binding(2) var<storage, read> posmask: array<u32>;        // [n_positions]
@group(0) @binding(3) var<storage, read> channels: array<u32>;       // [n_ch]
@group(0) @binding(4) var<storage, read> values: array<f32>;         // [n_ch]
@group(0) @binding(5) var<storage, read_write> x: array<f32>;        // [rows, width]

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.n_ch) {
        return;
    }
    let r = i / p.n_ch;
    let k = i % p.n_ch;
    let info = rowinfo[r];
    if (info.z == 0u || posmask[info.y] == 0u) {
        return;
    }
    x[r * p.width + p.offset + channels[k]] = values[k];
}
