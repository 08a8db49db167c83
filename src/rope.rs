//! RoPE frequency scaling: the per-pair divisors [`crate::config::ModelConfig::rope_freq_factors`]
//! from a transformers `config.json` (`rope_parameters` / legacy `rope_scaling`).
//!
//! Pair `i` of a head (of `head_dim / 2`) turns at `inv_freq_i = θ^(−2i/Dh) / factor_i` radians
//! per position ([`rope_tables`]). transformers' rope types map to factors as:
//!
//! | `rope_type` | factor_i |
//! |---|---|
//! | `default` (or no scaling) | 1 (no factors) |
//! | `linear` | `factor` |
//! | `llama3` | `factor` where the wavelength 2π/inv_freq > `original_max_position_embeddings / low_freq_factor`, 1 where it is < `... / high_freq_factor`, else `1 / ((1 − s)/factor + s)` with `s = (orig / wavelength − low) / (high − low)` (`_compute_llama3_parameters`) |
//! | `dynamic`, `yarn`, `longrope`, anything else | refused |
//!
//! llama.cpp's GGUF equivalent is `rope_freqs.weight` (its `freq_factors`, written by
//! `convert_hf_to_gguf.py` from the same llama3 formula) times `rope.scaling.factor` for linear
//! scaling; see [`crate::gguf_config::from_gguf`].
//! Data types: plain math and serde; never wgpu, GGUF or models.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

/// transformers' inverse frequencies in f32: `1 / θ^(2i/Dh)`, `i < Dh/2`.
pub fn base_inv_freq(theta: f32, head_dim: usize) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| 1.0f32 / theta.powf((2 * i) as f32 / head_dim as f32))
        .collect()
}

/// Llama 3 (`rope_type: "llama3"`) divisors, per the table in the module docs.
pub fn llama3_factors(
    theta: f32,
    head_dim: usize,
    factor: f64,
    low_freq_factor: f64,
    high_freq_factor: f64,
    original_max_position_embeddings: f64,
) -> Vec<f32> {
    let low_wavelen = original_max_position_embeddings / low_freq_factor;
    let high_wavelen = original_max_position_embeddings / high_freq_factor;
    base_inv_freq(theta, head_dim)
        .into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f64::consts::PI / f as f64;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor as f32
            } else {
                let s = (original_max_position_embeddings / wavelen - low_freq_factor)
                    / (high_freq_factor - low_freq_factor);
                (1.0 / ((1.0 - s) / factor + s)) as f32
            }
        })
        .collect()
}

/// The rope parameters of a Llama `config.json` (`rope_parameters`, else a non-null legacy
/// `rope_scaling`), with `rope_theta` defaulting to the top-level field, then 10000.
/// Returns `(theta, factors)`; errors name the field and the rope type.
pub fn from_llama_config(v: &Value, head_dim: usize) -> Result<(f32, Vec<f32>)> {
    let obj = |k: &str| v.get(k).filter(|x| !x.is_null());
    let params = match (obj("rope_parameters"), obj("rope_scaling")) {
        (Some(p), Some(s)) if rope_type(p)? != rope_type(s)? => bail!(
            "rope_parameters (type {:?}) and rope_scaling (type {:?}) disagree",
            rope_type(p)?,
            rope_type(s)?
        ),
        (Some(p), _) => Some(p),
        (None, s) => s,
    };
    let field = if obj("rope_parameters").is_some() {
        "rope_parameters"
    } else {
        "rope_scaling"
    };
    let num = |p: &Value, k: &str| -> Result<Option<f64>> {
        match p.get(k).filter(|x| !x.is_null()) {
            None => Ok(None),
            Some(x) => x
                .as_f64()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| anyhow!("{field}.{k} = {x} is not a finite number")),
        }
    };
    let top = num(v, "rope_theta")?;
    let theta = match params.map(|p| num(p, "rope_theta")).transpose()?.flatten() {
        // Both given: transformers reads one of them; any disagreement is refused, not resolved.
        Some(t) if top.is_some_and(|x| x != t) => bail!(
            "rope_theta = {} and {field}.rope_theta = {t} disagree",
            top.unwrap_or_default()
        ),
        Some(t) => t,
        None => top.unwrap_or(10000.0),
    };
    if theta <= 0.0 {
        bail!("rope_theta = {theta} must be > 0");
    }
    let theta = theta as f32;
    if !theta.is_finite() {
        bail!("rope_theta = {theta} is beyond f32's range");
    }
    let Some(p) = params else {
        return Ok((theta, Vec::new()));
    };
    if let Some(prf) = num(p, "partial_rotary_factor")? {
        if prf != 1.0 {
            bail!("{field}.partial_rotary_factor = {prf}: partial rotary embeddings are not supported");
        }
    }
    let need = |k: &str| -> Result<f64> {
        num(p, k)?.ok_or_else(|| {
            anyhow!(
                "{field} of type {:?} lacks `{k}`",
                rope_type(p).unwrap_or_default()
            )
        })
    };
    let positive = |k: &str| -> Result<f64> {
        let x = need(k)?;
        if x <= 0.0 {
            bail!("{field}.{k} = {x} must be > 0");
        }
        Ok(x)
    };
    match rope_type(p)?.as_str() {
        "default" => Ok((theta, Vec::new())),
        "linear" => Ok((theta, vec![positive("factor")? as f32; head_dim / 2])),
        "llama3" => {
            let (low, high) = (positive("low_freq_factor")?, positive("high_freq_factor")?);
            if high <= low {
                bail!("{field}: high_freq_factor {high} must exceed low_freq_factor {low}");
            }
            let factors = llama3_factors(
                theta,
                head_dim,
                positive("factor")?,
                low,
                high,
                positive("original_max_position_embeddings")?,
            );
            Ok((theta, factors))
        }
        other => {
            bail!("{field}: rope_type {other:?} is not supported (default, linear and llama3 are)")
        }
    }
}

