#!/usr/bin/env python3
"""Generate the Gemma 3 reference fixture for outlier-probe's Rust tests (tests/gemma3.rs).

Writes tests/fixtures/gemma3-odd-a/: a tiny random-init Gemma3ForCausalLM (model_type
gemma3_text) of odd sizes: hidden 40, 5 query heads / 1 key-value head, head_dim 12 (so the
query width 60 is not hidden_size), 4 layers of which layers 0, 1 and 3 slide over a window of
4 tokens (shorter than every prompt but "Hello") and layer 2 is full, intermediate 26, RoPE base
1e6 with linear scaling (factor 2) on the full layer and 1e4 on the sliding ones,
query_pre_attn_scalar 20 (not head_dim), tied embeddings scaled by sqrt(40), f32 weights, every
RMSNorm weight (the four block norms, q_norm, k_norm, the final norm) randomised.
config.json as transformers 5 writes it, model.safetensors, tokenizer.json (a copy of
gpt2-odd-a's trained byte-level BPE, vocab 1021, <|endoftext|> = 1020), prompts.json and
ref-{0,1,2}.safetensors holding every hook (TransformerLens names for Gemma: ln1, ln1_post, ln2,
ln2_post, attn.q_norm / attn.k_norm, hook_rot_q/k, …) of the HF forward pass, plus greedy
generations long enough that decoding crosses the window.

Hook definitions (as TransformerLens's Gemma blocks): hook_embed is the scaled embedding (the
residual stream's first value); attn.hook_q/k/v are the projections before q_norm/k_norm;
attn.q_norm.hook_normalized / attn.k_norm.hook_normalized after the per-head norms, before RoPE;
hook_attn_out = ln1_post.hook_normalized (the attention output after post_attention_layernorm,
what is added to the residual), hook_mlp_out = ln2_post.hook_normalized (after
post_feedforward_layernorm); ln2.hook_normalized is pre_feedforward_layernorm's output; the
attention scores are scaled, with −inf where the causal or sliding-window mask removes a key.

Deterministic (fixed seeds), CPU, float32, attn_implementation="eager". Helpers (corpus split,
prompt choice, JSON dump) come from make_fixtures.py, which must have been run first (for the
tokenizer). Re-run with:

    python3 -m venv v && v/bin/pip install -r tools/reference/requirements.txt \
        && v/bin/python tools/reference/make_gemma3_fixtures.py
"""

import json
import math
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
from transformers import Gemma3ForCausalLM, Gemma3TextConfig  # noqa: E402
from transformers.models.gemma3 import modeling_gemma3  # noqa: E402

FIXTURES = mf.FIXTURES
SOURCE_TOKENIZER = FIXTURES / "gpt2-odd-a" / "tokenizer.json"
VOCAB = 1021
EOT_ID = VOCAB - 1

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

LAYER_TYPES = ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"]
SPEC = dict(name="gemma3-odd-a", hidden_size=40, num_attention_heads=5, num_key_value_heads=1,
            head_dim=12, intermediate_size=26, num_hidden_layers=4, max_position_embeddings=24,
            rms_norm_eps=1e-6, sliding_window=4, query_pre_attn_scalar=20, rope_full=1e6,
            rope_full_factor=2.0, rope_local=1e4, seed=7007)


# --------------------------------------------------------------------------- model

