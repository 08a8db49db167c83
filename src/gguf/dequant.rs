//! Dequantization of ggml blocks (F32, F16, BF16, Q8_0, Q4_0, Q4_1) to `f32`, bit for bit as
//! `gguf.quants.dequantize`. File format only: no wgpu, no models.

use anyhow::{anyhow, bail, Result};
use half::f16;

use super::ggml_type::supported_list;
use super::GgmlType;

#[inline]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// Dequantize `n_elements` values of type `ty` from `data` (ggml block layouts, matching
/// `gguf.quants.dequantize` bit for bit):
///
/// * F32, F16, BF16: plain little-endian values.
/// * Q8_0 (34 bytes / 32): f16 `d`, 32 × i8 `q`; `x = q·d`.
/// * Q4_0 (18 bytes / 32): f16 `d`, 16 bytes; element `i < 16` is the low nibble of byte `i`,
///   element `16 + i` its high nibble; `x = (nibble − 8)·d`.
/// * Q4_1 (20 bytes / 32): f16 `d`, f16 `m`, 16 bytes (nibbles as Q4_0); `x = nibble·d + m`.
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
    let mut out = Vec::with_capacity(n_elements);
    match ty {
        GgmlType::F32 => out.extend(
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
        ),
        GgmlType::F16 => out.extend(data.chunks_exact(2).map(|c| f16_at(c, 0))),
        GgmlType::BF16 => out.extend(
            data.chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)),
        ),
        GgmlType::Q8_0 => {
            for b in data.chunks_exact(34) {
                let d = f16_at(b, 0);
                out.extend(b[2..].iter().map(|&q| (q as i8) as f32 * d));
            }
        }
        GgmlType::Q4_0 => {
            for b in data.chunks_exact(18) {
                let d = f16_at(b, 0);
                let qs = &b[2..];
                out.extend(qs.iter().map(|&q| ((q & 0x0F) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in data.chunks_exact(20) {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let qs = &b[4..];
                out.extend(qs.iter().map(|&q| (q & 0x0F) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
        _ => unreachable!("checked by is_supported"),
    }
    Ok(out)
}
