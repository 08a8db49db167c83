#!/usr/bin/env python3
"""Generate the Llama reference fixtures for outlier-probe's Rust tests.

Writes, under tests/fixtures/ of the repository:
  * llama-odd-a/: tiny random-init Llama (GQA 6 q heads / 2 kv heads, head_dim 16, 2 layers,
    tied embeddings, f32 weights);
  * llama-odd-b/: tiny random-init Llama (MQA 3 q heads / 1 kv head, head_dim 24, 3 layers,
    untied lm_head, rope_theta 500000, weights rounded to and stored as bf16);
each with config.json, model.safetensors, tokenizer.json (a copy of gpt2-odd-a's trained
byte-level BPE, vocab 1021, <|endoftext|> = 1020), prompts.json and ref-{0,1,2}.safetensors
holding every intermediate activation of the HF forward pass plus greedy generations.

Everything is deterministic (fixed seeds), CPU, float32, HF LlamaForCausalLM with
attn_implementation="eager".  Helpers (corpus split, prompt choice, JSON dump) are shared
with make_fixtures.py (the GPT-2 fixtures), which must have been run first (for the
tokenizer).  Re-run with:

    python3 -m venv v && v/bin/pip install -r tools/reference/requirements.txt \
        && v/bin/python tools/reference/make_llama_fixtures.py
"""

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (sets deterministic torch, single thread)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402
from transformers.models.llama import modeling_llama  # noqa: E402

FIXTURES = mf.FIXTURES
SOURCE_TOKENIZER = FIXTURES / "gpt2-odd-a" / "tokenizer.json"
VOCAB = 1021
EOT_ID = VOCAB - 1

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

FIXTURE_SPECS = [
    dict(name="llama-odd-a", hidden_size=96, num_attention_heads=6, num_key_value_heads=2, head_dim=16,
         intermediate_size=200, num_hidden_layers=2, max_position_embeddings=48, rms_norm_eps=1e-5,
         rope_theta=10000.0, tie_word_embeddings=True, dtype=torch.float32, seed=4004),
    dict(name="llama-odd-b", hidden_size=72, num_attention_heads=3, num_key_value_heads=1, head_dim=24,
         intermediate_size=150, num_hidden_layers=3, max_position_embeddings=64, rms_norm_eps=1e-6,
         rope_theta=500000.0, tie_word_embeddings=False, dtype=torch.bfloat16, seed=5005),
]


# --------------------------------------------------------------------------- model

def make_model(spec) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=spec["hidden_size"],
        intermediate_size=spec["intermediate_size"],
        num_hidden_layers=spec["num_hidden_layers"],
        num_attention_heads=spec["num_attention_heads"],
        num_key_value_heads=spec["num_key_value_heads"],
        head_dim=spec["head_dim"],
        hidden_act="silu",
        max_position_embeddings=spec["max_position_embeddings"],
        initializer_range=0.1,
        rms_norm_eps=spec["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": spec["rope_theta"]},
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=EOT_ID,
        eos_token_id=EOT_ID,
        pad_token_id=None,
        tie_word_embeddings=spec["tie_word_embeddings"],
        attn_implementation="eager",
    )
    torch.manual_seed(spec["seed"])
    model = LlamaForCausalLM(config)
    model.config._attn_implementation = "eager"
    model.eval()
    g = torch.Generator().manual_seed(spec["seed"] + 7)
    with torch.no_grad():
        n_norms = 0
        for m in model.modules():
            if isinstance(m, modeling_llama.LlamaRMSNorm):
                m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
                n_norms += 1
        assert n_norms == 2 * spec["num_hidden_layers"] + 1, n_norms
        # Round to the storage dtype and back so references are exact for the stored weights.
        for p in model.parameters():
            p.copy_(p.to(spec["dtype"]).to(torch.float32))
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32, name
        if name.endswith("norm.weight"):
            continue
        s = float(p.detach().std())
        assert 0.085 < s < 0.115, (name, s)  # initializer_range = 0.1 was honoured
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            assert m.bias is None
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tied == spec["tie_word_embeddings"], ("tie state", tied)
    if not tied:
        assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    return model


