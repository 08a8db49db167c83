#!/usr/bin/env python3
"""Reference fixtures for the attention variants (tools/reference/variants.py).

Writes tests/fixtures/variants/<variant>/ for each of the 9 variants:
  config.json        GPT2Config + "attn_variant" (+ "clip_gamma"/"clip_eta" for clipped)
  model.safetensors  f32, names without prefix (as gpt2-odd-a), plus the variant's extras:
                     h.{l}.attn.v_prime / k_prime [H, Dh],
                     h.{l}.attn.context_scale.weight [H, D] / .bias [H],
                     h.{l}.attn.gate.weight [H, D] / .bias [H]
  tokenizer.json     copy of tests/fixtures/gpt2-odd-a/tokenizer.json (vocab 1021)
  prompts.json       [{k, text, ids, n_tokens, generated}]
  ref-{0,1}.safetensors  k=0 "Summer is warm. Winter is cold.\\n", k=1 a held-out
                     tinyshakespeare passage of 40 tokens; no batch axis; every standard
                     hook of gpt2-odd-a/ref-*.safetensors plus, where defined,
                     blocks.{l}.attn.hook_scale [T, H] and blocks.{l}.attn.hook_extra_prob [H, T];
                     logits [T, V]; generated (6 greedy tokens, no-cache full recomputation).

Base weights: exactly gpt2-odd-a's (make_fixtures.make_model, seed 1001: n_embd 72,
n_head 3, n_layer 2, n_positions 48, initializer_range 0.1, randomised LN params and
biases), identical for all variants; the variant extras are N(0, 0.5) (seeded per variant).
clipped: clip_gamma = -0.03, clip_eta = 1.03.

    /work/venv/bin/python tools/reference/make_variant_fixtures.py
"""

import math
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402
from variants import (HAS_EXTRA_PROB, HAS_SCALE, VARIANTS, VariantGPT2LMHeadModel,  # noqa: E402
                      load_variant_model, variant_config)

OUT = mf.FIXTURES / "variants"
SRC = mf.FIXTURES / "gpt2-odd-a"
SPEC = dict(mf.FIXTURE_SPECS[0])
assert SPEC["name"] == "gpt2-odd-a"
PROMPT_0 = "Summer is warm. Winter is cold.\n"
LONG_T = 40
GEN = 6
EXTRA_STD = 0.5
CLIP_GAMMA, CLIP_ETA = -0.03, 1.03


def build(variant: str, base: GPT2LMHeadModel) -> VariantGPT2LMHeadModel:
    cfg = variant_config(base.config, variant, CLIP_GAMMA, CLIP_ETA)
    model = VariantGPT2LMHeadModel(cfg).eval()
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected, unexpected
    g = torch.Generator().manual_seed(5000 + VARIANTS.index(variant))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in missing:
                p.copy_(EXTRA_STD * torch.randn(p.shape, generator=g))
    extras = sorted(missing)
    for n in extras:
        assert ".attn." in n and any(x in n for x in ("k_prime", "v_prime", "context_scale", "gate")), n
    model.tie_weights()
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    return model, extras


def save(model, outdir: Path):
    sd = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" or k.endswith(".attn.masked_bias"):
            continue
        assert k.startswith("transformer."), k
        sd[k[len("transformer."):]] = v.detach().float().contiguous().clone()
    save_file(sd, str(outdir / "model.safetensors"), metadata={"format": "pt"})
    model.config.to_json_file(str(outdir / "config.json"))
    return sd


def forward_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]), use_cache=False).logits[0]


