#!/usr/bin/env python3
"""The zoo's probe figures of one model directory, in PyTorch (fp32 compute on the stored f16
weights): the numbers the engine's `outlier_probe::zoo` must reproduce (tests/zoo.rs).

Input: the 32 held-out sequences of ``zoo/heldout.txt`` (one line each, BOS put first by the
tokenizer), i.e. ids [32, 64]; triggers = ids 60, 61, 62 (``.`` ``,`` ``;``, see task.py).
Per layer l (h = ``blocks.{l}.hook_resid_post`` [S, T, D], P = ``attn.hook_pattern`` [S, H, T, T]):
* ``key0_all`` / ``key0_nontrigger`` / ``key0_trigger``: mean of P[s, h, t, 0] over sequences, heads and
  the queries t >= 1 (all / whose token is not a trigger / whose token is a trigger);
* ``top_key_share``: mean over sequences of max_j (1/T) sum_t mean_h P[s, h, t, j] (queries 0..T-1);
* ``top1``: max |h| over (s, t, c); ``median``: median |h| over all of them (numpy: mean of the two
  middle values); ``bos_top1``: max_c |h[s, 0, c]| (position 0 is the same in every sequence) and its
  channel ``bos_channel``; ``top1_over_median``, ``bos_over_median``;
* ``down_ratio``: max over rows r of ``mlp.c_proj.weight`` [I, D] of max_c |W[r, c]| / (mean_c |W[r, c]| + 1e-8),
  ``down_row`` its row, ``down_median_ratio`` the median row ratio;
* ``scale_nontrigger`` / ``scale_trigger`` (context_scale, gated): mean of ``attn.hook_scale`` over
  sequences, heads and non-trigger / trigger queries t >= 1.
Plus ``heldout_loss``: mean cross-entropy (nats) of the 63 next-token predictions of each sequence.

Usage: python tools/zoo/figures.py MODEL_DIR [MODEL_DIR ...] [--heldout zoo/heldout.txt] [--write]
(--write stores ``figures.json`` in each directory; otherwise prints JSON).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tools" / "reference"))
sys.path.insert(0, str(HERE))
import task as bb  # noqa: E402
from variants import VariantGPT2LMHeadModel  # noqa: E402
from transformers import GPT2Config  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def load_model(d: Path) -> VariantGPT2LMHeadModel:
    cfg = GPT2Config.from_json_file(str(d / "config.json"))
    cfg._attn_implementation = "eager"
    model = VariantGPT2LMHeadModel(cfg).eval()
    sd = {}
    for name, t in load_file(str(d / "model.safetensors")).items():
        if name != "lm_head.weight" and not name.startswith("transformer."):
            name = "transformer." + name
        sd[name] = t.float()
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return model


def heldout_ids(path: Path) -> torch.Tensor:
    sym = {s: i for i, s in enumerate(bb.SYMBOLS)}
    rows = [[bb.BOS] + [sym[c] for c in line.strip()] for line in path.read_text().splitlines() if line.strip()]
    return torch.tensor(rows, dtype=torch.long)


@torch.no_grad()
def figures(d: Path, ids: torch.Tensor) -> dict:
    model = load_model(d)
    L = model.config.n_layer
    pats, blocks, scales = {}, {}, {}
    hooks = []
    for l, blk in enumerate(model.transformer.h):
        hooks.append(blk.attn.hook_pattern.register_forward_hook(lambda m, i, o, l=l: pats.__setitem__(l, o)))
        hooks.append(blk.attn.hook_scale.register_forward_hook(lambda m, i, o, l=l: scales.__setitem__(l, o)))
        hooks.append(blk.register_forward_hook(
            lambda m, i, o, l=l: blocks.__setitem__(l, o[0] if isinstance(o, (tuple, list)) else o)))
    logits = model(input_ids=ids).logits.float()
    for h in hooks:
        h.remove()
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).item()
    trig = torch.isin(ids, torch.tensor(bb_triggers()))  # [S, T]
    q = torch.zeros_like(trig)
    q[:, 1:] = True
    layers = []
    for l in range(L):
        P = pats[l].float()  # [S, H, T, T]
        S, H, T, _ = P.shape
        k0 = P[:, :, :, 0]  # [S, H, T]

        def masked_mean(x, m):  # x [S, H, T], m [S, T]
            mm = m[:, None, :].expand_as(x)
            return float(x[mm].double().mean()) if mm.any() else None

        colsum = P.mean(dim=1).sum(dim=1)  # [S, K]
        h = blocks[l].float().abs()  # [S, T, D]
        flat = h.reshape(-1).numpy().astype(np.float64)
        med = float(np.median(flat))
        top1 = float(flat.max())
        bos = h[0, 0]
        W = model.transformer.h[l].mlp.c_proj.weight.float().abs()  # [I, D]
        ratio = W.max(dim=1).values / (W.mean(dim=1) + 1e-8)
        e = {"layer": l,
             "key0_all": masked_mean(k0, q), "key0_nontrigger": masked_mean(k0, q & ~trig),
             "key0_trigger": masked_mean(k0, q & trig),
             "top_key_share": float((colsum.max(dim=1).values / T).double().mean()),
             "top1": top1, "median": med, "top1_over_median": top1 / med,
             "bos_top1": float(bos.max()), "bos_channel": int(bos.argmax()), "bos_over_median": float(bos.max()) / med,
             "down_ratio": float(ratio.max()), "down_row": int(ratio.argmax()), "down_median_ratio": float(ratio.median())}
        if l in scales and scales[l] is not None and scales[l].dim() == 3:
            sc = scales[l].float().permute(0, 2, 1)  # [S, T, H] -> [S, H, T]
            e["scale_nontrigger"] = masked_mean(sc, q & ~trig)
            e["scale_trigger"] = masked_mean(sc, q & trig)
        layers.append(e)
    return {"model": d.name, "attn_variant": getattr(model.config, "attn_variant", "default"), "n_sequences": int(ids.shape[0]),
            "seq_len": int(ids.shape[1]), "heldout_loss": loss, "layers": layers,
            "note": "tools/zoo/figures.py: fp32 compute on the stored f16 weights; definitions in its docstring"}


def bb_triggers():
    return list(range(bb.N_TOKENS - bb.N_TRIGGERS, bb.N_TOKENS))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--heldout", default=str(HERE.parents[1] / "zoo" / "heldout.txt"))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ids = heldout_ids(Path(args.heldout))
    for d in args.dirs:
        f = figures(Path(d), ids)
        if args.write:
            (Path(d) / "figures.json").write_text(json.dumps(f, indent=1) + "\n")
        else:
            print(json.dumps(f))


if __name__ == "__main__":
    main()
