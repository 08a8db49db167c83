// Rotary position embedding (Llama, GPT-NeoX: Hugging Face "rotate_half" convention), in place
// on the q and k parts of the fused qkv rows. Only the first R = rot_dims dimensions of each head
// are rotated (R = head_dim unless partial, as GPT-NeoX's rotary_pct); the rest pass through.
// For each head and i < R/2, with (c, s) = table[pos, i]:
//   x[i]       <- x[i] c - x[i + R/2] s
//   x[i + R/2] <- x[i + R/2] c + x[i] s
// The cos/sin tables are computed on the host as transformers computes them in f32.

struct Params {
    rows: u32,
    heads: u32,      // query heads + key heads: the q and k parts are consecutive in the row
    head_dim: u32,
    qkv_width: u32,
    rot_dims: u32,   // rotated dimensions per head (even, <= head_dim)
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rowinfo: array<vec4<u32>>;  // [rows] (seq, pos, valid, 0)
@group(0) @binding(2) var<storage, read> cos_t: array<f32>;          // [n_positions, R/2]
@group(0) @binding(3) var<storage, read> sin_t: array<f32>;          // [n_positions, R/2]
@group(0) @binding(4) var<storage, read_write> qkv: array<f32>;      // [rows, qkv_width]

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let half = p.rot_dims / 2u;
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.heads * half) {
        return;
    }
    let r = i / (p.heads * half);
    let rest = i % (p.heads * half);
    let h = rest / half;
    let j = rest % half;
    let info = rowinfo[r];
    if (info.z == 0u) {
        return;
    }
    let c = cos_t[info.y * half + j];
    let s = sin_t[info.y * half + j];
    let b = r * p.qkv_width + h * p.head_dim + j;
    let x1 = qkv[b];
    let x2 = qkv[b + half];
    qkv[b] = x1 * c - x2 * s;
    qkv[b + half] = x2 * c + x1 * s;
}
