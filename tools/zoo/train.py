#!/usr/bin/env python3
"""Train the small "model zoo": one tiny GPT-2 per attention variant, on Tiny Shakespeare.

Recipe (seeded, CPU, 2 threads)
-------------------------------
* Tokenizer: byte-level BPE (HF ``tokenizers``), GPT-2 style ByteLevel pre-tokenizer
  (add_prefix_space=False, GPT-2 regex), ByteLevel decoder, full 256-byte initial alphabet,
  2047 learned entries + ``<|endoftext|>`` appended as the LAST id (2047); vocab 2048.
  Trained on the first 90% (by characters) of data/tinyshakespeare.txt. The last 10% is held out.
* Data: the train / held-out text are encoded separately. Training windows: random offset in the
  train tokens, T-1 = 127 corpus tokens, with ``<|endoftext|>`` prepended (fixed first token = BOS /
  sink candidate); loss on the 127 next-token predictions. Held-out windows: consecutive,
  non-overlapping 127-token chunks of the held-out text, each with ``<|endoftext|>`` prepended.
* Model: ``tools/reference/variants.py`` VariantGPT2LMHeadModel; n_layer 4, n_embd 128, n_head 4,
  n_positions 128, vocab 2048, gelu_new, ln eps 1e-5, all dropouts 0, tied lm_head.
  Base init: transformers' default (initializer_range 0.02, scaled c_proj). Variant extras:
  k', v' ~ N(0, 0.02); context_scale weight = 0, bias = 0 (so 2*sigmoid(0) = 1 at init).
  sigmoid: ``sigmoid_fixed_t = 128`` (the paper's T = sequence length, fixed 128 in training).
* Optimiser: AdamW lr 2e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on every parameter with
  dim >= 2 (weights, embeddings, k'/v', context_scale.weight; nanoGPT convention), 0 on biases/LN;
  linear warm-up 50 steps, cosine decay to 10% of lr; grad-norm clip 1.0; batch 16 x T 128.
* Steps: chosen once from a measured step time so that each variant gets ~``--budget-s`` seconds
  (the same step count for every variant; recorded in training.json). A variant that runs over 1.2x budget
  is stopped early (recorded as ``stopped_early``).
* Seeds: torch.manual_seed(seed) before the model init of every variant (same base init for all
  variants) and a separate torch.Generator(seed + 1) for the data order (same batches for all).
* Output, per variant, ``zoo/<variant>/``: config.json, model.safetensors (f16, official GPT-2
  names without ``transformer.``, no lm_head, no attn.bias buffers), tokenizer.json, training.json
  (recipe, loss curve, final held-out ppl, probe of the f16-rounded weights). ``zoo/random_init_probe.json``:
  the same probe on the random-init models. ``zoo/README.md`` is regenerated after every variant.

Probe (8 held-out windows, f16-rounded weights, fp32 compute)
-------------------------------------------------------------
(i)  key0_attention: per layer, mean over heads, windows and queries 1..T-1 of P[q, 0]
     (P = hook_pattern, the weights applied to V; for sigmoid these are unnormalised).
(ii) activations: per layer, block output (residual stream after the block, before ln_f):
     max|h|, median|h| over all (window, token, channel), their ratio, and the location of the max
     (window, position, channel, token); also the same with position 0 excluded.
(iii) down_proj: mlp.c_proj.weight [4D, D], per row (= intermediate channel) max|W| / (mean|W| + 1e-8);
     per layer the max ratio, its row, and the median ratio.

Usage: /work/venv/bin/python tools/zoo/train.py [--budget-s 400] [--variants default,context_scale,...]
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "reference"))
from variants import VariantGPT2LMHeadModel, variant_config  # noqa: E402
from transformers import GPT2Config  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders  # noqa: E402

DATA = Path("/work/shared/data/tinyshakespeare.txt")
EOT = "<|endoftext|>"

RECIPE = dict(
    seed=1234, vocab_size=2048, n_layer=4, n_embd=128, n_head=4, n_positions=128, T=128, batch=16,
    lr=2e-3, warmup=50, min_lr_frac=0.1, betas=[0.9, 0.95], weight_decay=0.1, grad_clip=1.0,
    dropout=0.0, activation_function="gelu_new", initializer_range=0.02, extra_init_std=0.02,
    train_frac=0.9, eval_every=100, log_every=10, val_windows_during_training=32, probe_windows=8,
    threads=2,
)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ----------------------------------------------------------------------------- tokenizer / data
def train_tokenizer(train_text: str, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, min_frequency=2, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([train_text], trainer=trainer)
    n = tok.get_vocab_size()
    assert n == vocab_size - 1, n
    tok.add_special_tokens([EOT])
    assert tok.token_to_id(EOT) == vocab_size - 1
    return tok


def encode(tok: Tokenizer, text: str) -> torch.Tensor:
    # encode in line chunks (fast, and ByteLevel regex never merges across "\n" boundaries anyway
    # except for runs of whitespace; chunking on blank-line paragraphs keeps those intact)
    ids = []
    for para in text.split("\n\n"):
        ids.extend(tok.encode(para + "\n\n").ids)
    return torch.tensor(ids, dtype=torch.long)


def val_windows(val_ids: torch.Tensor, T: int, eot: int) -> torch.Tensor:
    n = (len(val_ids)) // (T - 1)
    body = val_ids[: n * (T - 1)].view(n, T - 1)
    return torch.cat([torch.full((n, 1), eot, dtype=torch.long), body], dim=1)


# ----------------------------------------------------------------------------- model
def make_config(variant: str, eot: int) -> GPT2Config:
    r = RECIPE
    base = GPT2Config(vocab_size=r["vocab_size"], n_positions=r["n_positions"], n_embd=r["n_embd"],
                      n_layer=r["n_layer"], n_head=r["n_head"], activation_function=r["activation_function"],
                      resid_pdrop=r["dropout"], embd_pdrop=r["dropout"], attn_pdrop=r["dropout"],
                      layer_norm_epsilon=1e-5, initializer_range=r["initializer_range"],
                      bos_token_id=eot, eos_token_id=eot, tie_word_embeddings=True)
    cfg = variant_config(base, variant)
    if variant == "sigmoid":
        cfg.sigmoid_fixed_t = 128.0
    return cfg


def make_model(variant: str, eot: int, seed: int) -> VariantGPT2LMHeadModel:
    torch.manual_seed(seed)
    model = VariantGPT2LMHeadModel(make_config(variant, eot))
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
    model.tie_weights()
    return model


def export_state(model) -> dict:
    out = {}
    for name, t in model.transformer.state_dict().items():
        if name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
            continue
        out[name] = t.detach().to(torch.float16).contiguous().clone()
    return out


def round_to_f16_(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def save_model(model, variant, out_dir: Path, tok: Tokenizer):
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = model.config.to_dict()
    cfg.pop("_attn_implementation", None)
    cfg.pop("_attn_implementation_autoset", None)
    cfg["architectures"] = ["GPT2LMHeadModel"]
    cfg["attn_variant"] = variant
    cfg["torch_dtype"] = "float16"
    cfg["dtype"] = "float16"
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    save_file(export_state(model), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    tok.save(str(out_dir / "tokenizer.json"))


# ----------------------------------------------------------------------------- eval / probe
@torch.no_grad()
def eval_loss(model, windows: torch.Tensor, bs: int = 32) -> float:
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(windows), bs):
        x = windows[i:i + bs]
        logits = model(input_ids=x).logits[:, :-1].float()
        l = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        tot += l.item()
        n += x[:, 1:].numel()
    model.train()
    return tot / n


@torch.no_grad()
def probe(model, windows: torch.Tensor, tok: Tokenizer) -> dict:
    model.eval()
    pats, blocks = {}, {}
    hooks = []
    for l, blk in enumerate(model.transformer.h):
        hooks.append(blk.attn.hook_pattern.register_forward_hook(lambda m, i, o, l=l: pats.__setitem__(l, o.detach())))
        hooks.append(blk.register_forward_hook(
            lambda m, i, o, l=l: blocks.__setitem__(l, (o[0] if isinstance(o, (tuple, list)) else o).detach())))
    model(input_ids=windows)
    for h in hooks:
        h.remove()
    res = {"n_windows": int(len(windows)), "T": int(windows.shape[1]), "key0_attention": [], "key0_attention_per_head": [],
           "activations": [], "down_proj": []}
    for l in range(len(model.transformer.h)):
        P = pats[l].float()  # [B,H,T,T]
        k0 = P[:, :, 1:, 0]  # queries 1..T-1
        res["key0_attention"].append(round(k0.mean().item(), 5))
        res["key0_attention_per_head"].append([round(v, 5) for v in k0.mean(dim=(0, 2)).tolist()])
        h = blocks[l].float().abs()  # [B,T,D]
        entry = {"layer": l}
        for tag, hh, off in (("all", h, 0), ("excl_pos0", h[:, 1:], 1)):
            mx = hh.max()
            med = hh.median()
            idx = int(hh.argmax())
            b, rem = divmod(idx, hh.shape[1] * hh.shape[2])
            t, c = divmod(rem, hh.shape[2])
            tid = int(windows[b, t + off])
            entry[tag] = {"max_abs": round(mx.item(), 4), "median_abs": round(med.item(), 5),
                          "mean_abs": round(hh.mean().item(), 5),
                          "max_over_median": round((mx / med).item(), 3),
                          "argmax": {"window": b, "position": t + off, "channel": c, "token_id": tid,
                                     "token": tok.decode([tid], skip_special_tokens=False) if tid != RECIPE["vocab_size"] - 1 else EOT}}
        # per-channel: top-3 channels by max over tokens
        chmax = h.amax(dim=(0, 1))
        top = torch.topk(chmax, 3)
        entry["top3_channels"] = [[int(i), round(v, 4)] for v, i in zip(top.values.tolist(), top.indices.tolist())]
        res["activations"].append(entry)
        W = model.transformer.h[l].mlp.c_proj.weight.float().abs()  # [4D, D]: a row per intermediate channel
        ratio = W.max(dim=1).values / (W.mean(dim=1) + 1e-8)
        top = torch.topk(ratio, 3)
        res["down_proj"].append({"layer": l, "max_ratio": round(top.values[0].item(), 3), "median_ratio": round(ratio.median().item(), 3),
                                 "top3_rows": [[int(i), round(v, 3)] for v, i in zip(top.values.tolist(), top.indices.tolist())]})
    res["summary"] = {
        "key0_last_layer": res["key0_attention"][-1],
        "key0_max_over_layers": max(res["key0_attention"]),
        "act_max_over_median_max_over_layers": max(e["all"]["max_over_median"] for e in res["activations"]),
        "down_proj_max_ratio_max_over_layers": max(e["max_ratio"] for e in res["down_proj"]),
    }
    model.train()
    return res


# ----------------------------------------------------------------------------- README
def write_readme(zoo: Path, meta: dict):
    rows = []
    for v in meta["variants"]:
        p = zoo / v / "training.json"
        if not p.exists():
            rows.append(f"| {v} | (not trained) | | | | | | |")
            continue
        tj = json.loads(p.read_text())
        s = tj["probe"]["summary"]
        rows.append(f"| {v} | {tj['final_val_loss']:.4f} | {tj['final_val_ppl']:.2f} | {s['key0_last_layer']:.4f} | "
                    f"{s['key0_max_over_layers']:.4f} | {s['act_max_over_median_max_over_layers']:.1f} | "
                    f"{s['down_proj_max_ratio_max_over_layers']:.2f} | {tj['steps_done']} steps, {tj['wall_time_s']:.0f} s |")
    rp = zoo / "random_init_probe.json"
    if rp.exists():
        rj = json.loads(rp.read_text())
        for v, r in rj["per_variant"].items():
            s = r["probe"]["summary"]
            rows.append(f"| random init ({v}) | {r['val_loss']:.4f} | {math.exp(r['val_loss']):.1f} | {s['key0_last_layer']:.4f} | "
                        f"{s['key0_max_over_layers']:.4f} | {s['act_max_over_median_max_over_layers']:.1f} | "
                        f"{s['down_proj_max_ratio_max_over_layers']:.2f} | - |")
    text = f"""# Model zoo: tiny GPT-2 attention variants (Tiny Shakespeare, CPU)

