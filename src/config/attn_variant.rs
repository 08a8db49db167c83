//! `AttnVariant`: the attention variants of Wang et al. 2025 (Table 2) and related ones, as
//! `attn_variant` in config.json. Plain data: never wgpu, GGUF or models.

use anyhow::Result;

/// Attention variants of Wang et al. 2025 (Table 2) and related ones, as `attn_variant` in config.json.
///
/// | `attn_variant` | formula | extra tensors per layer |
/// |---|---|---|
/// | `default` | softmax(s) V | — |
/// | `value_bias` (b) | softmax(s) V + v′ | `h.{l}.attn.v_prime` [H, Dh] |
/// | `context_bias` (c) | softmax(s) V + p′ v′ | `h.{l}.attn.k_prime`, `v_prime` [H, Dh] |
/// | `attn_bias` (d) | softmax(Q[K; k′]ᵀ)[V; v′] | `k_prime`, `v_prime` |
/// | `context_scale` (e) | 2σ(W x + b) · softmax(s) V, x = ln_1 output | `h.{l}.attn.context_scale.weight` `[H, D]`, `.bias` `[H]` |
/// | `sigmoid` (f) | σ(s − log T) V, T = sequence length | — (config `sigmoid_fixed_t`) |
/// | `softmax1` | Σ e^s v / (1 + Σ e^s) | — |
/// | `clipped` | clip((η − γ) softmax(s) + γ, 0, 1) V | — (config `clip_gamma`, `clip_eta`) |
/// | `gated` | σ(G x + c) · softmax(s) V | `h.{l}.attn.gate.weight` `[H, D]`, `.bias` `[H]` |
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum AttnVariant {
    Default,
    ValueBias,
    ContextBias,
    AttnBias,
    ContextScale,
    Sigmoid,
    Softmax1,
    Clipped,
    Gated,
}

impl AttnVariant {
    pub const ALL: [AttnVariant; 9] = [
        Self::Default,
        Self::ValueBias,
        Self::ContextBias,
        Self::AttnBias,
        Self::ContextScale,
        Self::Sigmoid,
        Self::Softmax1,
        Self::Clipped,
        Self::Gated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::ValueBias => "value_bias",
            Self::ContextBias => "context_bias",
            Self::AttnBias => "attn_bias",
            Self::ContextScale => "context_scale",
            Self::Sigmoid => "sigmoid",
            Self::Softmax1 => "softmax1",
            Self::Clipped => "clipped",
            Self::Gated => "gated",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "attn_variant '{s}' is unknown; known: {}",
                    Self::ALL.map(Self::name).join(", ")
                )
            })
    }

    /// The code attention.wgsl switches on.
    pub fn code(self) -> u32 {
        Self::ALL.iter().position(|v| *v == self).expect("listed") as u32
    }

    /// Needs `v_prime` (and `k_prime` when `needs_k_prime`).
    pub fn has_v_prime(self) -> bool {
        matches!(self, Self::ValueBias | Self::ContextBias | Self::AttnBias)
    }

    pub fn has_k_prime(self) -> bool {
        matches!(self, Self::ContextBias | Self::AttnBias)
    }

    /// A per-head output factor computed from the ln_1 output (`hook_scale`).
    pub fn scale(self) -> Option<(&'static str, f32)> {
        match self {
            Self::ContextScale => Some(("context_scale", 2.0)),
            Self::Gated => Some(("gate", 1.0)),
            _ => None,
        }
    }

    /// Has an extra-key probability p′ (`hook_extra_prob`).
    pub fn has_extra_prob(self) -> bool {
        matches!(self, Self::ContextBias | Self::AttnBias | Self::Softmax1)
    }
}
