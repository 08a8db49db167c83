// Token embedding from an embedding matrix kept in ggml blocks (one vocabulary chunk, laid out as
// qmatvec.wgsl reads it; type = the override QTYPE): resid[r, c] = tok_emb[r, c] = W[tok[r], c],
// decoded element by element (RoPE models: no position term, embed.wgsl's mode 0). Rows whose
// token lies outside [vocab_start, vocab_start + vocab_count) are left to another chunk.

struct Params {
    rows: u32,
    d: u32,
    vocab_start: u32,
    vocab_count: u32,
    hoff: u32,
    p1: u32,
    p2: u32,
    p3: u32,
}

override QTYPE: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> resid: array<f32>;
@group(0) @binding(4) var<storage, read_write> tok_emb: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.d) {
        return;
    }
    let r = i / p.d;
    let tok = tokens[r];
    if (tok < p.vocab_start || tok >= p.vocab_start + p.vocab_count) {
        return;
    }
    let e = weight(tok - p.vocab_start, i % p.d);
    tok_emb[i] = e;
    resid[i] = e;
}
