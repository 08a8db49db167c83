#!/usr/bin/env python3
"""Generate the GPT-NeoX (Pythia) reference fixtures for outlier-probe's Rust tests (tests/gpt_neox.rs).

Writes, under tests/fixtures/:
  * gpt-neox-odd-a/: parallel residual (use_parallel_residual, as Pythia), hidden 51, 3 heads of
    17, rotary_pct 0.25 (4 rotated dims per head, 13 passed through), 3 layers, intermediate 97,
    exact-erf GELU, untied embed_out, q/k/v and dense biases; config.json written the way the
    Pythia checkpoints on the Hub write it (top-level `rotary_pct`, `rotary_emb_base`);
  * gpt-neox-odd-b/: sequential residual (use_parallel_residual false), hidden 40, 2 heads of 20,
    partial_rotary_factor 0.4 (8 of 20 dims rotated), 2 layers, intermediate 72, tanh GELU
    (gelu_new), no attention biases (attention_bias false), tied embeddings; config.json as
    transformers 5 writes it (rope_parameters).
Each with model.safetensors (Pythia names: gpt_neox.*, embed_out.weight), tokenizer.json (a copy
of gpt2-odd-a's byte-level BPE, vocab 1021, <|endoftext|> = 1020), prompts.json and
ref-{0,1,2}.safetensors holding every TransformerLens hook of the HF forward pass plus greedy
generations. Every LayerNorm weight and bias and every linear bias is randomised.

hook_q/k/v are transformers' per-head q, k and v (the [H, 3·Dh] view of query_key_value's output,
chunked in three); a parallel block has no hook_resid_mid (attention and MLP both read
hook_resid_pre), so odd-a holds none.

Deterministic (fixed seeds), CPU, float32, attn_implementation="eager". Helpers come from
make_fixtures.py (corpus, prompts) and make_llama_fixtures.py (AttnSpy). Re-run with:

    python3 -m venv v && v/bin/pip install -r tools/reference/requirements.txt \
        && v/bin/python tools/reference/make_gpt_neox_fixtures.py
"""

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (sets deterministic torch, single thread)
import make_llama_fixtures as ml  # noqa: E402  (AttnSpy)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM  # noqa: E402
from transformers.models.gpt_neox import modeling_gpt_neox  # noqa: E402

FIXTURES = mf.FIXTURES
SOURCE_TOKENIZER = FIXTURES / "gpt2-odd-a" / "tokenizer.json"
VOCAB = 1021
EOT_ID = VOCAB - 1

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

SPECS = [
    dict(name="gpt-neox-odd-a", hidden_size=51, num_attention_heads=3, intermediate_size=97,
         num_hidden_layers=3, max_position_embeddings=24, layer_norm_eps=1e-5, rope_theta=10000.0,
         partial=0.25, rotary_ndims=4, parallel=True, hidden_act="gelu", attention_bias=True,
         tie_word_embeddings=False, pythia_config=True, seed=7007),
    dict(name="gpt-neox-odd-b", hidden_size=40, num_attention_heads=2, intermediate_size=72,
         num_hidden_layers=2, max_position_embeddings=24, layer_norm_eps=1e-6, rope_theta=500.0,
         partial=0.4, rotary_ndims=8, parallel=False, hidden_act="gelu_new", attention_bias=False,
         tie_word_embeddings=True, pythia_config=False, seed=8008),
]


# --------------------------------------------------------------------------- model

