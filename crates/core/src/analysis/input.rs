//! What the analyses of one model take in ([`ModelInfo`], [`ProbeInput`]) and [`analyze`], the
//! whole run on an in-memory input. Depends on tensor and the other analyses; never on the report.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::{Accumulator, CorpusAnalysis, ModuleWeight, Thresholds};
use crate::tensor::Tensor;

/// What model was probed (recorded in the report as `model`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Name or path of the checkpoint.
    pub name: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub vocab_size: usize,
    /// MLP width I (GPT-2: 4 × n_embd).
    pub n_inner: Option<usize>,
}

/// Everything the analyses of one model need, all in memory.
#[derive(Clone, Debug, Default)]
pub struct ProbeInput {
    pub model: ModelInfo,
    /// Free text: the probe prompt, or the corpus and how it was cut.
    pub source: String,
    /// Per sequence: the token strings as decoded (`" the"`, `"."`, `"\n"`).
    pub tokens: Vec<Vec<String>>,
    /// Per sequence: hook name → tensor.
    pub captures: Vec<BTreeMap<String, Tensor>>,
    /// Projection weights, `[in, out]` (may be empty).
    pub weights: Vec<ModuleWeight>,
}

/// Run every analysis on an in-memory input (equivalent to feeding an [`Accumulator`]).
pub fn analyze(input: &ProbeInput, th: &Thresholds) -> Result<CorpusAnalysis> {
    if input.tokens.len() != input.captures.len() {
        bail!(
            "{} token sequences but {} capture sets",
            input.tokens.len(),
            input.captures.len()
        );
    }
    let mut acc = Accumulator::new(input.model.clone(), input.source.clone(), th.clone());
    for w in &input.weights {
        acc.add_weight(w);
    }
    for (tokens, caps) in input.tokens.iter().zip(&input.captures) {
        acc.add_sequence(tokens, caps)?;
    }
    Ok(acc.finish())
}
