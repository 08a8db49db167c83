// C[M, col_off + j] = A[M, K] · W[j, :] (+ bias, GELU/ReLU, residual: epilogue.wgsl) for a weight
// matrix kept in ggml's block quantization (nn.Linear layout [rows, K], blocks along K), decoded
// in registers with f32 accumulation. The block type is the override QTYPE (the ggml type id).
//
// Layout (repacked to u32 words by qmatmul/mod.rs): K-quants (Q4_K, Q5_K, Q6_K) keep their
// 256-element blocks, padded to whole words (Q6_K: 210 → 212 bytes); the 32-element types keep
// their quants in words at the front (Q8_0: 8 words, Q4_x: 4, Q5_x: qh then 4) and the block's
// f16 scale d (Q8_0, Q4_0, Q5_0: f16 pairs) or d | m << 16 (Q4_1, Q5_1: one word) from word
// p.hoff on.
//
// A workgroup of 64 lanes handles WR = 8 weight rows, LPR = 8 lanes per row; lane l of a row takes
// the 32-element units l, l + 8, … of the row (one unit: 32 contiguous weights, 8 contiguous
// activation vec4s), then the row's 8 partial sums are added through workgroup memory. Rows of A
// are taken one after the other (RB per workgroup, grid y), each with its own reduction.

struct Params {
    m: u32,
    // Width of C's rows (the whole stacked layer).
    n: u32,
    k: u32,
    flags: u32,
    // Weight rows of this matrix, and the column of C its row 0 writes.
    rows: u32,
    col_off: u32,
    // Word offset of the scale region (32-element types).
    hoff: u32,
    pad: u32,
}

const FLAG_BIAS: u32 = 1u;
const WR: u32 = 8u;
const LPR: u32 = 8u;
const RB: u32 = 8u;

override QTYPE: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read> resid: array<f32>;

var<workgroup> part: array<f32, 64>;

// The four bytes of w as unsigned values.
fn u8x4(w: u32) -> vec4<f32> {
    return vec4<f32>(f32(w & 255u), f32((w >> 8u) & 255u), f32((w >> 16u) & 255u), f32(w >> 24u));
}

// The four bytes of w as signed values.
fn i8x4(w: u32) -> vec4<f32> {
    let v = bitcast<i32>(w);
    return vec4<f32>(vec4<i32>(extractBits(v, 0u, 8u), extractBits(v, 8u, 8u),
        extractBits(v, 16u, 8u), extractBits(v, 24u, 8u)));
}

// Bits 0..3 of x, one per lane, times 16 (the fifth bit of four Q5 quants).
fn bits4(x: u32) -> vec4<f32> {
    return vec4<f32>(f32(x & 1u), f32((x >> 1u) & 1u), f32((x >> 2u) & 1u), f32((x >> 3u) & 1u)) * 16.0;
}

