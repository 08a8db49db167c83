//! GPT-2 on the GPU: weights in storage buffers, a KV-cache session, and the forward pass
//! written top to bottom as the model's figure, each step one op, each output buffer named
//! by the hook point it feeds.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::config::Gpt2Config;
use crate::gpu::GpuContext;
use crate::hooks::{HookFilter, Src};
use crate::intervene::{editable, HookEdit, Knockout};
use crate::kernels::{AttnParams, Bind, Graph, Kernels};
use crate::tensor::Tensor;
use crate::tokenizer::Tokenizer;
use crate::weights::WeightFile;

/// A slice of vocabulary rows of an embedding matrix, small enough for one storage binding.
struct Chunk {
    buf: wgpu::Buffer,
    start: usize,
    count: usize,
}

struct Layer {
    ln1_g: wgpu::Buffer,
    ln1_b: wgpu::Buffer,
    attn_w: wgpu::Buffer, // [D, 3D]
    attn_b: wgpu::Buffer, // [3D]
    proj_w: wgpu::Buffer, // [D, D]
    proj_b: wgpu::Buffer,
    ln2_g: wgpu::Buffer,
    ln2_b: wgpu::Buffer,
    fc_w: wgpu::Buffer, // [D, I]
    fc_b: wgpu::Buffer,
    down_w: wgpu::Buffer, // [I, D]
    down_b: wgpu::Buffer,
}

/// A GPT-2 model loaded onto one GPU.
pub struct Gpt2 {
    pub cfg: Gpt2Config,
    pub tokenizer: Option<Tokenizer>,
    ctx: Arc<GpuContext>,
    k: Kernels,
    wte: Vec<Chunk>,
    /// Separate LM head when the checkpoint's `lm_head.weight` is not the tied `wte`.
    lm_head: Option<Vec<Chunk>>,
    wpe: wgpu::Buffer,
    layers: Vec<Layer>,
    lnf_g: wgpu::Buffer,
    lnf_b: wgpu::Buffer,
    /// Bytes of weights on the GPU.
    pub weight_bytes: u64,
}

/// Which logits a forward pass returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsMode {
    None,
    /// The last new token of each sequence: [1, V].
    Last,
    /// Every new token: [n, V].
    All,
}

#[derive(Clone, Debug)]
pub struct ForwardOptions {
    pub logits: LogitsMode,
    pub capture: HookFilter,
    /// Edits applied where each hook is produced, before anything downstream reads it
    /// (captures show the edited values, as TransformerLens hooks do).
    pub edits: Vec<HookEdit>,
    pub knockout: Option<Knockout>,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        Self {
            logits: LogitsMode::Last,
            capture: HookFilter::none(),
            edits: Vec::new(),
            knockout: None,
        }
    }
}

/// What one forward pass returns, per sequence of the batch.
#[derive(Debug, Default)]
pub struct ForwardOutput {
    /// Per sequence: [n, V] (All) or [1, V] (Last); `None` for sequences given no token.
    pub logits: Vec<Option<Tensor>>,
    /// Per sequence: hook name -> tensor, shapes as documented in `hooks`.
    pub captures: Vec<BTreeMap<String, Tensor>>,
}

/// KV cache for a batch of sequences: one K and one V buffer per layer, [seqs, cap, D].
pub struct Session {
    pub seqs: usize,
    pub cap: usize,
    k: Vec<wgpu::Buffer>,
    v: Vec<wgpu::Buffer>,
    /// Tokens already in the cache, per sequence.
    pub lens: Vec<usize>,
}

