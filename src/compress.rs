//! The compression study: fake quantization (weights W8/W4 per tensor or per output channel,
//! activations A8 dynamic per tensor) and magnitude pruning, applied inside the engine's
//! forward pass, measured as perplexity — plain, and with the outlier channels protected
//! (kept in f32 and unpruned, LLM.int8()-style).
//!
//! The definitions, shared with `tools/reference/make_quant_fixtures.py`:
//! - the compressed layers are the linear layers inside the blocks (GPT-2 c_attn, attn.c_proj,
//!   c_fc, mlp.c_proj and a variant's head-scale linear; Llama q/k/v/o/gate/up/down), one
//!   Hugging Face tensor at a time; embeddings, LM head, biases and norms stay as they are;
//! - symmetric absmax with qmax = 2^(bits−1) − 1: w → clamp(round(w/s), −qmax, qmax)·s,
//!   s = absmax/qmax, round half to even;
//! - weights: one scale per output channel or per tensor; activations: the input of each of
//!   those layers, one scale per sequence and forward call;
//! - pruning: per tensor, exactly ⌊p·n⌋ of its n unprotected weights with the smallest |w| are
//!   zeroed (ties: lower index in storage order first); pruning comes before weight quantization;
//! - protected input channels (`Protect`) are left out of every absmax, never quantized and
//!   never pruned.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::finite::NonFinite;
use crate::gpu::GpuContext;
use crate::hooks::HookFilter;
use crate::kernels::{qmax, Graph};
use crate::model::{ForwardOptions, InputWidth, LogitsMode, Model};
use crate::ppl::PplOverflow;

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
    pub d: Vec<usize>,
    pub inner: Vec<usize>,
}

impl Protect {
    pub fn is_empty(&self) -> bool {
        self.d.is_empty() && self.inner.is_empty()
    }

    fn list(&self, w: InputWidth) -> &[usize] {
        match w {
            InputWidth::D => &self.d,
            InputWidth::Inner => &self.inner,
        }
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

    /// Fail on a channel the model does not have.
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

    fn mask(&self, w: InputWidth, width: usize) -> Vec<bool> {
        let mut m = vec![false; width];
        for &c in self.list(w) {
            if c < width {
                m[c] = true;
            }
        }
        m
    }
}

/// Fake-quantize one value with scale `s` (absmax / qmax).
pub fn fake_quant(x: f32, s: f32, qmax: f32) -> f32 {
    if s > 0.0 {
        (x / s).round_ties_even().clamp(-qmax, qmax) * s
    } else {
        0.0
    }
}

/// Index of element (input channel `kin`, output channel `col`) of a [k, n] matrix, or of an
/// [n, k] one with `b_t`.
fn at(kin: usize, col: usize, k: usize, n: usize, b_t: bool) -> usize {
    if b_t {
        col * k + kin
    } else {
        kin * n + col
    }
}

/// CPU version of quant_weights.wgsl (the reference its test compares with).
pub fn quant_weight_cpu(
    w: &mut [f32],
    (k, n, b_t): (usize, usize, bool),
    per_channel: bool,
    bits: u32,
    protect: &[bool],
) {
    let q = qmax(bits);
    let absmax = |cols: std::ops::Range<usize>, w: &[f32]| {
        let mut m = 0f32;
        for col in cols {
            for (kin, &p) in protect.iter().enumerate().take(k) {
                if !p {
                    m = m.max(w[at(kin, col, k, n, b_t)].abs());
                }
            }
        }
        m
    };
    let scales: Vec<f32> = if per_channel {
        (0..n).map(|c| absmax(c..c + 1, w)).collect()
    } else {
        vec![absmax(0..n, w); n]
    };
    for (col, amax) in scales.iter().enumerate() {
        let s = amax / q;
        for (kin, &p) in protect.iter().enumerate().take(k) {
            if !p {
                let i = at(kin, col, k, n, b_t);
                w[i] = fake_quant(w[i], s, q);
            }
        }
    }
}

/// CPU version of quant_acts.wgsl for one sequence's rows x [rows, k].
pub fn quant_act_cpu(x: &mut [f32], k: usize, bits: u32, protect: &[bool]) {
    let q = qmax(bits);
    let mut m = 0f32;
    for (i, v) in x.iter().enumerate() {
        if !protect[i % k] {
            m = m.max(v.abs());
        }
    }
    let s = m / q;
    for (i, v) in x.iter_mut().enumerate() {
        if !protect[i % k] {
            *v = fake_quant(*v, s, q);
        }
    }
}

/// Zero exactly ⌊share·n⌋ of the n unprotected weights of a [k, n] (or [n, k] with `b_t`)
/// matrix: the smallest |w|, ties broken by storage order. Returns how many were zeroed.
pub fn prune_cpu(
    w: &mut [f32],
    (k, n, b_t): (usize, usize, bool),
    share: f32,
    protect: &[bool],
) -> usize {
    let kin_of = |i: usize| if b_t { i % k } else { i / n };
    let mut idx: Vec<usize> = (0..k * n).filter(|&i| !protect[kin_of(i)]).collect();
    let count = (share as f64 * idx.len() as f64).floor() as usize;
    if count == 0 {
        return 0;
    }
    // Total order: |w|, then index.
    idx.select_nth_unstable_by(count - 1, |&a, &b| {
        w[a].abs().total_cmp(&w[b].abs()).then(a.cmp(&b))
    });
    for &i in &idx[..count] {
        w[i] = 0.0;
    }
    count
}

/// What compressing a model's weights did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WeightStats {
    pub tensors: usize,
    pub weights: usize,
    pub pruned: usize,
    pub protected_weights: usize,
}

