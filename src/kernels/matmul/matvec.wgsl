// C[M, N] = A[M, K] · B (+ bias[N]) for few rows (decode): the memory-floor kernel. B is [K, N]
// (Conv1D) or, with FLAG_B_T, [N, K] (nn.Linear, the LM head).
//
// A workgroup of 64 lanes is 8 groups of 8 lanes; each group owns 4 adjacent output columns
// and its 8 lanes split K, so the group's partial sums are reduced over 8 lanes at the end
// (reduce_rows: subgroup shuffles in matvec_reduce_sg.wgsl, workgroup memory in
// matvec_reduce_wg.wgsl). Weight reads are contiguous across lanes in both layouts:
// - [N, K]: lane j reads k = 4j, 4j+32, … of each of its 4 weight rows as vec4s, so the 8 lanes
//   of a group read 128 contiguous bytes per row per step;
// - [K, N]: lane j reads rows k = j, j+8, … and 4 adjacent columns (one vec4) per row, so the 8
//   groups read 128 contiguous bytes of each row.
// Where rows of B start on 16-byte boundaries (FLAG_VEC), each load moves 16 bytes (a second
// binding of a and b as vec4 arrays); else 4-byte loads, for any shape.
// ROWS (1 or 4, an override) rows of A share each weight read; the row block is wg.y. The
// accumulators are four named vec4s (one per row, one component per column): no local array.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

const FLAG_BIAS: u32 = 1u;
const FLAG_B_T: u32 = 2u;
// Rows of B start on 16-byte boundaries (K, or N for [K, N], a multiple of 4, of 8 with f16):
// read 16 bytes per load through a4 and b4.
const FLAG_VEC: u32 = 64u;
// Rows of A per workgroup: 1 (one token) or 4.
override ROWS: u32 = 4u;
// A's rows are a gated MLP's gate | up rows [2K], read as act(gate) · up (the down projection
// reads the GLU itself, no separate dispatch): 0 plain A, 1 SwiGLU (silu), 2 GeGLU (tanh GELU).
// Compiled with ROWS = 1 only; the same formulas as swiglu.wgsl.
override GLU: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
// B as raw words: f32 values, or f16 pairs (see wload in epilogue.wgsl).
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
// Added to the output with FLAG_RESID (see epilogue.wgsl).
@group(0) @binding(5) var<storage, read> resid: array<f32>;
// With FLAG_VEC, a and b again, 16 bytes per element (one load instruction per 4 words);
// else a 16-byte placeholder.
@group(0) @binding(6) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> b4: array<vec4<u32>>;

// Partial sums of rows row0 .. row0+3, one component per column of the group.
var<private> acc0: vec4<f32>;
var<private> acc1: vec4<f32>;
var<private> acc2: vec4<f32>;
var<private> acc3: vec4<f32>;

// B's elements i .. i+3 (f16: two words when i is even, else one element at a time).
fn wload4(i: u32) -> vec4<f32> {
    if (W_F16) {
        if ((i & 1u) == 0u) {
            let w = i >> 1u;
            return vec4<f32>(unpack2x16float(b[w]), unpack2x16float(b[w + 1u]));
        }
        return vec4<f32>(wload(i), wload(i + 1u), wload(i + 2u), wload(i + 3u));
    }
    return vec4<f32>(bitcast<f32>(b[i]), bitcast<f32>(b[i + 1u]), bitcast<f32>(b[i + 2u]), bitcast<f32>(b[i + 3u]));
}

fn glu(g: f32, u: f32) -> f32 {
    if (GLU == 2u) {
        return gelu(g, 0u) * u;
    }
    return g / (1.0 + exp(-g)) * u;
}

fn glu4(g: vec4<f32>, u: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(glu(g.x, u.x), glu(g.y, u.y), glu(g.z, u.z), glu(g.w, u.w));
}

// A's input value i (a row offset plus k): a[i], or with GLU the activation of gate a[i] and
// up a[i + K].
fn ain(i: u32) -> f32 {
    if (GLU != 0u) {
        return glu(a[i], a[i + p.k]);
    }
    return a[i];
}

