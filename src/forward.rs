//! What a forward pass is asked for and what it returns, as plain data (token-independent
//! options, logits and captured tensors). Depends on tensor, hooks and intervene only; never on wgpu.

use std::collections::BTreeMap;

use crate::hooks::HookFilter;
use crate::intervene::{HookEdit, Knockout};
use crate::tensor::Tensor;

/// Which logits a forward pass returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsMode {
    None,
    /// The last new token of each sequence: [1, V].
    Last,
    /// Every new token: [n, V].
    All,
}

/// What a forward pass returns, captures and changes. `forward` refuses, before running, any
/// selector that selects nothing (see [`crate::select::check_forward`]): a capture glob matching
/// no hook point, an edit channel beyond the hook's width, an edit position or knockout key
/// beyond every sequence of the pass (cache included), a knockout layer beyond `n_layer`.
#[derive(Clone, Debug)]
pub struct ForwardOptions {
    pub logits: LogitsMode,
    pub capture: HookFilter,
    /// Edits applied where each hook is produced, before anything downstream reads it
    /// (captures show the edited values, as TransformerLens hooks do).
    pub edits: Vec<HookEdit>,
    /// Keys removed from attention, layer by layer.
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