/// Apply a scheme's weight part (pruning, then quantization) to the model's linear layers on
/// the GPU, and its activation part to every later forward pass. Pruning reads each matrix
/// back, selects on the host and writes it back; quantization runs quant_weights.wgsl.
pub fn apply(model: &mut Model, scheme: &Scheme, protect: &Protect) -> Result<WeightStats> {
    if model.f16 && (scheme.w_bits.is_some() || scheme.prune.is_some()) {
        bail!("compressing weights needs them in f32: load the model without --f16-weights");
    }
    let ctx = model.ctx.clone();
    let (d, inner) = (model.cfg.n_embd, model.cfg.n_inner());
    let width = |w: InputWidth| match w {
        InputWidth::D => d,
        InputWidth::Inner => inner,
    };
    protect.check(d, inner)?;
    let lins = model.linear_weights();
    let mut stats = WeightStats::default();
    for l in &lins {
        stats.tensors += 1;
        stats.weights += l.k * l.n;
        let mask = protect.mask(l.input, l.k);
        stats.protected_weights += mask.iter().filter(|&&p| p).count() * l.n;
    }
    if let Some(share) = scheme.prune {
        ctx.checked("pruning the weights", || {
            // Matrices stacked in one buffer are read and written once.
            let mut i = 0;
            while i < lins.len() {
                let buf = &lins[i].buffer;
                let j = (i..lins.len())
                    .find(|&j| lins[j].buffer != *buf)
                    .unwrap_or(lins.len());
                let floats = (buf.size() / 4) as usize;
                let mut data = ctx.read_storage(buf, floats)?;
                for l in &lins[i..j] {
                    let m = &mut data[l.offset..l.offset + l.k * l.n];
                    stats.pruned +=
                        prune_cpu(m, (l.k, l.n, l.b_t), share, &protect.mask(l.input, l.k));
                }
                ctx.queue.write_buffer(buf, 0, bytemuck::cast_slice(&data));
                i = j;
            }
            ctx.wait()
        })?;
    }
    if let Some(bits) = scheme.w_bits {
        ctx.checked("quantizing the weights", || {
            let maxn = lins.iter().map(|l| l.n).max().unwrap_or(1);
            let scales = ctx.storage("weight scales", maxn as u64 * 4)?;
            let masks = [InputWidth::D, InputWidth::Inner].map(|w| {
                let m: Vec<u32> = protect
                    .mask(w, width(w))
                    .iter()
                    .map(|&p| p as u32)
                    .collect();
                ctx.storage_init("protected input channels", bytemuck::cast_slice(&m))
            });
            let [md, mi] = masks;
            let (md, mi) = (md?, mi?);
            let mut g = Graph::default();
            for l in &lins {
                let mask = match l.input {
                    InputWidth::D => &md,
                    InputWidth::Inner => &mi,
                };
                model.k.quant_weight(
                    &mut g,
                    &l.buffer,
                    l.offset,
                    l.k,
                    l.n,
                    l.b_t,
                    scheme.per_channel,
                    bits,
                    mask,
                    &scales,
                );
            }
            g.submit(&ctx)?;
            ctx.wait()
        })?;
    }
    model.set_act_quant(scheme.a_bits, &protect.d, &protect.inner)?;
    Ok(stats)
}

