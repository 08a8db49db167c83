"""outlier-probe from Python: transformer language models in WGSL compute shaders on any GPU
through wgpu (Vulkan, Metal, DX12, GL; lavapipe on a CPU), with TransformerLens-style hook
captures as numpy arrays, interventions, and the analyses of "Systematic Outliers in Large
Language Models" (Wang et al., ICLR 2025).

    import outlier_probe as op
    model = op.Model.load(op.fetch_smollm2())
    logits, cache = model.run_with_cache("Summer is warm. Winter is cold.\\n",
                                         names_filter="blocks.*.hook_resid_post")
    cache["blocks.5.hook_resid_post"].shape      # (T, 576), float32

Errors: FileNotFoundError (a path that does not exist), ValueError (bad input: a file that does
not parse, a hook glob or edit that selects nothing, a token outside the vocabulary),
RuntimeError (no GPU adapter, out of device memory, non-finite values). The GIL is released
while the GPU works; nothing prints a progress bar.
"""

from ._native import (
    PROBE_PROMPT,
    Model,
    __version__,
    compress,
    devices,
    fetch_smollm2,
    implicit_scale,
    ppl,
    probe,
)

__all__ = [
    "PROBE_PROMPT",
    "Model",
    "__version__",
    "compress",
    "devices",
    "fetch_smollm2",
    "implicit_scale",
    "ppl",
    "probe",
]
