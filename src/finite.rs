//! Non-finite values (NaN, ±inf): where they first appear in a forward pass, and weights that
//! would turn into one when stored at a lower precision.
//!
//! The forward pass checks, on the host as they are read back, every captured hook tensor and
//! the logits (one pass over values that were copied anyway; no extra GPU work). Masked
//! attention scores (−inf in `attn.hook_attn_scores`, also for knocked-out keys) are legitimate
//! and not flagged. When something is found, `Model::forward` re-runs the pass capturing every
//! hook to name the first one holding a non-finite value (see `model.rs`).
//! Data types: depends on tensor only; never on wgpu or models.

use std::fmt;

use crate::tensor::Tensor;

/// Non-finite values in a hook tensor: the error a forward pass returns (downcast an
/// `anyhow::Error` to it to tell it from other failures).
#[derive(Clone, Debug, PartialEq)]
pub struct NonFinite {
    /// The hook (TransformerLens name) or `logits`.
    pub hook: String,
    /// The sequence of the batch; `None` when the batch has one sequence.
    pub sequence: Option<usize>,
    /// Where the first non-finite value sits, e.g. `position 0, channel 12`; positions are
    /// absolute (past tokens of the KV cache included).
    pub at: String,
    /// That value (NaN, inf or −inf).
    pub value: f32,
    /// How many of the tensor's `total` values are non-finite.
    pub count: usize,
    pub total: usize,
}

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "non-finite values first appear at {} (", self.hook)?;
        if let Some(s) = self.sequence {
            write!(f, "sequence {s}, ")?;
        }
        write!(
            f,
            "{}: {}; {} of its {} values are non-finite)",
            self.at, self.value, self.count, self.total
        )
    }
}

impl std::error::Error for NonFinite {}

/// Whether `v` is a legitimate value of `hook`: finite, or −inf in the attention scores
/// (masked and knocked-out keys).
fn allowed(hook: &str, v: f32) -> bool {
    v.is_finite() || (v == f32::NEG_INFINITY && hook.ends_with("attn.hook_attn_scores"))
}

/// Index of the first value of `data` that `allowed` rejects. Blocks of 256 values are first
/// screened for an all-ones exponent (NaN or ±inf) with a branch-free OR that vectorizes; only
/// a block that has one is searched value by value.
fn first_bad(hook: &str, data: &[f32]) -> Option<usize> {
    const EXP: u32 = 0x7f80_0000;
    data.chunks(256).enumerate().find_map(|(b, c)| {
        let special = c.iter().fold(false, |a, v| a | (v.to_bits() & EXP == EXP));
        if !special {
            return None;
        }
        c.iter()
            .position(|&v| !allowed(hook, v))
            .map(|i| b * 256 + i)
    })
}

/// Where flat index `i` of hook tensor `t` sits, in words; `past` = tokens before this pass.
fn describe(hook: &str, t: &Tensor, i: usize, past: usize) -> String {
    let s = &t.shape;
    let kind = hook.rsplit_once("attn.").map_or(hook, |(_, k)| k);
    match (kind, s.len()) {
        ("hook_attn_scores" | "hook_pattern", 3) => {
            let (q, k) = (s[1], s[2]);
            format!(
                "head {}, query position {}, key position {}",
                i / (q * k),
                past + i / k % q,
                i % k
            )
        }
        ("hook_extra_prob", 2) => format!("head {}, position {}", i / s[1], past + i % s[1]),
        ("hook_scale", 2) => format!("position {}, head {}", past + i / s[1], i % s[1]),
        (_, 3) => format!(
            "position {}, head {}, channel {}",
            past + i / (s[1] * s[2]),
            i / s[2] % s[1],
            i % s[2]
        ),
        ("logits", 2) => format!("position {}, token id {}", past + i / s[1], i % s[1]),
        (_, 2) => format!("position {}, channel {}", past + i / s[1], i % s[1]),
        _ => format!("index {i}"),
    }
}

/// Check one hook tensor of one sequence: `past` is the number of tokens already in the KV
/// cache (for absolute positions), `sequence` the batch index to report (None for a batch of one).
/// Cost: one pass over the values.
pub fn check_hook(
    hook: &str,
    t: &Tensor,
    past: usize,
    sequence: Option<usize>,
) -> Result<(), NonFinite> {
    let Some(i) = first_bad(hook, &t.data) else {
        return Ok(());
    };
    Err(NonFinite {
        hook: hook.to_string(),
        sequence,
        at: describe(hook, t, i, past),
        value: t.data[i],
        count: t.data.iter().filter(|&&v| !allowed(hook, v)).count(),
        total: t.numel(),
    })
}

