//! Block dequantizers of ggml's 5-bit legacy types (Q5_0, Q5_1) and K-quants (Q2_K … Q6_K),
//! one block at a time, bit for bit as `gguf.quants.dequantize` (gguf-py, float32 numpy).
//! File format only: no wgpu, no models.
//!
//! Layouts as llama.cpp's `ggml-common.h` declares them (all scales f16, little-endian). Element
//! `e` of a block and the float operations are spelled out on each function; every product and
//! difference is one f32 operation rounded on its own, in gguf-py's order (no fused multiply-add),
//! so the bits agree exactly.

use half::f16;

#[inline]
pub(super) fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// The 5-bit quants of a Q5_0/Q5_1 block (`qh`: 4 bytes, `qs`: 16 bytes) to `f(j, q)` for the
/// 32 elements: element `j < 16` is the low nibble of `qs[j]`, element `16 + j` its high nibble,
/// and bit `j` of `qh` (a little-endian u32) is element `j`'s fifth bit.
#[inline]
fn q5(qh: &[u8], qs: &[u8], mut f: impl FnMut(usize, u32)) {
    let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    for (j, &q) in qs.iter().enumerate() {
        f(j, (q & 0x0F) as u32 | (((qh >> j) & 1) << 4));
        f(16 + j, (q >> 4) as u32 | (((qh >> (16 + j)) & 1) << 4));
    }
}

/// Q5_0 (22 bytes / 32): f16 `d`, u32 `qh`, 16 bytes `qs`; `x = d·(q − 16)`, q in 0..31.
pub(super) fn q5_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    q5(&b[2..6], &b[6..22], |j, q| {
        out[j] = d * (q as i32 - 16) as f32
    });
}

/// Q5_1 (24 bytes / 32): f16 `d`, f16 `m`, u32 `qh`, 16 bytes `qs`; `x = (d·q) + m`.
pub(super) fn q5_1(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    q5(&b[4..8], &b[8..24], |j, q| out[j] = d * q as f32 + m);
}

/// Q2_K (84 bytes / 256): 16 bytes `scales` (low nibble: scale, high nibble: min of sub-block
/// `e / 16`), 64 bytes `qs`, f16 `d`, f16 `dmin`. Element `e = 128·h + 32·s + l` is bits
/// `2s..2s+2` of `qs[32·h + l]`; `x = (d·scale)·q − (dmin·min)`.
pub(super) fn q2_k(b: &[u8], out: &mut [f32]) {
    let (scales, qs) = (&b[..16], &b[16..80]);
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    let mut dl = [0f32; 16];
    let mut ml = [0f32; 16];
    for j in 0..16 {
        dl[j] = d * (scales[j] & 0x0F) as f32;
        ml[j] = dmin * (scales[j] >> 4) as f32;
    }
    for h in 0..2 {
        for s in 0..4 {
            for l in 0..32 {
                let e = 128 * h + 32 * s + l;
                let q = ((qs[32 * h + l] >> (2 * s)) & 3) as f32;
                out[e] = dl[e / 16] * q - ml[e / 16];
            }
        }
    }
}

/// Q3_K (110 bytes / 256): 32 bytes `hmask`, 64 bytes `qs`, 12 bytes of 16 packed 6-bit scales,
/// f16 `d`. Scale `j`: low 4 bits from `scales[j % 8] >> 4·(j / 8)`, high 2 bits from
/// `scales[8 + j % 4] >> 2·(j / 4)`, minus 32. Element `e = 128·h + 32·s + l`: low bits
/// `(qs[32·h + l] >> 2s) & 3`, minus 4 when bit `e / 32` of `hmask[l]` is clear;
/// `x = (d·scale)·q`.
pub(super) fn q3_k(b: &[u8], out: &mut [f32]) {
    let (hmask, qs, sc) = (&b[..32], &b[32..96], &b[96..108]);
    let d = f16_at(b, 108);
    let mut dl = [0f32; 16];
    for (j, dl) in dl.iter_mut().enumerate() {
        let lo = (sc[j % 8] >> (4 * (j / 8))) & 0x0F;
        let hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 0x03;
        *dl = d * ((lo | (hi << 4)) as i32 - 32) as f32;
    }
    for h in 0..2 {
        for s in 0..4 {
            for l in 0..32 {
                let e = 128 * h + 32 * s + l;
                let low = ((qs[32 * h + l] >> (2 * s)) & 3) as i32;
                let high = ((hmask[l] >> (e / 32)) & 1) as i32;
                out[e] = dl[e / 16] * (low - ((high ^ 1) << 2)) as f32;
            }
        }
    }
}

