//! Which stored row of a GGUF matrix each Hugging Face row is: the architectures' layout changes
//! on linear weights (Llama's Q/K un-permute, GPT-NeoX's q|k|v regrouping) move whole rows, so the
//! stored blocks can stay quantized with their rows reordered. Found by matching the dequantized
//! rows bit for bit, so any transform that is not a row permutation keeps the dequantized path.
//! File formats only.

use std::collections::HashMap;

use anyhow::Result;

use crate::gguf::{dequantize, GgmlType};

/// `order[i]` = the stored row holding Hugging Face row `i`, given a `[rows, k]` matrix's stored
/// blocks (`ty`, `bytes`) and its dequantized Hugging Face values `hf`; `None` when some Hugging
/// Face row is no stored row. Dequantizes one stored row at a time (a 262,144-row head never
/// exists twice in f32).
pub fn hf_row_order(
    ty: GgmlType,
    bytes: &[u8],
    hf: &[f32],
    [rows, k]: [usize; 2],
) -> Result<Option<Vec<usize>>> {
    if hf.len() != rows * k || k == 0 || rows == 0 || bytes.len() % rows != 0 {
        return Ok(None);
    }
    let per = bytes.len() / rows;
    let row = |r: usize| dequantize(ty, &bytes[r * per..(r + 1) * per], k);
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    let mut identity = true;
    for (r, want) in hf.chunks_exact(k).enumerate() {
        if !same(&row(r)?, want) {
            identity = false;
            break;
        }
    }
    if identity {
        return Ok(Some((0..rows).collect()));
    }
    let bits = |v: &[f32]| -> Vec<u32> { v.iter().map(|x| x.to_bits()).collect() };
    let mut by_row: HashMap<Vec<u32>, usize> = HashMap::with_capacity(rows);
    for r in 0..rows {
        by_row.entry(bits(&row(r)?)).or_insert(r);
    }
    Ok(hf
        .chunks_exact(k)
        .map(|row| by_row.get(&bits(row)).copied())
        .collect())
}

/// The rows `order` of a `[rows, …]` byte matrix, in that order.
pub fn gather_rows(bytes: &[u8], rows: usize, order: &[usize]) -> Vec<u8> {
    let per = bytes.len() / rows.max(1);
    order
        .iter()
        .flat_map(|&r| bytes[r * per..(r + 1) * per].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reordering is found row for row (F32 "blocks" of one value); a changed value is no
    /// permutation.
    #[test]
    fn finds_the_row_permutation() {
        let stored: Vec<u8> = [1f32, 2., 3., 4., 5., 6.]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let hf = [5.0, 6.0, 1.0, 2.0, 3.0, 4.0];
        let order = |hf: &[f32]| hf_row_order(GgmlType::F32, &stored, hf, [3, 2]).unwrap();
        assert_eq!(order(&hf), Some(vec![2, 0, 1]));
        assert_eq!(order(&[1., 2., 3., 4., 5., 6.]), Some(vec![0, 1, 2]));
        assert_eq!(order(&[5.0, 6.0, 1.0, 2.0, 3.0, 4.5]), None);
        let bytes = [10u8, 11, 20, 21, 30, 31];
        assert_eq!(gather_rows(&bytes, 3, &[2, 0, 1]), [30, 31, 10, 11, 20, 21]);
    }
}