Made by `tools/zoo/train.py` (recipe in its docstring; every number is also in each `training.json`).
4 layers, d=128, 4 heads, T=128, BPE vocab 2048 (`<|endoftext|>` = id 2047 = bos/eos), every window starts with
`<|endoftext|>`; AdamW lr 2e-3 (warm-up 50, cosine to 10%), betas (0.9, 0.95), wd 0.1, clip 1.0, batch 16;
{meta.get('steps', '?')} steps per variant (~{meta.get('tokens_per_variant', '?')} tokens), seed {RECIPE['seed']}.
Weights stored f16 (official GPT-2 names, no `transformer.` prefix, no lm_head); probes use the f16-rounded weights.

Columns: final held-out loss / perplexity (all non-overlapping 128-token held-out windows, last 10% of the text);
key-0 share = mean attention weight that queries 1..127 put on key 0 (head-averaged), last layer and max over layers;
max|h|/median|h| = block outputs on 8 held-out windows, max over layers; down-proj = max over rows of
max|W|/mean|W| of `mlp.c_proj.weight`, max over layers.

| variant | val loss | val ppl | key-0 share (last layer) | key-0 share (max layer) | max\\|h\\|/median\\|h\\| (max layer) | down-proj max ratio | training |
|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n\n" + meta.get("verdict", "Verdict: pending (training in progress or incomplete).") + "\n"
    if meta.get("notes"):
        text += "\n" + meta["notes"] + "\n"
    (zoo / "README.md").write_text(text)