/// Outlier channels of the linear layers' inputs, found on calibration windows: per input
/// width, the channels whose largest |x| (over layers, tokens and, for d-wide inputs, ln_1,
/// z and ln_2) is at least `ratio` × the median channel's, largest first, at most `max`.
pub fn find_outlier_channels(
    model: &Model,
    windows: &[Vec<u32>],
    ratio: f32,
    max: usize,
) -> Result<(Protect, ChannelStats)> {
    let (d, inner) = (model.cfg.n_embd, model.cfg.n_inner());
    let mut md = vec![0f32; d];
    let mut mi = vec![0f32; inner];
    let filter = HookFilter::parse(
        "blocks.*.ln1.hook_normalized,blocks.*.attn.hook_z,blocks.*.ln2.hook_normalized,blocks.*.mlp.hook_post",
    )?;
    for w in windows {
        let mut sess = model.session(1, w.len())?;
        let opts = ForwardOptions {
            logits: LogitsMode::None,
            capture: filter.clone(),
            ..Default::default()
        };
        model.forward_with(&mut sess, &[w], &opts, &mut |_, name, t| {
            let acc = if name.ends_with("mlp.hook_post") {
                &mut mi
            } else {
                &mut md
            };
            let width = acc.len();
            for (i, v) in t.data.iter().enumerate() {
                let a = &mut acc[i % width];
                *a = a.max(v.abs());
            }
        })?;
    }
    let pick = |m: &[f32]| -> (Vec<usize>, f32) {
        let mut sorted = m.to_vec();
        sorted.sort_by(f32::total_cmp);
        let median = sorted[sorted.len() / 2];
        let mut idx: Vec<usize> = (0..m.len())
            .filter(|&c| m[c] >= ratio * median && m[c] > 0.0)
            .collect();
        idx.sort_by(|&a, &b| m[b].total_cmp(&m[a]));
        idx.truncate(max);
        (idx, median)
    };
    let (pd, med_d) = pick(&md);
    let (pi, med_i) = pick(&mi);
    let stats = ChannelStats {
        d: pd.iter().map(|&c| (c, md[c], md[c] / med_d)).collect(),
        inner: pi.iter().map(|&c| (c, mi[c], mi[c] / med_i)).collect(),
        median_d: med_d,
        median_inner: med_i,
    };
    Ok((Protect { d: pd, inner: pi }, stats))
}

/// The protected channels with their calibration max |x| and ratio to the median channel.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChannelStats {
    pub d: Vec<(usize, f32, f32)>,
    pub inner: Vec<(usize, f32, f32)>,
    pub median_d: f32,
    pub median_inner: f32,
}

/// How the protected channels are chosen.
#[derive(Clone, Debug)]
pub enum ProtectMode {
    None,
    Auto { ratio: f32, max: usize },
    Given(Protect),
}

impl ProtectMode {
    pub fn parse(spec: &str, ratio: f32, max: usize) -> Result<Self> {
        Ok(match spec.trim() {
            "none" => ProtectMode::None,
            "auto" => ProtectMode::Auto { ratio, max },
            other => ProtectMode::Given(Protect::parse(other)?),
        })
    }
}

/// One scheme's perplexity, plain and with the outlier channels protected.
///
/// A scheme can break the model: when its forward pass yields non-finite values (named by the
/// first hook holding one) or a perplexity past f64 (mean NLL > 709.8 nats), that perplexity is
/// recorded as +inf (`null` in compress.json) with the reason in `notes`, and the study goes on.
#[derive(Clone, Debug, Serialize)]
pub struct SchemeResult {
    pub scheme: Scheme,
    pub ppl: f64,
    pub ppl_protected: Option<f64>,
    pub weights: WeightStats,
    /// Why a perplexity is +inf, e.g. `plain: non-finite values first appear at …`.
    pub notes: Vec<String>,
}

