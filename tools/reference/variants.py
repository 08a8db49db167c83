#!/usr/bin/env python3
"""GPT-2 with the attention variants of "Systematic Outliers in Large Language Models"
(plus three related ones), as a drop-in subclass of transformers' GPT2LMHeadModel.

Own implementation (eager, float32 reference); the paper's public nanoGPT code
(github.com/an-yongqi/systematic-outliers, gpt-2/model_*.py) was only read to pin down
the semantics and parameter shapes.

Selection: config field ``attn_variant`` (absent = ``"default"``), plus ``clip_gamma``
and ``clip_eta`` for ``clipped``. Everything else is stock GPT-2 (Conv1D c_attn/c_proj,
pre-LN blocks, tied lm_head).

Notation, per layer, per head h, query i, key j (causal: j <= i):
    q_i, k_j, v_j in R^Dh (from c_attn), x_i = ln_1 output (the attention block input)
    s_ij = q_i . k_j / sqrt(Dh)              (masked: s_ij = -inf for j > i)
    z_i  = per-head output that c_proj consumes (heads merged as h*Dh + d)

Variants (as implemented here)
------------------------------
``default``        (a)  P = softmax_j(s);  z_i = sum_j P_ij v_j
``value_bias``     (b)  z_i = sum_j softmax(s)_ij v_j + v'_h
``context_bias``   (c)  e_i = q_i . k'_h / sqrt(Dh)
                        p'_i = exp(e_i) / (exp(e_i) + sum_j exp(s_ij))  (= sigmoid(e_i - logsumexp_j s_ij))
                        z_i = sum_j softmax(s)_ij v_j + p'_i v'_h
                        (the softmax over the real keys is NOT reduced: bias only)
``attn_bias``      (d)  softmax over the T+1 logits [e_i, s_i.] and values [v'_h, v_.]:
                        p'_i as in (c); P_ij = (1 - p'_i) softmax(s)_ij
                        z_i = sum_j P_ij v_j + p'_i v'_h
``context_scale``  (e)  S_i = 2 sigmoid(W x_i + b)  (W [H, D], b [H]);  z_i,h = S_i,h * sum_j softmax(s)_ij v_j
``sigmoid``        (f)  P_ij = sigmoid(s_ij - log T) for j <= i, 0 otherwise;  z_i = sum_j P_ij v_j
                        T = number of key positions in the forward pass (the paper's code:
                        ``att.shape[-1]`` = the full sequence length of the batch, the SAME
                        for every query). See "sigmoid and T" below.
``softmax1``            P_ij = exp(s_ij) / (1 + sum_j exp(s_ij));  z_i = sum_j P_ij v_j
                        (= attn_bias with e_i = 0 and v' = 0); p'_i = 1 / (1 + sum_j exp(s_ij))
``clipped``             P_ij = clip((eta - gamma) softmax(s)_ij + gamma, 0, 1) for j <= i,
                        0 for j > i (future keys are re-masked after the clip, so gamma > 0
                        cannot leak the future);  z_i = sum_j P_ij v_j.
                        config ``clip_gamma`` (default 0.0), ``clip_eta`` (default 1.0).
``gated``               g_i = sigmoid(G x_i + c)  (G [H, D], c [H]);  z_i,h = g_i,h * sum_j softmax(s)_ij v_j

Then, for every variant, attn_out = c_proj(z merged) as in GPT-2.

Parameters (our HF-style names, without the ``transformer.`` prefix, as in
tests/fixtures/gpt2-odd-a) and the paper's nanoGPT checkpoint names
----------------------------------------------------------------------------------
paper ckpt (``ckpt['model']``; may carry a ``_orig_mod.`` prefix from torch.compile):
``transformer.h.{l}.attn.<name>``.

| variant        | ours                                   | shape  | paper name                          | paper shape      |
|----------------|----------------------------------------|--------|-------------------------------------|------------------|
| value_bias     | h.{l}.attn.v_prime                     | [H,Dh] | attn.v_bias                         | [n_embd] (flat)  |
| context_bias   | h.{l}.attn.k_prime, h.{l}.attn.v_prime | [H,Dh] | attn.k_bias, attn.v_bias            | [1,H,1,Dh]       |
| attn_bias      | h.{l}.attn.k_prime, h.{l}.attn.v_prime | [H,Dh] | attn.k_bias, attn.v_bias            | [1,H,1,Dh]       |
| context_scale  | h.{l}.attn.context_scale.weight/.bias  | [H,D],[H] | attn.context_scale.0.weight/.bias | [H,D],[H] (nn.Linear, same layout, no transpose) |
| sigmoid        | (none)                                 |        | attn.bias is the causal-mask BUFFER [1,1,bs,bs]: skip it | |
| gated          | h.{l}.attn.gate.weight/.bias           | [H,D],[H] | (not in the paper's code)        |                  |

value_bias: the paper's v_bias is a flat [n_embd] vector; the only shape-consistent reading
is channel c = h*Dh + d of the merged head output, i.e. ours = v_bias.reshape(H, Dh)
(same 768 numbers for GPT-2 small). NB their model_vbias.py adds the [n_embd] vector to
y of shape (B, nh, T, hs) BEFORE merging heads, which only broadcasts when n_head == 1
(or hs == n_embd); as published it cannot run for GPT-2 small. The loader here accepts
v_prime as [H, Dh] or flat [H*Dh].

Other things a converter from their ckpt.pt must handle (all variants): nanoGPT nn.Linear
weights are [out, in] -> transpose c_attn / c_proj / mlp.c_fc / mlp.c_proj into HF Conv1D
[in, out]; train.py defaults to ``bias=False`` (no LayerNorm/Linear biases -> zeros; the
context_scale Linear has a bias regardless); their MLP uses exact-erf ``nn.GELU()``
(``activation_function="gelu"``, not ``gelu_new``); vocab_size 50304 (padded); ln eps 1e-5;
lm_head.weight is tied to wte.

Sigmoid and T
-------------
Their model_sigmoid.py: ``att = sigmoid(att - math.log(att.shape[-1]))`` after the causal
-inf fill, i.e. T = the sequence length of the whole forward pass, identical for all
queries -- NOT the per-query number of visible keys (i+1); the two are not equivalent
(only the last query of a sequence sees T = i+1 keys). In training every sequence is
block_size = 1024 long, so the trained models effectively learned a constant bias
-log(1024). We implement theirs (T = number of key positions in this forward pass,
including any cached ones). Consequences:
  * the hidden state of position i depends on how many tokens follow it in the same
    forward pass (no padding-invariance: right padding changes T; pass unpadded batches);
  * KV-cache decoding is NOT equal to recomputation for n_layer > 1: cached K/V of layer
    >= 1 were computed under a smaller T. Greedy generation must recompute the whole
    prefix each step (the fixtures' ``generated`` does exactly that). The very first
    layer and the newest query at each step do match.
Optional config ``sigmoid_fixed_t`` (float, absent = theirs): use a constant T instead
(e.g. 1024 = their training length), which restores cache/padding invariance.

Hooks (identity sub-modules, TransformerLens-style names; capture with forward hooks)
-------------------------------------------------------------------------------------
``attn.hook_attn_scores`` [B,H,Tq,Tk]: s (scaled, masked with -inf; for sigmoid the
    ``- log T`` is NOT included);
``attn.hook_pattern`` [B,H,Tq,Tk]: the weights actually applied to V (see P above);
``attn.hook_extra_prob`` [B,H,Tq]: p' (context_bias, attn_bias, softmax1 only);
``attn.hook_scale`` [B,Tq,H]: S (context_scale) or g (gated) only;
``attn.hook_z`` [B,Tq,H,Dh]: the head output AFTER the variant's bias/scale, i.e. exactly
    what c_proj consumes (for context_scale/gated: S * softmax(s)V; for value_bias:
    softmax(s)V + v').
The module's second return value (HF ``output_attentions``) is hook_pattern.
"""

