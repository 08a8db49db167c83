//! Text generation: prefill the prompts in one pass, then decode token by token over the KV cache.
//! Greedy, temperature, top-k and top-p sampling, seedable; stops at end-of-text or after `max_new_tokens`.
//! Study layer: uses the model API; never kernels, gpu or frontends.

use anyhow::{bail, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::intervene::{HookEdit, Knockout};
use crate::model::{ForwardOptions, Gpt2, LogitsMode};
use crate::tensor::argmax;

#[derive(Clone, Debug)]
pub struct Sampling {
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = no top-k filter.
    pub top_k: usize,
    /// 1.0 = no nucleus filter.
    pub top_p: f32,
    pub seed: u64,
    pub max_new_tokens: usize,
    /// Token that ends a sequence (GPT-2: `<|endoftext|>`), if any.
    pub eos: Option<u32>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
            max_new_tokens: 32,
            eos: None,
        }
    }
}

/// Picks the next token from a row of logits.
pub struct Sampler {
    cfg: Sampling,
    rng: StdRng,
}

impl Sampler {
    pub fn new(cfg: Sampling) -> Result<Self> {
        if cfg.temperature.is_nan() || cfg.temperature < 0.0 {
            bail!("temperature must be >= 0, got {}", cfg.temperature);
        }
        if cfg.top_p.is_nan() || cfg.top_p <= 0.0 || cfg.top_p > 1.0 {
            bail!("top-p must be in (0, 1], got {}", cfg.top_p);
        }
        let rng = StdRng::seed_from_u64(cfg.seed);
        Ok(Self { cfg, rng })
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.cfg.temperature == 0.0 {
            return argmax(logits) as u32;
        }
        let t = self.cfg.temperature;
        let mut idx: Vec<usize> = (0..logits.len())
            .filter(|&i| logits[i].is_finite())
            .collect();
        idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if self.cfg.top_k > 0 {
            idx.truncate(self.cfg.top_k);
        }
        let m = logits[idx[0]] / t;
        let mut p: Vec<f64> = idx
            .iter()
            .map(|&i| ((logits[i] / t - m) as f64).exp())
            .collect();
        let z: f64 = p.iter().sum();
        p.iter_mut().for_each(|x| *x /= z);
        if self.cfg.top_p < 1.0 {
            let mut cum = 0.0;
            let mut keep = p.len();
            for (k, x) in p.iter().enumerate() {
                cum += x;
                if cum >= self.cfg.top_p as f64 {
                    keep = k + 1;
                    break;
                }
            }
            idx.truncate(keep);
            p.truncate(keep);
            let z: f64 = p.iter().sum();
            p.iter_mut().for_each(|x| *x /= z);
        }
        let u: f64 = self.rng.random();
        let mut cum = 0.0;
        for (k, x) in p.iter().enumerate() {
            cum += x;
            if u < cum {
                return idx[k] as u32;
            }
        }
        idx[idx.len() - 1] as u32
    }
}

/// Generate continuations of several prompts in one batch. `on_token(seq, token)` is called as
/// each token is produced. Returns the new tokens of each sequence. Generation stops at the
/// model's `n_positions`.
pub fn generate(
    model: &Gpt2,
    prompts: &[Vec<u32>],
    sampling: &Sampling,
    on_token: impl FnMut(usize, u32),
) -> Result<Vec<Vec<u32>>> {
    generate_with(model, prompts, sampling, &[], None, on_token)
}

