//! GGUF blocks to the u32 words qmatvec.wgsl reads, and Q8_0 quantization of f32 weights (for
//! `--weights q8`). Block layouts as llama.cpp's `ggml-common.h` (see `gguf::dequantize`).

use anyhow::{bail, Result};

use super::QType;

/// A quantized `[rows, k]` matrix repacked for the GPU.
///
/// 32-element types: block `i` (row-major over `[rows, k / 32]`) has its quants in words
/// `i·q .. (i + 1)·q` (Q8_0: q = 8, the 32 i8; Q4_0/Q4_1: q = 4, the 16 nibble bytes; Q5_0/Q5_1:
/// q = 5, the u32 `qh` then the 16 nibble bytes), and its scale from word `hoff` on: Q8_0, Q4_0,
/// Q5_0 one f16 `d` each (two per word, block `i` in half `i % 2` of word `hoff + i / 2`), Q4_1,
/// Q5_1 one word `d | m << 16`. K-quants keep each block's bytes as stored, padded to whole
/// words (Q4_K 36 words, Q5_K 44, Q6_K 53: 210 bytes and 2 zero bytes).
#[derive(Clone, Debug)]
pub struct QMatrix {
    /// Block type.
    pub ty: QType,
    /// Rows (output features).
    pub rows: usize,
    /// Row length (input features), a multiple of the block size.
    pub k: usize,
    /// The repacked matrix.
    pub words: Vec<u32>,
    /// Word offset of the scale region (32-element types; the length of `words` for K-quants).
    pub hoff: usize,
}

fn word(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn half(b: &[u8], i: usize) -> u32 {
    u16::from_le_bytes([b[i], b[i + 1]]) as u32
}

/// Repack `rows` rows of `k` weights of type `ty`, stored as GGUF blocks in `bytes` (row-major,
/// blocks along each row), into [`QMatrix`]'s words.
///
/// # Errors
/// `k` not a multiple of the block size, or `bytes` not exactly the blocks' size.
pub fn repack(ty: QType, rows: usize, k: usize, bytes: &[u8]) -> Result<QMatrix> {
    let (be, bb) = (ty.block_elems(), ty.block_bytes());
    if k % be != 0 {
        bail!("rows of {k} weights are not a whole number of {ty:?} blocks of {be}");
    }
    let blocks = rows * (k / be);
    if bytes.len() != blocks * bb {
        bail!(
            "{rows} × {k} weights of {ty:?} take {} bytes, got {}",
            blocks * bb,
            bytes.len()
        );
    }
    let mut words = Vec::new();
    let mut head = Vec::new();
    let halves = |head: &mut Vec<u32>, i: usize, v: u32| {
        if i % 2 == 0 {
            head.push(v);
        } else {
            *head.last_mut().expect("pushed") |= v << 16;
        }
    };
    for (i, b) in bytes.chunks_exact(bb).enumerate() {
        match ty {
            QType::Q8_0 | QType::Q4_0 | QType::Q5_0 => {
                words.extend((2..bb).step_by(4).map(|o| word(b, o)));
                halves(&mut head, i, half(b, 0));
            }
            QType::Q4_1 | QType::Q5_1 => {
                words.extend((4..bb).step_by(4).map(|o| word(b, o)));
                head.push(word(b, 0));
            }
            QType::Q4_K | QType::Q5_K => words.extend((0..bb).step_by(4).map(|o| word(b, o))),
            QType::Q6_K => {
                words.extend((0..208).step_by(4).map(|o| word(b, o)));
                words.push(half(b, 208));
            }
        }
    }
    let hoff = words.len();
    words.extend(head);
    Ok(QMatrix {
        ty,
        rows,
        k,
        words,
        hoff,
    })
}

/// Quantize f32 values to GGUF Q8_0 blocks as ggml's `quantize_row_q8_0_ref`: per 32 values
/// `d = max|x| / 127` (stored as f16), `q = round(x / d)`. `data.len()` must be a multiple of 32.
pub fn quantize_q8_0(data: &[f32]) -> Vec<u8> {
    assert!(data.len() % 32 == 0, "Q8_0 quantizes whole blocks of 32");
    let mut out = Vec::with_capacity(data.len() / 32 * 34);
    for blk in data.chunks_exact(32) {
        let amax = blk.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(blk.iter().map(|&x| (x * id).round() as i8 as u8));
    }
    out
}
