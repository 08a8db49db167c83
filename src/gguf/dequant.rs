//! Dequantization of ggml blocks (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K,
//! Q4_K, Q5_K, Q6_K) to `f32`, bit for bit as `gguf.quants.dequantize`. File format only: no
//! wgpu, no models. The 5-bit and K-quant block layouts are in `dequant/kquants.rs`.

use anyhow::{anyhow, bail, Result};

use super::ggml_type::supported_list;
use super::GgmlType;

mod kquants;

use kquants::f16_at;

/// Dequantize `n_elements` values of type `ty` from `data` (ggml block layouts, matching
/// `gguf.quants.dequantize` bit for bit; llama.cpp's `dequantize_row_*` describe the layouts):
///
/// * F32, F16, BF16: plain little-endian values.
/// * Q8_0 (34 bytes / 32): f16 `d`, 32 × i8 `q`; `x = q·d`.
/// * Q4_0 (18 bytes / 32): f16 `d`, 16 bytes; element `i < 16` is the low nibble of byte `i`,
///   element `16 + i` its high nibble; `x = (nibble − 8)·d`.
/// * Q4_1 (20 bytes / 32): f16 `d`, f16 `m`, 16 bytes (nibbles as Q4_0); `x = nibble·d + m`.
/// * Q5_0 (22 / 32), Q5_1 (24 / 32): as Q4_0 / Q4_1 with a fifth bit per element from a u32
///   (`x = (q − 16)·d` and `x = q·d + m`).
/// * Q2_K (84 / 256), Q3_K (110 / 256), Q4_K (144 / 256), Q5_K (176 / 256), Q6_K (210 / 256):
///   super-blocks of 16 or 8 sub-blocks with their own quantized scales (and mins), see the
///   block functions' docs.
///
/// # Errors
/// A type outside [`GgmlType::SUPPORTED`] (named, with the supported list), `n_elements` not a
/// whole number of blocks, or `data` not exactly the bytes those blocks take.
pub fn dequantize(ty: GgmlType, data: &[u8], n_elements: usize) -> Result<Vec<f32>> {
    let (blck, type_size) = ty
        .block()
        .ok_or_else(|| anyhow!("unknown ggml type {ty}"))?;
    let (blck, type_size) = (blck as usize, type_size as usize);
    if !ty.is_supported() {
        bail!(
            "cannot dequantize type {ty} (supported: {})",
            supported_list()
        );
    }
    if n_elements % blck != 0 {
        bail!("{n_elements} elements of {ty} is not a whole number of {blck}-element blocks");
    }
    let need = (n_elements / blck).checked_mul(type_size);
    if need != Some(data.len()) {
        bail!(
            "{n_elements} elements of {ty} take {} bytes, got {}",
            need.map_or("more than 2^64".to_string(), |n| n.to_string()),
            data.len()
        );
    }
    let mut out = vec![0f32; n_elements];
    let o = &mut out[..];
    match ty {
        GgmlType::F32 => blocks(data, o, 4, 1, |b, o| {
            o[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }),
        GgmlType::F16 => blocks(data, o, 2, 1, |b, o| o[0] = f16_at(b, 0)),
        GgmlType::BF16 => blocks(data, o, 2, 1, |b, o| {
            o[0] = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)
        }),
        GgmlType::Q8_0 => blocks(data, o, type_size, blck, q8_0),
        GgmlType::Q4_0 => blocks(data, o, type_size, blck, q4_0),
        GgmlType::Q4_1 => blocks(data, o, type_size, blck, q4_1),
        GgmlType::Q5_0 => blocks(data, o, type_size, blck, kquants::q5_0),
        GgmlType::Q5_1 => blocks(data, o, type_size, blck, kquants::q5_1),
        GgmlType::Q2_K => blocks(data, o, type_size, blck, kquants::q2_k),
        GgmlType::Q3_K => blocks(data, o, type_size, blck, kquants::q3_k),
        GgmlType::Q4_K => blocks(data, o, type_size, blck, kquants::q4_k),
        GgmlType::Q5_K => blocks(data, o, type_size, blck, kquants::q5_k),
        GgmlType::Q6_K => blocks(data, o, type_size, blck, kquants::q6_k),
        _ => unreachable!("checked by is_supported"),
    }
    Ok(out)
}

/// Run `f` on each block of `data` (`type_size` bytes) and its `blck` outputs (generic, so
/// each block function is inlined into its own loop).
#[inline(always)]
fn blocks(
    data: &[u8],
    out: &mut [f32],
    type_size: usize,
    blck: usize,
    f: impl Fn(&[u8], &mut [f32]),
) {
    for (b, o) in data.chunks_exact(type_size).zip(out.chunks_exact_mut(blck)) {
        f(b, o);
    }
}

fn q8_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, &q) in out.iter_mut().zip(&b[2..34]) {
        *o = (q as i8) as f32 * d;
    }
}

fn q4_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let (lo, hi) = out.split_at_mut(16);
    for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&b[2..18]) {
        *l = ((q & 0x0F) as i32 - 8) as f32 * d;
        *h = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

fn q4_1(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let (lo, hi) = out.split_at_mut(16);
    for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&b[4..20]) {
        *l = (q & 0x0F) as f32 * d + m;
        *h = (q >> 4) as f32 * d + m;
    }
}
