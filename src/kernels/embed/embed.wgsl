// Token (+ learned position) embedding for one vocabulary chunk of wte.
// resid[r, c] = wte[tok[r], c] + wpe[pos[r], c], also keeping both terms (hook_embed, hook_pos_embed).
// With has_pos = 0 (RoPE models) there is no position term and pos_emb is left alone.
// Rows whose token lies outside [vocab_start, vocab_start + vocab_count) are left to another chunk's dispatch.

struct Params {
    rows: u32,
    d: u32,
    vocab_start: u32,
    vocab_count: u32,
    has_pos: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;          // [rows]
@group(0) @binding(2) var<storage, read> rowinfo: array<vec4<u32>>;   // [rows] (seq, pos, valid, 0)
@group(0) @binding(3) var<storage, read> wte: array<f32>;             // [vocab_count, d]
@group(0) @binding(4) var<storage, read> wpe: array<f32>;             // [n_positions, d]
@group(0) @binding(5) var<storage, read_write> resid: array<f32>;     // [rows, d]
@group(0) @binding(6) var<storage, read_write> tok_emb: array<f32>;   // [rows, d]
@group(0) @binding(7) var<storage, read_write> pos_emb: array<f32>;   // [rows, d]

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.d) {
        return;
    }
    let r = i / p.d;
    let c = i % p.d;
    let tok = tokens[r];
    if (tok < p.vocab_start || tok >= p.vocab_start + p.vocab_count) {
        return;
    }
    let pos = rowinfo[r].y;
    let e = wte[(tok - p.vocab_start) * p.d + c];
    tok_emb[i] = e;
    if (p.has_pos != 0u) {
        let q = wpe[pos * p.d + c];
        pos_emb[i] = q;
        resid[i] = e + q;
    } else {
        resid[i] = e;
    }
}