import json
import math
from pathlib import Path

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.models.gpt2.modeling_gpt2 import GPT2Attention

VARIANTS = (
    "default",
    "value_bias",
    "context_bias",
    "attn_bias",
    "context_scale",
    "sigmoid",
    "softmax1",
    "clipped",
    "gated",
)
NEEDS_KV_PRIME = {"context_bias": ("k_prime", "v_prime"), "attn_bias": ("k_prime", "v_prime"),
                  "value_bias": ("v_prime",)}
HAS_SCALE = ("context_scale", "gated")
HAS_EXTRA_PROB = ("context_bias", "attn_bias", "softmax1")


def variant_of(config) -> str:
    v = getattr(config, "attn_variant", None) or "default"
    if v not in VARIANTS:
        raise ValueError(f"unknown attn_variant {v!r}; expected one of {VARIANTS}")
    return v


class VariantGPT2Attention(GPT2Attention):
    """GPT2Attention (self-attention only) with the variant selected by config.attn_variant."""

    def __init__(self, config, layer_idx=None):
        super().__init__(config, is_cross_attention=False, layer_idx=layer_idx)
        self.variant = variant_of(config)
        H, Dh, D = self.num_heads, self.head_dim, self.embed_dim
        if "v_prime" in NEEDS_KV_PRIME.get(self.variant, ()):
            self.v_prime = nn.Parameter(torch.zeros(H, Dh))
        if "k_prime" in NEEDS_KV_PRIME.get(self.variant, ()):
            self.k_prime = nn.Parameter(torch.zeros(H, Dh))
        if self.variant == "context_scale":
            self.context_scale = nn.Linear(D, H)
        if self.variant == "gated":
            self.gate = nn.Linear(D, H)
        self.clip_gamma = float(getattr(config, "clip_gamma", 0.0) or 0.0)
        self.clip_eta = float(getattr(config, "clip_eta", 1.0) if getattr(config, "clip_eta", None) is not None else 1.0)
        fixed_t = getattr(config, "sigmoid_fixed_t", None)
        self.sigmoid_fixed_t = None if fixed_t is None else float(fixed_t)
        # hook points (no parameters)
        self.hook_attn_scores = nn.Identity()
        self.hook_pattern = nn.Identity()
        self.hook_extra_prob = nn.Identity()
        self.hook_scale = nn.Identity()

    # ------------------------------------------------------------------ core
    def _allowed(self, q_len, k_len, attention_mask, device, dtype):
        """Boolean [.., Tq, Tk] of keys each query may see (causal, plus HF's mask if any)."""
        offset = k_len - q_len  # queries are the last q_len positions
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(diagonal=offset)
        if attention_mask is None:
            return causal[None, None]
        if attention_mask.dtype == torch.bool:
            hf = attention_mask
        else:
            hf = attention_mask > torch.finfo(attention_mask.dtype).min / 2
        hf = hf[..., -q_len:, -k_len:] if hf.dim() == 4 else hf
        return causal[None, None] & hf

    def forward(self, hidden_states, cache=None, attention_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, output_attentions=False, **kwargs):
        if encoder_hidden_states is not None:
            raise NotImplementedError("cross-attention is not supported by the variants")
        x = hidden_states  # ln_1 output, [B, T, D]
        q, k, v = self.c_attn(x).split(self.split_size, dim=2)
        shape = (*q.shape[:-1], -1, self.head_dim)
        q = q.view(shape).transpose(1, 2)  # [B, H, Tq, Dh]
        k = k.view(shape).transpose(1, 2)
        v = v.view(shape).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx, kwargs=kwargs)
        B, H, Tq, Dh = q.shape
        Tk = k.shape[-2]

        allowed = self._allowed(Tq, Tk, attention_mask, q.device, q.dtype)
        s = torch.matmul(q, k.transpose(-1, -2)) * self.scaling
        s = s.masked_fill(~allowed, float("-inf"))
        s = self.hook_attn_scores(s)

        var = self.variant
        extra = None  # p' [B, H, Tq]
        vbias = None  # added to z: [B, H, Tq, Dh] or broadcastable
        if var in ("default", "value_bias", "context_scale", "gated"):
            P = torch.softmax(s, dim=-1)
        elif var == "context_bias":
            P = torch.softmax(s, dim=-1)
            e = torch.matmul(q, self.k_prime[None, :, :, None]).squeeze(-1) * self.scaling  # [B,H,Tq]
            extra = torch.sigmoid(e - torch.logsumexp(s, dim=-1))
        elif var in ("attn_bias", "softmax1"):
            if var == "attn_bias":
                e = torch.matmul(q, self.k_prime[None, :, :, None]) * self.scaling  # [B,H,Tq,1]
            else:
                e = torch.zeros(B, H, Tq, 1, dtype=s.dtype, device=s.device)
            full = torch.softmax(torch.cat([e, s], dim=-1), dim=-1)
            extra, P = full[..., 0], full[..., 1:]
        elif var == "sigmoid":
            t = self.sigmoid_fixed_t if self.sigmoid_fixed_t is not None else float(Tk)
            P = torch.sigmoid(s - math.log(t))  # sigmoid(-inf) = 0 for masked keys
        elif var == "clipped":
            P = torch.softmax(s, dim=-1)
            P = torch.clamp((self.clip_eta - self.clip_gamma) * P + self.clip_gamma, 0.0, 1.0)
            P = P.masked_fill(~allowed, 0.0)
        else:  # pragma: no cover
            raise AssertionError(var)

        if var in HAS_EXTRA_PROB:
            extra = self.hook_extra_prob(extra)
        P = self.hook_pattern(P)
        z = torch.matmul(P, v)  # [B, H, Tq, Dh]

        if var == "value_bias":
            z = z + self.v_prime[None, :, None, :]
        elif var in ("context_bias", "attn_bias"):
            z = z + extra[..., None] * self.v_prime[None, :, None, :]
        elif var in HAS_SCALE:
            lin = self.context_scale if var == "context_scale" else self.gate
            scale = torch.sigmoid(lin(x))  # [B, Tq, H]
            if var == "context_scale":
                scale = 2.0 * scale
            scale = self.hook_scale(scale)
            z = z * scale.transpose(1, 2)[..., None]

        z = z.transpose(1, 2)  # [B, Tq, H, Dh]
        out = z.reshape(*z.shape[:-2], -1).contiguous()
        out = self.c_proj(out)
        out = self.resid_dropout(out)
        return out, P


