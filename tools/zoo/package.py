#!/usr/bin/env python3
"""Copy trained runs into the committed zoo and record their PyTorch figures.

For every run directory RUNS/<variant>_s<seed>/ (made by train.py):
* zoo/<variant>_s<seed>/: the model at step ``--final-step`` (3000; or the run's last checkpoint when
  it stopped earlier, recorded) - config.json, model.safetensors (f16), tokenizer.json (task.py's),
  train_log.json (recipe, loss curves, wall time), figures.json (figures.py on those weights);
* for the runs named in ``--curves`` (default_s0, context_scale_s0): the checkpoints at the steps of
  CURVE_STEPS that exist, as zoo/<name>/ckpt/step_XXXXXX/ (config, weights, tokenizer) and
  zoo/<name>/curve.json = [{"step": s, figures...}, ...] in PyTorch; for those in
  ``--curves-figures-only`` (the second seeds) curve.json alone, to keep the zoo small;
* a run that went on past the packaged step keeps its whole log as train_log_long.json.
Every figures record also holds ``first8``: the same figures on the first 8 held-out sequences.

Usage: python tools/zoo/package.py --runs /tmp/zoo_runs [--zoo zoo]
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import figures as fig  # noqa: E402
import task as bb  # noqa: E402

CURVE_STEPS = [0, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 15000, 20000, 25000, 30000]


def copy_model(src: Path, dst: Path):
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors"):
        shutil.copy2(src / f, dst / f)
    (dst / "tokenizer.json").write_text(json.dumps(bb.tokenizer_json(), indent=1, ensure_ascii=False) + "\n")


def first8(d: Path, ids) -> dict:
    """The same figures on the first 8 held-out sequences (what tests/zoo.rs compares, cheaply)."""
    f = fig.figures(d, ids[:8])
    return {"n_sequences": 8, "heldout_loss": f["heldout_loss"], "layers": f["layers"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--zoo", default=str(HERE.parents[1] / "zoo"))
    ap.add_argument("--final-step", type=int, default=3000)
    ap.add_argument("--curves", default="default_s0,context_scale_s0")
    ap.add_argument("--curves-figures-only", default="default_s1,context_scale_s1",
                    help="runs whose curve.json is written but whose checkpoints are not kept (zoo size)")
    ap.add_argument("--only", default="", help="comma-separated run names (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    zoo, runs = Path(args.zoo), Path(args.runs)
    bb.write(zoo, bb.Task())
    ids = fig.heldout_ids(zoo / "heldout.txt")
    only = set(filter(None, args.only.split(",")))
    for run in sorted(p for p in runs.iterdir() if (p / "ckpt").is_dir()):
        if only and run.name not in only:
            continue
        steps = sorted(int(p.name[5:]) for p in (run / "ckpt").iterdir() if p.name.startswith("step_"))
        final = args.final_step if args.final_step in steps else max(s for s in steps if s <= args.final_step)
        dst = zoo / run.name
        copy_model(run / "ckpt" / f"step_{final:06d}", dst)
        log = json.loads((run / "train_log.json").read_text())
        log["packaged_step"] = final
        t0 = (run / "ckpt" / "step_000000" / "model.safetensors").stat().st_mtime
        t1 = (run / "ckpt" / f"step_{final:06d}" / "model.safetensors").stat().st_mtime
        log["wall_s_to_packaged_step"] = round(t1 - t0, 1)
        log["wall_note"] = "from the checkpoint files' times (1 thread, niced, on a 2-core machine); segments: per resume"
        if max(steps) > final:
            # the run went on past the packaged model (the long runs of the curves): keep its whole log
            (dst / "train_log_long.json").write_text(json.dumps(log) + "\n")
        log["train"] = [e for e in log["train"] if e["step"] <= final]
        log["heldout"] = [e for e in log["heldout"] if e["step"] <= final]
        (dst / "train_log.json").write_text(json.dumps(log) + "\n")
        f = fig.figures(dst, ids)
        f["step"] = final
        f["first8"] = first8(dst, ids)
        (dst / "figures.json").write_text(json.dumps(f, indent=1) + "\n")
        print(run.name, "step", final, "loss", round(f["heldout_loss"], 4), flush=True)
        keep = run.name in args.curves.split(",")
        if keep or run.name in args.curves_figures_only.split(","):
            curve = []
            shutil.rmtree(dst / "ckpt", ignore_errors=True)
            for s in [s for s in CURVE_STEPS if s in steps] + ([max(steps)] if max(steps) not in CURVE_STEPS else []):
                c = dst / "ckpt" / f"step_{s:06d}"
                copy_model(run / "ckpt" / f"step_{s:06d}", c)
                cf = fig.figures(c, ids)
                cf["step"] = s
                cf["first8"] = first8(c, ids)
                curve.append(cf)
            if not keep:
                shutil.rmtree(dst / "ckpt")
            (dst / "curve.json").write_text(json.dumps(curve) + "\n")
            print(run.name, "curve steps", [c["step"] for c in curve], flush=True)


if __name__ == "__main__":
    main()
