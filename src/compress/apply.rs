//! Applying a scheme to a loaded model (pruning and weight quantization on the GPU, activation
//! quantization for later passes) and finding the outlier input channels to protect.
//! Depends on the model, kernels and hooks (GPU); the report never depends on it.

use anyhow::{bail, Result};

use super::cpu::prune_cpu;
use super::{ChannelStats, Protect, Scheme, WeightStats};
use crate::hooks::HookFilter;
use crate::kernels::Graph;
use crate::model::{ForwardOptions, InputWidth, LogitsMode, Model};

/// The protected channels of input width `w`.
fn protect_list(p: &Protect, w: InputWidth) -> &[usize] {
    match w {
        InputWidth::D => &p.d,
        InputWidth::Inner => &p.inner,
        // z of n_head · head_dim ≠ d channels (Gemma 3's o_proj input): none protected.
        InputWidth::Heads => &[],
    }
}

/// Per input channel of a `width`-wide input of kind `w`: protected or not.
fn protect_mask(p: &Protect, w: InputWidth, width: usize) -> Vec<bool> {
    let mut m = vec![false; width];
    for &c in protect_list(p, w) {
        if c < width {
            m[c] = true;
        }
    }
    m
}

/// Apply a scheme's weight part (pruning, then quantization) to the model's linear layers on
/// the GPU, and its activation part to every later forward pass. Pruning reads each matrix
/// back, selects on the host and writes it back; quantization runs quant_weights.wgsl.
pub fn apply(model: &mut Model, scheme: &Scheme, protect: &Protect) -> Result<WeightStats> {
    if (model.f16 || model.quant_bytes > 0) && (scheme.w_bits.is_some() || scheme.prune.is_some()) {
        bail!("compressing weights needs them in f32: load the model with --weights f32 (not f16, q8 or a GGUF's stored blocks)");
    }
    let ctx = model.ctx.clone();
    let (d, inner, heads) = (model.cfg.n_embd, model.cfg.n_inner(), model.cfg.q_dim());
    let width = |w: InputWidth| match w {
        InputWidth::D => d,
        InputWidth::Inner => inner,
        InputWidth::Heads => heads,
    };
    protect.check(d, inner)?;
    let lins = model.linear_weights();
    let mut stats = WeightStats::default();
    for l in &lins {
        stats.tensors += 1;
        stats.weights += l.k * l.n;
        let mask = protect_mask(protect, l.input, l.k);
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
                    stats.pruned += prune_cpu(
                        m,
                        (l.k, l.n, l.b_t),
                        share,
                        &protect_mask(protect, l.input, l.k),
                    );
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
            let masks = [InputWidth::D, InputWidth::Inner, InputWidth::Heads].map(|w| {
                let m: Vec<u32> = protect_mask(protect, w, width(w))
                    .iter()
                    .map(|&p| p as u32)
                    .collect();
                ctx.storage_init("protected input channels", bytemuck::cast_slice(&m))
            });
            let [md, mi, mh] = masks;
            let (md, mi, mh) = (md?, mi?, mh?);
            let mut g = Graph::default();
            for l in &lins {
                let mask = match l.input {
                    InputWidth::D => &md,
                    InputWidth::Inner => &mi,
                    InputWidth::Heads => &mh,
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
