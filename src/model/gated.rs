//! The linear layers of a gated-MLP block with transformers' Llama names (`self_attn.{q,k,v,o}_proj`,
//! `mlp.{gate,up,down}_proj`), shared by the files whose blocks hold them the same way (`llama.rs`
//! with Qwen2/Qwen3, `gemma3.rs`): the per-tensor view of the stacked q|k|v and gate|up matrices,
//! the matmul shapes, and the module weights of the weight-outlier analysis (down projection =
//! `mlp.down_proj`). Depends on `upload` and the model's plain types; never kernels.

use anyhow::Result;

use super::upload::Linear;
use super::LinearWeight;
use crate::analysis::{ModuleKind, ModuleWeight};
use crate::config::ModelConfig;
use crate::weights::WeightSource;

/// One block's q|k|v `[Q + 2 Kv, D]`, o_proj `[D, Q]`, gate|up `[2I, D]` and down_proj `[D, I]`.
pub(crate) type Linears<'a> = [&'a Linear; 4];

/// Every block's matrices as the checkpoint names them (`model.layers.{l}.…`), q/k/v and gate/up
/// cut out of their stacks.
pub(crate) fn linear_weights<'a>(
    c: &ModelConfig,
    blocks: impl Iterator<Item = Linears<'a>>,
) -> Vec<LinearWeight> {
    let (d, kvd, inner, qd) = (c.n_embd, c.kv_dim(), c.n_inner(), c.q_dim());
    let part = LinearWeight::part;
    let mut out = Vec::new();
    for (l, [qkv, o, gate_up, down]) in blocks.enumerate() {
        let n = |s: &str| format!("model.layers.{l}.{s}.weight");
        out.push(part(n("self_attn.q_proj"), qkv, 0, qd));
        out.push(part(n("self_attn.k_proj"), qkv, qd * d, kvd));
        out.push(part(n("self_attn.v_proj"), qkv, (qd + kvd) * d, kvd));
        out.push(LinearWeight::whole(n("self_attn.o_proj"), o));
        out.push(part(n("mlp.gate_proj"), gate_up, 0, inner));
        out.push(part(n("mlp.up_proj"), gate_up, inner * d, inner));
        out.push(LinearWeight::whole(n("mlp.down_proj"), down));
    }
    out
}

/// The matmul shapes of one block (name, n, k, transposed), for the benchmarks.
pub(crate) fn block_matmuls(first: Option<Linears>) -> Vec<(&'static str, usize, usize, bool)> {
    let Some(ls) = first else {
        return Vec::new();
    };
    ["qkv", "attn out", "gate|up", "mlp down"]
        .into_iter()
        .zip(ls)
        .map(|(s, l)| (s, l.n, l.k, l.b_t))
        .collect()
}

/// Layer `l`'s matrices as `[in, out]` for the weight analyses; `mlp.down_proj` is the down
/// projection. nn.Linear stores `[out, in]`, so each is transposed.
pub(crate) fn module_weights(wf: &dyn WeightSource, l: usize) -> Result<Vec<ModuleWeight>> {
    let mut out = Vec::new();
    for (name, kind) in [
        ("self_attn.q_proj", ModuleKind::Q),
        ("self_attn.k_proj", ModuleKind::K),
        ("self_attn.v_proj", ModuleKind::V),
        ("self_attn.o_proj", ModuleKind::O),
        ("mlp.gate_proj", ModuleKind::Gate),
        ("mlp.up_proj", ModuleKind::Up),
        ("mlp.down_proj", ModuleKind::Down),
    ] {
        let w = wf.tensor(&format!("layers.{l}.{name}.weight"))?;
        out.push(ModuleWeight {
            layer: l,
            kind,
            weight: w.transposed(),
        });
    }
    Ok(out)
}
