//! `config.json` of a Hugging Face GPT-2 checkpoint.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The fields of a GPT-2 `config.json` that the forward pass needs.
#[derive(Clone, Debug, Deserialize)]
pub struct Gpt2Config {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP width; `None` means 4 × n_embd.
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f32,
    #[serde(default = "default_act")]
    pub activation_function: String,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// GPT-2 divides attention scores by sqrt(head_dim) unless this is false.
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    pub reorder_and_upcast_attn: bool,
}

fn default_model_type() -> String {
    "gpt2".into()
}
fn default_eps() -> f32 {
    1e-5
}
fn default_act() -> String {
    "gelu_new".into()
}
fn default_true() -> bool {
    true
}

impl Gpt2Config {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cfg: Self = serde_json::from_str(&text)
            .with_context(|| format!("parsing {} as a GPT-2 config", path.display()))?;
        cfg.validate()
            .with_context(|| format!("invalid config {}", path.display()))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        if self.model_type != "gpt2" {
            bail!("model_type is '{}', expected 'gpt2'", self.model_type);
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
        ] {
            if v == 0 {
                bail!("{name} is 0");
            }
        }
        if self.n_embd % self.n_head != 0 {
            bail!(
                "n_embd {} is not a multiple of n_head {}",
                self.n_embd,
                self.n_head
            );
        }
        if self.head_dim() > 256 {
            bail!(
                "head dimension {} is over the supported 256",
                self.head_dim()
            );
        }
        if !matches!(
            self.activation_function.as_str(),
            "gelu_new" | "gelu_pytorch_tanh"
        ) {
            bail!(
                "activation_function '{}' is not supported (GPT-2 uses gelu_new)",
                self.activation_function
            );
        }
        if self.scale_attn_by_inverse_layer_idx {
            bail!("scale_attn_by_inverse_layer_idx = true is not supported");
        }
        if self.layer_norm_epsilon.is_nan() || self.layer_norm_epsilon <= 0.0 {
            bail!("layer_norm_epsilon must be > 0");
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    pub fn n_inner(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// Factor applied to q·k.
    pub fn attn_scale(&self) -> f32 {
        if self.scale_attn_weights {
            1.0 / (self.head_dim() as f32).sqrt()
        } else {
            1.0
        }
    }
}
