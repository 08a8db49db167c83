#!/usr/bin/env python3
"""Markdown tables of the packaged zoo (from each model's figures.json, curve.json and
train_log.json): one row per model, and the curves of the models with checkpoints.

Usage: python tools/zoo/summarize.py [--zoo zoo]
"""

import argparse
import json
import math
from pathlib import Path

ORDER = ["default", "value_bias", "context_bias", "attn_bias", "context_scale", "sigmoid", "softmax1", "clipped", "gated"]
LETTER = {"default": "(a)", "value_bias": "(b)", "context_bias": "(c)", "attn_bias": "(d)", "context_scale": "(e)", "sigmoid": "(f)"}


def f3(x):
    return "–" if x is None else f"{x:.3f}"


def join(L, field, fmt):
    return " / ".join(format(l[field], fmt) for l in L)


def key(p: Path):
    v, s = p.name.rsplit("_s", 1)
    return (ORDER.index(v) if v in ORDER else 99, int(s))


def row(name, f, log):
    L = f["layers"]
    attn = L[1:]
    sc = " / ".join("–" if l.get("scale_nontrigger") is None else f"{l['scale_nontrigger']:.3f} ↔ {l['scale_trigger']:.2f}" for l in attn)
    v = name.rsplit("_s", 1)[0]
    wall = log.get("wall_s_to_packaged_step")
    return (f"| {LETTER.get(v, '')} {name} | {f.get('step', '?')} | {f['heldout_loss']:.4f} | "
            f"{' / '.join(f3(l['key0_nontrigger']) for l in attn)} | {' / '.join(f3(l['key0_trigger']) for l in attn)} | {sc} | "
            f"{join(L, 'top1_over_median', '.1f')} | {join(L, 'bos_over_median', '.1f')} | "
            f"{join(L, 'down_ratio', '.1f')} | {'' if wall is None else format(wall, '.0f')} |")


HEADER = ("| model | steps | held-out loss (nats; Bayes 2.641) | key-0 share, non-trigger queries L1 / L2 | key-0 share, trigger queries L1 / L2 | "
          "hook_scale non-trigger ↔ trigger L1 / L2 | top-1/median \\|h\\| L0 / L1 / L2 | BOS top-1/median L0 / L1 / L2 | "
          "down-proj max/mean L0 / L1 / L2 | wall s |\n|---|---:|---:|---|---|---|---|---|---|---:|")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", default=str(Path(__file__).resolve().parents[2] / "zoo"))
    args = ap.parse_args()
    zoo = Path(args.zoo)
    dirs = sorted((p for p in zoo.iterdir() if (p / "figures.json").exists()), key=key)
    print(HEADER)
    for d in dirs:
        f = json.loads((d / "figures.json").read_text())
        log = json.loads((d / "train_log.json").read_text())
        print(row(d.name, f, log))
    for d in dirs:
        if not (d / "curve.json").exists():
            continue
        curve = json.loads((d / "curve.json").read_text())
        print(f"\n{d.name} over training (32 held-out sequences, PyTorch):\n")
        print("| step | held-out loss | key-0 non-trigger L1 / L2 | BOS top-1 \\|h\\| L0 / L1 / L2 | median \\|h\\| L2 | BOS top-1/median L0 / L1 / L2 | top-1/median L2 | down-proj L0 / L1 / L2 |")
        print("|---:|---:|---|---|---:|---|---:|---|")
        for c in curve:
            L = c["layers"]
            print(f"| {c['step']} | {c['heldout_loss']:.4f} | {' / '.join(f3(l['key0_nontrigger']) for l in L[1:])} | "
                  f"{join(L, 'bos_top1', '.2f')} | {L[-1]['median']:.3f} | "
                  f"{join(L, 'bos_over_median', '.1f')} | {L[-1]['top1_over_median']:.1f} | "
                  f"{join(L, 'down_ratio', '.1f')} |")
        for what, upto in (("max-layer", None), ("layers a later attention layer reads (all but the last)", -1)):
            pts = [(c["step"], max(l["bos_over_median"] for l in c["layers"][:upto])) for c in curve if c["step"] >= 500]
            if len(pts) < 3:
                continue
            xs = [math.log10(s) for s, _ in pts]
            ys = [math.log10(r) for _, r in pts]
            n = len(xs)
            mx, my = sum(xs) / n, sum(ys) / n
            b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
            a = my - b * mx
            reach = {t: 10 ** ((math.log10(t) - a) / b) if b > 0 else float("inf") for t in (100, 1000)}
            print(f"\npower-law fit of BOS top-1/median ({what}) vs step, steps {pts[0][0]}–{pts[-1][0]}: "
                  f"ratio ∝ step^{b:.2f}; reaches 100 at ~{reach[100]:.3g} steps, 1000 at ~{reach[1000]:.3g} steps")

if __name__ == "__main__":
    main()
