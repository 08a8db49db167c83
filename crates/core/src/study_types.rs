//! The compression study's plain result types (schemes, protected channels, perplexities per model), their parsing and labels.
//! Depends on serde/anyhow only; never on wgpu, models or analyses (the root crate's `compress` runs the study).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// One compression scheme, e.g. `w8`, `w4t`, `w8a8`, `a8`, `prune50`, `prune50+w8`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scheme {
    pub name: String,
    /// Weight bits (None: weights stay f32).
    pub w_bits: Option<u32>,
    /// Weight scales per output channel (true) or per tensor.
    pub per_channel: bool,
    /// Activation bits (None: inputs stay f32).
    pub a_bits: Option<u32>,
    /// Share of weights pruned, 0..1.
    pub prune: Option<f32>,
}

impl Scheme {
    /// Grammar: parts joined by `+` or written together: `w<bits>` (per output channel),
    /// `w<bits>t` (per tensor), `w<bits>c` (per channel, explicit), `a<bits>`, `prune<percent>`.
    pub fn parse(spec: &str) -> Result<Self> {
        let name = spec.trim().to_string();
        let bad = |why: &str| {
            anyhow::anyhow!(
                "scheme '{name}': {why} (expected parts such as w8, w4t, a8, w8a8, prune50, prune50+w8)"
            )
        };
        let mut s = Scheme {
            name: name.clone(),
            w_bits: None,
            per_channel: true,
            a_bits: None,
            prune: None,
        };
        let b = name.as_bytes();
        let mut i = 0;
        let digits = |i: &mut usize| -> Option<u32> {
            let start = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            name[start..*i].parse().ok()
        };
        while i < b.len() {
            if b[i] == b'+' {
                i += 1;
            } else if name[i..].starts_with("prune") {
                i += 5;
                let p = digits(&mut i).ok_or_else(|| bad("prune needs a percentage"))?;
                if !(1..=99).contains(&p) || s.prune.is_some() {
                    return Err(bad("prune takes one percentage from 1 to 99"));
                }
                s.prune = Some(p as f32 / 100.0);
            } else if b[i] == b'w' {
                i += 1;
                let bits = digits(&mut i).ok_or_else(|| bad("w needs a bit count"))?;
                if !(2..=16).contains(&bits) || s.w_bits.is_some() {
                    return Err(bad("weights take one bit count from 2 to 16"));
                }
                s.w_bits = Some(bits);
                if i < b.len() && (b[i] == b't' || b[i] == b'c') {
                    s.per_channel = b[i] == b'c';
                    i += 1;
                }
            } else if b[i] == b'a' {
                i += 1;
                let bits = digits(&mut i).ok_or_else(|| bad("a needs a bit count"))?;
                if !(2..=16).contains(&bits) || s.a_bits.is_some() {
                    return Err(bad("activations take one bit count from 2 to 16"));
                }
                s.a_bits = Some(bits);
            } else {
                return Err(bad(&format!("unexpected '{}'", &name[i..])));
            }
        }
        if s.w_bits.is_none() && s.a_bits.is_none() && s.prune.is_none() {
            return Err(bad("nothing to do"));
        }
        Ok(s)
    }

    /// Comma-separated schemes.
    pub fn parse_list(list: &str) -> Result<Vec<Self>> {
        let v = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Self::parse)
            .collect::<Result<Vec<_>>>()?;
        if v.is_empty() {
            bail!("--schemes is empty");
        }
        Ok(v)
    }
}

/// Input channels kept in f32 (activations and the weight rows that read them) and unpruned:
/// `d` for every linear layer reading a d-wide input, `inner` for the MLP's down projection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Protect {
    /// Channels of the `[T, D]`-wide inputs (`n_embd`).
    pub d: Vec<usize>,
    /// Channels of the down projection's `[T, I]`-wide input (`n_inner`).
    pub inner: Vec<usize>,
}

impl Protect {
    /// No channel protected.
    pub fn is_empty(&self) -> bool {
        self.d.is_empty() && self.inner.is_empty()
    }

    /// `d=3,40;inner=10` (either part may be left out).
    pub fn parse(spec: &str) -> Result<Self> {
        let mut p = Protect::default();
        for part in spec.split(';').filter(|s| !s.trim().is_empty()) {
            let (key, vals) = part
                .split_once('=')
                .with_context(|| format!("protect '{spec}': expected d=C1,C2;inner=C3"))?;
            let chans = vals
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|c| {
                    c.trim()
                        .parse::<usize>()
                        .with_context(|| format!("protect '{spec}': '{c}' is not a channel"))
                })
                .collect::<Result<Vec<_>>>()?;
            if chans.is_empty() {
                bail!("protect '{spec}': '{}' lists no channel", part.trim());
            }
            match key.trim() {
                "d" => p.d = chans,
                "inner" => p.inner = chans,
                k => bail!("protect '{spec}': unknown input '{k}' (d or inner)"),
            }
        }
        Ok(p)
    }

    /// Fail on a channel the model does not have (`d`: `n_embd`, `inner`: `n_inner`).
    pub fn check(&self, d: usize, inner: usize) -> Result<()> {
        for (list, name, width) in [(&self.d, "d", d), (&self.inner, "inner", inner)] {
            if let Some(c) = list.iter().find(|&&c| c >= width) {
                bail!(
                    "protected {name} channel {c} does not exist: that input has {width} channels"
                );
            }
        }
        Ok(())
    }
}

