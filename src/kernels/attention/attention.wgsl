// Causal softmax attention of one query row and one head against the KV cache.
// Keys 0..=pos of the row's sequence are visited in chunks of 256 with an online softmax
// (running max and sum), so no T×T matrix is needed. When capture is on, the scaled scores
// and the probabilities are also written to [rows, n_head, cap_keys] buffers.
// Sliding window (Gemma 3's sliding layers, `window` > 0): keys with pos − j >= window score −inf.
// Knockout (an intervention): keys whose absolute position is marked in `knock` are removed from
// the attention of every later query (a query always keeps its own position); their scores read −inf.
//
// Attention variants (Wang et al. 2025, Table 2, and related), s = q·k·scale over visible keys:
//   0 default        softmax(s) V
//   1 value_bias     softmax(s) V + v′
//   2 context_bias   softmax(s) V + p′ v′,      p′ = e^{q·k′·scale} / (Σ e^s + e^{q·k′·scale})
//   3 attn_bias      (1 − p′) softmax(s) V + p′ v′   (softmax over [K; k′], values [V; v′])
//   4 context_scale  softmax(s) V here; the per-head factor 2σ(Wx + b) is applied by head_scale.wgsl
//   5 sigmoid        Σ σ(s − log T) v,   T = sig_t, or when 0 the sequence's length in this forward
//                    pass (rowinfo.w), as the paper's code does
//   6 softmax1       Σ e^s v / (1 + Σ e^s)   (= attn_bias with q·k′ = 0 and v′ = 0)
//   7 clipped        Σ clip((η − γ) softmax(s) + γ, 0, 1) v   (a max/sum pre-pass, then the sum)
//   8 gated          softmax(s) V here; σ(Gx + c) is applied by head_scale.wgsl
// The captured pattern is the weight each value actually gets; `extra` holds p′ (variants 2, 3, 6).

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
    variant: u32,   // see the table above
    clip_gamma: f32,
    clip_eta: f32,
    sig_t: u32,     // sigmoid attention's T (0: the sequence length, rowinfo.w)
    window: u32,    // sliding window (0: none): keys j with pos − j >= window are masked
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;             // [rows, qkv_width]
@group(0) @binding(2) var<storage, read> rowinfo: array<vec4<u32>>;   // [rows] (seq, pos, valid, seq length)
@group(0) @binding(3) var<storage, read> kcache: array<f32>;          // [seqs, cap, kv_dim]
@group(0) @binding(4) var<storage, read> vcache: array<f32>;          // [seqs, cap, kv_dim]
@group(0) @binding(5) var<storage, read_write> z: array<f32>;         // [rows, d] = [rows, H, Dh]
@group(0) @binding(6) var<storage, read_write> scores: array<f32>;    // [rows, H, cap_keys]
@group(0) @binding(7) var<storage, read_write> probs: array<f32>;     // [rows, H, cap_keys]
@group(0) @binding(8) var<storage, read> knock: array<u32>;           // [cap] 1 = knocked-out key
@group(0) @binding(9) var<storage, read> prime: array<f32>;           // [2, H, Dh]: k′ then v′
@group(0) @binding(10) var<storage, read_write> extra: array<f32>;    // [rows, H]: p′

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

// Scaled score of key j (absolute index within the sequence) for this row's query; knocked-out
// keys read NEG.
fn score(qb: u32, cb: u32, j: u32, nk: u32) -> f32 {
    let kb = cb + j * p.kv_dim;
    var dot = 0.0;
    for (var i = 0u; i < p.head_dim; i = i + 1u) {
        dot = dot + qkv[qb + i] * kcache[kb + i];
    }
    if (p.knock_on != 0u && j < nk - 1u && knock[j] != 0u) {
        return NEG;
    }
    // Sliding window: the query's position is nk − 1; it sees j when (nk − 1) − j < window.
    if (p.window != 0u && j + p.window < nk) {
        return NEG;
    }
    return dot * p.scale;
}