/// The study of one model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelStudy {
    pub model: String,
    pub device: String,
    pub windows: usize,
    pub tokens: usize,
    pub baseline_ppl: f64,
    pub protect: Protect,
    pub channel_stats: Option<ChannelStats>,
    pub results: Vec<SchemeResult>,
}

/// Perplexity of the uncompressed model and of every scheme, plain and protected. Each
/// compressed run starts from freshly loaded weights.
pub fn study(
    ctx: Arc<GpuContext>,
    path: &Path,
    windows_of: &dyn Fn(&Model) -> Result<Vec<Vec<u32>>>,
    schemes: &[Scheme],
    protect_mode: &ProtectMode,
    batch: usize,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<ModelStudy> {
    let load =
        || Model::load(ctx.clone(), path).with_context(|| format!("loading {}", path.display()));
    let base = load()?;
    let windows = windows_of(&base)?;
    if let Some(p) = progress {
        let runs = 1 + schemes.len()
            * if matches!(protect_mode, ProtectMode::None) {
                1
            } else {
                2
            };
        p.inc_length((runs * windows.len()) as u64);
        p.set_message(format!("{} fp32", short_name(path)));
    }
    // The uncompressed model must give a finite perplexity: every ratio is taken to it.
    let baseline = crate::ppl::perplexity(&base, &windows, batch, &[], None, "fp32", progress)
        .with_context(|| format!("{}: the uncompressed model", path.display()))?;
    let (protect, channel_stats) = match protect_mode {
        ProtectMode::None => (Protect::default(), None),
        ProtectMode::Given(p) => (p.clone(), None),
        ProtectMode::Auto { ratio, max } => {
            // Calibrate on the first windows (at most 4).
            let cal = &windows[..windows.len().min(4)];
            let (p, s) = find_outlier_channels(&base, cal, *ratio, *max)?;
            (p, Some(s))
        }
    };
    protect.check(base.cfg.n_embd, base.cfg.n_inner())?;
    drop(base);
    // Nothing to protect (no outlier channel found): the protected runs would repeat the plain ones.
    let protect_runs = !matches!(protect_mode, ProtectMode::None) && !protect.is_empty();
    let mut results = Vec::new();
    for s in schemes {
        let mut notes = Vec::new();
        let mut run = |prot: &Protect, tag: &str| -> Result<(f64, WeightStats)> {
            if let Some(p) = progress {
                p.set_message(format!("{} {}{tag}", short_name(path), s.name));
            }
            let mut m = load()?;
            let stats = apply(&mut m, s, prot)?;
            match crate::ppl::perplexity(&m, &windows, batch, &[], None, &s.name, progress) {
                Ok(r) => Ok((r.ppl, stats)),
                // The scheme broke the model: a result of the study, recorded as +inf.
                Err(e) if e.is::<NonFinite>() || e.is::<PplOverflow>() => {
                    let what = if tag.is_empty() { "plain" } else { tag.trim() };
                    notes.push(format!("{what}: {e:#}"));
                    Ok((f64::INFINITY, stats))
                }
                Err(e) => Err(e),
            }
        };
        let (ppl, weights) = run(&Protect::default(), "")?;
        let ppl_protected = if !protect_runs {
            if let Some(p) = progress {
                p.inc(windows.len() as u64);
            }
            None
        } else {
            Some(run(&protect, " protected")?.0)
        };
        results.push(SchemeResult {
            scheme: s.clone(),
            ppl,
            ppl_protected,
            weights,
            notes,
        });
    }
    Ok(ModelStudy {
        model: path.display().to_string(),
        device: ctx.info.name.clone(),
        windows: windows.len(),
        tokens: baseline.tokens,
        baseline_ppl: baseline.ppl,
        protect,
        channel_stats,
        results,
    })
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

/// Markdown: one table per model (scheme, perplexity, × fp32, protected), and, for several
/// models, a comparison of × fp32 across them.
pub fn markdown(studies: &[ModelStudy]) -> String {
    let mut s = String::new();
    let names = labels(studies);
    for (st, label) in studies.iter().zip(&names) {
        s += &format!(
            "### {}\n\n{} windows, {} predicted tokens, on {}. fp32 perplexity {:.3}.\n",
            label, st.windows, st.tokens, st.device, st.baseline_ppl
        );
        if !st.protect.is_empty() {
            s += &format!(
                "Protected input channels: d {:?}, inner {:?}.\n",
                st.protect.d, st.protect.inner
            );
        } else if st.channel_stats.is_some() {
            s += "No outlier input channel found (nothing to protect).\n";
        }
        s += "\n| scheme | perplexity | × fp32 | protected | × fp32 |\n|---|---:|---:|---:|---:|\n";
        for r in &st.results {
            let (pp, pr) = match r.ppl_protected {
                Some(p) => (num(p), num(p / st.baseline_ppl)),
                None => ("–".into(), "–".into()),
            };
            s += &format!(
                "| `{}` | {} | {} | {pp} | {pr} |\n",
                r.scheme.name,
                num(r.ppl),
                num(r.ppl / st.baseline_ppl)
            );
        }
        s += "\n";
        for r in &st.results {
            for n in &r.notes {
                s += &format!("∞ `{}` {n}\n\n", r.scheme.name);
            }
        }
    }
    if studies.len() > 1 {
        s += "### Perplexity × fp32, side by side (protected in brackets)\n\n| scheme |";
        for label in &names {
            s += &format!(" {label} |");
        }
        s += "\n|---|";
        s += &"---:|".repeat(studies.len());
        s += "\n| fp32 perplexity |";
        for st in studies {
            s += &format!(" {:.3} |", st.baseline_ppl);
        }
        s += "\n";
        for (i, r) in studies[0].results.iter().enumerate() {
            s += &format!("| `{}` |", r.scheme.name);
            for st in studies {
                let r = &st.results[i];
                let prot = r
                    .ppl_protected
                    .map(|p| format!(" ({})", num(p / st.baseline_ppl)))
                    .unwrap_or_default();
                s += &format!(" {}{prot} |", num(r.ppl / st.baseline_ppl));
            }
            s += "\n";
        }
    }
    s
}

/// A perplexity or ratio for the tables: three decimals, or ∞ for a scheme that broke the
/// model (its note says why).
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "∞".into()
    }
}