/// The largest finite f16, and the magnitude from which f32 → f16 (round to nearest even)
/// gives inf.
pub const F16_MAX: f32 = 65504.0;
pub const F16_OVERFLOW: f32 = 65520.0;

/// Refuse a weight tensor that does not fit f16: a finite value with |w| ≥ 65520 would become
/// inf (values up to that round to at most 65504). NaN and ±inf stay exactly what they are, and
/// values below f16's range lose precision (|w| < 6.1e-5 become subnormal, |w| < 2.98e-8 zero:
/// an absolute error of at most 2.98e-8 per weight), which is accepted. `shape` names the index.
pub fn check_f16_range(name: &str, shape: &[usize], data: &[f32]) -> anyhow::Result<()> {
    let Some(i) = data
        .iter()
        .position(|v| v.is_finite() && v.abs() >= F16_OVERFLOW)
    else {
        return Ok(());
    };
    let mut idx = Vec::with_capacity(shape.len());
    let mut rest = i;
    for &d in shape.iter().rev() {
        idx.push(rest % d.max(1));
        rest /= d.max(1);
    }
    idx.reverse();
    let n = data
        .iter()
        .filter(|v| v.is_finite() && v.abs() >= F16_OVERFLOW)
        .count();
    anyhow::bail!(
        "--f16-weights: {name}{idx:?} = {:e} does not fit f16 (largest {F16_MAX}; |w| ≥ {F16_OVERFLOW} becomes inf), \
         {n} value(s) of {name} are that large; load the model without --f16-weights",
        data[i]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_nonfinite_value() {
        let mut t = Tensor::new(vec![3, 4], vec![1.0; 12]);
        assert!(check_hook("blocks.0.hook_resid_mid", &t, 0, None).is_ok());
        t.data[6] = f32::INFINITY;
        t.data[9] = f32::NAN;
        let e = check_hook("blocks.3.hook_resid_mid", &t, 5, None).unwrap_err();
        assert_eq!(
            (e.at.as_str(), e.count, e.total),
            ("position 6, channel 2", 2, 12)
        );
        assert_eq!(
            e.to_string(),
            "non-finite values first appear at blocks.3.hook_resid_mid (position 6, channel 2: inf; 2 of its 12 values are non-finite)"
        );
        let e = check_hook("logits", &t, 0, Some(1)).unwrap_err();
        assert!(e
            .to_string()
            .contains("(sequence 1, position 1, token id 2: inf"));
        // [T, H, Dh]
        let mut q = Tensor::new(vec![2, 3, 4], vec![0.0; 24]);
        q.data[4 * 3 + 4 + 1] = f32::NAN;
        let e = check_hook("blocks.0.attn.hook_q", &q, 0, None).unwrap_err();
        assert_eq!(e.at, "position 1, head 1, channel 1");
    }

    #[test]
    fn masked_scores_are_not_flagged() {
        // [H = 1, T = 2, K = 2] causal: the first query cannot see the second key.
        let mut s = Tensor::new(vec![1, 2, 2], vec![0.5, f32::NEG_INFINITY, 0.1, 0.2]);
        assert!(check_hook("blocks.0.attn.hook_attn_scores", &s, 0, None).is_ok());
        // −inf anywhere else is not masking.
        let e = check_hook("blocks.0.attn.hook_pattern", &s, 0, None).unwrap_err();
        assert_eq!(e.at, "head 0, query position 0, key position 1");
        // Past the first screening block: a −inf at 300 is skipped, the NaN at 700 found.
        let mut big = vec![0.25f32; 1000];
        big[300] = f32::NEG_INFINITY;
        big[700] = f32::NAN;
        assert_eq!(first_bad("blocks.0.attn.hook_attn_scores", &big), Some(700));
        assert_eq!(first_bad("blocks.0.hook_resid_pre", &big), Some(300));
        s.data[2] = f32::INFINITY;
        let e = check_hook("blocks.0.attn.hook_attn_scores", &s, 0, None).unwrap_err();
        assert_eq!(e.at, "head 0, query position 1, key position 0");
    }

    #[test]
    fn f16_range() {
        assert!(check_f16_range("w", &[2, 2], &[65504.0, -65519.0, 1e-30, f32::NAN]).is_ok());
        let e = check_f16_range(
            "h.0.mlp.c_fc.weight",
            &[2, 3],
            &[0.0, 0.0, 0.0, 0.0, -1e30, 7e4],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("h.0.mlp.c_fc.weight[1, 1] = -1e30"), "{e}");
        assert!(e.contains("2 value(s)"), "{e}");
        // The threshold is where f32 → f16 rounds to inf.
        assert!(half::f16::from_f32(F16_OVERFLOW).is_infinite());
        assert!(half::f16::from_f32(F16_OVERFLOW - 0.01).is_finite());
    }
}