// Unnormalised weight of a score: e^{s − m} for the softmax family, σ(s − log T) for sigmoid
// attention, the clipped probability for clipped softmax (m, l of the pre-pass).
fn weight(sc: f32, m: f32, log_t: f32, mc: f32, lc: f32) -> f32 {
    if (sc <= NEG) {
        return 0.0;
    }
    if (p.variant == 5u) {
        return 1.0 / (1.0 + exp(log_t - sc));
    }
    if (p.variant == 7u) {
        return clamp((p.clip_eta - p.clip_gamma) * exp(sc - mc) / lc + p.clip_gamma, 0.0, 1.0);
    }
    return exp(sc - m);
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

    let v = p.variant;
    let softmaxish = v != 5u && v != 7u;
    var m = -3.0e38;
    var l = 0.0;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);

    // Clipped softmax needs the final max and sum before any weight is known: a pre-pass.
    var mc = -3.0e38;
    var lc = 0.0;
    if (v == 7u) {
        for (var c0 = 0u; c0 < nk; c0 = c0 + CH) {
            let cn = min(CH, nk - c0);
            var lm = -3.0e38;
            for (var jj = lid; jj < cn; jj = jj + WG) {
                let sc = score(qb, cb, c0 + jj, nk);
                s[jj] = sc;
                lm = max(lm, sc);
            }
            let m_new = max(mc, reduce_max(lm, lid));
            var ls = 0.0;
            for (var jj = lid; jj < cn; jj = jj + WG) {
                ls = ls + exp(s[jj] - m_new);
            }
            lc = lc * exp(mc - m_new) + reduce_sum(ls, lid);
            mc = m_new;
        }
    }
    var log_t = log(f32(max(info.w, 1u)));
    if (p.sig_t != 0u) {
        log_t = log(f32(p.sig_t));
    }

    for (var c0 = 0u; c0 < nk; c0 = c0 + CH) {
        let cn = min(CH, nk - c0);
        var lm = -3.0e38;
        for (var jj = lid; jj < cn; jj = jj + WG) {
            let sc = score(qb, cb, c0 + jj, nk);
            s[jj] = sc;
            lm = max(lm, sc);
            if (p.capture != 0u) {
                scores[capb + c0 + jj] = select(sc, bitcast<f32>(0xff800000u), sc <= NEG);
            }
        }
        let cm = reduce_max(lm, lid);
        var m_new = max(m, cm);
        var alpha = exp(m - m_new);
        if (!softmaxish) {
            m_new = m;
            alpha = 1.0;
        }
        var ls = 0.0;
        for (var jj = lid; jj < cn; jj = jj + WG) {
            let e = weight(s[jj], m_new, log_t, mc, lc);
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

    // p′: the extra key's probability (context_bias, attn_bias) or the off-by-one logit's (softmax1).
    var pe = 0.0;
    if (v == 2u || v == 3u || v == 6u) {
        var e1 = 0.0;
        if (v != 6u) {
            for (var i = 0u; i < hd; i = i + 1u) {
                e1 = e1 + qkv[qb + i] * prime[h * hd + i];
            }
            e1 = e1 * p.scale;
        }
        let m2 = max(m, e1);
        let x = exp(e1 - m2);
        pe = x / (l * exp(m - m2) + x);
        if (p.capture != 0u && lid == 0u && nk > 0u) {
            extra[row * p.n_head + h] = pe;
        }
    }
    // Softmax-normalised part's factor, and the bias value's factor.
    var keep = 1.0;
    var bias = 0.0;
    if (v == 1u) {
        bias = 1.0;
    } else if (v == 2u) {
        bias = pe;
    } else if (v == 3u || v == 6u) {
        keep = 1.0 - pe;
        bias = select(pe, 0.0, v == 6u);
    }
    var norm = 1.0;
    if (softmaxish && nk > 0u) {
        norm = keep / l;
    }

    let zb = row * p.d + h * hd;
    let vb = p.n_head * hd + h * hd;
    for (var t = 0u; t < 4u; t = t + 1u) {
        let dd = lid + t * WG;
        if (dd < hd) {
            var o = 0.0;
            if (nk > 0u) {
                o = acc[t] * norm;
                if (bias != 0.0) {
                    o = o + bias * prime[vb + dd];
                }
            }
            z[zb + dd] = o;
        }
    }
    if (p.capture != 0u) {
        // Each invocation re-reads only the scores it wrote itself (same j modulo WG).
        for (var j = lid; j < nk; j = j + WG) {
            let sc = scores[capb + j];
            var w = 0.0;
            if (sc > NEG) {
                if (softmaxish) {
                    w = exp(sc - m) * norm;
                } else {
                    w = weight(sc, m, log_t, mc, lc);
                }
            }
            probs[capb + j] = w;
        }
    }
}