/// The 8 6-bit (scale, min) pairs of Q4_K/Q5_K, packed in 12 bytes: for `j < 4`
/// `scale = s[j] & 63`, `min = s[4 + j] & 63`; for `j ≥ 4`
/// `scale = (s[j + 4] & 15) | ((s[j − 4] >> 6) << 4)`, `min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4)`.
fn scale_min_k4(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = s[j] & 0x3F;
        mn[j] = s[4 + j] & 0x3F;
        sc[4 + j] = (s[8 + j] & 0x0F) | ((s[j] >> 2) & 0x30);
        mn[4 + j] = (s[8 + j] >> 4) | ((s[4 + j] >> 2) & 0x30);
    }
    (sc, mn)
}

/// `(d·scale, dmin·min)` of the 8 sub-blocks of a Q4_K/Q5_K block (bytes 0..16).
fn k4_factors(b: &[u8]) -> ([f32; 8], [f32; 8]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let (sc, mn) = scale_min_k4(&b[4..16]);
    (sc.map(|s| d * s as f32), mn.map(|m| dmin * m as f32))
}

/// Q4_K (144 bytes / 256): f16 `d`, f16 `dmin`, 12 bytes scales/mins ([`scale_min_k4`]),
/// 128 bytes `qs`. Element `e = 64·c + 32·k + l` is nibble `k` of `qs[32·c + l]`, in sub-block
/// `j = e / 32`; `x = (d·scale_j)·q − (dmin·min_j)`.
pub(super) fn q4_k(b: &[u8], out: &mut [f32]) {
    let (dl, ml) = k4_factors(b);
    let qs = &b[16..144];
    for c in 0..4 {
        for k in 0..2 {
            let j = 2 * c + k;
            for l in 0..32 {
                let q = ((qs[32 * c + l] >> (4 * k)) & 0x0F) as f32;
                out[32 * j + l] = dl[j] * q - ml[j];
            }
        }
    }
}

/// Q5_K (176 bytes / 256): as Q4_K with 32 bytes `qh` (bytes 16..48) before the 128 bytes `qs`;
/// element `e` (= `32·j + l`) takes bit `j` of `qh[l]` as its fifth bit.
pub(super) fn q5_k(b: &[u8], out: &mut [f32]) {
    let (dl, ml) = k4_factors(b);
    let (qh, qs) = (&b[16..48], &b[48..176]);
    for c in 0..4 {
        for k in 0..2 {
            let j = 2 * c + k;
            for l in 0..32 {
                let lo = (qs[32 * c + l] >> (4 * k)) & 0x0F;
                let hi = (qh[l] >> j) & 1;
                out[32 * j + l] = dl[j] * (lo | (hi << 4)) as f32 - ml[j];
            }
        }
    }
}

/// Q6_K (210 bytes / 256): 128 bytes `ql`, 64 bytes `qh`, 16 × i8 `scales`, f16 `d`. Element
/// `e = 128·h + 64·k + m` (`m < 64`) has low nibble `k` of `ql[64·h + m]`; writing
/// `e = 128·h + 32·s + l`, its high 2 bits are `(qh[32·h + l] >> 2s) & 3`; `q` = the 6 bits − 32;
/// `x = (d·scales[e / 16])·q`.
pub(super) fn q6_k(b: &[u8], out: &mut [f32]) {
    let (ql, qh, sc) = (&b[..128], &b[128..192], &b[192..208]);
    let d = f16_at(b, 208);
    let mut dl = [0f32; 16];
    for (j, dl) in dl.iter_mut().enumerate() {
        *dl = d * (sc[j] as i8) as f32;
    }
    for h in 0..2 {
        for s in 0..4 {
            for l in 0..32 {
                let e = 128 * h + 32 * s + l;
                let m = e % 64;
                let lo = (ql[64 * h + m] >> (4 * (s / 2))) & 0x0F;
                let hi = (qh[32 * h + l] >> (2 * s)) & 0x03;
                out[e] = dl[e / 16] * ((lo | (hi << 4)) as i32 - 32) as f32;
            }
        }
    }
}