def make_model(spec) -> Gemma3ForCausalLM:
    config = Gemma3TextConfig(
        vocab_size=VOCAB,
        hidden_size=spec["hidden_size"],
        intermediate_size=spec["intermediate_size"],
        num_hidden_layers=spec["num_hidden_layers"],
        num_attention_heads=spec["num_attention_heads"],
        num_key_value_heads=spec["num_key_value_heads"],
        head_dim=spec["head_dim"],
        hidden_activation="gelu_pytorch_tanh",
        max_position_embeddings=spec["max_position_embeddings"],
        initializer_range=0.1,
        rms_norm_eps=spec["rms_norm_eps"],
        query_pre_attn_scalar=spec["query_pre_attn_scalar"],
        sliding_window=spec["sliding_window"],
        layer_types=LAYER_TYPES,
        rope_parameters={
            "full_attention": {"rope_type": "linear", "factor": spec["rope_full_factor"],
                               "rope_theta": spec["rope_full"]},
            "sliding_attention": {"rope_type": "default", "rope_theta": spec["rope_local"]},
        },
        bos_token_id=EOT_ID,
        eos_token_id=EOT_ID,
        pad_token_id=None,
        tie_word_embeddings=True,
        attn_implementation="eager",
    )
    torch.manual_seed(spec["seed"])
    model = Gemma3ForCausalLM(config)
    model.config._attn_implementation = "eager"
    model.eval()
    g = torch.Generator().manual_seed(spec["seed"] + 7)
    with torch.no_grad():
        n_norms = 0
        for m in model.modules():
            if isinstance(m, modeling_gemma3.Gemma3RMSNorm):
                # Gemma's norm is x·(1 + w): w ~ N(0, 0.2²) keeps 1 + w away from 1.
                m.weight.copy_(0.2 * torch.randn(m.weight.shape, generator=g))
                n_norms += 1
        assert n_norms == 6 * spec["num_hidden_layers"] + 1, n_norms
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32, name
        if name.endswith("norm.weight"):
            assert 0.1 < float(p.detach().std()) < 0.35, name
            continue
        s = float(p.detach().std())
        assert 0.085 < s < 0.115, (name, s)  # initializer_range = 0.1 was honoured
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and name != "lm_head":
            assert m.bias is None, name
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