def save_model(model: LlamaForCausalLM, spec, outdir: Path):
    sd = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" and spec["tie_word_embeddings"]:
            continue
        assert "rotary_emb" not in k, k  # inv_freq is a non-persistent buffer
        sd[k] = v.detach().to(spec["dtype"]).contiguous().clone()
    expected = {"model.embed_tokens.weight", "model.norm.weight"}
    for l in range(spec["num_hidden_layers"]):
        p = f"model.layers.{l}."
        expected |= {p + s + ".weight" for s in (
            "input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj",
            "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
    if not spec["tie_word_embeddings"]:
        expected.add("lm_head.weight")
    assert set(sd) == expected, sorted(set(sd) ^ expected)
    D, H, Hkv, Dh, I = (spec[k] for k in ("hidden_size", "num_attention_heads", "num_key_value_heads",
                                          "head_dim", "intermediate_size"))
    assert sd["model.layers.0.self_attn.q_proj.weight"].shape == (H * Dh, D)
    assert sd["model.layers.0.self_attn.k_proj.weight"].shape == (Hkv * Dh, D)
    assert sd["model.layers.0.self_attn.o_proj.weight"].shape == (D, H * Dh)
    assert sd["model.layers.0.mlp.gate_proj.weight"].shape == (I, D)
    assert sd["model.layers.0.mlp.down_proj.weight"].shape == (D, I)
    save_file(sd, str(outdir / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(outdir / "model.safetensors", 0o644)

    model.config.to_json_file(str(outdir / "config.json"))
    cfg = json.loads((outdir / "config.json").read_text())
    if "rope_theta" not in cfg:
        # transformers 5 keeps it under rope_parameters; add a top-level copy for simple readers.
        assert cfg["rope_parameters"]["rope_theta"] == spec["rope_theta"], cfg.get("rope_parameters")
        cfg["rope_theta"] = spec["rope_theta"]
        (outdir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        cfg = json.loads((outdir / "config.json").read_text())
    for key, want in [("model_type", "llama"), ("hidden_size", D), ("intermediate_size", I),
                      ("num_hidden_layers", spec["num_hidden_layers"]), ("num_attention_heads", H),
                      ("num_key_value_heads", Hkv), ("head_dim", Dh), ("rms_norm_eps", spec["rms_norm_eps"]),
                      ("rope_theta", spec["rope_theta"]),
                      ("max_position_embeddings", spec["max_position_embeddings"]),
                      ("tie_word_embeddings", spec["tie_word_embeddings"]), ("vocab_size", VOCAB),
                      ("bos_token_id", EOT_ID), ("eos_token_id", EOT_ID), ("hidden_act", "silu"),
                      ("attention_bias", False), ("mlp_bias", False)]:
        assert cfg.get(key) == want, (key, cfg.get(key), want)
    if "rope_parameters" in cfg:
        assert cfg["rope_parameters"].get("rope_type", "default") == "default", cfg["rope_parameters"]
        assert cfg["rope_parameters"]["rope_theta"] == spec["rope_theta"]
    return sorted(sd)


def reload_and_check(outdir: Path, spec, ref_by_k):
    """Rebuild the model with from_pretrained(outdir) and check that it reproduces the stored
    logits exactly and has the intended tied/untied lm_head."""
    stored = load_file(str(outdir / "model.safetensors"))
    for k, v in stored.items():
        assert v.dtype == spec["dtype"], (k, v.dtype)
    fresh, info = LlamaForCausalLM.from_pretrained(
        str(outdir), dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    fresh.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    fsd = fresh.state_dict()
    for k, v in stored.items():
        assert fsd[k].dtype == torch.float32 and torch.equal(fsd[k], v.float()), k
    tied = fresh.lm_head.weight.data_ptr() == fresh.model.embed_tokens.weight.data_ptr()
    assert tied == spec["tie_word_embeddings"], ("reloaded tie state", tied)
    if spec["tie_word_embeddings"]:
        assert "lm_head.weight" not in stored
    else:
        assert torch.equal(fresh.lm_head.weight, stored["lm_head.weight"].float())
        assert not torch.equal(fresh.lm_head.weight, fresh.model.embed_tokens.weight)
    assert fresh.config.rope_parameters["rope_theta"] == spec["rope_theta"]
    with torch.no_grad():
        for k, ref in ref_by_k.items():
            lg = fresh(ref["tokens"][None], use_cache=False).logits[0]
            assert torch.equal(lg, ref["logits"]), (outdir.name, k, (lg - ref["logits"]).abs().max())


# --------------------------------------------------------------------------- reference capture

class AttnSpy:
    """Wraps `modeling.apply_rotary_pos_emb` / `eager_attention_forward` (both are looked up in
    the module's globals at call time by its Attention.forward; modeling_llama, or modeling_qwen2
    for make_qwen2_fixtures.py) to record their tensors. No sliding window may be in play."""

    def __init__(self, modeling=modeling_llama):
        self.modeling = modeling
        self.rot = []
        self.attn = []

    def __enter__(self):
        self._orig_rope = self.modeling.apply_rotary_pos_emb
        self._orig_eager = self.modeling.eager_attention_forward
        spy = self

        def rope(q, k, cos, sin, *a, **kw):
            qe, ke = spy._orig_rope(q, k, cos, sin, *a, **kw)
            spy.rot.append(dict(q=q.detach().clone(), k=k.detach().clone(), cos=cos.detach().clone(),
                                sin=sin.detach().clone(), q_embed=qe.detach().clone(), k_embed=ke.detach().clone()))
            return qe, ke

        def eager(module, query, key, value, attention_mask, scaling, *a, **kw):
            assert kw.get("sliding_window") is None, kw.get("sliding_window")
            out, w = spy._orig_eager(module, query, key, value, attention_mask, scaling, *a, **kw)
            spy.attn.append(dict(layer=module.layer_idx, query=query.detach().clone(), key=key.detach().clone(),
                                 value=value.detach().clone(), scaling=scaling,
                                 mask=None if attention_mask is None else attention_mask.detach().clone(),
                                 out=out.detach().clone(), weights=w.detach().clone()))
            return out, w

        self.modeling.apply_rotary_pos_emb = rope
        self.modeling.eager_attention_forward = eager
        return self

    def __exit__(self, *exc):
        self.modeling.apply_rotary_pos_emb = self._orig_rope
        self.modeling.eager_attention_forward = self._orig_eager
        return False


def run_reference(model, ids: list, n_positions: int, modeling=modeling_llama):
    """Every hook of one prompt through a Llama-shaped model (LlamaForCausalLM, or Qwen2ForCausalLM
    with `modeling_qwen2`: its q/k/v biases are checked to be applied and to matter; or
    Qwen3ForCausalLM with `modeling_qwen3`: its per-head q_norm/k_norm before RoPE are recorded as
    attn.q_norm.hook_normalized / attn.k_norm.hook_normalized)."""
    cfg = model.config
    D, H, Hkv, I = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size
    Dh = getattr(cfg, "head_dim", None) or D // H
    G = H // Hkv
    L = cfg.num_hidden_layers
    T = len(ids)
    lm = model.model
    qk_norm = hasattr(lm.layers[0].self_attn, "q_norm")
    cap = {}
    handles = []

    def out_hook(name):
        def f(_m, _inp, out):
            o = out[0] if isinstance(out, tuple) else out
            cap[name] = o.detach().clone()
        return f

    def in_hook(name):
        def f(_m, inp):
            cap[name] = inp[0].detach().clone()
        return f

    def in_hook_kw(name):
        def f(_m, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            cap[name] = x.detach().clone()
        return f

    handles.append(lm.embed_tokens.register_forward_hook(out_hook("hook_embed")))
    for l, blk in enumerate(lm.layers):
        p = f"blocks.{l}."
        at, mlp = blk.self_attn, blk.mlp
        handles.append(blk.register_forward_pre_hook(in_hook_kw(p + "hook_resid_pre"), with_kwargs=True))
        handles.append(blk.register_forward_hook(out_hook(p + "hook_resid_post")))
        handles.append(blk.input_layernorm.register_forward_hook(out_hook(p + "ln1.hook_normalized")))
        handles.append(at.q_proj.register_forward_hook(out_hook(p + "_q")))
        handles.append(at.k_proj.register_forward_hook(out_hook(p + "_k")))
        handles.append(at.v_proj.register_forward_hook(out_hook(p + "_v")))
        if qk_norm:
            handles.append(at.q_norm.register_forward_hook(out_hook(p + "_qn")))
            handles.append(at.k_norm.register_forward_hook(out_hook(p + "_kn")))
        handles.append(at.o_proj.register_forward_pre_hook(in_hook(p + "_z_merged")))
        handles.append(at.o_proj.register_forward_hook(out_hook(p + "hook_attn_out")))
        handles.append(blk.post_attention_layernorm.register_forward_pre_hook(in_hook(p + "hook_resid_mid")))
        handles.append(blk.post_attention_layernorm.register_forward_hook(out_hook(p + "ln2.hook_normalized")))
        handles.append(mlp.gate_proj.register_forward_hook(out_hook(p + "mlp.hook_pre")))
        handles.append(mlp.up_proj.register_forward_hook(out_hook(p + "mlp.hook_pre_linear")))
        handles.append(mlp.act_fn.register_forward_hook(out_hook(p + "_act")))
        handles.append(mlp.down_proj.register_forward_pre_hook(in_hook(p + "mlp.hook_post")))
        handles.append(mlp.down_proj.register_forward_hook(out_hook(p + "hook_mlp_out")))
    handles.append(lm.norm.register_forward_pre_hook(in_hook("_final_resid")))
    handles.append(lm.norm.register_forward_hook(out_hook("ln_final.hook_normalized")))

    input_ids = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad(), AttnSpy(modeling) as spy:
        out = model(input_ids, output_hidden_states=True, output_attentions=True, use_cache=False)
    for h in handles:
        h.remove()
    assert len(spy.rot) == L and len(spy.attn) == L, (len(spy.rot), len(spy.attn))

    ref = {"tokens": torch.tensor(ids, dtype=torch.int64)}

    def sq(t):  # drop the batch axis
        assert t.shape[0] == 1, t.shape
        return t[0].float().contiguous()

    ref["hook_embed"] = sq(cap["hook_embed"])
    assert torch.equal(ref["hook_embed"], lm.embed_tokens.weight[input_ids[0]])
    assert torch.equal(ref["hook_embed"], sq(cap["blocks.0.hook_resid_pre"]))

    # Independent RoPE tables from HF's own rotary module (positions 0..T-1).
    pos = torch.arange(T)[None]
    with torch.no_grad():
        cos_hf, sin_hf = lm.rotary_emb(ref["hook_embed"][None], pos)
    cos_hf, sin_hf = cos_hf[0], sin_hf[0]  # [T, Dh]
    inv_freq = lm.rotary_emb.inv_freq
    assert inv_freq.dtype == torch.float32 and inv_freq.shape == (Dh // 2,)
    theta = cfg.rope_parameters["rope_theta"]
    inv_ref = 1.0 / (theta ** (torch.arange(0, Dh, 2, dtype=torch.int64).float() / Dh))
    assert torch.equal(inv_freq, inv_ref), (inv_freq - inv_ref).abs().max()
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq.double()[None]  # [T, Dh/2]
    assert torch.allclose(cos_hf, torch.cat([ang.cos(), ang.cos()], -1).float(), atol=1e-5, rtol=0)
    assert torch.allclose(sin_hf, torch.cat([ang.sin(), ang.sin()], -1).float(), atol=1e-5, rtol=0)

    def rope_halves(x):  # x [T, n, Dh]; rotate_half convention: pairs (i, i + Dh/2)
        c, s = cos_hf[:, None, :], sin_hf[:, None, :]
        x1, x2 = x[..., : Dh // 2], x[..., Dh // 2:]
        return x * c + torch.cat([-x2, x1], -1) * s

    causal = torch.ones(T, T, dtype=torch.bool).tril()
    hs = out.hidden_states
    assert len(hs) == L + 1, len(hs)
    for l, blk in enumerate(lm.layers):
        p = f"blocks.{l}."
        at = blk.self_attn
        rot, att = spy.rot[l], spy.attn[l]
        assert att["layer"] == l
        ref[p + "hook_resid_pre"] = sq(cap[p + "hook_resid_pre"])
        assert torch.equal(ref[p + "hook_resid_pre"], sq(hs[l])), f"hidden_states[{l}]"
        ref[p + "ln1.hook_normalized"] = sq(cap[p + "ln1.hook_normalized"])
        q = sq(cap[p + "_q"]).reshape(T, H, Dh).contiguous()
        k = sq(cap[p + "_k"]).reshape(T, Hkv, Dh).contiguous()
        v = sq(cap[p + "_v"]).reshape(T, Hkv, Dh).contiguous()
        ref[p + "attn.hook_q"], ref[p + "attn.hook_k"], ref[p + "attn.hook_v"] = q, k, v
        q_pre, k_pre = q, k  # what RoPE rotates: q and k, or after their per-head norms
        if qk_norm:
            q_pre = sq(cap[p + "_qn"]).reshape(T, H, Dh).contiguous()  # [1, T, H, Dh] before transpose
            k_pre = sq(cap[p + "_kn"]).reshape(T, Hkv, Dh).contiguous()
            ref[p + "attn.q_norm.hook_normalized"], ref[p + "attn.k_norm.hook_normalized"] = q_pre, k_pre
            for x, nx, norm in [(q, q_pre, at.q_norm), (k, k_pre, at.k_norm)]:
                xd = x.double()
                want = xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps) * norm.weight.double()
                assert torch.allclose(want.float(), nx, atol=1e-5, rtol=1e-5), (want.float() - nx).abs().max()
        # what apply_rotary_pos_emb received: [1, n, T, Dh]
        assert torch.equal(sq(rot["q"]).transpose(0, 1), q_pre)
        assert torch.equal(sq(rot["k"]).transpose(0, 1), k_pre)
        assert torch.equal(rot["cos"][0], cos_hf) and torch.equal(rot["sin"][0], sin_hf)
        rq = sq(rot["q_embed"]).transpose(0, 1).contiguous()  # [T, H, Dh]
        rk = sq(rot["k_embed"]).transpose(0, 1).contiguous()  # [T, Hkv, Dh]
        ref[p + "attn.hook_rot_q"], ref[p + "attn.hook_rot_k"] = rq, rk
        assert torch.equal(rope_halves(q_pre), rq) and torch.equal(rope_halves(k_pre), rk)
        # what eager_attention_forward received (before repeat_kv)
        assert torch.equal(sq(att["query"]).transpose(0, 1), rq)
        assert torch.equal(sq(att["key"]).transpose(0, 1), rk)
        assert torch.equal(sq(att["value"]).transpose(0, 1), v)
        assert att["scaling"] == Dh ** -0.5 == at.scaling
        # scores per query head h with kv head h // G (repeat_kv grouping), HF's exact ops
        kh = rk.transpose(0, 1)[torch.arange(H) // G]  # [H, T, Dh]
        vh = v.transpose(0, 1)[torch.arange(H) // G]
        qh = rq.transpose(0, 1)  # [H, T, Dh]
        raw = torch.matmul(qh[None], kh[None].transpose(2, 3))[0] * att["scaling"]
        scores = raw.masked_fill(~causal, float("-inf"))
        mask = att["mask"]
        assert mask is not None and mask.shape[-2:] == (T, T), None if mask is None else mask.shape
        m2 = mask.reshape(-1, T, T)[0]
        assert (m2[causal] == 0).all() and (m2[~causal] < -1e30).all()
        ref[p + "attn.hook_attn_scores"] = scores.contiguous()
        pattern = sq(out.attentions[l])  # [H, T, T], HF output_attentions
        assert torch.equal(pattern, sq(att["weights"]))
        ref[p + "attn.hook_pattern"] = pattern
        my_pattern = torch.softmax(scores, dim=-1)
        assert torch.allclose(my_pattern, pattern, atol=1e-6, rtol=1e-5), (my_pattern - pattern).abs().max()
        assert (pattern[~causal.expand(H, T, T)] == 0).all()
        z = sq(cap[p + "_z_merged"]).reshape(T, H, Dh).contiguous()
        assert torch.equal(z, sq(att["out"]))
        ref[p + "attn.hook_z"] = z
        z_re = torch.matmul(pattern, vh).transpose(0, 1)
        assert torch.allclose(z_re, z, atol=1e-6, rtol=1e-5), (z_re - z).abs().max()
        ref[p + "hook_attn_out"] = sq(cap[p + "hook_attn_out"])
        with torch.no_grad():
            assert at.o_proj.bias is None
            assert torch.equal(at.o_proj(z.reshape(T, H * Dh)), ref[p + "hook_attn_out"])
        ref[p + "hook_resid_mid"] = sq(cap[p + "hook_resid_mid"])
        assert torch.equal(ref[p + "hook_resid_mid"], ref[p + "hook_resid_pre"] + ref[p + "hook_attn_out"])
        ref[p + "ln2.hook_normalized"] = sq(cap[p + "ln2.hook_normalized"])
        ref[p + "mlp.hook_pre"] = sq(cap[p + "mlp.hook_pre"])
        ref[p + "mlp.hook_pre_linear"] = sq(cap[p + "mlp.hook_pre_linear"])
        ref[p + "mlp.hook_post"] = sq(cap[p + "mlp.hook_post"])
        assert torch.equal(sq(cap[p + "_act"]) * ref[p + "mlp.hook_pre_linear"], ref[p + "mlp.hook_post"])
        ref[p + "hook_mlp_out"] = sq(cap[p + "hook_mlp_out"])
        ref[p + "hook_resid_post"] = sq(cap[p + "hook_resid_post"])
        assert torch.equal(ref[p + "hook_resid_post"], ref[p + "hook_resid_mid"] + ref[p + "hook_mlp_out"])
        if l + 1 < L:
            assert torch.equal(ref[p + "hook_resid_post"], sq(cap[f"blocks.{l + 1}.hook_resid_pre"]))
            assert torch.equal(ref[p + "hook_resid_post"], sq(hs[l + 1]))
        else:
            assert torch.equal(ref[p + "hook_resid_post"], sq(cap["_final_resid"]))
        # independent re-computations (loose tolerances, not HF code paths)
        for x, norm, name in [(ref[p + "hook_resid_pre"], blk.input_layernorm, "ln1"),
                              (ref[p + "hook_resid_mid"], blk.post_attention_layernorm, "ln2")]:
            rms = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps) * norm.weight
            assert torch.allclose(rms, ref[p + name + ".hook_normalized"], atol=1e-5, rtol=1e-5), name
        a = ref[p + "mlp.hook_pre"]
        silu_up = a / (1.0 + torch.exp(-a)) * ref[p + "mlp.hook_pre_linear"]
        assert torch.allclose(silu_up, ref[p + "mlp.hook_post"], atol=1e-6, rtol=1e-5)
        with torch.no_grad():
            ln1 = ref[p + "ln1.hook_normalized"]
            for proj, got in [(at.q_proj, q), (at.k_proj, k), (at.v_proj, v)]:
                lin = ln1 @ proj.weight.T
                if proj.bias is not None:
                    # the biases are there and matter: x·Wᵀ + b, and far from x·Wᵀ alone
                    assert (lin - got.reshape(T, -1)).abs().max() > 0.1
                    lin = lin + proj.bias
                assert torch.allclose(lin, got.reshape(T, -1), atol=1e-5, rtol=1e-5)
            # non-HF RoPE: interleave-free complex rotation of pairs (i, i + Dh/2) in float64
            qd = q_pre.double()
            c, s = ang.cos()[:, None, :], ang.sin()[:, None, :]
            x1, x2 = qd[..., : Dh // 2], qd[..., Dh // 2:]
            rq64 = torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)
            assert torch.allclose(rq64.float(), rq, atol=1e-5, rtol=1e-5), (rq64.float() - rq).abs().max()

    ref["ln_final.hook_normalized"] = sq(cap["ln_final.hook_normalized"])
    ref["logits"] = sq(out.logits)
    with torch.no_grad():
        logits_re = model.lm_head(lm.norm(cap["_final_resid"]))
    assert torch.equal(sq(logits_re), ref["logits"])
    logits_mm = ref["ln_final.hook_normalized"] @ model.lm_head.weight.T
    assert torch.allclose(logits_mm, ref["logits"], atol=1e-4, rtol=1e-4)
    assert ref["logits"].shape == (T, cfg.vocab_size)

    # greedy generation
    n_new = min(mf.GEN_TOKENS, n_positions - T)
    V = cfg.vocab_size
    with torch.no_grad():
        gen = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            max_new_tokens=n_new,
            min_new_tokens=0,
            pad_token_id=V - 1,
            eos_token_id=V - 1,
        )
    new = gen[0, T:].tolist()
    # independent greedy loop without KV cache
    seq = list(ids)
    manual = []
    with torch.no_grad():
        for _ in range(n_new):
            lg = model(torch.tensor([seq]), use_cache=False).logits[0, -1]
            nxt = int(torch.argmax(lg))
            manual.append(nxt)
            seq.append(nxt)
            if nxt == V - 1:
                break
    assert new == manual, (new, manual)
    assert len(new) == n_new, f"generation stopped early at EOS: {new}"
    assert int(torch.argmax(ref["logits"][-1])) == new[0] if new else True
    ref["generated"] = torch.tensor(new, dtype=torch.int64)

    shapes = {"hook_embed": (T, D), "ln_final.hook_normalized": (T, D), "logits": (T, V)}
    for l in range(L):
        p = f"blocks.{l}."
        for n in ("hook_resid_pre", "ln1.hook_normalized", "hook_attn_out", "hook_resid_mid",
                  "ln2.hook_normalized", "hook_mlp_out", "hook_resid_post"):
            shapes[p + n] = (T, D)
        shapes.update({p + "attn.hook_q": (T, H, Dh), p + "attn.hook_rot_q": (T, H, Dh), p + "attn.hook_z": (T, H, Dh),
                       p + "attn.hook_k": (T, Hkv, Dh), p + "attn.hook_v": (T, Hkv, Dh),
                       p + "attn.hook_rot_k": (T, Hkv, Dh), p + "attn.hook_attn_scores": (H, T, T),
                       p + "attn.hook_pattern": (H, T, T), p + "mlp.hook_pre": (T, I), p + "mlp.hook_pre_linear": (T, I),
                       p + "mlp.hook_post": (T, I)})
        if qk_norm:
            shapes.update({p + "attn.q_norm.hook_normalized": (T, H, Dh), p + "attn.k_norm.hook_normalized": (T, Hkv, Dh)})
    assert set(ref) == set(shapes) | {"tokens", "generated"}, sorted(set(ref) ^ (set(shapes) | {"tokens", "generated"}))
    for k_, v_ in ref.items():
        if k_ not in ("tokens", "generated"):
            assert v_.dtype == torch.float32, k_
            assert tuple(v_.shape) == shapes[k_], (k_, v_.shape, shapes[k_])
            if "attn_scores" not in k_:
                assert torch.isfinite(v_).all(), k_
        assert v_.is_contiguous()
    return ref


# --------------------------------------------------------------------------- main

def main():
    train_text, heldout = mf.split_corpus()
    # The shared tokenizer is exactly what make_fixtures.py trains for vocab 1021.
    retrained = mf.train_tokenizer(train_text, VOCAB)
    src = Tokenizer.from_file(str(SOURCE_TOKENIZER))
    assert src.get_vocab() == retrained.get_vocab(), "gpt2-odd-a/tokenizer.json is stale"
    summary = {}
    for spec in FIXTURE_SPECS:
        outdir = FIXTURES / spec["name"]
        outdir.mkdir(parents=True, exist_ok=True)
        NP = spec["max_position_embeddings"]

        shutil.copyfile(SOURCE_TOKENIZER, outdir / "tokenizer.json")
        tok = Tokenizer.from_file(str(outdir / "tokenizer.json"))
        assert tok.get_vocab_size() == VOCAB and tok.token_to_id(mf.EOT) == EOT_ID
        long_prompt = mf.pick_long_prompt(tok, heldout, NP)
        prompts = [mf.PROMPT_0, mf.PROMPT_1, long_prompt]
        mf.check_roundtrip(tok, prompts + mf.TOKENIZER_STRINGS + [heldout[:3000]])
        assert mf.encode(tok, "a" + mf.EOT + "b")[1] == EOT_ID

        model = make_model(spec)
        names = save_model(model, spec, outdir)

        prompt_info = []
        refs = {}
        for k, text in enumerate(prompts):
            ids = mf.encode(tok, text)
            assert ids == tok.encode(text, add_special_tokens=True).ids  # no BOS is ever added
            assert 0 < len(ids) <= NP
            if k == 2:
                assert len(ids) == NP - 6, (len(ids), NP)
            ref = run_reference(model, ids, NP)
            save_file(ref, str(outdir / f"ref-{k}.safetensors"), metadata={"format": "pt"})
            os.chmod(outdir / f"ref-{k}.safetensors", 0o644)
            refs[k] = ref
            prompt_info.append({"k": k, "text": text, "ids": ids, "n_tokens": len(ids),
                                "generated": ref["generated"].tolist()})
        mf.dump_json_list(outdir / "prompts.json", prompt_info)
        for k, ref in refs.items():  # what was written is what was checked
            back = load_file(str(outdir / f"ref-{k}.safetensors"))
            assert set(back) == set(ref) and all(torch.equal(back[n], ref[n]) for n in ref)
        reload_and_check(outdir, spec, refs)
        size = sum(f.stat().st_size for f in outdir.iterdir())
        summary[spec["name"]] = {"tensors": len(names), "prompt_tokens": [p["n_tokens"] for p in prompt_info],
                                 "generated": [len(p["generated"]) for p in prompt_info], "bytes": size}
        print(spec["name"], summary[spec["name"]], flush=True)

    print("versions:", "torch", torch.__version__, "numpy", np.__version__, file=sys.stderr)
    print("ok")


if __name__ == "__main__":
    main()