// The f16 scale of 32-element block i (Q8_0, Q4_0, Q5_0).
fn half_scale(i: u32) -> f32 {
    let pair = unpack2x16float(b[p.hoff + (i >> 1u)]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}

// Byte i of a Q4_K/Q5_K block's 12 packed scale bytes (words base + 1 .. base + 3).
fn kbyte(base: u32, i: u32) -> u32 {
    return (b[base + 1u + (i >> 2u)] >> (8u * (i & 3u))) & 255u;
}

// Sum of four activations.
fn hsum(x: vec4<f32>) -> f32 {
    return x.x + x.y + x.z + x.w;
}

// Dot product of unit u (elements 32u .. 32u + 31) of weight row `row` with the activations
// a[xb .. xb + 8) (vec4s).
fn unit_dot(row: u32, u: u32, xb: u32) -> f32 {
    let units = p.k >> 5u;
    if (QTYPE == 8u) { // Q8_0: x = q·d
        let i = row * units + u;
        var s = 0.0;
        for (var w = 0u; w < 8u; w = w + 1u) {
            s = s + dot(i8x4(b[i * 8u + w]), a[xb + w]);
        }
        return s * half_scale(i);
    }
    if (QTYPE == 2u || QTYPE == 3u) { // Q4_0: x = (q − 8)·d; Q4_1: x = q·d + m
        let i = row * units + u;
        var s = 0.0;
        var sx = 0.0;
        for (var w = 0u; w < 4u; w = w + 1u) {
            let q = b[i * 4u + w];
            let lo = a[xb + w];
            let hi = a[xb + 4u + w];
            s = s + dot(u8x4(q & 0x0F0F0F0Fu), lo) + dot(u8x4((q >> 4u) & 0x0F0F0F0Fu), hi);
            sx = sx + hsum(lo) + hsum(hi);
        }
        if (QTYPE == 2u) {
            return half_scale(i) * (s - 8.0 * sx);
        }
        let dm = unpack2x16float(b[p.hoff + i]);
        return dm.x * s + dm.y * sx;
    }
    if (QTYPE == 6u || QTYPE == 7u) { // Q5_0: x = (q − 16)·d; Q5_1: x = q·d + m
        let i = row * units + u;
        let qh = b[i * 5u];
        var s = 0.0;
        var sx = 0.0;
        for (var w = 0u; w < 4u; w = w + 1u) {
            let q = b[i * 5u + 1u + w];
            let lo = a[xb + w];
            let hi = a[xb + 4u + w];
            let ql = u8x4(q & 0x0F0F0F0Fu) + bits4(qh >> (4u * w));
            let qu = u8x4((q >> 4u) & 0x0F0F0F0Fu) + bits4(qh >> (16u + 4u * w));
            s = s + dot(ql, lo) + dot(qu, hi);
            sx = sx + hsum(lo) + hsum(hi);
        }
        if (QTYPE == 6u) {
            return half_scale(i) * (s - 16.0 * sx);
        }
        let dm = unpack2x16float(b[p.hoff + i]);
        return dm.x * s + dm.y * sx;
    }
    // K-quants: sub-block j of 256-element block blk.
    let blk = row * (p.k >> 8u) + (u >> 3u);
    let j = u & 7u;
    if (QTYPE == 12u || QTYPE == 13u) { // Q4_K, Q5_K: x = (d·scale_j)·q − (dmin·min_j)
        var base = blk * 36u;
        var qs = base + 4u + 8u * (j >> 1u);
        if (QTYPE == 13u) {
            base = blk * 44u;
            qs = base + 12u + 8u * (j >> 1u);
        }
        var sc: u32;
        var mn: u32;
        if (j < 4u) {
            sc = kbyte(base, j) & 63u;
            mn = kbyte(base, j + 4u) & 63u;
        } else {
            sc = (kbyte(base, j + 4u) & 15u) | ((kbyte(base, j - 4u) >> 6u) << 4u);
            mn = (kbyte(base, j + 4u) >> 4u) | ((kbyte(base, j) >> 6u) << 4u);
        }
        let sh = 4u * (j & 1u);
        var s = 0.0;
        var sx = 0.0;
        for (var w = 0u; w < 8u; w = w + 1u) {
            let x = a[xb + w];
            var q = u8x4((b[qs + w] >> sh) & 0x0F0F0F0Fu);
            if (QTYPE == 13u) {
                q = q + 16.0 * u8x4((b[base + 4u + w] >> j) & 0x01010101u);
            }
            s = s + dot(q, x);
            sx = sx + hsum(x);
        }
        let dm = unpack2x16float(b[base]);
        return dm.x * f32(sc) * s - dm.y * f32(mn) * sx;
    }
    // Q6_K (QTYPE 14): element 32j + l, j = 4h + s: low nibble s / 2 of ql[64h + 32(s % 2) + l],
    // high bits (qh[32h + l] >> 2s) & 3, q − 32, scale scales[2j + l / 16] (i8); x = (d·scale)·q.
    let base = blk * 53u;
    let h = j >> 2u;
    let s2 = j & 3u;
    let ql = base + 16u * h + 8u * (s2 & 1u);
    let qh = base + 32u + 8u * h;
    let lsh = 4u * (s2 >> 1u);
    let hsh = 2u * s2;
    var s_lo = 0.0;
    var s_hi = 0.0;
    for (var w = 0u; w < 8u; w = w + 1u) {
        let q = u8x4((b[ql + w] >> lsh) & 0x0F0F0F0Fu) + 16.0 * u8x4((b[qh + w] >> hsh) & 0x03030303u) - 32.0;
        let v = dot(q, a[xb + w]);
        if (w < 4u) {
            s_lo = s_lo + v;
        } else {
            s_hi = s_hi + v;
        }
    }
    let scw = b[base + 48u + (j >> 1u)];
    let sh = 16u * (j & 1u);
    let sc_lo = f32(extractBits(bitcast<i32>(scw), sh, 8u));
    let sc_hi = f32(extractBits(bitcast<i32>(scw), sh + 8u, 8u));
    let d = unpack2x16float(b[base + 52u]).x;
    return d * (sc_lo * s_lo + sc_hi * s_hi);
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let j = wg.x * WR + lid / LPR;
    let l = lid % LPR;
    let units = p.k >> 5u;
    let row0 = wg.y * RB;
    let nr = min(RB, p.m - row0);
    for (var r = 0u; r < nr; r = r + 1u) {
        let row = row0 + r;
        var s = 0.0;
        if (j < p.rows) {
            for (var u = l; u < units; u = u + LPR) {
                s = s + unit_dot(j, u, (row * p.k + 32u * u) >> 2u);
            }
        }
        part[lid] = s;
        workgroupBarrier();
        if (l == 0u && j < p.rows) {
            var t = 0.0;
            for (var i = 0u; i < LPR; i = i + 1u) {
                t = t + part[lid + i];
            }
            let col = p.col_off + j;
            c[row * p.n + col] = epilogue(t, row, col);
        }
        workgroupBarrier();
    }
}