def save_model(model: Gemma3ForCausalLM, spec, outdir: Path):
    sd = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight":
            continue
        assert "rotary_emb" not in k and "embed_scale" not in k, k
        sd[k] = v.detach().contiguous().clone()
    expected = {"model.embed_tokens.weight", "model.norm.weight"}
    for l in range(spec["num_hidden_layers"]):
        p = f"model.layers.{l}."
        expected |= {p + s + ".weight" for s in (
            "input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
            "post_feedforward_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
            "self_attn.o_proj", "self_attn.q_norm", "self_attn.k_norm", "mlp.gate_proj", "mlp.up_proj",
            "mlp.down_proj")}
    assert set(sd) == expected, sorted(set(sd) ^ expected)
    D, H, Hkv, Dh, I = (spec[k] for k in ("hidden_size", "num_attention_heads", "num_key_value_heads",
                                          "head_dim", "intermediate_size"))
    assert H * Dh != D
    assert sd["model.layers.0.self_attn.q_proj.weight"].shape == (H * Dh, D)
    assert sd["model.layers.0.self_attn.k_proj.weight"].shape == (Hkv * Dh, D)
    assert sd["model.layers.0.self_attn.o_proj.weight"].shape == (D, H * Dh)
    assert sd["model.layers.0.self_attn.q_norm.weight"].shape == (Dh,)
    assert sd["model.layers.0.mlp.down_proj.weight"].shape == (D, I)
    save_file(sd, str(outdir / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(outdir / "model.safetensors", 0o644)

    model.config.to_json_file(str(outdir / "config.json"))
    cfg = json.loads((outdir / "config.json").read_text())
    for key, want in [("model_type", "gemma3_text"), ("hidden_size", D), ("intermediate_size", I),
                      ("num_hidden_layers", spec["num_hidden_layers"]), ("num_attention_heads", H),
                      ("num_key_value_heads", Hkv), ("head_dim", Dh), ("rms_norm_eps", spec["rms_norm_eps"]),
                      ("max_position_embeddings", spec["max_position_embeddings"]),
                      ("tie_word_embeddings", True), ("vocab_size", VOCAB), ("bos_token_id", EOT_ID),
                      ("eos_token_id", EOT_ID), ("hidden_activation", "gelu_pytorch_tanh"),
                      ("sliding_window", spec["sliding_window"]), ("layer_types", LAYER_TYPES),
                      ("query_pre_attn_scalar", spec["query_pre_attn_scalar"]),
                      ("attn_logit_softcapping", None), ("final_logit_softcapping", None)]:
        assert cfg.get(key) == want, (key, cfg.get(key), want)
    rp = cfg["rope_parameters"]
    assert rp["full_attention"]["rope_type"] == "linear" and rp["full_attention"]["factor"] == 2.0, rp
    assert rp["full_attention"]["rope_theta"] == spec["rope_full"], rp
    assert rp["sliding_attention"] == {"rope_type": "default", "rope_theta": spec["rope_local"]}, rp
    return sorted(sd)


def reload_and_check(outdir: Path, ref_by_k):
    """from_pretrained(outdir) reproduces the stored logits exactly."""
    fresh, info = Gemma3ForCausalLM.from_pretrained(
        str(outdir), dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    fresh.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    stored = load_file(str(outdir / "model.safetensors"))
    fsd = fresh.state_dict()
    for k, v in stored.items():
        assert torch.equal(fsd[k], v), k
    with torch.no_grad():
        for k, ref in ref_by_k.items():
            lg = fresh(ref["tokens"][None], use_cache=False).logits[0]
            assert torch.equal(lg, ref["logits"]), (k, (lg - ref["logits"]).abs().max())


# --------------------------------------------------------------------------- reference capture

class Spy:
    """Records what `apply_rotary_pos_emb` and `eager_attention_forward` of modeling_gemma3
    receive and return (both are looked up in the module's globals at call time)."""

    def __enter__(self):
        self.rot, self.attn = [], []
        self._rope = modeling_gemma3.apply_rotary_pos_emb
        self._eager = modeling_gemma3.eager_attention_forward
        spy = self

        def rope(q, k, cos, sin, *a, **kw):
            qe, ke = spy._rope(q, k, cos, sin, *a, **kw)
            spy.rot.append(dict(q=q.clone(), k=k.clone(), cos=cos.clone(), sin=sin.clone(), qe=qe.clone(),
                                ke=ke.clone()))
            return qe, ke

        def eager(module, query, key, value, attention_mask, *a, **kw):
            out, w = spy._eager(module, query, key, value, attention_mask, *a, **kw)
            spy.attn.append(dict(layer=module.layer_idx, query=query.clone(), key=key.clone(),
                                 value=value.clone(), mask=attention_mask.clone(), out=out.clone(),
                                 weights=w.clone(), scaling=kw.get("scaling"),
                                 window=kw.get("sliding_window")))
            return out, w

        modeling_gemma3.apply_rotary_pos_emb = rope
        modeling_gemma3.eager_attention_forward = eager
        return self

    def __exit__(self, *exc):
        modeling_gemma3.apply_rotary_pos_emb = self._rope
        modeling_gemma3.eager_attention_forward = self._eager
        return False


def rope_tables(theta, factor, T, Dh):
    """cos, sin [T, Dh] in float64 from first principles (rotate_half layout)."""
    inv = 1.0 / (theta ** (np.arange(0, Dh, 2, dtype=np.float64) / Dh)) / factor
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None]
    c, s = np.cos(ang), np.sin(ang)
    return torch.tensor(np.concatenate([c, c], -1)), torch.tensor(np.concatenate([s, s], -1))


def run_reference(model, ids: list, n_positions: int):
    cfg = model.config
    D, H, Hkv, Dh, I = (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim,
                        cfg.intermediate_size)
    G, L, T, V = H // Hkv, cfg.num_hidden_layers, len(ids), cfg.vocab_size
    lm = model.model
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

    handles.append(lm.embed_tokens.register_forward_hook(out_hook("hook_embed")))
    for l, blk in enumerate(lm.layers):
        p = f"blocks.{l}."
        at, mlp = blk.self_attn, blk.mlp
        hooks = [
            (blk, "pre_kw", "hook_resid_pre"), (blk, "out", "hook_resid_post"),
            (blk.input_layernorm, "out", "ln1.hook_normalized"),
            (at.q_proj, "out", "_q"), (at.k_proj, "out", "_k"), (at.v_proj, "out", "_v"),
            (at.q_norm, "out", "_qn"), (at.k_norm, "out", "_kn"),
            (at.o_proj, "in", "_z"), (at.o_proj, "out", "_o"),
            (blk.post_attention_layernorm, "out", "ln1_post.hook_normalized"),
            (blk.pre_feedforward_layernorm, "in", "hook_resid_mid"),
            (blk.pre_feedforward_layernorm, "out", "ln2.hook_normalized"),
            (mlp.gate_proj, "out", "mlp.hook_pre"), (mlp.up_proj, "out", "mlp.hook_pre_linear"),
            (mlp.act_fn, "out", "_act"), (mlp.down_proj, "in", "mlp.hook_post"),
            (mlp.down_proj, "out", "_down"),
            (blk.post_feedforward_layernorm, "out", "ln2_post.hook_normalized"),
        ]
        for mod, kind, name in hooks:
            if kind == "out":
                handles.append(mod.register_forward_hook(out_hook(p + name)))
            elif kind == "in":
                handles.append(mod.register_forward_pre_hook(in_hook(p + name)))
            else:
                handles.append(mod.register_forward_pre_hook(in_hook_kw(p + name), with_kwargs=True))
    handles.append(lm.norm.register_forward_pre_hook(in_hook("_final_resid")))
    handles.append(lm.norm.register_forward_hook(out_hook("ln_final.hook_normalized")))

    input_ids = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad(), Spy() as spy:
        out = model(input_ids, output_hidden_states=True, output_attentions=True, use_cache=False)
    for h in handles:
        h.remove()
    assert len(spy.rot) == L and len(spy.attn) == L

    def sq(t):
        assert t.shape[0] == 1, t.shape
        return t[0].float().contiguous()

    ref = {"tokens": torch.tensor(ids, dtype=torch.int64)}
    emb = lm.embed_tokens.weight[input_ids[0]]
    ref["hook_embed"] = sq(cap["hook_embed"])
    scale = torch.tensor(D ** 0.5, dtype=torch.float32)
    assert torch.equal(ref["hook_embed"], emb * scale)
    assert torch.equal(ref["hook_embed"], sq(out.hidden_states[0]))

    def rms(x, w):  # Gemma's norm, float64 from first principles
        x = x.double()
        return (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps) * (1.0 + w.double())).float()

    def close(a, b, what, tol=1e-5):
        assert torch.allclose(a, b, atol=tol, rtol=tol), (what, (a - b).abs().max())

    causal = torch.ones(T, T, dtype=torch.bool).tril()
    i_idx, j_idx = torch.arange(T)[:, None], torch.arange(T)[None]
    slid = causal & (i_idx - j_idx < cfg.sliding_window)
    for l, blk in enumerate(lm.layers):
        p = f"blocks.{l}."
        at, mlp = blk.self_attn, blk.mlp
        sliding = cfg.layer_types[l] == "sliding_attention"
        rot, att = spy.rot[l], spy.attn[l]
        assert att["layer"] == l and att["window"] == (cfg.sliding_window if sliding else None)
        for n in ("hook_resid_pre", "ln1.hook_normalized", "ln1_post.hook_normalized", "hook_resid_mid",
                  "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_pre_linear", "mlp.hook_post",
                  "ln2_post.hook_normalized", "hook_resid_post"):
            ref[p + n] = sq(cap[p + n])
        assert torch.equal(ref[p + "hook_resid_pre"], sq(out.hidden_states[l]))
        ref[p + "hook_attn_out"] = ref[p + "ln1_post.hook_normalized"].clone()
        ref[p + "hook_mlp_out"] = ref[p + "ln2_post.hook_normalized"].clone()
        q = sq(cap[p + "_q"]).reshape(T, H, Dh).contiguous()
        k = sq(cap[p + "_k"]).reshape(T, Hkv, Dh).contiguous()
        v = sq(cap[p + "_v"]).reshape(T, Hkv, Dh).contiguous()
        ref[p + "attn.hook_q"], ref[p + "attn.hook_k"], ref[p + "attn.hook_v"] = q, k, v
        qn = sq(cap[p + "_qn"]).transpose(0, 1).contiguous()  # [1, H, T, Dh] -> [T, H, Dh]
        kn = sq(cap[p + "_kn"]).transpose(0, 1).contiguous()
        ref[p + "attn.q_norm.hook_normalized"], ref[p + "attn.k_norm.hook_normalized"] = qn, kn
        close(rms(q, at.q_norm.weight), qn, "q_norm")
        close(rms(k, at.k_norm.weight), kn, "k_norm")
        assert torch.equal(sq(rot["q"]).transpose(0, 1), qn) and torch.equal(sq(rot["k"]).transpose(0, 1), kn)
        rq = sq(rot["qe"]).transpose(0, 1).contiguous()
        rk = sq(rot["ke"]).transpose(0, 1).contiguous()
        ref[p + "attn.hook_rot_q"], ref[p + "attn.hook_rot_k"] = rq, rk
        theta, factor = (SPEC["rope_local"], 1.0) if sliding else (SPEC["rope_full"], SPEC["rope_full_factor"])
        c64, s64 = rope_tables(theta, factor, T, Dh)
        close(rot["cos"][0].double(), c64, "cos")
        close(rot["sin"][0].double(), s64, "sin")
        for x, r_ in [(qn, rq), (kn, rk)]:
            xd = x.double()
            rot64 = xd * c64[:, None] + torch.cat([-xd[..., Dh // 2:], xd[..., : Dh // 2]], -1) * s64[:, None]
            close(rot64.float(), r_, "rope")
        assert att["scaling"] == cfg.query_pre_attn_scalar ** -0.5
        kh = rk.transpose(0, 1)[torch.arange(H) // G]
        vh = v.transpose(0, 1)[torch.arange(H) // G]
        raw = torch.matmul(rq.transpose(0, 1)[None], kh[None].transpose(2, 3))[0] * att["scaling"]
        seen = slid if sliding else causal
        m2 = att["mask"].reshape(-1, T, T)[0]
        assert (m2[seen] == 0).all() and (m2[~seen] < -1e30).all(), (l, m2)
        if sliding and T > cfg.sliding_window:
            assert not torch.equal(slid, causal)
        scores = raw.masked_fill(~seen, float("-inf"))
        ref[p + "attn.hook_attn_scores"] = scores.contiguous()
        pattern = sq(out.attentions[l])
        assert torch.equal(pattern, sq(att["weights"]))
        close(torch.softmax(scores, -1), pattern, "pattern", 1e-5)
        assert (pattern[~seen.expand(H, T, T)] == 0).all()
        ref[p + "attn.hook_pattern"] = pattern
        z = sq(cap[p + "_z"]).reshape(T, H, Dh).contiguous()
        assert torch.equal(z, sq(att["out"]))
        close(torch.matmul(pattern, vh).transpose(0, 1), z, "z")
        ref[p + "attn.hook_z"] = z
        close(rms(sq(cap[p + "_o"]), blk.post_attention_layernorm.weight), ref[p + "hook_attn_out"], "ln1_post")
        assert torch.equal(ref[p + "hook_resid_mid"], ref[p + "hook_resid_pre"] + ref[p + "hook_attn_out"])
        close(rms(ref[p + "hook_resid_pre"], blk.input_layernorm.weight), ref[p + "ln1.hook_normalized"], "ln1")
        close(rms(ref[p + "hook_resid_mid"], blk.pre_feedforward_layernorm.weight),
              ref[p + "ln2.hook_normalized"], "ln2")
        a = ref[p + "mlp.hook_pre"].double()
        gelu = 0.5 * a * (1 + torch.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))
        close((gelu * ref[p + "mlp.hook_pre_linear"].double()).float(), ref[p + "mlp.hook_post"], "geglu")
        assert torch.equal(sq(cap[p + "_act"]) * ref[p + "mlp.hook_pre_linear"], ref[p + "mlp.hook_post"])
        close(rms(sq(cap[p + "_down"]), blk.post_feedforward_layernorm.weight), ref[p + "hook_mlp_out"], "ln2_post")
        assert torch.equal(ref[p + "hook_resid_post"], ref[p + "hook_resid_mid"] + ref[p + "hook_mlp_out"])
        nxt = out.hidden_states[l + 1] if l + 1 < L else cap["_final_resid"]
        assert torch.equal(ref[p + "hook_resid_post"], sq(nxt))
    ref["ln_final.hook_normalized"] = sq(cap["ln_final.hook_normalized"])
    ref["logits"] = sq(out.logits)
    close(ref["ln_final.hook_normalized"] @ model.lm_head.weight.T, ref["logits"], "logits", 1e-4)

    # greedy generation (KV cache, sliding windows over it), checked by a loop without cache
    n_new = min(mf.GEN_TOKENS, n_positions - T)
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
    ref["generated"] = torch.tensor(new, dtype=torch.int64)

    shapes = {"hook_embed": (T, D), "ln_final.hook_normalized": (T, D), "logits": (T, V)}
    for l in range(L):
        p = f"blocks.{l}."
        for n in ("hook_resid_pre", "ln1.hook_normalized", "ln1_post.hook_normalized", "hook_attn_out",
                  "hook_resid_mid", "ln2.hook_normalized", "ln2_post.hook_normalized", "hook_mlp_out",
                  "hook_resid_post"):
            shapes[p + n] = (T, D)
        for n in ("attn.hook_q", "attn.q_norm.hook_normalized", "attn.hook_rot_q", "attn.hook_z"):
            shapes[p + n] = (T, H, Dh)
        for n in ("attn.hook_k", "attn.hook_v", "attn.k_norm.hook_normalized", "attn.hook_rot_k"):
            shapes[p + n] = (T, Hkv, Dh)
        for n in ("attn.hook_attn_scores", "attn.hook_pattern"):
            shapes[p + n] = (H, T, T)
        for n in ("mlp.hook_pre", "mlp.hook_pre_linear", "mlp.hook_post"):
            shapes[p + n] = (T, I)
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
    spec = SPEC
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
    assert len(prompt_info[0]["ids"]) > spec["sliding_window"] and len(prompt_info[2]["ids"]) > 3 * spec["sliding_window"]
    mf.dump_json_list(outdir / "prompts.json", prompt_info)
    for k, ref in refs.items():
        back = load_file(str(outdir / f"ref-{k}.safetensors"))
        assert set(back) == set(ref) and all(torch.equal(back[n], ref[n]) for n in ref)
    reload_and_check(outdir, refs)
    size = sum(f.stat().st_size for f in outdir.iterdir())
    assert size < 1_100_000, size  # 4 layers of every hook (qwen2-odd-a: 2 layers, 0.9 MB)
    print(spec["name"], {"tensors": len(names), "prompt_tokens": [p["n_tokens"] for p in prompt_info],
                         "generated": [len(p["generated"]) for p in prompt_info], "bytes": size}, flush=True)
    print("versions:", "torch", torch.__version__, "numpy", np.__version__, file=sys.stderr)
    print("ok")


if __name__ == "__main__":
    main()
