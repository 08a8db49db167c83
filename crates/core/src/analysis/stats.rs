//! Small numeric helpers shared by the analyses: median, top-k, safe ratios.
//! Depends on std only; never on the report, wgpu or models.

/// Median of the values (the mean of the two middle values for an even count, as numpy does).
/// Non-finite values must be filtered out by the caller. Returns 0 for an empty slice.
/// Reorders `v`.
pub fn median_in_place(v: &mut [f32]) -> f32 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let mid = n / 2;
    let (lower, m, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let below = lower.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        0.5 * (below + m)
    }
}

/// Median of a copy of the values.
pub fn median(v: &[f32]) -> f32 {
    let mut c = v.to_vec();
    median_in_place(&mut c)
}

/// Indices of the `k` largest values, largest first; ties go to the lower index; NaN never wins.
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).filter(|&i| !values[i].is_nan()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// `a / b` that is always finite (JSON has no infinities): 0 when both are 0,
/// `f32::MAX` when only the divisor is 0 or the quotient overflows.
pub fn safe_ratio(a: f32, b: f32) -> f32 {
    if b > 0.0 {
        let r = a as f64 / b as f64;
        if r.is_finite() {
            (r.min(f32::MAX as f64)) as f32
        } else {
            f32::MAX
        }
    } else if a == 0.0 {
        0.0
    } else {
        f32::MAX
    }
}

/// Sorted, deduplicated copy.
pub fn sorted_set(v: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut s: Vec<usize> = v.into_iter().collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// Elements of sorted set `a` that are also in sorted set `b`.
pub fn intersect(a: &[usize], b: &[usize]) -> Vec<usize> {
    a.iter()
        .copied()
        .filter(|x| b.binary_search(x).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn top_k_orders_and_breaks_ties_low() {
        assert_eq!(top_k(&[1.0, 5.0, 5.0, f32::NAN, 2.0], 3), vec![1, 2, 4]);
    }

    #[test]
    fn safe_ratio_is_finite() {
        assert_eq!(safe_ratio(1.0, 0.0), f32::MAX);
        assert_eq!(safe_ratio(0.0, 0.0), 0.0);
        assert_eq!(safe_ratio(6.0, 2.0), 3.0);
        assert_eq!(safe_ratio(f32::MAX, 1e-30), f32::MAX);
    }
}
