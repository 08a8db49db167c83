//! Which stored row of a GGUF matrix each Hugging Face row is: the architectures' layout changes
//! on linear weights (Llama's Q/K un-permute, GPT-NeoX's q|k|v regrouping) move whole rows, so the
//! stored blocks can stay quantized with their rows reordered. Found by matching the dequantized
//! rows bit for bit, so any transform that is not a row permutation keeps the dequantized path.
//! File formats only.

use std::collections::HashMap;

use anyhow::Result;

/// `order[i]` = the stored row holding Hugging Face row `i`, given the dequantized `stored` and
/// `hf` values of a `[rows, k]` matrix; `None` when some Hugging Face row is no stored row.
pub fn hf_row_order(
    stored: &[f32],
    hf: &[f32],
    [rows, k]: [usize; 2],
) -> Result<Option<Vec<usize>>> {
    if stored.len() != rows * k || hf.len() != rows * k || k == 0 {
        return Ok(None);
    }
    let bits = |v: &[f32]| -> Vec<u32> { v.iter().map(|x| x.to_bits()).collect() };
    if bits(stored) == bits(hf) {
        return Ok(Some((0..rows).collect()));
    }
    let mut by_row: HashMap<Vec<u32>, usize> = HashMap::with_capacity(rows);
    for (r, row) in stored.chunks_exact(k).enumerate() {
        by_row.entry(bits(row)).or_insert(r);
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

    /// A reordering is found row for row; a changed value is no permutation.
    #[test]
    fn finds_the_row_permutation() {
        let stored = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let hf = [5.0, 6.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            hf_row_order(&stored, &hf, [3, 2]).unwrap(),
            Some(vec![2, 0, 1])
        );
        assert_eq!(
            hf_row_order(&stored, &stored, [3, 2]).unwrap(),
            Some(vec![0, 1, 2])
        );
        let off = [5.0, 6.0, 1.0, 2.0, 3.0, 4.5];
        assert_eq!(hf_row_order(&stored, &off, [3, 2]).unwrap(), None);
        let bytes = [10u8, 11, 20, 21, 30, 31];
        assert_eq!(gather_rows(&bytes, 3, &[2, 0, 1]), [30, 31, 10, 11, 20, 21]);
    }
}