/// What compressing a model's weights did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WeightStats {
    /// Linear-layer weight tensors compressed.
    pub tensors: usize,
    /// Weights in them.
    pub weights: usize,
    /// Weights zeroed by pruning.
    pub pruned: usize,
    /// Weights left as they were because they read a protected input channel.
    pub protected_weights: usize,
}

/// The protected channels with their calibration max |x| and ratio to the median channel.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChannelStats {
    /// `(channel, max |x|, ratio to the median channel)` of the protected d-wide channels.
    pub d: Vec<(usize, f32, f32)>,
    /// The same for the protected inner (down-projection input) channels.
    pub inner: Vec<(usize, f32, f32)>,
    /// Median over the d-wide channels of their max |x|.
    pub median_d: f32,
    /// Median over the inner channels of their max |x|.
    pub median_inner: f32,
}

/// One scheme's perplexity, plain and with the outlier channels protected.
///
/// A scheme can break the model: when its forward pass yields non-finite values (named by the
/// first hook holding one) or a perplexity past f64 (mean NLL > 709.8 nats), that perplexity is
/// recorded as +inf (`null` in compress.json) with the reason in `notes`, and the study goes on.
#[derive(Clone, Debug, Serialize)]
pub struct SchemeResult {
    pub scheme: Scheme,
    /// Perplexity with the scheme applied (+inf when it broke the model).
    pub ppl: f64,
    /// Perplexity with the scheme applied and the outlier channels protected (`None` when
    /// nothing was protected).
    pub ppl_protected: Option<f64>,
    /// What the plain run's weight compression did.
    pub weights: WeightStats,
    /// Why a perplexity is +inf, e.g. `plain: non-finite values first appear at …`.
    pub notes: Vec<String>,
}

/// The study of one model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelStudy {
    /// Path of the model, as given.
    pub model: String,
    /// Name of the GPU adapter it ran on.
    pub device: String,
    /// Number of evaluation windows.
    pub windows: usize,
    /// Number of predicted tokens over those windows.
    pub tokens: usize,
    /// Perplexity of the uncompressed (f32) model.
    pub baseline_ppl: f64,
    /// The channels protected in the protected runs.
    pub protect: Protect,
    /// Calibration statistics of the protected channels (automatic choice only).
    pub channel_stats: Option<ChannelStats>,
    /// One result per scheme, in the order given.
    pub results: Vec<SchemeResult>,
}

/// The last path component, for labels.
pub fn short_name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// A label per study: the model's last path component, or its last two when that is not
/// unique among the studies (zoo/default and zoo/extra/default_3000steps/default).
pub fn labels(studies: &[ModelStudy]) -> Vec<String> {
    let last = |m: &str| short_name(Path::new(m));
    studies
        .iter()
        .map(|st| {
            let name = last(&st.model);
            if studies.iter().filter(|o| last(&o.model) == name).count() > 1 {
                let p = Path::new(&st.model);
                let parent = p.parent().map(short_name).unwrap_or_default();
                format!("{parent}/{name}")
            } else {
                name
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_parse() {
        let s = Scheme::parse("w8a8").unwrap();
        assert_eq!(
            (s.w_bits, s.per_channel, s.a_bits, s.prune),
            (Some(8), true, Some(8), None)
        );
        let s = Scheme::parse("w4t").unwrap();
        assert_eq!((s.w_bits, s.per_channel), (Some(4), false));
        let s = Scheme::parse("prune50+w8").unwrap();
        assert_eq!((s.w_bits, s.prune), (Some(8), Some(0.5)));
        assert_eq!(Scheme::parse("a8").unwrap().a_bits, Some(8));
        for bad in [
            "", "w", "w1", "w99", "x8", "prune0", "prune100", "w8w4", "a8b",
        ] {
            assert!(Scheme::parse(bad).is_err(), "{bad} should not parse");
        }
        assert_eq!(Scheme::parse_list("w8, a8,").unwrap().len(), 2);
        let p = Protect::parse("d=3,40;inner=10").unwrap();
        assert_eq!((p.d, p.inner), (vec![3, 40], vec![10]));
        assert!(Protect::parse("x=1").is_err());
        assert!(Protect::parse("d=a").is_err());
        assert!(Protect::parse("d=;inner=3").is_err());
    }

    #[test]
    fn labels_disambiguate_same_named_models() {
        let st = |m: &str| ModelStudy {
            model: m.into(),
            device: String::new(),
            windows: 0,
            tokens: 0,
            baseline_ppl: 1.0,
            protect: Protect::default(),
            channel_stats: None,
            results: vec![],
        };
        let v = [
            st("zoo/default"),
            st("zoo/extra/long/default"),
            st("zoo/sigmoid"),
        ];
        assert_eq!(labels(&v), ["zoo/default", "long/default", "sigmoid"]);
    }
}