class VariantGPT2LMHeadModel(GPT2LMHeadModel):
    """GPT2LMHeadModel whose blocks use VariantGPT2Attention (config.attn_variant)."""

    def __init__(self, config):
        config._attn_implementation = "eager"
        super().__init__(config)
        for l, blk in enumerate(self.transformer.h):
            old = blk.attn
            new = VariantGPT2Attention(config, layer_idx=l)
            new.load_state_dict(old.state_dict(), strict=False)
            blk.attn = new
        self.config._attn_implementation = "eager"


def variant_config(base: GPT2Config, variant: str, clip_gamma=None, clip_eta=None) -> GPT2Config:
    cfg = GPT2Config.from_dict(base.to_dict())
    cfg.attn_variant = variant
    if variant == "clipped":
        cfg.clip_gamma = float(clip_gamma)
        cfg.clip_eta = float(clip_eta)
    cfg._attn_implementation = "eager"
    return cfg


def load_variant_model(model_dir) -> VariantGPT2LMHeadModel:
    """Load config.json + model.safetensors (tensor names with or without 'transformer.')."""
    from safetensors.torch import load_file
    model_dir = Path(model_dir)
    cfg = GPT2Config.from_json_file(str(model_dir / "config.json"))
    cfg._attn_implementation = "eager"
    model = VariantGPT2LMHeadModel(cfg).eval()
    H = cfg.n_head
    Dh = cfg.n_embd // H
    sd = {}
    for name, t in load_file(str(model_dir / "model.safetensors")).items():
        if name == "lm_head.weight":
            continue
        if not name.startswith("transformer."):
            name = "transformer." + name
        if name.endswith(".attn.v_prime") or name.endswith(".attn.k_prime"):
            t = t.reshape(H, Dh)
        sd[name] = t.float()
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]
    assert not missing and not unexpected, (missing, unexpected)
    model.tie_weights()
    return model


def convert_paper_state_dict(sd: dict, n_head: int) -> dict:
    """Paper nanoGPT ckpt['model'] -> our names (no 'transformer.' prefix), HF Conv1D layout.
    Missing biases (nanoGPT bias=False) are NOT invented here: the caller fills zeros."""
    out = {}
    transposed = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    for name, t in sd.items():
        if name.startswith("_orig_mod."):
            name = name[len("_orig_mod."):]
        if name == "lm_head.weight" or name.endswith(".attn.bias"):  # tied / causal-mask buffer
            continue
        if name.startswith("transformer."):
            name = name[len("transformer."):]
        if name.endswith(transposed):
            t = t.t()
        elif name.endswith(".attn.k_bias"):
            name, t = name[: -len("k_bias")] + "k_prime", t.reshape(n_head, -1)
        elif name.endswith(".attn.v_bias"):
            name, t = name[: -len("v_bias")] + "v_prime", t.reshape(n_head, -1)
        elif ".attn.context_scale.0." in name:
            name = name.replace(".attn.context_scale.0.", ".attn.context_scale.")
        out[name] = t.contiguous()
    return out


if __name__ == "__main__":
    print(json.dumps(list(VARIANTS)))