fn a4s(i: u32) -> vec4<f32> {
    return vec4<f32>(ain(i), ain(i + 1u), ain(i + 2u), ain(i + 3u));
}

// Input values 4i .. 4i+3 through the 16-byte binding.
fn ain4(i: u32) -> vec4<f32> {
    if (GLU != 0u) {
        return glu4(a4[i], a4[i + (p.k >> 2u)]);
    }
    return a4[i];
}

// Weight rows c0..c3 (clamped to N), row offsets ar0..ar3 of A (clamped to M).
fn dot_nk(cols: vec4<u32>, ar: vec4<u32>, j: u32) {
    let k = p.k;
    let wr = cols * k;
    let kq = k >> 2u;
    for (var q = j; q < kq; q = q + 8u) {
        let kk = q << 2u;
        let w = mat4x4<f32>(wload4(wr.x + kk), wload4(wr.y + kk), wload4(wr.z + kk), wload4(wr.w + kk));
        acc0 = acc0 + a4s(ar.x + kk) * w;
        if (ROWS > 1u) {
            acc1 = acc1 + a4s(ar.y + kk) * w;
            acc2 = acc2 + a4s(ar.z + kk) * w;
            acc3 = acc3 + a4s(ar.w + kk) * w;
        }
    }
    // The last K mod 4 values, one per lane.
    let kt = (kq << 2u) + j;
    if (j < 4u && kt < k) {
        let w = vec4<f32>(wload(wr.x + kt), wload(wr.y + kt), wload(wr.z + kt), wload(wr.w + kt));
        acc0 = acc0 + ain(ar.x + kt) * w;
        if (ROWS > 1u) {
            acc1 = acc1 + ain(ar.y + kt) * w;
            acc2 = acc2 + ain(ar.z + kt) * w;
            acc3 = acc3 + ain(ar.w + kt) * w;
        }
    }
}

fn f16x4(lo: u32, hi: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(lo), unpack2x16float(hi));
}

// dot_nk with 16-byte loads: per step a lane reads 4 k (8 with f16) of each weight row.
fn dot_nk_vec(cols: vec4<u32>, ar: vec4<u32>, j: u32) {
    let ar4 = ar >> vec4<u32>(2u);
    if (W_F16) {
        let ko = p.k >> 3u;
        let wr = cols * ko;
        for (var q = j; q < ko; q = q + 8u) {
            let w0 = b4[wr.x + q];
            let w1 = b4[wr.y + q];
            let w2 = b4[wr.z + q];
            let w3 = b4[wr.w + q];
            let lo = mat4x4<f32>(f16x4(w0.x, w0.y), f16x4(w1.x, w1.y), f16x4(w2.x, w2.y), f16x4(w3.x, w3.y));
            let hi = mat4x4<f32>(f16x4(w0.z, w0.w), f16x4(w1.z, w1.w), f16x4(w2.z, w2.w), f16x4(w3.z, w3.w));
            let q2 = q << 1u;
            acc0 = acc0 + ain4(ar4.x + q2) * lo + ain4(ar4.x + q2 + 1u) * hi;
            if (ROWS > 1u) {
                acc1 = acc1 + ain4(ar4.y + q2) * lo + ain4(ar4.y + q2 + 1u) * hi;
                acc2 = acc2 + ain4(ar4.z + q2) * lo + ain4(ar4.z + q2 + 1u) * hi;
                acc3 = acc3 + ain4(ar4.w + q2) * lo + ain4(ar4.w + q2 + 1u) * hi;
            }
        }
        return;
    }
    let kq = p.k >> 2u;
    let wr = cols * kq;
    for (var q = j; q < kq; q = q + 8u) {
        let w = mat4x4<f32>(
            bitcast<vec4<f32>>(b4[wr.x + q]),
            bitcast<vec4<f32>>(b4[wr.y + q]),
            bitcast<vec4<f32>>(b4[wr.z + q]),
            bitcast<vec4<f32>>(b4[wr.w + q]),
        );
        acc0 = acc0 + ain4(ar4.x + q) * w;
        if (ROWS > 1u) {
            acc1 = acc1 + ain4(ar4.y + q) * w;
            acc2 = acc2 + ain4(ar4.z + q) * w;
            acc3 = acc3 + ain4(ar4.w + q) * w;
        }
    }
}