def capture(model, ids):
    cfg = model.config
    H, D = cfg.n_head, cfg.n_embd
    Dh = D // H
    T = len(ids)
    tr = model.transformer
    var = cfg.attn_variant
    cap, handles = {}, []

    def out_hook(name):
        def f(_m, _inp, out):
            o = out[0] if isinstance(out, tuple) else out
            cap[name] = o.detach().clone()
        return f

    def in_hook(name):
        def f(_m, inp):
            cap[name] = inp[0].detach().clone()
        return f

    reg = lambda m, name: handles.append(m.register_forward_hook(out_hook(name)))  # noqa: E731
    pre = lambda m, name: handles.append(m.register_forward_pre_hook(in_hook(name)))  # noqa: E731
    reg(tr.wte, "hook_embed")
    reg(tr.wpe, "hook_pos_embed")
    for l, blk in enumerate(tr.h):
        p = f"blocks.{l}."
        pre(blk, p + "hook_resid_pre")
        reg(blk, p + "hook_resid_post")
        reg(blk.ln_1, p + "ln1.hook_normalized")
        reg(blk.attn.c_attn, p + "_qkv")
        reg(blk.attn.hook_attn_scores, p + "attn.hook_attn_scores")
        reg(blk.attn.hook_pattern, p + "attn.hook_pattern")
        reg(blk.attn.hook_extra_prob, p + "attn.hook_extra_prob")
        reg(blk.attn.hook_scale, p + "attn.hook_scale")
        pre(blk.attn.c_proj, p + "_z_merged")
        reg(blk.attn.c_proj, p + "hook_attn_out")
        pre(blk.ln_2, p + "hook_resid_mid")
        reg(blk.ln_2, p + "ln2.hook_normalized")
        reg(blk.mlp.c_fc, p + "mlp.hook_pre")
        reg(blk.mlp.act, p + "mlp.hook_post")
        reg(blk.mlp.c_proj, p + "hook_mlp_out")
    reg(tr.ln_f, "ln_final.hook_normalized")
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=False, output_hidden_states=True)
    for h in handles:
        h.remove()

    def sq(t):
        assert t.shape[0] == 1, t.shape
        return t[0].float().contiguous()

    ref = {"tokens": torch.tensor(ids, dtype=torch.int64)}
    ref["hook_embed"] = sq(cap["hook_embed"])
    pe = cap["hook_pos_embed"]
    ref["hook_pos_embed"] = (pe[0] if pe.dim() == 3 else pe).float().contiguous()
    assert torch.equal(ref["hook_embed"] + ref["hook_pos_embed"], sq(cap["blocks.0.hook_resid_pre"]))
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for l, blk in enumerate(tr.h):
        p = f"blocks.{l}."
        a = blk.attn
        for n in ("hook_resid_pre", "ln1.hook_normalized", "hook_attn_out", "hook_resid_mid",
                  "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post"):
            ref[p + n] = sq(cap[p + n])
        assert torch.equal(ref[p + "hook_resid_pre"], sq(out.hidden_states[l]))
        q, k, v = sq(cap[p + "_qkv"]).split(D, dim=-1)
        q, k, v = (t.reshape(T, H, Dh).contiguous() for t in (q, k, v))
        ref[p + "attn.hook_q"], ref[p + "attn.hook_k"], ref[p + "attn.hook_v"] = q, k, v
        scores = sq(cap[p + "attn.hook_attn_scores"])
        pattern = sq(cap[p + "attn.hook_pattern"])
        ref[p + "attn.hook_attn_scores"], ref[p + "attn.hook_pattern"] = scores, pattern
        z = sq(cap[p + "_z_merged"]).reshape(T, H, Dh).contiguous()
        ref[p + "attn.hook_z"] = z
        if var in HAS_SCALE:
            ref[p + "attn.hook_scale"] = sq(cap[p + "attn.hook_scale"])
            assert ref[p + "attn.hook_scale"].shape == (T, H)
        else:
            assert p + "attn.hook_scale" not in cap
        if var in HAS_EXTRA_PROB:
            ref[p + "attn.hook_extra_prob"] = sq(cap[p + "attn.hook_extra_prob"])
            assert ref[p + "attn.hook_extra_prob"].shape == (H, T)
        else:
            assert p + "attn.hook_extra_prob" not in cap

        # ---------------- independent recomputation of the variant (float64, plain formulas)
        qd, kd, vd = (t.double().transpose(0, 1) for t in (q, k, v))  # [H, T, Dh]
        s = (qd @ kd.transpose(-1, -2)) / math.sqrt(Dh)
        s_m = s.masked_fill(~causal, float("-inf"))
        assert torch.equal(torch.isinf(scores), ~causal.expand(H, T, T))
        assert torch.allclose(scores.double()[..., causal], s[..., causal], atol=1e-5, rtol=1e-5)
        ex = torch.exp(s_m)  # small random model: no overflow
        Z = ex.sum(-1)  # [H, T]
        soft = ex / Z[..., None]
        x = ref[p + "ln1.hook_normalized"].double()
        xtra = None
        if var in ("default", "value_bias", "context_scale", "gated"):
            P = soft
        elif var in ("context_bias", "attn_bias"):
            e = torch.exp((qd @ a.k_prime.double()[:, :, None]).squeeze(-1) / math.sqrt(Dh))  # [H, T]
            xtra = e / (Z + e)
            P = soft if var == "context_bias" else (1 - xtra)[..., None] * soft
        elif var == "softmax1":
            xtra = 1.0 / (1.0 + Z)
            P = ex / (1.0 + Z)[..., None]
        elif var == "sigmoid":
            P = 1.0 / (1.0 + torch.exp(-(s - math.log(T))))
            P = P.masked_fill(~causal, 0.0)
        elif var == "clipped":
            P = ((CLIP_ETA - CLIP_GAMMA) * soft + CLIP_GAMMA).clamp(0, 1).masked_fill(~causal, 0.0)
        zd = P @ vd  # [H, T, Dh]
        if var == "value_bias":
            zd = zd + a.v_prime.double()[:, None, :]
        elif var in ("context_bias", "attn_bias"):
            zd = zd + xtra[..., None] * a.v_prime.double()[:, None, :]
        elif var in HAS_SCALE:
            lin = a.context_scale if var == "context_scale" else a.gate
            sc = 1.0 / (1.0 + torch.exp(-(x @ lin.weight.double().T + lin.bias.double())))  # [T, H]
            if var == "context_scale":
                sc = 2 * sc
                assert ((sc > 0) & (sc < 2)).all()
            assert torch.allclose(sc, ref[p + "attn.hook_scale"].double(), atol=1e-6, rtol=1e-5)
            zd = zd * sc.T[..., None]
        assert torch.allclose(P, pattern.double(), atol=1e-6, rtol=1e-5), (var, (P - pattern.double()).abs().max())
        assert (pattern[~causal.expand(H, T, T)] == 0).all()
        if xtra is not None:
            assert torch.allclose(xtra, ref[p + "attn.hook_extra_prob"].double(), atol=1e-6, rtol=1e-5)
        if var == "attn_bias":  # rows of [p', P] sum to 1
            tot = pattern.double().sum(-1) + ref[p + "attn.hook_extra_prob"].double()
            assert torch.allclose(tot, torch.ones_like(tot), atol=1e-6)
        if var == "sigmoid":  # the paper's T: sequence length, same for every query
            assert not torch.allclose(pattern.sum(-1), torch.ones(H, T))
        assert torch.allclose(zd.transpose(0, 1), z.double(), atol=2e-5, rtol=1e-4), (var, (zd.transpose(0, 1) - z.double()).abs().max())
        # z . c_proj = attn_out  (HF Conv1D: x @ W + b)
        ao = z.reshape(T, D).double() @ a.c_proj.weight.double() + a.c_proj.bias.double()
        assert torch.allclose(ao, ref[p + "hook_attn_out"].double(), atol=2e-5, rtol=1e-4)
        assert torch.equal(ref[p + "hook_resid_mid"], ref[p + "hook_attn_out"] + ref[p + "hook_resid_pre"])
        assert torch.equal(ref[p + "hook_resid_post"], ref[p + "hook_resid_mid"] + ref[p + "hook_mlp_out"])
        if l + 1 < cfg.n_layer:
            assert torch.equal(ref[p + "hook_resid_post"], sq(cap[f"blocks.{l + 1}.hook_resid_pre"]))
    ref["ln_final.hook_normalized"] = sq(cap["ln_final.hook_normalized"])
    ref["logits"] = sq(out.logits)
    assert torch.allclose(ref["ln_final.hook_normalized"] @ tr.wte.weight.T, ref["logits"], atol=1e-4, rtol=1e-4)

    # greedy, no cache: recompute the whole sequence each step
    seq, new = list(ids), []
    for _ in range(GEN):
        nxt = int(torch.argmax(forward_logits(model, seq)[-1]))
        new.append(nxt)
        seq.append(nxt)
    ref["generated"] = torch.tensor(new, dtype=torch.int64)

    # KV-cache decoding vs recomputation (informative; sigmoid is expected to differ)
    with torch.no_grad():
        gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, T, dtype=torch.long),
                             do_sample=False, max_new_tokens=GEN, min_new_tokens=GEN,
                             pad_token_id=cfg.vocab_size - 1, eos_token_id=None, use_cache=True)
    cache_ok = gen[0, T:].tolist() == new
    # cached last-position logits vs recomputed ones for the full sequence
    with torch.no_grad():
        full = torch.tensor([seq[:-1]])
        o1 = model(full[:, :T], use_cache=True)
        o2 = model(full[:, T:T + 1], cache=o1.past_key_values, use_cache=True)
        diff = (o2.logits[0, -1] - forward_logits(model, seq[:T + 1])[-1]).abs().max().item()
    for k_, v_ in ref.items():
        if k_ not in ("tokens", "generated"):
            assert v_.dtype == torch.float32, k_
        assert v_.is_contiguous()
    return ref, cache_ok, diff


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_file(str(SRC / "tokenizer.json"))
    _, heldout = mf.split_corpus()
    long_prompt = mf.pick_long_prompt(tok, heldout, LONG_T + 6)  # target T = LONG_T
    prompts = [PROMPT_0, long_prompt]
    mf.check_roundtrip(tok, prompts)
    odd_a_refs = {0: load_file(str(SRC / "ref-0.safetensors"))}

    base = mf.make_model(SPEC)
    # the base weights are gpt2-odd-a's
    odd_a = load_file(str(SRC / "model.safetensors"))
    for k, v in odd_a.items():
        assert torch.equal(base.state_dict()["transformer." + k], v), k

    total = 0
    for variant in VARIANTS:
        outdir = OUT / variant
        outdir.mkdir(parents=True, exist_ok=True)
        model, extras = build(variant, base)
        sd = save(model, outdir)
        shutil.copyfile(SRC / "tokenizer.json", outdir / "tokenizer.json")
        info, refs = [], {}
        for k, text in enumerate(prompts):
            ids = mf.encode(tok, text)
            assert 0 < len(ids) and len(ids) + GEN <= SPEC["n_positions"]
            if k == 1:
                assert len(ids) == LONG_T, len(ids)
            ref, cache_ok, cache_diff = capture(model, ids)
            if variant == "default":
                lg = forward_logits(base, ids)  # stock transformers GPT2LMHeadModel
                assert torch.equal(lg, ref["logits"]), (lg - ref["logits"]).abs().max()
                if k == 0:
                    for n, t in odd_a_refs[0].items():  # same model as gpt2-odd-a
                        if n == "generated":  # odd-a stores 8 greedy tokens
                            assert t[:GEN].tolist() == ref[n].tolist(), (t, ref[n])
                        else:
                            assert torch.equal(t, ref[n]), n
            if variant != "sigmoid":
                assert cache_ok and cache_diff < 1e-4, (variant, k, cache_ok, cache_diff)
            save_file(ref, str(outdir / f"ref-{k}.safetensors"), metadata={"format": "pt"})
            refs[k] = ref
            info.append({"k": k, "text": text, "ids": ids, "n_tokens": len(ids),
                         "generated": ref["generated"].tolist()})
            print(f"{variant:14s} k={k} T={len(ids)} gen={ref['generated'].tolist()} "
                  f"kv-cache==recompute: {cache_ok} (last-logit diff {cache_diff:.2e})", flush=True)
        mf.dump_json_list(outdir / "prompts.json", info)
        # reload from the written files only
        fresh = load_variant_model(outdir)
        for k, ref in refs.items():
            assert torch.equal(forward_logits(fresh, ref["tokens"].tolist()), ref["logits"]), (variant, k)
        # variants really differ from default
        if variant != "default":
            d = (refs[1]["logits"] - load_file(str(OUT / "default" / "ref-1.safetensors"))["logits"]).abs().max()
            assert d > 1e-2, (variant, d)
        size = sum(f.stat().st_size for f in outdir.iterdir())
        total += size
        print(f"{variant:14s} extras={extras} files={size / 1e6:.2f} MB", flush=True)
    print(f"total {total / 1e6:.2f} MB")
    print("versions:", "torch", torch.__version__, file=sys.stderr)
    print("ok")


if __name__ == "__main__":
    main()
