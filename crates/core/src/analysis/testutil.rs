//! Seeded synthetic data for the tests: N(0,1) tensors, causal attention patterns, a planted model.
//! Test-only; depends on tensor and the analyses' input types, never on the report or wgpu.

use std::collections::BTreeMap;

use super::{hook, ModelInfo, ModuleKind, ModuleWeight, ProbeInput};
use crate::tensor::Tensor;

/// splitmix64: small, seeded, reproducible everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let (u1, u2) = (self.uniform(), self.uniform());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// A tensor of N(0,1) values.
pub fn normal_tensor(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n = shape.iter().product();
    Tensor::new(shape.to_vec(), (0..n).map(|_| rng.normal()).collect())
}

/// A causal `[H, T, T]` pattern: row i of head h gives the masses `plant(h, i)` to the listed keys
/// (those ≤ i) and spreads the rest over the other keys ≤ i with random positive weights.
pub fn causal_pattern(
    h: usize,
    t: usize,
    rng: &mut Rng,
    plant: impl Fn(usize, usize) -> Vec<(usize, f32)>,
) -> Tensor {
    let mut data = vec![0f32; h * t * t];
    for hh in 0..h {
        for i in 0..t {
            let row = &mut data[(hh * t + i) * t..(hh * t + i + 1) * t];
            let planted: Vec<(usize, f32)> =
                plant(hh, i).into_iter().filter(|&(k, _)| k <= i).collect();
            let others: Vec<usize> = (0..=i)
                .filter(|k| !planted.iter().any(|p| p.0 == *k))
                .collect();
            let mut rest = 1.0 - planted.iter().map(|p| p.1).sum::<f32>();
            if others.is_empty() {
                rest = 0.0;
            }
            for &(k, m) in &planted {
                row[k] = m;
            }
            let w: Vec<f32> = others.iter().map(|_| 0.5 + rng.uniform() as f32).collect();
            let ws: f32 = w.iter().sum();
            for (k, wk) in others.iter().zip(&w) {
                row[*k] = rest * wk / ws;
            }
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|x| *x /= s);
        }
    }
    Tensor::new(vec![h, t, t], data)
}

/// The planted model of the tests: 6 layers, D = 256, I = 1024, H = 4, T = 16 (large enough for the
/// paper's 1000 × mean rule to be reachable: with two planted entries of 5000 in 4096 values the
/// mean |h| is ≈ 3.2, so the threshold is ≈ 3200).
/// - block outputs: N(0,1); |h| = 5000 at (token 0, channel 7) and −5000 at (token 3, channel 7) in
///   layers 2..=4;
/// - MLP intermediates: N(0,1); 4000 at (tokens 0 and 3, channel 97) in layers 2..=4
///   (97 is the down-projection row that writes into residual channel 7);
/// - attention: heads 0..3 put 70% of each row on key 0 from layer 1 on; the other heads (and all
///   heads of layer 0) put 90% on the query's own position (no sink in layer 0).
pub struct Planted {
    pub n_layer: usize,
    pub d: usize,
    pub i: usize,
    pub h: usize,
    pub tokens: Vec<String>,
    pub captures: BTreeMap<String, Tensor>,
}

pub const PLANT_CHANNEL: usize = 7;
pub const PLANT_ROW: usize = 97;
pub const PLANT_LAYERS: std::ops::RangeInclusive<usize> = 2..=4;

pub fn planted_sequence(seed: u64) -> Planted {
    let (n_layer, d, i, h, t) = (6, 256, 1024, 4, 16);
    let tokens: Vec<String> = [
        "Summer", " is", " warm", ".", " Winter", " is", " cold", ".", "\n", "The", " sun", " and",
        " the", " moon", ",", " rise",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut captures = BTreeMap::new();
    let mut rng = Rng::new(seed);
    for l in 0..n_layer {
        let mut resid = normal_tensor(&[t, d], seed * 1000 + l as u64);
        let mut mlp = normal_tensor(&[t, i], seed * 1000 + 100 + l as u64);
        if PLANT_LAYERS.contains(&l) {
            resid.data[PLANT_CHANNEL] = 5000.0;
            resid.data[3 * d + PLANT_CHANNEL] = -5000.0;
            mlp.data[PLANT_ROW] = 4000.0;
            mlp.data[3 * i + PLANT_ROW] = 4000.0;
        }
        let sink = l >= 1;
        let pattern = causal_pattern(h, t, &mut rng, |hh, i| {
            if sink && hh < 3 {
                vec![(0, 0.7)]
            } else {
                vec![(i, 0.9)] // local (diagonal) attention: no key collects 0.1 × T
            }
        });
        captures.insert(hook::resid_post(l), resid);
        captures.insert(hook::mlp_post(l), mlp);
        captures.insert(hook::pattern(l), pattern);
    }
    Planted {
        n_layer,
        d,
        i,
        h,
        tokens,
        captures,
    }
}

/// Planted down projections `[I, D]`: small noise, and in layers 2..=4 row 97 writes 2.0 into column 7.
pub fn planted_down_proj(layer: usize, i: usize, d: usize) -> Tensor {
    let mut w = normal_tensor(&[i, d], 500 + layer as u64);
    w.data.iter_mut().for_each(|x| *x *= 0.02);
    if PLANT_LAYERS.contains(&layer) {
        w.data[PLANT_ROW * d + PLANT_CHANNEL] = 2.0;
    }
    w
}

/// The planted sequence (seed 1) as a whole probe input, with the planted down projections when
/// `weights`.
pub fn planted_probe_input(weights: bool) -> ProbeInput {
    let p = planted_sequence(1);
    let mut ws = Vec::new();
    if weights {
        for l in 0..p.n_layer {
            ws.push(ModuleWeight {
                layer: l,
                kind: ModuleKind::Down,
                weight: planted_down_proj(l, p.i, p.d),
            });
        }
    }
    ProbeInput {
        model: ModelInfo {
            name: "planted".into(),
            n_layer: p.n_layer,
            n_embd: p.d,
            n_head: p.h,
            vocab_size: 0,
            n_inner: Some(p.i),
        },
        source: "planted test".into(),
        tokens: vec![p.tokens.clone()],
        captures: vec![p.captures],
        weights: ws,
    }
}

/// A model without outliers: N(0,1) activations and local causal attention (seed 2's tokens).
pub fn clean_probe_input() -> ProbeInput {
    let mut p = planted_sequence(2);
    for l in 0..p.n_layer {
        p.captures.insert(
            hook::resid_post(l),
            normal_tensor(&[16, p.d], 900 + l as u64),
        );
        p.captures
            .insert(hook::mlp_post(l), normal_tensor(&[16, p.i], 950 + l as u64));
        let mut rng = Rng::new(l as u64);
        let local = causal_pattern(p.h, 16, &mut rng, |_, i| vec![(i, 0.9)]);
        p.captures.insert(hook::pattern(l), local);
    }
    ProbeInput {
        tokens: vec![p.tokens],
        captures: vec![p.captures],
        model: ModelInfo {
            n_layer: p.n_layer,
            ..Default::default()
        },
        ..Default::default()
    }
}