def make_model(spec) -> GPTNeoXForCausalLM:
    config = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=spec["hidden_size"],
        intermediate_size=spec["intermediate_size"],
        num_hidden_layers=spec["num_hidden_layers"],
        num_attention_heads=spec["num_attention_heads"],
        hidden_act=spec["hidden_act"],
        max_position_embeddings=spec["max_position_embeddings"],
        initializer_range=0.1,
        layer_norm_eps=spec["layer_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": spec["rope_theta"],
                         "partial_rotary_factor": spec["partial"]},
        use_parallel_residual=spec["parallel"],
        attention_bias=spec["attention_bias"],
        bos_token_id=EOT_ID,
        eos_token_id=EOT_ID,
        pad_token_id=None,
        tie_word_embeddings=spec["tie_word_embeddings"],
        attn_implementation="eager",
    )
    torch.manual_seed(spec["seed"])
    model = GPTNeoXForCausalLM(config)
    model.config._attn_implementation = "eager"
    model.eval()
    for layer in model.gpt_neox.layers:
        assert layer.attention.rotary_ndims == spec["rotary_ndims"], layer.attention.rotary_ndims
    g = torch.Generator().manual_seed(spec["seed"] + 7)
    with torch.no_grad():
        n_norms = 0
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                n_norms += 1
        assert n_norms == 2 * spec["num_hidden_layers"] + 1, n_norms
        n_bias = 0
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and m.bias is not None:
                m.bias.copy_(0.5 * torch.randn(m.bias.shape, generator=g))
                n_bias += 1
        per_layer = 4 if spec["attention_bias"] else 2
        assert n_bias == per_layer * spec["num_hidden_layers"], n_bias
    tied = model.lm_head.weight.data_ptr() == model.gpt_neox.embed_in.weight.data_ptr()
    assert tied == spec["tie_word_embeddings"], ("tie state", tied)
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32, name
        if "layernorm" in name or "layer_norm" in name or name.endswith(".bias"):
            continue
        s = float(p.detach().std())
        assert 0.085 < s < 0.115, (name, s)  # initializer_range = 0.1 was honoured
    return model


