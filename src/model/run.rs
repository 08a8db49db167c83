//! Running a forward pass: token checks, the row layout of a batch, the walk over the
//! architecture's embedding, blocks and final norm, the LM head and the logits, non-finite checks.
//! Never names an architecture.

use std::collections::BTreeMap;

use anyhow::Result;

use super::acts::{Acts, Pool};
use super::hook_point::{edit_buffers, HookPoints};
use super::{Model, Pass, Session};
use crate::finite::NonFinite;
use crate::forward::{ForwardOptions, ForwardOutput, LogitsMode};
use crate::hooks::{HookFilter, Src};
use crate::tensor::Tensor;

impl Model {
    /// Run new tokens of each sequence through the model, appending them to the KV cache.
    /// Sequences of different lengths are padded; padding rows touch neither cache nor results.
    ///
    /// # Errors
    /// Refused selectors (see [`ForwardOptions`]), tokens that do not fit the session or the
    /// vocabulary, and `finite::NonFinite`, naming the first hook that holds one, when a captured
    /// hook or the returned logits hold NaN or ±inf (the cache then does not advance).
    pub fn forward(
        &self,
        sess: &mut Session,
        new: &[&[u32]],
        opts: &ForwardOptions,
    ) -> Result<ForwardOutput> {
        let mut captures = vec![BTreeMap::new(); new.len()];
        let logits = self.forward_with(sess, new, opts, &mut |b, name, t| {
            captures[b].insert(name, t);
        })?;
        Ok(ForwardOutput { logits, captures })
    }

    /// `forward`, handing each captured tensor to `sink(sequence, hook, tensor)` as soon as its
    /// layer is done instead of collecting them: corpus analyses can reduce tensors on the fly.
    /// Returns the logits.
    pub fn forward_with(
        &self,
        sess: &mut Session,
        new: &[&[u32]],
        opts: &ForwardOptions,
        sink: &mut dyn FnMut(usize, String, Tensor),
    ) -> Result<Vec<Option<Tensor>>> {
        self.check_tokens(sess, new)?;
        let lens: Vec<usize> = new
            .iter()
            .zip(sess.lens())
            .map(|(t, l)| l + t.len())
            .collect();
        crate::select::check_forward(opts, &self.hooks(), &lens)?;
        let out = self.ctx.checked("running the forward pass", || {
            self.forward_inner(sess, new, opts, sink)
        });
        let out = match out {
            Err(e) if e.is::<NonFinite>() => return Err(self.first_nonfinite(sess, new, opts, e)),
            other => other?,
        };
        for (b, t) in new.iter().enumerate() {
            sess.advance(b, t.len());
        }
        Ok(out)
    }

    /// After non-finite values were found (in a captured hook or the logits): the same pass
    /// again, capturing every hook and keeping nothing, so that the check names the first hook
    /// that holds one. It rewrites the same KV-cache entries with the same values, and costs a
    /// capturing pass only when something is already wrong. Attention scores and patterns are
    /// left out when they would not fit a binding. Returns the error to report.
    fn first_nonfinite(
        &self,
        sess: &Session,
        new: &[&[u32]],
        opts: &ForwardOptions,
        found: anyhow::Error,
    ) -> anyhow::Error {
        let space = self.hooks();
        if space.hooks().iter().all(|h| opts.capture.wants(h)) {
            return found; // everything was checked already
        }
        let tmax = new.iter().map(|t| t.len()).max().unwrap_or(0);
        let keys = (0..sess.seqs)
            .map(|b| sess.lens()[b] + new[b].len())
            .max()
            .unwrap_or(1);
        let att = (sess.seqs * tmax * self.cfg.n_head * keys * 4) as u64;
        let capture = if att <= self.ctx.max_binding {
            HookFilter::all()
        } else {
            let names: Vec<String> = space
                .hooks()
                .into_iter()
                .filter(|h| {
                    !h.ends_with("attn.hook_attn_scores") && !h.ends_with("attn.hook_pattern")
                })
                .collect();
            match HookFilter::parse(&names.join(",")) {
                Ok(f) => f,
                Err(_) => return found,
            }
        };
        let diag = ForwardOptions {
            logits: LogitsMode::None,
            capture,
            ..opts.clone()
        };
        let rerun = self.ctx.checked("locating non-finite values", || {
            self.forward_inner(sess, new, &diag, &mut |_, _, _| {})
        });
        match rerun {
            Err(e) if e.is::<NonFinite>() => e,
            _ => found,
        }
    }