fn bytes_f32(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

impl Gpt2 {
    /// Load a Hugging Face GPT-2 directory: `config.json`, `model.safetensors`, `tokenizer.json`.
    pub fn load(ctx: Arc<GpuContext>, dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("model directory {} does not exist", dir.display());
        }
        let cfg = Gpt2Config::from_file(&dir.join("config.json"))?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = if tok_path.exists() {
            Some(Tokenizer::from_file(&tok_path)?)
        } else {
            None
        };
        let wf = WeightFile::open(&dir.join("model.safetensors"), "wte.weight")?;
        Self::from_weights(ctx, cfg, tokenizer, &wf)
    }

    pub fn from_weights(
        ctx: Arc<GpuContext>,
        cfg: Gpt2Config,
        tokenizer: Option<Tokenizer>,
        wf: &WeightFile,
    ) -> Result<Self> {
        let (d, v, inner) = (cfg.n_embd, cfg.vocab_size, cfg.n_inner());
        if wf.contains(&format!("h.{}.ln_1.weight", cfg.n_layer)) {
            bail!(
                "{}: holds more layers than config.json's n_layer = {}",
                wf.path().display(),
                cfg.n_layer
            );
        }
        if let Some(t) = &tokenizer {
            if t.vocab_size() > v {
                bail!(
                    "tokenizer.json has {} tokens but config.json's vocab_size is {v}",
                    t.vocab_size()
                );
            }
        }
        let k = Kernels::new(&ctx)?;
        let mut bytes = 0u64;
        let ctx2 = ctx.clone();
        let up = |name: &str, shape: &[usize], bytes: &mut u64| -> Result<wgpu::Buffer> {
            let data = wf.f32(name, shape)?;
            *bytes += data.len() as u64 * 4;
            ctx2.storage_init(&format!("{}{name}", wf.prefix()), bytes_f32(&data))
                .with_context(|| format!("uploading {}", wf.path().display()))
        };
        let chunks = |name: &str, bytes: &mut u64| -> Result<Vec<Chunk>> {
            let data = wf.f32(name, &[v, d])?;
            let rows_per = ((ctx.max_binding / (d as u64 * 4)) as usize / 64 * 64).max(64);
            let mut out = Vec::new();
            let mut start = 0;
            while start < v {
                let count = rows_per.min(v - start);
                let label = format!("{name}[{start}..{}]", start + count);
                let buf = ctx
                    .storage_init(&label, bytes_f32(&data[start * d..(start + count) * d]))
                    .with_context(|| {
                        format!("{}: {name} in vocabulary chunks", wf.path().display())
                    })?;
                out.push(Chunk { buf, start, count });
                start += count;
            }
            *bytes += data.len() as u64 * 4;
            Ok(out)
        };
        ctx.clone().checked("loading the weights onto the GPU", || {
            let wte = chunks("wte.weight", &mut bytes)?;
            let lm_head = match (wf.raw("lm_head.weight"), wf.raw("wte.weight")) {
                (Some(h), Some(e)) if h != e => Some(chunks("lm_head.weight", &mut bytes)?),
                _ => None,
            };
            let wpe = up("wpe.weight", &[cfg.n_positions, d], &mut bytes)?;
            let mut layers = Vec::with_capacity(cfg.n_layer);
            for l in 0..cfg.n_layer {
                let n = |s: &str| format!("h.{l}.{s}");
                layers.push(Layer {
                    ln1_g: up(&n("ln_1.weight"), &[d], &mut bytes)?,
                    ln1_b: up(&n("ln_1.bias"), &[d], &mut bytes)?,
                    attn_w: up(&n("attn.c_attn.weight"), &[d, 3 * d], &mut bytes)?,
                    attn_b: up(&n("attn.c_attn.bias"), &[3 * d], &mut bytes)?,
                    proj_w: up(&n("attn.c_proj.weight"), &[d, d], &mut bytes)?,
                    proj_b: up(&n("attn.c_proj.bias"), &[d], &mut bytes)?,
                    ln2_g: up(&n("ln_2.weight"), &[d], &mut bytes)?,
                    ln2_b: up(&n("ln_2.bias"), &[d], &mut bytes)?,
                    fc_w: up(&n("mlp.c_fc.weight"), &[d, inner], &mut bytes)?,
                    fc_b: up(&n("mlp.c_fc.bias"), &[inner], &mut bytes)?,
                    down_w: up(&n("mlp.c_proj.weight"), &[inner, d], &mut bytes)?,
                    down_b: up(&n("mlp.c_proj.bias"), &[d], &mut bytes)?,
                });
            }
            let lnf_g = up("ln_f.weight", &[d], &mut bytes)?;
            let lnf_b = up("ln_f.bias", &[d], &mut bytes)?;
            ctx.wait()?;
            Ok(Self {
                cfg: cfg.clone(),
                tokenizer,
                ctx: ctx.clone(),
                k,
                wte,
                lm_head,
                wpe,
                layers,
                lnf_g,
                lnf_b,
                weight_bytes: bytes,
            })
        })
    }

    pub fn ctx(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Number of vocabulary chunks the embedding is split into (1 unless the binding limit forces more).
    pub fn vocab_chunks(&self) -> usize {
        self.wte.len()
    }

    /// A KV cache for `seqs` sequences of up to `cap` tokens each.
    pub fn session(&self, seqs: usize, cap: usize) -> Result<Session> {
        if seqs == 0 {
            bail!("a batch needs at least one sequence");
        }
        if cap > self.cfg.n_positions {
            bail!(
                "{cap} tokens are longer than the model's n_positions = {}",
                self.cfg.n_positions
            );
        }
        let cap = cap.max(1);
        let bytes = (seqs * cap * self.cfg.n_embd * 4) as u64;
        let mut k = Vec::new();
        let mut v = Vec::new();
        self.ctx.checked("allocating the KV cache", || {
            for l in 0..self.cfg.n_layer {
                k.push(self.ctx.storage(&format!("kv cache k{l}"), bytes)?);
                v.push(self.ctx.storage(&format!("kv cache v{l}"), bytes)?);
            }
            Ok(())
        })?;
        Ok(Session {
            seqs,
            cap,
            k,
            v,
            lens: vec![0; seqs],
        })
    }

    fn check_tokens(&self, sess: &Session, new: &[&[u32]]) -> Result<()> {
        if new.len() != sess.seqs {
            bail!(
                "{} token lists given for a batch of {} sequences",
                new.len(),
                sess.seqs
            );
        }
        if new.iter().all(|t| t.is_empty()) {
            bail!("empty prompt: at least one token is needed");
        }
        for (b, toks) in new.iter().enumerate() {
            let total = sess.lens[b] + toks.len();
            if total > self.cfg.n_positions {
                bail!(
                    "sequence {b}: {total} tokens are longer than the model's n_positions = {}",
                    self.cfg.n_positions
                );
            }
            if total > sess.cap {
                bail!(
                    "sequence {b}: {total} tokens do not fit the session's KV cache of {} positions",
                    sess.cap
                );
            }
            if let Some((i, t)) = toks
                .iter()
                .enumerate()
                .find(|(_, t)| **t as usize >= self.cfg.vocab_size)
            {
                bail!(
                    "sequence {b}: token id {t} at position {i} is not in the vocabulary (vocab_size {})",
                    self.cfg.vocab_size
                );
            }
        }
        Ok(())
    }

    /// Run new tokens of each sequence through the model, appending them to the KV cache.
    /// Sequences of different lengths are padded; padding rows touch neither cache nor results.
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
        let out = self.ctx.checked("running the forward pass", || {
            self.forward_inner(sess, new, opts, sink)
        })?;
        for (b, t) in new.iter().enumerate() {
            sess.lens[b] += t.len();
        }
        Ok(out)
    }

    #[allow(clippy::needless_range_loop)]
    fn forward_inner(
        &self,
        sess: &Session,
        new: &[&[u32]],
        opts: &ForwardOptions,
        sink: &mut dyn FnMut(usize, String, Tensor),
    ) -> Result<Vec<Option<Tensor>>> {
        let ctx = &*self.ctx;
        let cfg = &self.cfg;
        let (d, h, hd, inner) = (cfg.n_embd, cfg.n_head, cfg.head_dim(), cfg.n_inner());
        let s = sess.seqs;
        let tmax = new.iter().map(|t| t.len()).max().unwrap_or(0);
        let rows = s * tmax;
        let cap_keys = (0..s)
            .map(|b| sess.lens[b] + new[b].len())
            .max()
            .unwrap_or(1);
        let f = 4u64;

        // Row layout: sequence b owns rows b*tmax .. b*tmax + tmax; valid rows first.
        let mut tokens = vec![0u32; rows];
        let mut rowinfo = vec![[0u32; 4]; rows];
        for b in 0..s {
            for t in 0..tmax {
                let r = b * tmax + t;
                if t < new[b].len() {
                    tokens[r] = new[b][t];
                    rowinfo[r] = [b as u32, (sess.lens[b] + t) as u32, 1, 0];
                } else {
                    rowinfo[r] = [b as u32, 0, 0, 0];
                }
            }
        }
        let tok_buf = ctx.storage_init("tokens", bytemuck::cast_slice(&tokens))?;
        let info_buf = ctx.storage_init("rowinfo", bytemuck::cast_slice(&rowinfo))?;

        let rd = rows as u64 * d as u64 * f;
        let act = |name: &str, bytes: u64| ctx.storage(name, bytes);
        let mut resid = act("resid a", rd)?;
        let mut resid_next = act("resid b", rd)?;
        let tok_emb = act("hook_embed", rd)?;
        let pos_emb = act("hook_pos_embed", rd)?;
        let ln1 = act("ln1", rd)?;
        let qkv = act("qkv", rd * 3)?;
        let z = act("z", rd)?;
        let attn_out = act("attn_out", rd)?;
        let resid_mid = act("resid_mid", rd)?;
        let ln2 = act("ln2", rd)?;
        let mlp_pre = act("mlp_pre", rows as u64 * inner as u64 * f)?;
        let mlp_post = act("mlp_post", rows as u64 * inner as u64 * f)?;
        let mlp_out = act("mlp_out", rd)?;
        let lnf = act("ln_final", rd)?;
        let want_att = opts
            .capture
            .wants_any_src(cfg.n_layer, |l| [Src::Scores(l), Src::Pattern(l)]);
        let (scores, probs) = if want_att {
            let bytes = rows as u64 * h as u64 * cap_keys as u64 * f;
            ctx.check_binding("capture of attention scores [rows, n_head, keys]", bytes)?;
            (act("attn scores", bytes)?, act("attn pattern", bytes)?)
        } else {
            (
                ctx.storage("no scores", 16)?,
                ctx.storage("no pattern", 16)?,
            )
        };

        // Interventions: per edited source, the kernel's inputs.
        let mut edits: Vec<EditBuffers> = Vec::new();
        for e in &opts.edits {
            let (src, offset, width) = editable(&e.hook, cfg.n_layer, d, inner)?;
            if let Some(c) = e.channels.iter().find(|&&c| c >= width) {
                bail!(
                    "edit of {}: channel {c} does not exist (the hook has {width} channels)",
                    e.hook
                );
            }
            if e.channels.is_empty() || e.channels.len() != e.values.len() {
                bail!(
                    "edit of {}: {} channels but {} values",
                    e.hook,
                    e.channels.len(),
                    e.values.len()
                );
            }
            let mut mask = vec![0u32; cfg.n_positions];
            match &e.positions {
                None => mask.fill(1),
                Some(ps) => {
                    let n = mask.len();
                    ps.iter().filter(|&&p| p < n).for_each(|&p| mask[p] = 1)
                }
            }
            let chans: Vec<u32> = e.channels.iter().map(|&c| c as u32).collect();
            let row_width = match src {
                Src::Qkv(_) => 3 * d,
                Src::MlpPre(_) | Src::MlpPost(_) => inner,
                _ => d,
            };
            edits.push(EditBuffers {
                src,
                width: row_width,
                offset,
                mask: ctx.storage_init("edit positions", bytemuck::cast_slice(&mask))?,
                channels: ctx.storage_init("edit channels", bytemuck::cast_slice(&chans))?,
                values: ctx.storage_init("edit values", bytemuck::cast_slice(&e.values))?,
                n: chans.len(),
            });
        }
        let knock = match &opts.knockout {
            Some(k) => {
                let mut mask = vec![0u32; sess.cap];
                let n = mask.len();
                k.keys.iter().filter(|&&j| j < n).for_each(|&j| mask[j] = 1);
                Some(ctx.storage_init("knockout keys", bytemuck::cast_slice(&mask))?)
            }
            None => None,
        };

        let mut g = Graph::default();
        let mut tap = Tap {
            k: &self.k,
            ctx,
            filter: &opts.capture,
            rows,
            info: &info_buf,
            edits,
            pending: Vec::new(),
        };
        let geometry = |b: usize| crate::hooks::Geometry {
            row0: b * tmax,
            n: new[b].len(),
            past: sess.lens[b],
            d,
            h,
            inner,
            cap_keys,
        };
        // Hand each captured source to the sink, cut per sequence.
        let mut deliver = |src: Src, data: Vec<f32>| {
            for b in 0..s {
                if new[b].is_empty() {
                    continue;
                }
                for (name, t) in crate::hooks::split_capture(src, &data, geometry(b)) {
                    if opts.capture.wants(&name) {
                        sink(b, name, t);
                    }
                }
            }
        };
        let rdf = rows * d;

        // Embedding: one dispatch per vocabulary chunk.
        for c in &self.wte {
            self.k.embed(
                &mut g, rows, d, c.start, c.count, &tok_buf, &info_buf, &c.buf, &self.wpe, &resid,
                &tok_emb, &pos_emb,
            );
        }
        tap.tap(&mut g, Src::Embed, &tok_emb, rdf)?;
        tap.tap(&mut g, Src::PosEmbed, &pos_emb, rdf)?;

        for (l, w) in self.layers.iter().enumerate() {
            tap.tap(&mut g, Src::ResidPre(l), &resid, rdf)?;
            self.layernorm(&mut g, rows, &resid, &w.ln1_g, &w.ln1_b, &ln1);
            tap.tap(&mut g, Src::Ln1(l), &ln1, rdf)?;
            self.matmul(
                &mut g,
                rows,
                3 * d,
                d,
                &ln1,
                &w.attn_w,
                Some(&w.attn_b),
                &qkv,
            );
            tap.tap(&mut g, Src::Qkv(l), &qkv, rdf * 3)?;
            self.k.kv_store(
                &mut g, rows, d, sess.cap, &qkv, &info_buf, &sess.k[l], &sess.v[l],
            );
            let p = AttnParams {
                rows: rows as u32,
                n_head: h as u32,
                head_dim: hd as u32,
                d: d as u32,
                cap: sess.cap as u32,
                capture: want_att as u32,
                cap_keys: cap_keys as u32,
                scale: cfg.attn_scale(),
                ..Default::default()
            };
            let kn = knock
                .as_ref()
                .filter(|_| opts.knockout.as_ref().is_some_and(|k| k.applies_to(l)));
            self.k.attention_knockout(
                &mut g, p, &qkv, &info_buf, &sess.k[l], &sess.v[l], &z, &scores, &probs, kn,
            );
            if want_att {
                tap.tap(&mut g, Src::Scores(l), &scores, rows * h * cap_keys)?;
                tap.tap(&mut g, Src::Pattern(l), &probs, rows * h * cap_keys)?;
            }
            tap.tap(&mut g, Src::Z(l), &z, rdf)?;
            self.matmul(
                &mut g,
                rows,
                d,
                d,
                &z,
                &w.proj_w,
                Some(&w.proj_b),
                &attn_out,
            );
            tap.tap(&mut g, Src::AttnOut(l), &attn_out, rdf)?;
            self.add(&mut g, rdf, &resid, &attn_out, &resid_mid);
            tap.tap(&mut g, Src::ResidMid(l), &resid_mid, rdf)?;
            self.layernorm(&mut g, rows, &resid_mid, &w.ln2_g, &w.ln2_b, &ln2);
            tap.tap(&mut g, Src::Ln2(l), &ln2, rdf)?;
            self.matmul(
                &mut g,
                rows,
                inner,
                d,
                &ln2,
                &w.fc_w,
                Some(&w.fc_b),
                &mlp_pre,
            );
            tap.tap(&mut g, Src::MlpPre(l), &mlp_pre, rows * inner)?;
            self.k.gelu(&mut g, rows * inner, &mlp_pre, &mlp_post);
            tap.tap(&mut g, Src::MlpPost(l), &mlp_post, rows * inner)?;
            self.matmul(
                &mut g,
                rows,
                d,
                inner,
                &mlp_post,
                &w.down_w,
                Some(&w.down_b),
                &mlp_out,
            );
            tap.tap(&mut g, Src::MlpOut(l), &mlp_out, rdf)?;
            self.add(&mut g, rdf, &resid_mid, &mlp_out, &resid_next);
            tap.tap(&mut g, Src::ResidPost(l), &resid_next, rdf)?;
            std::mem::swap(&mut resid, &mut resid_next);
            // Captured layers go back to the host one at a time, so a capture never needs
            // more than one layer's worth of memory.
            tap.flush(&mut g, &mut deliver)?;
        }
        self.layernorm(&mut g, rows, &resid, &self.lnf_g, &self.lnf_b, &lnf);
        tap.tap(&mut g, Src::LnFinal, &lnf, rdf)?;

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
        let logits_rb = if head_rows.is_empty() {
            None
        } else {
            let m = head_rows.len();
            let head_in = if mode == LogitsMode::All {
                lnf.clone()
            } else {
                let hi = act("lm head input", (m * d) as u64 * f)?;
                for (i, r) in head_rows.iter().enumerate() {
                    g.copy(
                        &lnf,
                        (r * d) as u64 * f,
                        &hi,
                        (i * d) as u64 * f,
                        d as u64 * f,
                    );
                }
                hi
            };
            Some((self.lm_head(&mut g, m, &head_in)?, m))
        };

        tap.flush(&mut g, &mut deliver)?;
        ctx.queue.submit([g.encode(ctx)]);
        let Some((rb, m)) = logits_rb else {
            ctx.wait()?;
            return Ok(vec![None; s]);
        };
        let v = cfg.vocab_size;
        let raw = ctx
            .read_f32(&[(&rb, m * v)])?
            .pop()
            .expect("logits readback");
        let lf = self.unchunk_logits(&raw, m);
        let mut logits = vec![None; s];
        match mode {
            LogitsMode::All => {
                for b in 0..s {
                    let n = new[b].len();
                    if n > 0 {
                        let r0 = b * tmax;
                        logits[b] =
                            Some(Tensor::new(vec![n, v], lf[r0 * v..(r0 + n) * v].to_vec()));
                    }
                }
            }
            LogitsMode::Last => {
                let mut i = 0;
                for b in 0..s {
                    if !new[b].is_empty() {
                        logits[b] = Some(Tensor::new(vec![1, v], lf[i * v..(i + 1) * v].to_vec()));
                        i += 1;
                    }
                }
            }
            LogitsMode::None => {}
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

    fn layernorm(
        &self,
        g: &mut Graph,
        rows: usize,
        x: &wgpu::Buffer,
        gamma: &wgpu::Buffer,
        beta: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) {
        self.k.layernorm(
            g,
            rows,
            self.cfg.n_embd,
            self.cfg.layer_norm_epsilon,
            x,
            gamma,
            beta,
            y,
        );
    }

    /// Conv1D: c[m, n] = a[m, k] · w[k, n] + bias[n].
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &self,
        g: &mut Graph,
        m: usize,
        n: usize,
        k: usize,
        a: &wgpu::Buffer,
        w: &wgpu::Buffer,
        bias: Option<&wgpu::Buffer>,
        c: &wgpu::Buffer,
    ) {
        self.k
            .matmul(g, m, n, k, a.into(), w.into(), bias, c.into(), false);
    }

    fn add(&self, g: &mut Graph, n: usize, a: &wgpu::Buffer, b: &wgpu::Buffer, y: &wgpu::Buffer) {
        self.k.add(g, n, a, b, y);
    }

    /// logits = x · Wᵀ over vocabulary chunks; output laid out chunk-major ([chunk][m][count]),
    /// split into row blocks whenever a chunk's output would pass the binding limit.
    fn lm_head(&self, g: &mut Graph, m: usize, x: &wgpu::Buffer) -> Result<wgpu::Buffer> {
        let ctx = &*self.ctx;
        let (d, v) = (self.cfg.n_embd, self.cfg.vocab_size);
        let total = (m * v) as u64 * 4;
        if total > ctx.limits.max_buffer_size {
            bail!(
                "logits for {m} rows × {v} tokens need {} MiB, over the adapter's max_buffer_size of {} MiB; ask for fewer rows",
                total >> 20,
                ctx.limits.max_buffer_size >> 20
            );
        }
        let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("logits"),
            size: total.max(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let chunks = self.lm_head.as_ref().unwrap_or(&self.wte);
        for c in chunks {
            let per_row = c.count as u64 * 4;
            let block = (((ctx.max_binding / per_row) as usize) / 64 * 64)
                .max(64)
                .min(m.next_multiple_of(64));
            let block = block.max(1);
            if (block.min(m) as u64) * per_row > ctx.max_binding
                || (block.min(m) * d * 4) as u64 > ctx.max_binding
            {
                bail!(
                    "one row block of logits does not fit the adapter's max_storage_buffer_binding_size ({} bytes)",
                    ctx.max_binding
                );
            }
            let base = (m * c.start) as u64 * 4;
            let mut r0 = 0;
            while r0 < m {
                let rn = block.min(m - r0);
                let a = Bind::range(x, (r0 * d) as u64 * 4, (rn * d) as u64 * 4);
                let o = Bind::range(&out, base + r0 as u64 * per_row, rn as u64 * per_row);
                self.k
                    .matmul(g, rn, c.count, d, a, (&c.buf).into(), None, o, true);
                r0 += rn;
            }
        }
        let rb = ctx.readback("logits readback", total)?;
        g.copy(&out, 0, &rb, 0, total);
        Ok(rb)
    }

    /// Chunk-major logits back to [m, V].
    fn unchunk_logits(&self, raw: &[f32], m: usize) -> Vec<f32> {
        let v = self.cfg.vocab_size;
        let chunks = self.lm_head.as_ref().unwrap_or(&self.wte);
        if chunks.len() == 1 {
            return raw.to_vec();
        }
        let mut out = vec![0f32; m * v];
        for c in chunks {
            let base = m * c.start;
            for r in 0..m {
                out[r * v + c.start..r * v + c.start + c.count]
                    .copy_from_slice(&raw[base + r * c.count..base + (r + 1) * c.count]);
            }
        }
        out
    }

    /// Logits of every token of one prompt (a fresh session): [T, V].
    pub fn logits(&self, tokens: &[u32]) -> Result<Tensor> {
        let mut sess = self.session(1, tokens.len())?;
        let out = self.forward(
            &mut sess,
            &[tokens],
            &ForwardOptions {
                logits: LogitsMode::All,
                ..Default::default()
            },
        )?;
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
        let out = self.forward(
            &mut sess,
            &[tokens],
            &ForwardOptions {
                logits: LogitsMode::None,
                capture: filter.clone(),
                ..Default::default()
            },
        )?;
        Ok(out.captures.into_iter().next().unwrap_or_default())
    }
}

/// Applies edits where a hook is produced and queues captured sources for readback.
struct Tap<'a> {
    k: &'a Kernels,
    ctx: &'a GpuContext,
    filter: &'a HookFilter,
    rows: usize,
    info: &'a wgpu::Buffer,
    edits: Vec<EditBuffers>,
    pending: Vec<(Src, wgpu::Buffer, usize)>,
}

/// One edit's GPU inputs: source, row width, column offset, position mask, channels, values.
struct EditBuffers {
    src: Src,
    width: usize,
    offset: usize,
    mask: wgpu::Buffer,
    channels: wgpu::Buffer,
    values: wgpu::Buffer,
    n: usize,
}

impl Tap<'_> {
    /// `buf` now holds `src`: edit it, then copy it out if it is captured.
    fn tap(&mut self, g: &mut Graph, src: Src, buf: &wgpu::Buffer, floats: usize) -> Result<()> {
        for e in &self.edits {
            if e.src == src {
                self.k.edit(
                    g,
                    self.rows,
                    e.width,
                    e.offset,
                    e.n,
                    self.info,
                    &e.mask,
                    &e.channels,
                    &e.values,
                    buf,
                );
            }
        }
        if self.filter.wants_src(src) {
            let bytes = floats as u64 * 4;
            let rb = self.ctx.readback(&format!("capture {src:?}"), bytes)?;
            g.copy(buf, 0, &rb, 0, bytes);
            self.pending.push((src, rb, floats));
        }
        Ok(())
    }

    /// Submit what is recorded so far and hand the captured sources to `deliver`.
    fn flush(&mut self, g: &mut Graph, deliver: &mut dyn FnMut(Src, Vec<f32>)) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.ctx.queue.submit([std::mem::take(g).encode(self.ctx)]);
        let pending = std::mem::take(&mut self.pending);
        let reads: Vec<(&wgpu::Buffer, usize)> = pending.iter().map(|(_, b, n)| (b, *n)).collect();
        for ((src, _, _), data) in pending.iter().zip(self.ctx.read_f32(&reads)?) {
            deliver(*src, data);
        }
        Ok(())
    }
}