/// `rope_type` (or the legacy `type`) of a rope dict; `"default"` when neither is set.
fn rope_type(p: &Value) -> Result<String> {
    match p.get("rope_type").or_else(|| p.get("type")) {
        None | Some(Value::Null) => Ok("default".into()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(x) => bail!("rope type {x} is not a string"),
    }
}

/// RoPE cos/sin tables `[n_positions, head_dim/2]` as transformers computes them in f32:
/// inv_freq_i = 1 / θ^(2i/Dh) (divided by `factors[i]` when `factors` is not empty: RoPE
/// scaling), angle = position · inv_freq.
///
/// # Panics
/// When `factors` is neither empty nor `head_dim / 2` long.
pub fn rope_tables(
    n_positions: usize,
    head_dim: usize,
    theta: f32,
    factors: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    assert!(
        factors.is_empty() || factors.len() == half,
        "rope_tables: {} factors for {half} rotary pairs",
        factors.len()
    );
    let inv: Vec<f32> = base_inv_freq(theta, head_dim)
        .into_iter()
        .enumerate()
        .map(|(i, f)| factors.get(i).map_or(f, |d| f / d))
        .collect();
    let mut cos = Vec::with_capacity(n_positions * half);
    let mut sin = Vec::with_capacity(n_positions * half);
    for p in 0..n_positions {
        for f in &inv {
            let a = p as f32 * f;
            cos.push((a as f64).cos() as f32);
            sin.push((a as f64).sin() as f32);
        }
    }
    (cos, sin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn llama3_bands() {
        // θ = 10000, Dh = 16: wavelengths 2π·10000^(i/8) = 6.3, 19.9, 62.8, 199, 628, 1987, 6283, 19869.
        let f = llama3_factors(10000.0, 16, 8.0, 1.0, 4.0, 1024.0);
        assert_eq!(&f[..4], &[1.0; 4]); // < 256: untouched
        assert_eq!(&f[6..], &[8.0; 2]); // > 1024: divided by factor
        assert!(f[4] > 1.0 && f[4] < 8.0 && f[5] > f[4], "{f:?}"); // smooth band
    }

    #[test]
    fn parse_and_refuse() {
        let c = json!({"rope_theta": 500.0, "rope_scaling": null});
        assert_eq!(from_llama_config(&c, 8).unwrap(), (500.0, vec![]));
        let c = json!({"rope_scaling": {"type": "linear", "factor": 2.0}});
        assert_eq!(from_llama_config(&c, 8).unwrap(), (10000.0, vec![2.0; 4]));
        for (c, part) in [
            (
                json!({"rope_parameters": {"rope_type": "yarn", "factor": 2.0}}),
                "\"yarn\"",
            ),
            (
                json!({"rope_parameters": {"rope_type": "dynamic", "factor": 2.0}}),
                "\"dynamic\"",
            ),
            (
                json!({"rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.5}}),
                "partial_rotary_factor",
            ),
            (
                json!({"rope_parameters": {"rope_type": "linear"}}),
                "`factor`",
            ),
            (
                json!({"rope_parameters": {"rope_type": "linear", "factor": -1.0}}),
                "factor = -1",
            ),
        ] {
            let e = from_llama_config(&c, 8).unwrap_err().to_string();
            assert!(e.contains(part), "{c}: {e}");
        }
    }
}