/// Write compress.json, compress.md and the bar charts into `out`. Returns the files written.
pub fn write_outputs(studies: &[ModelStudy], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = Vec::new();
    let json = out.join("compress.json");
    std::fs::write(&json, serde_json::to_string_pretty(studies)?)
        .with_context(|| format!("writing {}", json.display()))?;
    files.push(json);
    let md = out.join("compress.md");
    std::fs::write(&md, markdown(studies)).with_context(|| format!("writing {}", md.display()))?;
    files.push(md);
    files.extend(crate::report::plots::compress_bars(studies, out)?);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn randn(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let u1 = 1.0 - rng.random::<f64>();
                let u2 = rng.random::<f64>();
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect()
    }

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

    /// Absmax round trip: every value within half a step of the original, the absmax value
    /// itself exact, idempotent, and 4 bits coarser than 8.
    #[test]
    fn round_trip_error_bounds() {
        let (k, n) = (33, 17);
        let w0 = randn(k * n, 1);
        let none = vec![false; k];
        let mut errs = Vec::new();
        for bits in [8u32, 4] {
            for per_channel in [true, false] {
                for b_t in [false, true] {
                    let mut w = w0.clone();
                    quant_weight_cpu(&mut w, (k, n, b_t), per_channel, bits, &none);
                    let q = qmax(bits);
                    for col in 0..n {
                        let amax = if per_channel {
                            (0..k)
                                .map(|i| w0[at(i, col, k, n, b_t)].abs())
                                .fold(0f32, f32::max)
                        } else {
                            w0.iter().fold(0f32, |m, v| m.max(v.abs()))
                        };
                        let s = amax / q;
                        for kin in 0..k {
                            let i = at(kin, col, k, n, b_t);
                            assert!(
                                (w[i] - w0[i]).abs() <= s * 0.5 * (1.0 + 1e-5),
                                "bits {bits}"
                            );
                        }
                    }
                    let mut again = w.clone();
                    quant_weight_cpu(&mut again, (k, n, b_t), per_channel, bits, &none);
                    assert_eq!(again, w, "quantizing twice changes nothing");
                    let rms = (w.iter().zip(&w0).map(|(a, b)| (a - b).powi(2)).sum::<f32>()
                        / w.len() as f32)
                        .sqrt();
                    errs.push((bits, per_channel, rms));
                }
            }
        }
        let e = |b, pc| errs.iter().find(|x| x.0 == b && x.1 == pc).unwrap().2;
        assert!(e(4, true) > 5.0 * e(8, true), "{errs:?}");
        assert!(
            e(8, true) < e(8, false),
            "per channel is finer than per tensor: {errs:?}"
        );
        // Activations: the same bound with one scale.
        let mut x = randn(5 * 40, 2);
        let x0 = x.clone();
        quant_act_cpu(&mut x, 40, 8, &[false; 40]);
        let s = x0.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        assert!(x
            .iter()
            .zip(&x0)
            .all(|(a, b)| (a - b).abs() <= s * 0.5 * (1.0 + 1e-5)));
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

    /// A scheme that broke the model shows ∞ with its note; the JSON holds null, not a number.
    #[test]
    fn broken_schemes_show_infinity_and_why() {
        let result = |name: &str, ppl: f64, notes: Vec<String>| SchemeResult {
            scheme: Scheme::parse(name).unwrap(),
            ppl,
            ppl_protected: Some(ppl * 0.5),
            weights: WeightStats::default(),
            notes,
        };
        let note = "plain: perplexity of w2t: non-finite values first appear at blocks.1.mlp.hook_pre (position 0, channel 5: inf; 3 of its 288 values are non-finite)";
        let st = ModelStudy {
            model: "m".into(),
            device: String::new(),
            windows: 1,
            tokens: 1,
            baseline_ppl: 2.0,
            protect: Protect::default(),
            channel_stats: None,
            results: vec![
                result("w8", 2.5, vec![]),
                result("w2t", f64::INFINITY, vec![note.into()]),
            ],
        };
        let md = markdown(std::slice::from_ref(&st));
        assert!(
            md.contains("| `w8` | 2.500 | 1.250 | 1.250 | 0.625 |"),
            "{md}"
        );
        assert!(md.contains("| `w2t` | ∞ | ∞ | ∞ | ∞ |"), "{md}");
        assert!(md.contains(&format!("∞ `w2t` {note}")), "{md}");
        let two = markdown(&[st.clone(), st.clone()]);
        assert!(two.contains("| `w2t` | ∞ (∞) | ∞ (∞) |"), "{two}");
        let j: serde_json::Value = serde_json::to_value(&st).unwrap();
        assert!(j["results"][1]["ppl"].is_null(), "{j}");
        assert_eq!(j["results"][1]["notes"][0], note);
    }

    /// Pruning zeroes exactly ⌊p·n⌋ unprotected weights, the smallest ones, and never a
    /// protected one — also with ties.
    #[test]
    fn pruning_keeps_exactly_the_requested_share() {
        let (k, n) = (29, 23);
        let mut w0 = randn(k * n, 3);
        // Ties: a run of equal magnitudes.
        for v in w0.iter_mut().take(60) {
            *v = 0.25f32.copysign(*v);
        }
        let protect: Vec<bool> = (0..k).map(|i| i % 7 == 2).collect();
        for b_t in [false, true] {
            for share in [0.5f32, 0.3, 0.9] {
                let kin_of = |i: usize| if b_t { i % k } else { i / n };
                let mut w = w0.clone();
                let zeroed = prune_cpu(&mut w, (k, n, b_t), share, &protect);
                let unprot = (0..k * n).filter(|&i| !protect[kin_of(i)]).count();
                let want = (share as f64 * unprot as f64).floor() as usize;
                assert_eq!(zeroed, want);
                let now_zero = (0..k * n).filter(|&i| w[i] == 0.0 && w0[i] != 0.0).count();
                assert_eq!(now_zero, want, "share {share}");
                let mut max_cut = 0f32;
                let mut min_kept = f32::MAX;
                for i in 0..k * n {
                    if protect[kin_of(i)] {
                        assert_eq!(w[i], w0[i], "a protected weight changed");
                    } else if w[i] == 0.0 {
                        max_cut = max_cut.max(w0[i].abs());
                    } else {
                        min_kept = min_kept.min(w0[i].abs());
                    }
                }
                assert!(max_cut <= min_kept, "pruned {max_cut} but kept {min_kept}");
            }
        }
    }
}
