#!/usr/bin/env python3
"""Train one zoo model on Bigram-Backcopy (``task.py``): resumable, seeded, one CPU thread.

Recipe (the measured one of ../shared/docs/zoo-notes.md, as the engine loads it)
--------------------------------------------------------------------------------
* Model: ``tools/reference/variants.py`` VariantGPT2LMHeadModel (stock GPT-2 pre-LN blocks, the
  attention variant from ``attn_variant``): n_layer 3, n_embd 64, n_head 1, n_positions 64, vocab 64,
  ``gelu_new`` MLP 4x, learned positions, UNTIED lm_head (``tie_word_embeddings = false``), all
  dropouts 0, transformers' default init (initializer_range 0.02, scaled c_proj).
  Variant extras: k', v' ~ N(0, 0.02); context_scale / gate weight = 0, bias = 0 (scale 1 resp. 0.5
  at init); clipped: gamma = -12/64 (Bondarenko et al.'s alpha = 12 over T = 64), eta = 1;
  sigmoid: ``sigmoid_fixed_t = 64`` (the training length).
* Layer 0 is MLP-only (as in Guo et al.): its ``attn.c_proj.weight`` and ``.bias`` are zero and frozen
  (requires_grad = False), so the block computes x + MLP(ln_2(x)) while staying a standard GPT-2 block
  that the engine loads unchanged. Its attention still runs in the engine (and its hooks can be read
  or edited), but nothing it computes reaches the residual stream.
* AdamW betas (0.9, 0.99), eps 1e-8, lr 3e-3 constant after a 100-step linear warm-up, no weight decay,
  no gradient clipping; batch 32 sequences x 64 tokens (BOS + 63), loss on the 63 next-token predictions.
  Constant lr makes a longer run the exact continuation of a shorter one.
* Seeds: ``torch.manual_seed(seed)`` before the init; the data come from ``torch.Generator(seed + 1000)``
  (so the data order differs between seeds); both RNG states are in the resume state.

Outputs under ``--out`` (e.g. zoo/default_s0/)
----------------------------------------------
* ``state.pt`` (NOT committed): fp32 model, optimizer, step, data-RNG state, log: ``--steps N`` resumes
  from it and trains on to N; ``--deadline`` (unix seconds) stops early with the state saved.
* ``ckpt/step_XXXXXX/`` at the steps of ``--ckpt`` (and the final step): config.json,
  model.safetensors (f16, GPT-2 names without ``transformer.``, with lm_head.weight), tokenizer.json.
* ``train_log.json``: recipe, per-100-step train loss, held-out loss (fp32, 32 held-out sequences),
  wall time per segment.
The engine-comparable figures of each checkpoint (f16-rounded weights) are computed by ``figures.py``.

Usage: nice -n 10 /work/venv/bin/python tools/zoo/train.py --variant default --seed 0 --steps 3000 \
    --out zoo/default_s0 [--ckpt 0,100,...] [--deadline UNIX]
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tools" / "reference"))
sys.path.insert(0, str(HERE))
import task as bb  # noqa: E402
from variants import VariantGPT2LMHeadModel, variant_config  # noqa: E402
from transformers import GPT2Config  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

RECIPE = dict(n_layer=3, n_embd=64, n_head=1, n_positions=64, vocab_size=bb.VOCAB, activation_function="gelu_new",
              initializer_range=0.02, extra_init_std=0.02, lr=3e-3, warmup=100, betas=[0.9, 0.99], eps=1e-8,
              weight_decay=0.0, grad_clip=None, batch=32, seq_len=bb.SEQ_LEN, layer0="mlp_only (attn.c_proj zero, frozen)",
              clip_gamma=-12.0 / 64, clip_eta=1.0, sigmoid_fixed_t=64.0, threads=1, eval_every=100)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def make_config(variant: str) -> GPT2Config:
    r = RECIPE
    base = GPT2Config(vocab_size=r["vocab_size"], n_positions=r["n_positions"], n_embd=r["n_embd"], n_layer=r["n_layer"],
                      n_head=r["n_head"], activation_function=r["activation_function"], resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0, layer_norm_epsilon=1e-5, initializer_range=r["initializer_range"],
                      bos_token_id=bb.BOS, eos_token_id=bb.BOS, tie_word_embeddings=False)
    cfg = variant_config(base, variant, clip_gamma=r["clip_gamma"], clip_eta=r["clip_eta"])
    if variant == "sigmoid":
        cfg.sigmoid_fixed_t = r["sigmoid_fixed_t"]
    return cfg


def make_model(variant: str, seed: int) -> VariantGPT2LMHeadModel:
    torch.manual_seed(seed)
    model = VariantGPT2LMHeadModel(make_config(variant))
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for blk in model.transformer.h:
            a = blk.attn
            for name in ("k_prime", "v_prime"):
                if hasattr(a, name):
                    getattr(a, name).copy_(torch.randn(getattr(a, name).shape, generator=g) * RECIPE["extra_init_std"])
            for name in ("context_scale", "gate"):
                if hasattr(a, name):
                    getattr(a, name).weight.zero_()
                    getattr(a, name).bias.zero_()
        p0 = model.transformer.h[0].attn.c_proj
        p0.weight.zero_()
        p0.bias.zero_()
        p0.weight.requires_grad_(False)
        p0.bias.requires_grad_(False)
    assert model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr()
    return model


def export_state(model) -> dict:
    out = {}
    for name, t in model.state_dict().items():
        if name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
            continue
        if name.startswith("transformer."):
            name = name[len("transformer."):]
        out[name] = t.detach().to(torch.float16).contiguous().clone()
    return out


def save_checkpoint(model, variant: str, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = model.config.to_dict()
    for k in ("_attn_implementation", "_attn_implementation_autoset", "transformers_version"):
        cfg.pop(k, None)
    cfg["architectures"] = ["GPT2LMHeadModel"]
    cfg["attn_variant"] = variant
    cfg["torch_dtype"] = "float16"
    cfg["dtype"] = "float16"
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n")
    save_file(export_state(model), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "tokenizer.json").write_text(json.dumps(bb.tokenizer_json(), indent=1, ensure_ascii=False) + "\n")


@torch.no_grad()
def eval_loss(model, x: torch.Tensor) -> float:
    was = model.training
    model.eval()
    logits = model(input_ids=x).logits[:, :-1].float()
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1)).item()
    model.train(was)
    return loss


def lr_at(step: int) -> float:
    r = RECIPE
    return r["lr"] * min(1.0, (step + 1) / r["warmup"])


def make_opt(model):
    r = RECIPE
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=r["lr"], betas=tuple(r["betas"]), eps=r["eps"], weight_decay=r["weight_decay"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True, help="train (on) to this total step count")
    ap.add_argument("--out", required=True)
    ap.add_argument("--ckpt", default="", help="comma-separated steps to save f16 checkpoints at")
    ap.add_argument("--deadline", type=float, default=0.0, help="unix time: stop (state saved) when passed")
    ap.add_argument("--state-every", type=int, default=500)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = bb.Task()
    ho = bb.heldout(task)
    ckpts = {int(s) for s in args.ckpt.split(",") if s}

    model = make_model(args.variant, args.seed)
    opt = make_opt(model)
    gen = torch.Generator().manual_seed(args.seed + 1000)
    state_path = out / "state.pt"
    logd = {"variant": args.variant, "seed": args.seed, "recipe": RECIPE, "task_seed": task.seed,
            "torch": torch.__version__, "threads": 1, "segments": [], "train": [], "heldout": []}
    step = 0
    if state_path.exists():
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"])
        torch.set_rng_state(st["torch_rng"])
        step, logd = st["step"], st["log"]
        log(f"resumed {out} at step {step}")
    else:
        logd["heldout"].append({"step": 0, "loss": round(eval_loss(model, ho), 5)})
        if 0 in ckpts:
            save_checkpoint(model, args.variant, out / "ckpt" / "step_000000")

    def save_state():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                    "torch_rng": torch.get_rng_state(), "step": step, "log": logd}, state_path)
        (out / "train_log.json").write_text(json.dumps(logd, indent=None) + "\n")

    t0, s0 = time.time(), step
    acc, accn = 0.0, 0
    model.train()
    while step < args.steps:
        for gp in opt.param_groups:
            gp["lr"] = lr_at(step)
        x = task.sample(RECIPE["batch"], gen)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        acc += loss.item()
        accn += 1
        if step % RECIPE["eval_every"] == 0:
            hl = eval_loss(model, ho)
            logd["train"].append({"step": step, "loss": round(acc / accn, 5)})
            logd["heldout"].append({"step": step, "loss": round(hl, 5)})
            acc, accn = 0.0, 0
            if step % 1000 == 0:
                log(f"{out.name} step {step}/{args.steps} train {logd['train'][-1]['loss']:.4f} heldout {hl:.4f} "
                    f"({(time.time() - t0) / max(1, step - s0) * 1000:.0f} ms/step)")
        if step in ckpts:
            save_checkpoint(model, args.variant, out / "ckpt" / f"step_{step:06d}")
        if step % args.state_every == 0:
            logd_seg = {"from": s0, "to": step, "wall_s": round(time.time() - t0, 1)}
            logd["segments_open"] = logd_seg
            save_state()
        if args.deadline and time.time() > args.deadline:
            log(f"{out.name}: deadline passed at step {step}")
            break
    logd.pop("segments_open", None)
    logd["segments"].append({"from": s0, "to": step, "wall_s": round(time.time() - t0, 1)})
    logd["wall_s_total"] = round(sum(s["wall_s"] for s in logd["segments"]), 1)
    save_checkpoint(model, args.variant, out / "ckpt" / f"step_{step:06d}")
    save_state()
    log(f"{out.name} done at step {step}, {time.time() - t0:.0f} s this segment")


if __name__ == "__main__":
    main()
