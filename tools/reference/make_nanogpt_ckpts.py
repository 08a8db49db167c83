#!/usr/bin/env python3
"""Tiny nanoGPT-style ``ckpt.pt`` fixtures, shaped like the checkpoints of the paper's
training code (github.com/an-yongqi/systematic-outliers, gpt-2/train.py + model_*.py).

Their train.py saves
    checkpoint = {'model': raw_model.state_dict(), 'optimizer': optimizer.state_dict(),
                  'model_args': model_args, 'iter_num': iter_num,
                  'best_val_loss': best_val_loss, 'config': config}
    torch.save(checkpoint, ...)
(``best_val_loss`` is a 0-d float tensor there: ``losses['val']`` = ``losses.mean()``;
``config`` is the dict of train.py's int/float/bool/str globals). Their code is NOT
imported: the module tree below is our own, written only so that ``state_dict()`` yields
the same names, order, shapes, dtypes (float32), tied storage and ``_metadata`` as theirs.

Writes tests/fixtures/nanogpt/<variant>/{ckpt.pt, expected.json} for
  default        model_default.py,   bias=False, WITH the causal-mask buffer
                 ``transformer.h.{l}.attn.bias`` [1,1,block_size,block_size] (their
                 CausalSelfAttention registers it only when F.scaled_dot_product_attention
                 is missing, i.e. PyTorch < 2.0; kept here so a loader must skip it, and
                 so that it coexists with bias=False -- it is NOT a Linear bias);
  context_scale  model_ca_softmax.py, bias=True, keys carry ``_orig_mod.`` (state dict of
                 a torch.compile'd model: train.py with compile=True and no DDP saves
                 exactly that), no mask buffer (PyTorch >= 2.0 flash path);
                 extras ``attn.context_scale.0.weight`` [H, D], ``.0.bias`` [H]
                 (nn.Sequential(nn.Linear(n_embd, n_head), nn.Sigmoid()));
  attn_bias      model_attn_bias.py,  bias=False, no mask buffer;
                 extras ``attn.k_bias``, ``attn.v_bias`` [1, H, 1, Dh].
model_args = dict(n_layer=2, n_head=2, n_embd=16, block_size=24, bias=B, vocab_size=61,
dropout=0.0). Values: N(0, 0.2) everywhere, LayerNorm weights 1 + N(0, 0.1).
lm_head.weight is tied to transformer.wte.weight: both keys are in the state dict and
share one storage (torch.save writes it once).

optimizer: an AdamW state_dict as configure_optimizers builds it (two param groups:
dim >= 2 with weight_decay 0.1, dim < 2 with 0.0; params are indices in
named_parameters() order, tied weight counted once), but with a small fake 'state'
holding only param 0 (wte): {'step': tensor(3.), 'exp_avg': [V, D], 'exp_avg_sq': [V, D]}.

expected.json: {"variant", "paper_model_type", "model_args", "tokens" (10 ids),
"logits" [T][V] (full-sequence logits, lm_head on every position), "state_dict_keys"
[[name, shape], ...] in ckpt['model'] order}. The logits come from our own plain
PyTorch forward: exact-erf GELU, LayerNorm eps 1e-5 (zero bias when bias=False),
causal softmax attention with scale 1/sqrt(Dh), and the variant's formula
(tools/reference/variants.py docstring). They are cross-checked against
variants.convert_paper_state_dict() + VariantGPT2LMHeadModel (activation "gelu").

    /work/venv/bin/python tools/reference/make_nanogpt_ckpts.py
"""

import json
import math
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "nanogpt"
V, L, H, D, BS = 61, 2, 2, 16, 24
T = 10
STD, LN_STD = 0.2, 0.1
ITER = 3

# variant -> (paper model_type, bias, torch.compile prefix, mask buffer, seed)
SPECS = {
    "default": ("gpt2_default", False, False, True, 11),
    "context_scale": ("gpt2_ca_softmax", True, True, False, 22),
    "attn_bias": ("gpt2_attn_bias", False, False, False, 33),
}


# ----------------------------------------------------------------------------- modules
# Same attribute names / registration order as the paper's modules, own forward.

class LayerNorm(nn.Module):
    def __init__(self, n, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x):
        b = self.bias if self.bias is not None else torch.zeros_like(self.weight)
        return F.layer_norm(x, self.weight.shape, self.weight, b, 1e-5)


