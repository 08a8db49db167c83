// Token (+ learned position) embedding for one vocabulary chunk of wte.
// resid[r, c] = wte[tok[r], c] + wpe[pos[r] + pos_offset, c], also keeping both terms (hook_embed,
// hook_pos_embed). pos_offset is the table row of position 0 (OPT: 2; else 0). `mode`:
//   0 (RoPE models): no position term: resid = tok_emb = wte[tok]; pos_emb is left alone;
//   1: token + position, as above;
//   2 (positions only, one dispatch; wte unused): pos_emb = wpe[pos + pos_offset]; resid, tok_emb left alone;
//   3 (token only): tok_emb = wte[tok]; resid, pos_emb left alone (OPT with project_in: the
//     position term is added after the projection).
// In modes 0, 1 and 3 rows whose token lies outside [vocab_start, vocab_start + vocab_count) are
// left to another chunk's dispatch.

struct Params {
    rows: u32,
    d: u32,
    vocab_start: u32,
    vocab_count: u32,
    mode: u32,
    pos_offset: u32,
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
    let pos = rowinfo[r].y + p.pos_offset;
    if (p.mode == 2u) {
        pos_emb[i] = wpe[pos * p.d + c];
        return;
    }
    let tok = tokens[r];
    if (tok < p.vocab_start || tok >= p.vocab_start + p.vocab_count) {
        return;
    }
    let e = wte[(tok - p.vocab_start) * p.d + c];
    tok_emb[i] = e;
    if (p.mode == 1u) {
        let q = wpe[pos * p.d + c];
        pos_emb[i] = q;
        resid[i] = e + q;
    } else if (p.mode == 0u) {
        resid[i] = e;
    }
}