def save_model(model: GPTNeoXForCausalLM, spec, outdir: Path):
    sd = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight":
            if spec["tie_word_embeddings"]:
                continue
            k = "embed_out.weight"  # the name Pythia checkpoints (and save_pretrained) use
        sd[k] = v.detach().contiguous().clone()
    L = spec["num_hidden_layers"]
    expected = {"gpt_neox.embed_in.weight", "gpt_neox.final_layer_norm.weight",
                "gpt_neox.final_layer_norm.bias"}
    for l in range(L):
        p = f"gpt_neox.layers.{l}."
        expected |= {p + s + ".weight" for s in (
            "input_layernorm", "post_attention_layernorm", "attention.query_key_value",
            "attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h")}
        expected |= {p + s + ".bias" for s in (
            "input_layernorm", "post_attention_layernorm", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h")}
        if spec["attention_bias"]:
            expected |= {p + "attention.query_key_value.bias", p + "attention.dense.bias"}
    if not spec["tie_word_embeddings"]:
        expected.add("embed_out.weight")
    assert set(sd) == expected, sorted(set(sd) ^ expected)
    D, I = spec["hidden_size"], spec["intermediate_size"]
    assert sd["gpt_neox.layers.0.attention.query_key_value.weight"].shape == (3 * D, D)
    assert sd["gpt_neox.layers.0.mlp.dense_4h_to_h.weight"].shape == (D, I)
    save_file(sd, str(outdir / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(outdir / "model.safetensors", 0o644)

    model.config.to_json_file(str(outdir / "config.json"))
    cfg = json.loads((outdir / "config.json").read_text())
    assert cfg["rope_parameters"] == {"rope_type": "default", "rope_theta": spec["rope_theta"],
                                      "partial_rotary_factor": spec["partial"]}, cfg["rope_parameters"]
    if spec["pythia_config"]:
        # As the Pythia checkpoints write it (transformers 4): legacy rope fields at the top level.
        del cfg["rope_parameters"]
        cfg["rotary_pct"] = spec["partial"]
        cfg["rotary_emb_base"] = int(spec["rope_theta"])
        (outdir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    for key, want in [("model_type", "gpt_neox"), ("hidden_size", D), ("intermediate_size", I),
                      ("num_hidden_layers", L), ("num_attention_heads", spec["num_attention_heads"]),
                      ("layer_norm_eps", spec["layer_norm_eps"]), ("hidden_act", spec["hidden_act"]),
                      ("max_position_embeddings", spec["max_position_embeddings"]),
                      ("tie_word_embeddings", spec["tie_word_embeddings"]), ("vocab_size", VOCAB),
                      ("bos_token_id", EOT_ID), ("eos_token_id", EOT_ID),
                      ("use_parallel_residual", spec["parallel"]), ("attention_bias", spec["attention_bias"])]:
        assert cfg.get(key) == want, (key, cfg.get(key), want)
    return sorted(sd)


def reload_and_check(outdir: Path, spec, ref_by_k):
    """from_pretrained(outdir) reads the config (legacy rope fields included) and the Pythia names
    as intended and reproduces the stored logits exactly."""
    stored = load_file(str(outdir / "model.safetensors"))
    fresh, info = GPTNeoXForCausalLM.from_pretrained(
        str(outdir), dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    fresh.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    fsd = fresh.state_dict()
    for k, v in stored.items():
        fk = "lm_head.weight" if k == "embed_out.weight" else k
        assert torch.equal(fsd[fk], v), k
    assert fresh.config.rope_parameters["partial_rotary_factor"] == spec["partial"]
    assert fresh.config.rope_parameters["rope_theta"] == spec["rope_theta"]
    assert fresh.gpt_neox.layers[0].attention.rotary_ndims == spec["rotary_ndims"]
    tied = fresh.lm_head.weight.data_ptr() == fresh.gpt_neox.embed_in.weight.data_ptr()
    assert tied == spec["tie_word_embeddings"], ("reloaded tie state", tied)
    with torch.no_grad():
        for k, ref in ref_by_k.items():
            lg = fresh(ref["tokens"][None], use_cache=False).logits[0]
            assert torch.equal(lg, ref["logits"]), (outdir.name, k, (lg - ref["logits"]).abs().max())


# --------------------------------------------------------------------------- reference capture

def greedy(model, ids: list, n_positions: int):
    """transformers' greedy generate, checked against a loop without KV cache."""
    V = model.config.vocab_size
    T = len(ids)
    n_new = min(mf.GEN_TOKENS, n_positions - T)
    input_ids = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad():
        gen = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                             max_new_tokens=n_new, min_new_tokens=0, pad_token_id=V - 1, eos_token_id=V - 1)
    new = gen[0, T:].tolist()
    seq, manual = list(ids), []
    with torch.no_grad():
        for _ in range(n_new):
            nxt = int(torch.argmax(model(torch.tensor([seq]), use_cache=False).logits[0, -1]))
            manual.append(nxt)
            seq.append(nxt)
            if nxt == V - 1:
                break
    assert new == manual, (new, manual)
    assert len(new) == n_new, f"generation stopped early at EOS: {new}"
    return new


def run_reference(model: GPTNeoXForCausalLM, ids: list, n_positions: int):
    cfg = model.config
    D, H, I, L = cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size, cfg.num_hidden_layers
    Dh = D // H
    R = model.gpt_neox.layers[0].attention.rotary_ndims
    parallel = cfg.use_parallel_residual
    T = len(ids)
    nx = model.gpt_neox
    cap = {}
    handles = []

    def out_hook(name):
        def f(_m, _inp, out):
            cap[name] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        return f

    def in_hook(name):
        def f(_m, inp):
            cap[name] = inp[0].detach().clone()
        return f

    def in_hook_kw(name):
        def f(_m, args, kwargs):
            cap[name] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
        return f

    handles.append(nx.embed_in.register_forward_hook(out_hook("hook_embed")))
    for l, blk in enumerate(nx.layers):
        p = f"blocks.{l}."
        at, mlp = blk.attention, blk.mlp
        handles.append(blk.register_forward_pre_hook(in_hook_kw(p + "hook_resid_pre"), with_kwargs=True))
        handles.append(blk.register_forward_hook(out_hook(p + "hook_resid_post")))
        handles.append(blk.input_layernorm.register_forward_hook(out_hook(p + "ln1.hook_normalized")))
        handles.append(at.query_key_value.register_forward_hook(out_hook(p + "_qkv")))
        handles.append(at.dense.register_forward_pre_hook(in_hook(p + "_z_merged")))
        handles.append(at.dense.register_forward_hook(out_hook(p + "hook_attn_out")))
        handles.append(blk.post_attention_layernorm.register_forward_pre_hook(in_hook(p + "_ln2_in")))
        handles.append(blk.post_attention_layernorm.register_forward_hook(out_hook(p + "ln2.hook_normalized")))
        handles.append(mlp.dense_h_to_4h.register_forward_hook(out_hook(p + "mlp.hook_pre")))
        handles.append(mlp.dense_4h_to_h.register_forward_pre_hook(in_hook(p + "mlp.hook_post")))
        handles.append(mlp.dense_4h_to_h.register_forward_hook(out_hook(p + "hook_mlp_out")))
    handles.append(nx.final_layer_norm.register_forward_pre_hook(in_hook("_final_resid")))
    handles.append(nx.final_layer_norm.register_forward_hook(out_hook("ln_final.hook_normalized")))

    input_ids = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad(), ml.AttnSpy(modeling_gpt_neox) as spy:
        out = model(input_ids, output_hidden_states=True, output_attentions=True, use_cache=False)
    for h in handles:
        h.remove()
    assert len(spy.rot) == L and len(spy.attn) == L, (len(spy.rot), len(spy.attn))

    def sq(t):
        assert t.shape[0] == 1, t.shape
        return t[0].float().contiguous()

    ref = {"tokens": torch.tensor(ids, dtype=torch.int64)}
    ref["hook_embed"] = sq(cap["hook_embed"])
    assert torch.equal(ref["hook_embed"], nx.embed_in.weight[input_ids[0]])

    # Independent partial-RoPE angles: inv_freq over the R rotated dims only, positions 0..T-1.
    inv_freq = nx.rotary_emb.inv_freq
    assert inv_freq.shape == (R // 2,)
    theta = cfg.rope_parameters["rope_theta"]
    inv_ref = 1.0 / (theta ** (torch.arange(0, R, 2, dtype=torch.int64).float() / R))
    assert torch.equal(inv_freq, inv_ref), (inv_freq - inv_ref).abs().max()
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq.double()[None]  # [T, R/2]

    causal = torch.ones(T, T, dtype=torch.bool).tril()
    hs = out.hidden_states
    for l, blk in enumerate(nx.layers):
        p = f"blocks.{l}."
        at = blk.attention
        rot, att = spy.rot[l], spy.attn[l]
        assert att["layer"] == l
        ref[p + "hook_resid_pre"] = sq(cap[p + "hook_resid_pre"])
        assert torch.equal(ref[p + "hook_resid_pre"], sq(hs[l])), f"hidden_states[{l}]"
        ln1 = ref[p + "ln1.hook_normalized"] = sq(cap[p + "ln1.hook_normalized"])
        # query_key_value's output is per head: [T, H, (q | k | v) of Dh each]
        qkv = sq(cap[p + "_qkv"]).reshape(T, H, 3 * Dh)
        q, k, v = (qkv[..., i * Dh:(i + 1) * Dh].contiguous() for i in range(3))
        ref[p + "attn.hook_q"], ref[p + "attn.hook_k"], ref[p + "attn.hook_v"] = q, k, v
        assert torch.equal(sq(rot["q"]).transpose(0, 1), q)
        assert torch.equal(sq(rot["k"]).transpose(0, 1), k)
        rq = sq(rot["q_embed"]).transpose(0, 1).contiguous()
        rk = sq(rot["k_embed"]).transpose(0, 1).contiguous()
        ref[p + "attn.hook_rot_q"], ref[p + "attn.hook_rot_k"] = rq, rk
        # the dims past R pass through untouched
        assert torch.equal(rq[..., R:], q[..., R:]) and torch.equal(rk[..., R:], k[..., R:])
        assert torch.equal(sq(att["query"]).transpose(0, 1), rq)
        assert torch.equal(sq(att["key"]).transpose(0, 1), rk)
        assert torch.equal(sq(att["value"]).transpose(0, 1), v)
        assert att["scaling"] == Dh ** -0.5
        qh, kh, vh = rq.transpose(0, 1), rk.transpose(0, 1), v.transpose(0, 1)
        raw = torch.matmul(qh[None], kh[None].transpose(2, 3))[0] * att["scaling"]
        scores = raw.masked_fill(~causal, float("-inf"))
        m2 = att["mask"].reshape(-1, T, T)[0]
        assert (m2[causal] == 0).all() and (m2[~causal] < -1e30).all()
        ref[p + "attn.hook_attn_scores"] = scores.contiguous()
        pattern = sq(out.attentions[l])
        assert torch.equal(pattern, sq(att["weights"]))
        ref[p + "attn.hook_pattern"] = pattern
        assert torch.allclose(torch.softmax(scores, -1), pattern, atol=1e-6, rtol=1e-5)
        z = sq(cap[p + "_z_merged"]).reshape(T, H, Dh).contiguous()
        assert torch.equal(z, sq(att["out"]))
        ref[p + "attn.hook_z"] = z
        assert torch.allclose(torch.matmul(pattern, vh).transpose(0, 1), z, atol=1e-6, rtol=1e-5)
        ref[p + "hook_attn_out"] = sq(cap[p + "hook_attn_out"])
        resid_pre, attn_out = ref[p + "hook_resid_pre"], ref[p + "hook_attn_out"]
        ln2_in = sq(cap[p + "_ln2_in"])
        if parallel:
            assert torch.equal(ln2_in, resid_pre)  # both branches read the block's input
        else:
            ref[p + "hook_resid_mid"] = ln2_in
            assert torch.equal(ln2_in, attn_out + resid_pre)
        ref[p + "ln2.hook_normalized"] = sq(cap[p + "ln2.hook_normalized"])
        ref[p + "mlp.hook_pre"] = sq(cap[p + "mlp.hook_pre"])
        ref[p + "mlp.hook_post"] = sq(cap[p + "mlp.hook_post"])
        ref[p + "hook_mlp_out"] = sq(cap[p + "hook_mlp_out"])
        ref[p + "hook_resid_post"] = sq(cap[p + "hook_resid_post"])
        mlp_out = ref[p + "hook_mlp_out"]
        want_post = (mlp_out + attn_out + resid_pre) if parallel else (mlp_out + ln2_in)
        assert torch.equal(ref[p + "hook_resid_post"], want_post)
        if l + 1 < L:
            assert torch.equal(ref[p + "hook_resid_post"], sq(hs[l + 1]))
        else:
            assert torch.equal(ref[p + "hook_resid_post"], sq(cap["_final_resid"]))
        # independent re-computations (loose tolerances, not HF code paths), in float64
        with torch.no_grad():
            for x, norm, name in [(resid_pre, blk.input_layernorm, "ln1"), (ln2_in, blk.post_attention_layernorm, "ln2")]:
                xd = x.double()
                mu, var = xd.mean(-1, keepdim=True), xd.var(-1, unbiased=False, keepdim=True)
                y = (xd - mu) / torch.sqrt(var + cfg.layer_norm_eps) * norm.weight.double() + norm.bias.double()
                assert torch.allclose(y.float(), ref[p + name + ".hook_normalized"], atol=1e-5, rtol=1e-5), name
            W = at.query_key_value.weight.double().reshape(H, 3, Dh, D)
            for i, got in enumerate((q, k, v)):
                lin = torch.einsum("td,hed->the", ln1.double(), W[:, i])
                if at.query_key_value.bias is not None:
                    b = at.query_key_value.bias.double().reshape(H, 3, Dh)[:, i]
                    assert (lin - got.double()).abs().max() > 0.1  # the biases are there and matter
                    lin = lin + b
                assert torch.allclose(lin.float(), got, atol=1e-5, rtol=1e-5), i
            c, s = ang.cos()[:, None, :], ang.sin()[:, None, :]
            for x, got in ((q, rq), (k, rk)):
                xd = x.double()
                x1, x2 = xd[..., : R // 2], xd[..., R // 2: R]
                r64 = torch.cat([x1 * c - x2 * s, x2 * c + x1 * s, xd[..., R:]], -1)
                assert torch.allclose(r64.float(), got, atol=1e-5, rtol=1e-5), (r64.float() - got).abs().max()
            a = ref[p + "mlp.hook_pre"].double()
            if cfg.hidden_act == "gelu":
                act = 0.5 * a * (1.0 + torch.erf(a / np.sqrt(2.0)))
            else:
                act = 0.5 * a * (1.0 + torch.tanh(np.sqrt(2.0 / np.pi) * (a + 0.044715 * a ** 3)))
            assert torch.allclose(act.float(), ref[p + "mlp.hook_post"], atol=1e-5, rtol=1e-5)

    ref["ln_final.hook_normalized"] = sq(cap["ln_final.hook_normalized"])
    ref["logits"] = sq(out.logits)
    logits_mm = ref["ln_final.hook_normalized"] @ model.lm_head.weight.T
    assert torch.allclose(logits_mm, ref["logits"], atol=1e-4, rtol=1e-4)
    new = greedy(model, ids, n_positions)
    if new:
        assert int(torch.argmax(ref["logits"][-1])) == new[0]
    ref["generated"] = torch.tensor(new, dtype=torch.int64)

    V = cfg.vocab_size
    shapes = {"hook_embed": (T, D), "ln_final.hook_normalized": (T, D), "logits": (T, V)}
    for l in range(L):
        p = f"blocks.{l}."
        for n in ("hook_resid_pre", "ln1.hook_normalized", "hook_attn_out", "ln2.hook_normalized",
                  "hook_mlp_out", "hook_resid_post") + (() if parallel else ("hook_resid_mid",)):
            shapes[p + n] = (T, D)
        for n in ("hook_q", "hook_k", "hook_v", "hook_rot_q", "hook_rot_k", "hook_z"):
            shapes[p + "attn." + n] = (T, H, Dh)
        shapes.update({p + "attn.hook_attn_scores": (H, T, T), p + "attn.hook_pattern": (H, T, T),
                       p + "mlp.hook_pre": (T, I), p + "mlp.hook_post": (T, I)})
    assert set(ref) == set(shapes) | {"tokens", "generated"}, sorted(set(ref) ^ (set(shapes) | {"tokens", "generated"}))
    for k_, v_ in ref.items():
        if k_ not in ("tokens", "generated"):
            assert v_.dtype == torch.float32 and tuple(v_.shape) == shapes[k_], (k_, v_.shape)
            if "attn_scores" not in k_:
                assert torch.isfinite(v_).all(), k_
        assert v_.is_contiguous()
    return ref


# --------------------------------------------------------------------------- main

def main():
    train_text, heldout = mf.split_corpus()
    retrained = mf.train_tokenizer(train_text, VOCAB)
    src = Tokenizer.from_file(str(SOURCE_TOKENIZER))
    assert src.get_vocab() == retrained.get_vocab(), "gpt2-odd-a/tokenizer.json is stale"
    for spec in SPECS:
        outdir = FIXTURES / spec["name"]
        outdir.mkdir(parents=True, exist_ok=True)
        NP = spec["max_position_embeddings"]
        shutil.copyfile(SOURCE_TOKENIZER, outdir / "tokenizer.json")
        tok = Tokenizer.from_file(str(outdir / "tokenizer.json"))
        assert tok.get_vocab_size() == VOCAB and tok.token_to_id(mf.EOT) == EOT_ID
        long_prompt = mf.pick_long_prompt(tok, heldout, NP)
        prompts = [mf.PROMPT_0, mf.PROMPT_1, long_prompt]
        mf.check_roundtrip(tok, prompts + mf.TOKENIZER_STRINGS + [heldout[:3000]])

        model = make_model(spec)
        names = save_model(model, spec, outdir)
        prompt_info, refs = [], {}
        for k, text in enumerate(prompts):
            ids = mf.encode(tok, text)
            assert 0 < len(ids) <= NP
            ref = run_reference(model, ids, NP)
            save_file(ref, str(outdir / f"ref-{k}.safetensors"), metadata={"format": "pt"})
            os.chmod(outdir / f"ref-{k}.safetensors", 0o644)
            refs[k] = ref
            prompt_info.append({"k": k, "text": text, "ids": ids, "n_tokens": len(ids),
                                "generated": ref["generated"].tolist()})
        mf.dump_json_list(outdir / "prompts.json", prompt_info)
        for k, ref in refs.items():
            back = load_file(str(outdir / f"ref-{k}.safetensors"))
            assert set(back) == set(ref) and all(torch.equal(back[n], ref[n]) for n in ref)
        reload_and_check(outdir, spec, refs)
        size = sum(f.stat().st_size for f in outdir.iterdir() if f.suffix != ".gguf")
        assert size < 1_400_000, size
        print(spec["name"], {"tensors": len(names), "prompt_tokens": [p["n_tokens"] for p in prompt_info],
                             "generated": [len(p["generated"]) for p in prompt_info], "bytes": size}, flush=True)
    print("versions:", "torch", torch.__version__, "numpy", np.__version__, file=sys.stderr)
    print("ok")


if __name__ == "__main__":
    main()