class Attention(nn.Module):
    def __init__(self, variant, bias, mask_buffer):
        super().__init__()
        self.variant = variant
        self.c_attn = nn.Linear(D, 3 * D, bias=bias)
        self.c_proj = nn.Linear(D, D, bias=bias)
        self.attn_dropout = nn.Dropout(0.0)
        self.resid_dropout = nn.Dropout(0.0)
        if variant == "context_scale":
            self.context_scale = nn.Sequential(nn.Linear(D, H), nn.Sigmoid())
        if mask_buffer:
            self.register_buffer("bias", torch.tril(torch.ones(BS, BS)).view(1, 1, BS, BS))
        if variant == "attn_bias":
            self.k_bias = nn.Parameter(torch.zeros(1, H, 1, D // H))
            self.v_bias = nn.Parameter(torch.zeros(1, H, 1, D // H))

    def forward(self, x):  # x = ln_1 output [B, T, D]
        B, T_, _ = x.shape
        Dh = D // H
        q, k, v = self.c_attn(x).split(D, dim=2)
        q, k, v = (t.view(B, T_, H, Dh).transpose(1, 2) for t in (q, k, v))  # [B,H,T,Dh]
        s = (q @ k.transpose(-2, -1)) / math.sqrt(Dh)
        causal = torch.ones(T_, T_, dtype=torch.bool).tril()
        s = s.masked_fill(~causal, float("-inf"))
        if self.variant == "attn_bias":
            e = (q @ self.k_bias.transpose(-2, -1)) / math.sqrt(Dh)  # [B,H,T,1]
            p = torch.softmax(torch.cat([e, s], dim=-1), dim=-1)
            vv = torch.cat([self.v_bias.expand(B, H, 1, Dh), v], dim=2)
            y = p @ vv
        else:
            y = torch.softmax(s, dim=-1) @ v
        if self.variant == "context_scale":
            S = 2.0 * self.context_scale(x)  # [B, T, H]
            y = y * S.transpose(1, 2)[..., None]
        y = y.transpose(1, 2).reshape(B, T_, D)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.c_fc = nn.Linear(D, 4 * D, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * D, D, bias=bias)
        self.dropout = nn.Dropout(0.0)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, variant, bias, mask_buffer):
        super().__init__()
        self.ln_1 = LayerNorm(D, bias)
        self.attn = Attention(variant, bias, mask_buffer)
        self.ln_2 = LayerNorm(D, bias)
        self.mlp = MLP(bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, variant, bias, mask_buffer):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(V, D),
            wpe=nn.Embedding(BS, D),
            drop=nn.Dropout(0.0),
            h=nn.ModuleList([Block(variant, bias, mask_buffer) for _ in range(L)]),
            ln_f=LayerNorm(D, bias),
        ))
        self.lm_head = nn.Linear(D, V, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied, as nanoGPT

    def forward(self, idx):  # [B, T] -> logits [B, T, V] (all positions)
        pos = torch.arange(idx.shape[1])
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for blk in self.transformer.h:
            x = blk(x)
        return self.lm_head(self.transformer.ln_f(x))


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied weight visited once
            if name.endswith("weight") and ("ln_" in name):
                p.copy_(1.0 + LN_STD * torch.randn(p.shape, generator=g))
            else:
                p.copy_(STD * torch.randn(p.shape, generator=g))


def train_config(model_type, bias):
    """train.py's `config` (its int/float/bool/str globals, in order), tiny values."""
    return dict(
        out_dir="logs_ckpt/", save_dir="results/", data_dir="data/", model_type=model_type,
        num_reg=0, eval_interval=ITER, log_interval=1, eval_iters=400, eval_only=False,
        always_save_checkpoint=True, init_from="scratch", wandb_log=False,
        wandb_project="owt", wandb_run_name="gpt2", dataset="openwebtext",
        gradient_accumulation_steps=40, batch_size=12, block_size=BS, n_layer=L,
        n_head=H, n_embd=D, dropout=0.0, bias=bias, optim_name="adam",
        learning_rate=6e-4, max_iters=600000, weight_decay=1e-1, beta1=0.9, beta2=0.95,
        grad_clip=1.0, decay_lr=True, warmup_iters=2000, lr_decay_iters=600000,
        min_lr=6e-5, backend="nccl", device="cuda", dtype="bfloat16", compile=True,
    )


def optimizer_state(model, seed):
    params = [p for _, p in model.named_parameters()]
    opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=6e-4, betas=(0.9, 0.95))
    sd = opt.state_dict()
    for grp in sd["param_groups"]:
        grp["lr"] = 6e-4 * ITER / 2000  # warmup lr at iter_num
    g = torch.Generator().manual_seed(seed + 1)
    p0 = params[0]  # transformer.wte.weight
    sd["state"] = {0: {"step": torch.tensor(float(ITER)),
                       "exp_avg": 1e-3 * torch.randn(p0.shape, generator=g),
                       "exp_avg_sq": 1e-6 * torch.rand(p0.shape, generator=g)}}
    return sd


# ----------------------------------------------------------------------------- cross-check

def crosscheck(variant, sd_model, bias, tokens):
    """Logits of variants.py's model on the converted state dict (None if unavailable)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from transformers import GPT2Config
        from variants import VariantGPT2LMHeadModel, convert_paper_state_dict
    except Exception as e:  # pragma: no cover
        print(f"  cross-check unavailable: {e!r}")
        return None
    conv = convert_paper_state_dict(dict(sd_model), H)
    cfg = GPT2Config(vocab_size=V, n_positions=BS, n_embd=D, n_layer=L, n_head=H,
                     activation_function="gelu", layer_norm_epsilon=1e-5,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    cfg.attn_variant = variant
    cfg._attn_implementation = "eager"
    model = VariantGPT2LMHeadModel(cfg).eval()
    ours = {"transformer." + k: v for k, v in conv.items()}
    full = {}
    for name, p in model.state_dict().items():
        if name == "lm_head.weight" or name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
            continue
        if name in ours:
            assert ours[name].shape == p.shape, (name, ours[name].shape, p.shape)
            full[name] = ours.pop(name)
        else:
            assert not bias and name.endswith(".bias"), f"missing {name}"
            full[name] = torch.zeros_like(p)
    assert not ours, f"unused converted tensors: {sorted(ours)}"
    missing, unexpected = model.load_state_dict(full, strict=False)
    assert not unexpected, unexpected
    assert all(m == "lm_head.weight" or m.endswith("attn.bias") or m.endswith("masked_bias")
               for m in missing), missing
    model.tie_weights()
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0]


# ----------------------------------------------------------------------------- main

def main():
    torch.set_grad_enabled(False)
    results = {}
    for variant, (model_type, bias, compiled, mask_buffer, seed) in SPECS.items():
        torch.manual_seed(seed)
        model = GPT(variant, bias, mask_buffer).eval()
        randomize(model, seed)
        g = torch.Generator().manual_seed(seed + 2)
        tokens = torch.randint(0, V, (T,), generator=g).tolist()
        logits = model(torch.tensor([tokens]))[0]

        saved = torch.compile(model) if compiled else model  # OptimizedModule: `_orig_mod.`
        sd_model = saved.state_dict()
        model_args = dict(n_layer=L, n_head=H, n_embd=D, block_size=BS, bias=bias,
                          vocab_size=V, dropout=0.0)
        checkpoint = {
            "model": sd_model,
            "optimizer": optimizer_state(model, seed),
            "model_args": model_args,
            "iter_num": ITER,
            "best_val_loss": torch.tensor(4.0 + seed / 100.0),
            "config": train_config(model_type, bias),
        }
        d = OUT / variant
        d.mkdir(parents=True, exist_ok=True)
        torch.save(checkpoint, d / "ckpt.pt")

        # sanity: round trip with the safe unpickler, tied storage shared
        back = torch.load(d / "ckpt.pt", map_location="cpu", weights_only=True)
        pre = "_orig_mod." if compiled else ""
        sdb = back["model"]
        assert list(sdb.keys()) == list(sd_model.keys())
        wte, lm = sdb[pre + "transformer.wte.weight"], sdb[pre + "lm_head.weight"]
        assert wte.untyped_storage().data_ptr() == lm.untyped_storage().data_ptr()
        assert all(t.dtype == torch.float32 for t in sdb.values())

        ref = crosscheck(variant, sdb, bias, tokens)
        diff = None if ref is None else (ref - logits).abs().max().item()
        results[variant] = diff

        expected = {
            "variant": variant,
            "paper_model_type": model_type,
            "model_args": model_args,
            "tokens": tokens,
            "logits": [[float(x) for x in row] for row in logits.tolist()],
            "state_dict_keys": [[k, list(v.shape)] for k, v in sd_model.items()],
        }
        (d / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
        size = (d / "ckpt.pt").stat().st_size
        print(f"{variant}: {len(sd_model)} keys, ckpt {size} bytes, "
              f"cross-check max|diff| = {diff}")
    bad = {k: v for k, v in results.items() if v is None or v > 1e-5}
    if bad:
        raise SystemExit(f"cross-check failed / unavailable: {bad}")


if __name__ == "__main__":
    main()