    fn forward_inner(
        &self,
        sess: &Session,
        new: &[&[u32]],
        opts: &ForwardOptions,
        sink: &mut dyn FnMut(usize, String, Tensor),
    ) -> Result<Vec<Option<Tensor>>> {
        let (ctx, cfg) = (&*self.ctx, &self.cfg);
        let space = self.hooks();
        let s = sess.seqs;
        let past = sess.lens();
        let tmax = new.iter().map(|t| t.len()).max().unwrap_or(0);
        let rows = s * tmax;
        let cap_keys = (0..s).map(|b| past[b] + new[b].len()).max().unwrap_or(1);

        // Row layout: sequence b owns rows b*tmax .. b*tmax + tmax; valid rows first.
        let mut tokens = vec![0u32; rows];
        let mut rowinfo = vec![[0u32; 4]; rows];
        for (b, toks) in new.iter().enumerate() {
            for t in 0..tmax {
                let r = b * tmax + t;
                rowinfo[r] = if t < toks.len() {
                    tokens[r] = toks[t];
                    [
                        b as u32,
                        (past[b] + t) as u32,
                        1,
                        (past[b] + toks.len()) as u32,
                    ]
                } else {
                    [b as u32, 0, 0, 0]
                };
            }
        }
        let pool = Pool::new(ctx, &self.pool);
        let tok_buf = pool.upload("tokens", bytemuck::cast_slice(&tokens))?;
        let info_buf = pool.upload("rowinfo", bytemuck::cast_slice(&rowinfo))?;
        let want_att = opts.capture.wants_any_src(cfg.n_layer, |l| {
            [Src::Scores(l), Src::Pattern(l), Src::ExtraProb(l)]
        });
        let mut a = Acts::new(ctx, &pool, &space, rows, want_att, cap_keys)?;
        let edits = edit_buffers(ctx, cfg, &space, &opts.edits)?;
        let hooks = HookPoints::new(&self.k, ctx, &opts.capture, rows, info_buf.clone(), edits);
        let mut p = Pass::new(
            &self.k,
            cfg,
            &self.emb,
            sess,
            (rows, tmax, cap_keys),
            (tok_buf, info_buf),
            want_att,
            hooks,
        );
        p.qscratch = self.qscratch.clone();
        // Knockout: one key mask per distinct set of removed keys, and each layer's mask.
        if let Some(k) = &opts.knockout {
            let (masks, of_layer) = k.layer_masks(cfg.n_layer, sess.cap);
            p.knock_of_layer = of_layer;
            for m in masks {
                p.knock
                    .push(ctx.storage_init("knockout keys", bytemuck::cast_slice(&m))?);
            }
        }
        if let Some(q) = &self.act_quant {
            p.act_quant = Some((q, pool.get("activation quant scales", s as u64 * 4)?));
        }

        // Hand each captured source to the sink, cut per sequence. Every hook of the source is
        // checked for non-finite values (forward order first, then sequence order) before any
        // is handed on.
        let seq_tag = |b: usize| (s > 1).then_some(b);
        let geometry = |b: usize| crate::hooks::Geometry {
            space,
            row0: b * tmax,
            n: new[b].len(),
            past: past[b],
            cap_keys,
        };
        let mut deliver = |src: Src, data: Vec<f32>| -> Result<()> {
            let cut: Vec<(usize, Vec<(String, Tensor)>)> = (0..s)
                .filter(|&b| !new[b].is_empty())
                .map(|b| (b, crate::hooks::split_capture(src, &data, geometry(b))))
                .collect();
            for i in 0..cut.first().map_or(0, |c| c.1.len()) {
                for (b, hooks) in &cut {
                    let (name, t) = &hooks[i];
                    crate::finite::check_hook(name, t, past[*b], seq_tag(*b))?;
                }
            }
            for (b, hooks) in cut {
                for (i, (name, t)) in hooks.into_iter().enumerate() {
                    if opts.capture.wants_nth(src, i) {
                        sink(b, name, t);
                    }
                }
            }
            Ok(())
        };

        self.arch.embed(&mut p, &a)?;
        for l in 0..cfg.n_layer {
            self.arch.block(&mut p, &a, l)?;
            a.next_block();
            // Captured layers go back to the host one at a time, so a capture never needs
            // more than one layer's worth of memory.
            p.hooks.flush(&mut p.g, &mut deliver)?;
        }
        self.arch.final_norm(&mut p, &a)?;

        // LM head on every row, or on the last new row of each sequence.
        let want_logits_hook = opts.capture.wants_src(Src::Logits);
        let mode = if want_logits_hook {
            LogitsMode::All
        } else {
            opts.logits
        };
        let head_rows: Vec<usize> = match mode {
            LogitsMode::None => vec![],
            LogitsMode::All => (0..rows).collect(),
            LogitsMode::Last => (0..s)
                .filter(|&b| !new[b].is_empty())
                .map(|b| b * tmax + new[b].len() - 1)
                .collect(),
        };
        // The head reads embed_dim-wide rows (OPT's project_out output; else the final norm's).
        let (d, v, f) = (cfg.embed_dim, cfg.vocab_size, 4u64);
        let logits_rb = if head_rows.is_empty() {
            None
        } else {
            let m = head_rows.len();
            let head_in = if mode == LogitsMode::All {
                a.ln_final.clone()
            } else {
                let hi = pool.get("lm head input", (m * d) as u64 * f)?;
                for (i, r) in head_rows.iter().enumerate() {
                    let (src, dst) = ((r * d) as u64 * f, (i * d) as u64 * f);
                    p.g.copy(&a.ln_final, src, &hi, dst, d as u64 * f);
                }
                hi
            };
            let rb = self
                .emb
                .lm_head(ctx, &self.k, &mut p.g, (m, d, v), &head_in)?;
            Some((rb, m))
        };

        p.hooks.flush(&mut p.g, &mut deliver)?;
        ctx.note_memory();
        std::mem::take(&mut p.g).submit(ctx)?;
        let Some((rb, m)) = logits_rb else {
            ctx.wait()?;
            return Ok(vec![None; s]);
        };
        let raw = ctx
            .read_f32(&[(&rb, m * v)])?
            .pop()
            .expect("logits readback");
        let lf = self.emb.unchunk(&raw, m, v);
        let mut logits = vec![None; s];
        let mut i = 0;
        for (b, toks) in new.iter().enumerate() {
            let n = toks.len();
            if n == 0 {
                continue;
            }
            logits[b] = Some(match mode {
                LogitsMode::All => {
                    let r0 = b * tmax;
                    Tensor::new(vec![n, v], lf[r0 * v..(r0 + n) * v].to_vec())
                }
                _ => {
                    i += 1;
                    Tensor::new(vec![1, v], lf[(i - 1) * v..i * v].to_vec())
                }
            });
        }
        // Non-finite logits: one pass over what was read back.
        for (b, l) in logits.iter().enumerate() {
            if let Some(t) = l {
                let first = past[b] + new[b].len() - t.shape[0];
                crate::finite::check_hook("logits", t, first, seq_tag(b))?;
            }
        }
        if want_logits_hook {
            for (b, l) in logits.iter().enumerate() {
                if let Some(t) = l {
                    sink(b, "logits".into(), t.clone());
                }
            }
            match opts.logits {
                LogitsMode::All => {}
                LogitsMode::None => logits = vec![None; s],
                LogitsMode::Last => {
                    for l in logits.iter_mut() {
                        if let Some(t) = l.take() {
                            let n = t.shape[0];
                            *l = Some(Tensor::new(vec![1, v], t.row(n - 1).to_vec()));
                        }
                    }
                }
            }
        }
        Ok(logits)
    }

    /// Logits of every token of one prompt (a fresh session): `[T, V]`.
    pub fn logits(&self, tokens: &[u32]) -> Result<Tensor> {
        let mut sess = self.session(1, tokens.len())?;
        let opts = ForwardOptions {
            logits: LogitsMode::All,
            ..Default::default()
        };
        let out = self.forward(&mut sess, &[tokens], &opts)?;
        Ok(out
            .logits
            .into_iter()
            .next()
            .flatten()
            .expect("logits requested"))
    }

    /// Capture the hooks selected by `filter` for one prompt (a fresh session).
    pub fn capture(&self, tokens: &[u32], filter: &HookFilter) -> Result<BTreeMap<String, Tensor>> {
        let mut sess = self.session(1, tokens.len())?;
        let opts = ForwardOptions {
            logits: LogitsMode::None,
            capture: filter.clone(),
            ..Default::default()
        };
        let out = self.forward(&mut sess, &[tokens], &opts)?;
        Ok(out.captures.into_iter().next().unwrap_or_default())
    }
}
