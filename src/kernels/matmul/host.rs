//! Host-side helpers of the matmul family: packing weights as the f16 kernels read them, and
//! the f64 CPU reference every kernel is tested against. No GPU.

/// Weights as the f16 kernels read them: pairs of f16 (round to nearest) packed into u32
/// words, the first of each pair in the low half; an odd count pads the last word with 0.
pub fn pack_f16(data: &[f32]) -> Vec<u32> {
    data.chunks(2)
        .map(|p| {
            let lo = half::f16::from_f32(p[0]).to_bits() as u32;
            let hi = p
                .get(1)
                .map_or(0, |&v| half::f16::from_f32(v).to_bits() as u32);
            lo | (hi << 16)
        })
        .collect()
}

/// CPU reference of `matmul` in f64: c = a · b (+ bias); a is `[m, k]`, b is `[k, n]`, or
/// `[n, k]` with `b_t`; returns c `[m, n]`.
pub fn matmul_ref(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    b_t: bool,
) -> Vec<f64> {
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = bias.map_or(0.0, |bs| bs[j] as f64);
            for t in 0..k {
                let bv = if b_t { b[j * k + t] } else { b[t * n + j] };
                s += a[i * k + t] as f64 * bv as f64;
            }
            c[i * n + j] = s;
        }
    }
    c
}