// dot_kn with 16-byte loads (col0 a multiple of 4 inside N): f16 rows hold 8 columns per
// load, of which the group takes its 4.
fn dot_kn_vec(col0: u32, ar: vec4<u32>, j: u32) {
    let n = p.n;
    for (var k = j; k < p.k; k = k + 8u) {
        let e = k * n + col0;
        var w: vec4<f32>;
        if (W_F16) {
            let v = b4[e >> 3u];
            w = select(f16x4(v.x, v.y), f16x4(v.z, v.w), (e & 4u) != 0u);
        } else {
            w = bitcast<vec4<f32>>(b4[e >> 2u]);
        }
        acc0 = acc0 + ain(ar.x + k) * w;
        if (ROWS > 1u) {
            acc1 = acc1 + ain(ar.y + k) * w;
            acc2 = acc2 + ain(ar.z + k) * w;
            acc3 = acc3 + ain(ar.w + k) * w;
        }
    }
}

// Columns col0..col0+3 of B [K, N]; the quad may pass N (then loaded one clamped column at a time).
fn dot_kn(col0: u32, ar: vec4<u32>, j: u32) {
    let n = p.n;
    let full = col0 + 3u < n;
    let cl = min(vec4<u32>(col0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(n - 1u));
    for (var k = j; k < p.k; k = k + 8u) {
        let base = k * n;
        var w: vec4<f32>;
        if (full) {
            w = wload4(base + col0);
        } else {
            w = vec4<f32>(wload(base + cl.x), wload(base + cl.y), wload(base + cl.z), wload(base + cl.w));
        }
        acc0 = acc0 + ain(ar.x + k) * w;
        if (ROWS > 1u) {
            acc1 = acc1 + ain(ar.y + k) * w;
            acc2 = acc2 + ain(ar.z + k) * w;
            acc3 = acc3 + ain(ar.w + k) * w;
        }
    }
}

fn store(row: u32, col: u32, v: f32) {
    if (row < p.m && col < p.n) {
        c[row * p.n + col] = epilogue(v, row, col);
    }
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = lid & 7u;
    // Column groups run over x (and z past 65,535 workgroups), row blocks over y.
    let col0 = ((wg.z * nwg.x + wg.x) * 8u + (lid >> 3u)) * 4u;
    let row0 = wg.y * ROWS;
    let rows = min(row0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.m - 1u));
    // A's row stride: K, or 2K for gate | up rows.
    let ar = rows * select(p.k, 2u * p.k, GLU != 0u);
    acc0 = vec4<f32>(0.0);
    acc1 = vec4<f32>(0.0);
    acc2 = vec4<f32>(0.0);
    acc3 = vec4<f32>(0.0);
    // A group past N still runs (clamped) so that every lane reaches the reduction.
    let vec = (p.flags & FLAG_VEC) != 0u;
    if ((p.flags & FLAG_B_T) != 0u) {
        let cols = min(vec4<u32>(col0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u));
        if (vec) {
            dot_nk_vec(cols, ar, j);
        } else {
            dot_nk(cols, ar, j);
        }
    } else if (vec) {
        // N is a multiple of 4 here: the last full quad stands in for groups past N.
        dot_kn_vec(min(col0, p.n - 4u), ar, j);
    } else {
        dot_kn(min(col0, p.n - 1u), ar, j);
    }
    // Lane j < ROWS of each group gets row row0 + j's four sums.
    let s = reduce_rows(lid);
    if (j < ROWS) {
        let row = row0 + j;
        store(row, col0, s.x);
        store(row, col0 + 1u, s.y);
        store(row, col0 + 2u, s.z);
        store(row, col0 + 3u, s.w);
    }
}

// Row j's accumulator (j < 4), by name.
fn acc_of(j: u32) -> vec4<f32> {
    switch j {
        case 0u: { return acc0; }
        case 1u: { return acc1; }
        case 2u: { return acc2; }
        default: { return acc3; }
    }
}