/// [`generate`] under interventions: `edits` and `knockout` act in every forward pass, the
/// prompt's and each decoding step's (positions are absolute, so `pos=0` edits the prompt's
/// first token once, where it is computed, and the KV cache carries the effect on).
///
/// # Errors
/// An empty prompt list or prompt, a prompt longer than `n_positions`, bad sampling options, and
/// the forward pass's own (refused selectors, non-finite values).
pub fn generate_with(
    model: &Gpt2,
    prompts: &[Vec<u32>],
    sampling: &Sampling,
    edits: &[HookEdit],
    knockout: Option<&Knockout>,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Vec<u32>>> {
    if prompts.is_empty() {
        bail!("no prompt given");
    }
    if let Some((b, _)) = prompts.iter().enumerate().find(|(_, p)| p.is_empty()) {
        bail!("prompt {b} is empty: at least one token is needed");
    }
    let n_pos = model.cfg.n_positions;
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if longest > n_pos {
        bail!("a prompt of {longest} tokens is longer than the model's n_positions = {n_pos}");
    }
    let cap = (longest + sampling.max_new_tokens).min(n_pos);
    let mut sess = model.session(prompts.len(), cap)?;
    let mut sampler = Sampler::new(sampling.clone())?;
    let opts = ForwardOptions {
        logits: LogitsMode::Last,
        edits: edits.to_vec(),
        knockout: knockout.cloned(),
        ..Default::default()
    };
    let mut out = vec![Vec::new(); prompts.len()];
    let mut done = vec![false; prompts.len()];
    // Sigmoid attention as the paper's code defines it (T = the sequence's length) changes every
    // position's output as the sequence grows: recompute the whole sequence at each step.
    let recompute =
        model.cfg.variant == crate::config::AttnVariant::Sigmoid && model.cfg.sigmoid_t == 0;
    let refs: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let mut res = model.forward(&mut sess, &refs, &opts)?;
    for _ in 0..sampling.max_new_tokens {
        let mut next = vec![Vec::new(); prompts.len()];
        for b in 0..prompts.len() {
            if done[b] {
                continue;
            }
            let Some(l) = &res.logits[b] else { continue };
            let t = sampler.sample(l.row(0));
            out[b].push(t);
            on_token(b, t);
            if Some(t) == sampling.eos || sess.lens()[b] + 1 > n_pos.min(cap) {
                done[b] = true;
            } else {
                next[b].push(t);
            }
        }
        if done.iter().all(|d| *d) || out.iter().all(|o| o.len() >= sampling.max_new_tokens) {
            break;
        }
        if recompute {
            let full: Vec<Vec<u32>> = prompts
                .iter()
                .zip(&out)
                .zip(&done)
                .map(|((p, o), d)| {
                    if *d {
                        vec![]
                    } else {
                        p.iter().chain(o).copied().collect()
                    }
                })
                .collect();
            let cap = full.iter().map(Vec::len).max().unwrap_or(1);
            let mut fresh = model.session(prompts.len(), cap)?;
            let refs: Vec<&[u32]> = full.iter().map(|p| p.as_slice()).collect();
            res = model.forward(&mut fresh, &refs, &opts)?;
            for (b, d) in done.iter().enumerate() {
                if !d {
                    sess.advance(b, 1);
                }
            }
        } else {
            let refs: Vec<&[u32]> = next.iter().map(|p| p.as_slice()).collect();
            res = model.forward(&mut sess, &refs, &opts)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(Sampling::default()).unwrap();
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 3.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_seed_repeats() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let cfg = Sampling {
            temperature: 0.8,
            top_k: 1,
            seed: 3,
            ..Default::default()
        };
        let mut s = Sampler::new(cfg).unwrap();
        assert_eq!(s.sample(&logits) as usize, argmax(&logits));
        let cfg = Sampling {
            temperature: 1.0,
            top_p: 0.9,
            seed: 42,
            ..Default::default()
        };
        let a: Vec<u32> = {
            let mut s = Sampler::new(cfg.clone()).unwrap();
            (0..20).map(|_| s.sample(&logits)).collect()
        };
        let b: Vec<u32> = {
            let mut s = Sampler::new(cfg).unwrap();
            (0..20).map(|_| s.sample(&logits)).collect()
        };
        assert_eq!(a, b);
        assert!(
            a.iter().any(|&x| x != a[0]),
            "sampling at T=1 should vary: {a:?}"
        );
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        // One token holds 0.97 of the mass: p = 0.9 must always pick it.
        let mut logits = vec![0.0f32; 10];
        logits[7] = 8.0;
        let cfg = Sampling {
            temperature: 1.0,
            top_p: 0.9,
            seed: 1,
            ..Default::default()
        };
        let mut s = Sampler::new(cfg).unwrap();
        for _ in 0..50 {
            assert_eq!(s.sample(&logits), 7);
        }
        assert!(Sampler::new(Sampling {
            top_p: 0.0,
            ..Default::default()
        })
        .is_err());
        assert!(Sampler::new(Sampling {
            temperature: -1.0,
            ..Default::default()
        })
        .is_err());
    }
}
