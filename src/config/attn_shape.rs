//! `AttnShape`: the attention facts of the newer families (explicit head width, Gemma's score
//! scale, sliding-window layers and their RoPE base, q/k norms) and their checks. Plain data:
//! never wgpu, GGUF or models.

use anyhow::{bail, Result};

use super::check_finite;

/// Attention facts of the newer families; `AttnShape::default()` is GPT-2's and Llama's
/// attention (head width n_embd / n_head, scale 1/√head_dim, every layer full, one RoPE base).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct AttnShape {
    /// `head_dim` when it is not n_embd / n_head (Gemma 3: 256 with d = 640 and 4 heads): the
    /// query width is then n_head · head_dim ≠ n_embd. `None`: n_embd / n_head.
    pub head_dim: Option<usize>,
    /// Gemma's `query_pre_attn_scalar`: scores are scaled by its −½ power instead of head_dim's.
    pub query_pre_attn_scalar: Option<f32>,
    /// `sliding_window`: on a sliding layer the query at position i sees keys j with
    /// i − j < sliding_window (transformers' `sliding_window_overlay`: kv > q − window).
    pub sliding_window: Option<usize>,
    /// Per layer: uses the sliding window (`layer_types[l] == "sliding_attention"`). Empty: none.
    pub sliding_layers: Vec<bool>,
    /// RoPE base of the sliding layers (Gemma 3 `rope_local_base_freq`, unscaled); `None`: the
    /// sliding layers use `rope_theta` as the others.
    pub rope_local_base_freq: Option<f32>,
    /// Per-head RMSNorm of q and k before RoPE (`q_norm`, `k_norm` of width head_dim).
    pub qk_norm: bool,
}

impl AttnShape {
    /// Checks against a model of `n_layer` layers.
    ///
    /// # Errors
    /// A zero window, a `layer_types` list of another length, sliding layers without a window,
    /// a non-finite or non-positive scalar or local RoPE base, naming the field.
    pub fn validate(&self, n_layer: usize) -> Result<()> {
        if let Some(w) = self.sliding_window {
            if w == 0 {
                bail!("sliding_window is 0");
            }
        }
        if !self.sliding_layers.is_empty() && self.sliding_layers.len() != n_layer {
            bail!(
                "layer_types has {} entries for {} layers",
                self.sliding_layers.len(),
                n_layer
            );
        }
        if self.sliding_layers.iter().any(|&s| s) && self.sliding_window.is_none() {
            bail!("sliding_attention layers need a sliding_window");
        }
        check_finite(
            "query_pre_attn_scalar",
            self.query_pre_attn_scalar.map(f64::from),
        )?;
        if self.query_pre_attn_scalar.is_some_and(|s| s <= 0.0) {
            bail!("query_pre_attn_scalar must be > 0");
        }
        if let Some(t) = self.rope_local_base_freq {
            if !t.is_finite() || t <= 0.0 {
                bail!("rope_local_base_freq is {t}; it must be finite and > 0");
            }
        }
        Ok(())
    }
}
