// Element decode of a matrix kept in ggml blocks (qmatvec.wgsl's layout, type = the including
// shader's override QTYPE), appended to qembed.wgsl and qdequant.wgsl: uses their `b` (the
// words), `p.d` (row length) and `p.hoff` (scale region). Each element takes the f32 operations
// of gguf.quants.dequantize in its order, so the values are bit for bit the dequantized ones.

// Byte i of the words from word w on.
fn byte_at(w: u32, i: u32) -> u32 {
    return (b[w + (i >> 2u)] >> (8u * (i & 3u))) & 255u;
}

fn half_scale(i: u32) -> f32 {
    let pair = unpack2x16float(b[p.hoff + (i >> 1u)]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}

// Element c of row `row` of a [rows, d] matrix.
fn weight(row: u32, c: u32) -> f32 {
    if (QTYPE == 8u || QTYPE == 2u || QTYPE == 3u || QTYPE == 6u || QTYPE == 7u) {
        let i = row * (p.d >> 5u) + (c >> 5u);
        let e = c & 31u;
        if (QTYPE == 8u) {
            let q = extractBits(bitcast<i32>(b[i * 8u + (e >> 2u)]), 8u * (e & 3u), 8u);
            return f32(q) * half_scale(i);
        }
        // Q4_x / Q5_x: element e < 16 the low nibble of byte e, else the high nibble of e − 16.
        var qw = i * 4u;
        var q5 = 0u;
        if (QTYPE == 6u || QTYPE == 7u) {
            qw = i * 5u + 1u;
            q5 = ((b[i * 5u] >> e) & 1u) << 4u;
        }
        let q = f32(((byte_at(qw, e & 15u) >> (4u * (e >> 4u))) & 15u) | q5);
        if (QTYPE == 2u) {
            return (q - 8.0) * half_scale(i);
        }
        if (QTYPE == 6u) {
            return (q - 16.0) * half_scale(i);
        }
        let dm = unpack2x16float(b[p.hoff + i]);
        return q * dm.x + dm.y;
    }
    let blk = row * (p.d >> 8u) + (c >> 8u);
    let e = c & 255u;
    let j = e >> 5u;
    let l = e & 31u;
    if (QTYPE == 12u || QTYPE == 13u) {
        var base = blk * 36u;
        var qs = base + 4u;
        if (QTYPE == 13u) {
            base = blk * 44u;
            qs = base + 12u;
        }
        var sc: u32;
        var mn: u32;
        if (j < 4u) {
            sc = byte_at(base + 1u, j) & 63u;
            mn = byte_at(base + 1u, j + 4u) & 63u;
        } else {
            sc = (byte_at(base + 1u, j + 4u) & 15u) | ((byte_at(base + 1u, j - 4u) >> 6u) << 4u);
            mn = (byte_at(base + 1u, j + 4u) >> 4u) | ((byte_at(base + 1u, j) >> 6u) << 4u);
        }
        var q = (byte_at(qs, 32u * (j >> 1u) + l) >> (4u * (j & 1u))) & 15u;
        if (QTYPE == 13u) {
            q = q | (((byte_at(base + 4u, l) >> j) & 1u) << 4u);
        }
        let dm = unpack2x16float(b[base]);
        return dm.x * f32(sc) * f32(q) - dm.y * f32(mn);
    }
    // Q6_K
    let base = blk * 53u;
    let h = j >> 2u;
    let s = j & 3u;
    let lo = (byte_at(base, 64u * h + 32u * (s & 1u) + l) >> (4u * (s >> 1u))) & 15u;
    let hi = (byte_at(base + 32u, 32u * h + l) >> (2u * s)) & 3u;
    let sc = extractBits(bitcast<i32>(byte_at(base + 48u, e >> 4u)), 0u, 8u);
    let d = unpack2x16float(b[base + 52u]).x;
    return d * f32(sc) * (f32(lo | (hi << 4u)) - 32.0);
}
