// Causal softmax attention of one query row and one head against the KV cache.
// Keys 0..=pos of the row's sequence are visited in chunks of 256 with an online softmax
// (running max and sum), so no T×T matrix is needed. When capture is on, the scaled scores
// and the probabilities are also written to [rows, n_head, cap_keys] buffers.
// Knockout (an intervention): keys whose absolute position is marked in `knock` are removed from
// the attention of every later query (a query always keeps its own position); their scores read −inf.

struct Params {
    rows: u32,
    n_head: u32,
    head_dim: u32,
    d: u32,
    cap: u32,       // positions per sequence in the cache
    capture: u32,   // 1: write scores and probabilities
    cap_keys: u32,  // key stride of the capture buffers
    scale: f32,
    knock_on: u32,  // 1: apply the knockout mask
    qkv_width: u32, // width of the fused q|k|v rows
    kv_dim: u32,    // key/value width per position in the cache
    group: u32,     // query heads per key/value head (grouped-query attention)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;             // [rows, qkv_width]
@group(0) @binding(2) var<storage, read> rowinfo: array<vec4<u32>>;   // [rows] (seq, pos, valid, 0)
@group(0) @binding(3) var<storage, read> kcache: array<f32>;          // [seqs, cap, kv_dim]
@group(0) @binding(4) var<storage, read> vcache: array<f32>;          // [seqs, cap, kv_dim]
@group(0) @binding(5) var<storage, read_write> z: array<f32>;         // [rows, d] = [rows, H, Dh]
@group(0) @binding(6) var<storage, read_write> scores: array<f32>;    // [rows, H, cap_keys]
@group(0) @binding(7) var<storage, read_write> probs: array<f32>;     // [rows, H, cap_keys]
@group(0) @binding(8) var<storage, read> knock: array<u32>;           // [cap] 1 = knocked-out key

const WG: u32 = 64u;
const NEG: f32 = -3.0e38;
const CH: u32 = 256u;

var<workgroup> s: array<f32, CH>;
var<workgroup> red: array<f32, WG>;
var<workgroup> wnk: u32;

fn reduce_max(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st = st / 2u) {
        if (lid < st) {
            red[lid] = max(red[lid], red[lid + st]);
        }
        workgroupBarrier();
    }
    let m = red[0];
    workgroupBarrier();
    return m;
}

fn reduce_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st = st / 2u) {
        if (lid < st) {
            red[lid] = red[lid] + red[lid + st];
        }
        workgroupBarrier();
    }
    let m = red[0];
    workgroupBarrier();
    return m;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wg.x + wg.z * nwg.x;
    let h = wg.y;
    if (row >= p.rows) {
        return;
    }
    if (lid == 0u) {
        let info = rowinfo[row];
        // Number of keys this query sees; 0 for padding rows.
        wnk = select(0u, info.y + 1u, info.z != 0u);
    }
    let nk = workgroupUniformLoad(&wnk);
    let info = rowinfo[row];
    let seq = info.x;
    let hd = p.head_dim;
    let qb = row * p.qkv_width + h * hd;
    let cb = seq * p.cap * p.kv_dim + (h / p.group) * hd;
    let capb = (row * p.n_head + h) * p.cap_keys;

    var m = -3.0e38;
    var l = 0.0;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);

    for (var c0 = 0u; c0 < nk; c0 = c0 + CH) {
        let cn = min(CH, nk - c0);
        var lm = -3.0e38;
        for (var jj = lid; jj < cn; jj = jj + WG) {
            let kb = cb + (c0 + jj) * p.kv_dim;
            var dot = 0.0;
            for (var i = 0u; i < hd; i = i + 1u) {
                dot = dot + qkv[qb + i] * kcache[kb + i];
            }
            var sc = dot * p.scale;
            let knocked = p.knock_on != 0u && c0 + jj < nk - 1u && knock[c0 + jj] != 0u;
            if (knocked) {
                sc = NEG;
            }
            s[jj] = sc;
            lm = max(lm, sc);
            if (p.capture != 0u) {
                scores[capb + c0 + jj] = select(sc, bitcast<f32>(0xff800000u), knocked);
            }
        }
        let cm = reduce_max(lm, lid);
        let m_new = max(m, cm);
        let alpha = exp(m - m_new);
        var ls = 0.0;
        for (var jj = lid; jj < cn; jj = jj + WG) {
            let e = exp(s[jj] - m_new);
            s[jj] = e;
            ls = ls + e;
        }
        let cs = reduce_sum(ls, lid);
        l = l * alpha + cs;
        for (var t = 0u; t < 4u; t = t + 1u) {
            let dd = lid + t * WG;
            if (dd < hd) {
                var a = acc[t] * alpha;
                for (var jj = 0u; jj < cn; jj = jj + 1u) {
                    a = a + s[jj] * vcache[cb + (c0 + jj) * p.kv_dim + dd];
                }
                acc[t] = a;
            }
        }
        m = m_new;
        workgroupBarrier();
    }

    let zb = row * p.d + h * hd;
    for (var t = 0u; t < 4u; t = t + 1u) {
        let dd = lid + t * WG;
        if (dd < hd) {
            var o = 0.0;
            if (nk > 0u) {
                o = acc[t] / l;
            }
            z[zb + dd] = o;
        }
    }
    if (p.capture != 0u) {
        // Each invocation re-reads only the scores it wrote itself (same j modulo WG).
        for (var j = lid; j < nk; j = j + WG) {
            let sc = scores[capb + j];
            probs[capb + j] = select(exp(sc - m) / l, 0.0, sc < NEG);
        }
    }
}
