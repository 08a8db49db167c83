//! The compression study: fake quantization and magnitude pruning applied inside the engine's forward pass, measured as perplexity.
//! Runs models on the GPU (apply, run); its result types and labels live in `outlier_probe_core::study_types` (no GPU).
//!
//! The schemes: fake quantization of weights (W8/W4 per tensor or per output channel) and
//! activations (A8 dynamic per tensor), and magnitude pruning; each measured as perplexity —
//! plain, and with the outlier channels protected (kept in f32 and unpruned, LLM.int8()-style).
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

mod apply;
mod cpu;
mod output;
mod run;

pub use apply::{apply, find_outlier_channels};
pub use cpu::{fake_quant, prune_cpu, quant_act_cpu, quant_weight_cpu};
pub use outlier_probe_core::study_types::{
    labels, short_name, ChannelStats, ModelStudy, Protect, Scheme, SchemeResult, WeightStats,
};
pub use output::{markdown, write_outputs};
pub use run::{study, ProtectMode};