# ----------------------------------------------------------------------------- main
def lr_at(step, total):
    r = RECIPE
    if step < r["warmup"]:
        return r["lr"] * (step + 1) / r["warmup"]
    prog = min(1.0, (step - r["warmup"]) / max(1, total - r["warmup"]))
    return r["lr"] * (r["min_lr_frac"] + (1 - r["min_lr_frac"]) * 0.5 * (1 + math.cos(math.pi * prog)))


def make_opt(model):
    r = RECIPE
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    # tied lm_head/wte appear once in model.parameters()
    return torch.optim.AdamW([{"params": decay, "weight_decay": r["weight_decay"]},
                              {"params": no_decay, "weight_decay": 0.0}], lr=r["lr"], betas=tuple(r["betas"]), eps=1e-8)


def batch_at(train_ids, gen, B, T, eot):
    ix = torch.randint(0, len(train_ids) - (T - 1), (B,), generator=gen)
    body = torch.stack([train_ids[i:i + T - 1] for i in ix.tolist()])
    return torch.cat([torch.full((B, 1), eot, dtype=torch.long), body], dim=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-s", type=float, default=400.0)
    ap.add_argument("--steps", type=int, default=0, help="fixed step count (0 = from measured step time)")
    ap.add_argument("--variants", default="default,context_scale,context_bias,attn_bias,sigmoid")
    ap.add_argument("--deadline", type=float, default=0.0, help="unix time: skip variants that cannot finish before it")
    ap.add_argument("--out", default=str(ROOT / "zoo"))
    args = ap.parse_args()
    torch.set_num_threads(RECIPE["threads"])
    r = RECIPE
    zoo = Path(args.out)
    zoo.mkdir(parents=True, exist_ok=True)
    variants = args.variants.split(",")
    T, B = r["T"], r["batch"]

    t0 = time.time()
    text = DATA.read_text(encoding="utf-8")
    cut = int(len(text) * r["train_frac"])
    tok = train_tokenizer(text[:cut], r["vocab_size"])
    eot = tok.token_to_id(EOT)
    train_ids, val_ids = encode(tok, text[:cut]), encode(tok, text[cut:])
    vwin = val_windows(val_ids, T, eot)
    probe_win = vwin[torch.linspace(0, len(vwin) - 1, r["probe_windows"]).long()]
    vwin_small = vwin[torch.linspace(0, len(vwin) - 1, r["val_windows_during_training"]).long()]
    log(f"tokenizer {time.time()-t0:.1f}s; train tokens {len(train_ids)}, val tokens {len(val_ids)}, val windows {len(vwin)}")

    # random-init probes (f16-rounded), one per variant
    rand = {"note": "untrained models, same seed/init as the trained ones, f16-rounded weights, same 8 held-out windows",
            "per_variant": {}}
    for v in variants:
        m = make_model(v, eot, r["seed"])
        round_to_f16_(m)
        rand["per_variant"][v] = {"val_loss": eval_loss(m, vwin_small), "probe": probe(m, probe_win, tok)}
    (zoo / "random_init_probe.json").write_text(json.dumps(rand, indent=1) + "\n")
    log("random-init probes written")

    # measure step time on the default model
    steps = args.steps
    if steps <= 0:
        m = make_model("default", eot, r["seed"])
        opt = make_opt(m)
        g = torch.Generator().manual_seed(999)
        m.train()
        times = []
        for i in range(13):
            x = batch_at(train_ids, g, B, T, eot)
            ts = time.time()
            loss = m(input_ids=x, labels=x).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), r["grad_clip"])
            opt.step()
            if i >= 3:
                times.append(time.time() - ts)
        st = sorted(times)[len(times) // 2]
        steps = int(args.budget_s / (st * 1.08) / 10) * 10  # 8% for evals / slower variants
        log(f"measured step {st*1000:.0f} ms -> {steps} steps for ~{args.budget_s:.0f}s per variant")
        del m, opt
    meta = {"variants": variants, "steps": steps, "tokens_per_variant": steps * B * (T - 1),
            "step_time_measured": True if args.steps <= 0 else False}
    write_readme(zoo, meta)

    for v in variants:
        if args.deadline and time.time() + args.budget_s * 1.1 > args.deadline:
            log(f"skipping {v}: would pass the deadline")
            continue
        model = make_model(v, eot, r["seed"])
        opt = make_opt(model)
        gen = torch.Generator().manual_seed(r["seed"] + 1)
        model.train()
        curve, vcurve = [], []
        acc, accn = 0.0, 0
        ts = time.time()
        stopped_early = False
        step = 0
        vcurve.append({"step": 0, "val_loss": round(eval_loss(model, vwin_small), 4)})
        for step in range(steps):
            for gp in opt.param_groups:
                gp["lr"] = lr_at(step, steps)
            x = batch_at(train_ids, gen, B, T, eot)
            loss = model(input_ids=x, labels=x).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(model.parameters(), r["grad_clip"])
            opt.step()
            acc += loss.item()
            accn += 1
            if (step + 1) % r["log_every"] == 0:
                curve.append({"step": step + 1, "train_loss": round(acc / accn, 4), "grad_norm": round(float(gn), 3),
                              "lr": round(lr_at(step, steps), 6)})
                acc, accn = 0.0, 0
            if (step + 1) % r["eval_every"] == 0:
                vl = eval_loss(model, vwin_small)
                vcurve.append({"step": step + 1, "val_loss": round(vl, 4)})
                log(f"{v} step {step+1}/{steps} train {curve[-1]['train_loss']:.3f} val {vl:.3f} ({time.time()-ts:.0f}s)")
            if time.time() - ts > 1.2 * args.budget_s:
                stopped_early = True
                log(f"{v}: stopping early at step {step+1} (over 1.2x budget)")
                break
        steps_done = step + 1
        wall = time.time() - ts
        round_to_f16_(model)
        final = eval_loss(model, vwin)
        pr = probe(model, probe_win, tok)
        out = zoo / v
        save_model(model, v, out, tok)
        tj = {"variant": v, "recipe": r, "seed": r["seed"], "steps_planned": steps, "steps_done": steps_done,
              "stopped_early": stopped_early, "tokens_seen": steps_done * B * T, "predicted_tokens_seen": steps_done * B * (T - 1),
              "wall_time_s": round(wall, 1), "final_val_loss": round(final, 5), "final_val_ppl": round(math.exp(final), 3),
              "final_val_windows": int(len(vwin)),
              "final_eval_note": "f16-rounded weights; all non-overlapping held-out windows of 128 tokens starting with <|endoftext|>; 127 predictions each",
              "val_loss_during_training_note": f"{len(vwin_small)} evenly spaced held-out windows, fp32 weights",
              "loss_curve": curve, "val_curve": vcurve, "probe": pr,
              "tokenizer": {"type": "byte-level BPE", "vocab_size": r["vocab_size"], "eot_id": eot,
                            "trained_on": "first 90% of tinyshakespeare.txt (by characters)"},
              "torch": torch.__version__, "threads": torch.get_num_threads()}
        (out / "training.json").write_text(json.dumps(tj, indent=1) + "\n")
        log(f"{v} done: {steps_done} steps {wall:.0f}s val loss {final:.4f} ppl {math.exp(final):.2f} summary {pr['summary']}")
        write_readme(zoo, meta)
        del model, opt
    log("all done")


if __name__ == "__main__":
    main()
