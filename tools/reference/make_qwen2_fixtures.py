#!/usr/bin/env python3
"""Generate the Qwen2 reference fixture for outlier-probe's Rust tests (tests/qwen2.rs).

Writes tests/fixtures/qwen2-odd-a/: a tiny random-init Qwen2ForCausalLM (a Llama with biases on
q_proj, k_proj and v_proj only): GQA 6 q heads / 2 kv heads, head_dim 8, hidden 48, 2 layers,
intermediate 100, rope_theta 1e6, rms_norm_eps 1e-6, tied embeddings, f32 weights; every RMSNorm
weight and every q/k/v bias randomised to non-trivial values. config.json (as transformers 5
writes it: use_sliding_window false, layer_types all full_attention), model.safetensors,
tokenizer.json (a copy of gpt2-odd-a's trained byte-level BPE, vocab 1021, <|endoftext|> = 1020),
prompts.json and ref-{0,1,2}.safetensors holding every TransformerLens hook of the HF forward
pass (the names make_llama_fixtures.py writes) plus greedy generations. Sizes are smaller than
llama-odd-a's so that the whole fixture stays under 1 MB.

Deterministic (fixed seeds), CPU, float32, attn_implementation="eager". Helpers (corpus split,
prompt choice, JSON dump) come from make_fixtures.py, which must have been run first (for the
tokenizer). Re-run with:

    python3 -m venv v && v/bin/pip install -r tools/reference/requirements.txt \
        && v/bin/python tools/reference/make_qwen2_fixtures.py
"""

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (sets deterministic torch, single thread)
import make_llama_fixtures as ml  # noqa: E402  (the hook recorder, shared with Llama)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import Qwen2Config, Qwen2ForCausalLM  # noqa: E402
from transformers.models.qwen2 import modeling_qwen2  # noqa: E402

FIXTURES = mf.FIXTURES
SOURCE_TOKENIZER = FIXTURES / "gpt2-odd-a" / "tokenizer.json"
VOCAB = 1021
EOT_ID = VOCAB - 1

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

SPEC = dict(name="qwen2-odd-a", hidden_size=48, num_attention_heads=6, num_key_value_heads=2,
            intermediate_size=100, num_hidden_layers=2, max_position_embeddings=24, rms_norm_eps=1e-6,
            rope_theta=1000000.0, tie_word_embeddings=True, dtype=torch.float32, seed=6006)
BIASED = ("q_proj", "k_proj", "v_proj")


# --------------------------------------------------------------------------- model

def make_model(spec) -> Qwen2ForCausalLM:
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=spec["hidden_size"],
        intermediate_size=spec["intermediate_size"],
        num_hidden_layers=spec["num_hidden_layers"],
        num_attention_heads=spec["num_attention_heads"],
        num_key_value_heads=spec["num_key_value_heads"],
        hidden_act="silu",
        max_position_embeddings=spec["max_position_embeddings"],
        initializer_range=0.1,
        rms_norm_eps=spec["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": spec["rope_theta"]},
        use_sliding_window=False,
        sliding_window=16,  # inactive: transformers sets it to None without use_sliding_window
        bos_token_id=EOT_ID,
        eos_token_id=EOT_ID,
        pad_token_id=None,
        tie_word_embeddings=spec["tie_word_embeddings"],
        attn_implementation="eager",
    )
    assert config.sliding_window is None and config.layer_types == ["full_attention"] * spec["num_hidden_layers"]
    torch.manual_seed(spec["seed"])
    model = Qwen2ForCausalLM(config)
    model.config._attn_implementation = "eager"
    model.eval()
    g = torch.Generator().manual_seed(spec["seed"] + 7)
    with torch.no_grad():
        n_norms = 0
        for m in model.modules():
            if isinstance(m, modeling_qwen2.Qwen2RMSNorm):
                m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
                n_norms += 1
        assert n_norms == 2 * spec["num_hidden_layers"] + 1, n_norms
        n_bias = 0
        for layer in model.model.layers:
            for s in BIASED:
                b = getattr(layer.self_attn, s).bias
                b.copy_(0.5 * torch.randn(b.shape, generator=g))
                n_bias += 1
        assert n_bias == 3 * spec["num_hidden_layers"]
        for p in model.parameters():
            p.copy_(p.to(spec["dtype"]).to(torch.float32))
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32, name
        if name.endswith("norm.weight"):
            continue
        s = float(p.detach().std())
        if name.endswith(".bias"):
            assert 0.3 < s < 0.75, (name, s)
        else:
            assert 0.085 < s < 0.115, (name, s)  # initializer_range = 0.1 was honoured
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            assert (m.bias is not None) == name.endswith(BIASED), name
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tied == spec["tie_word_embeddings"], ("tie state", tied)
    return model


def save_model(model: Qwen2ForCausalLM, spec, outdir: Path):
    sd = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" and spec["tie_word_embeddings"]:
            continue
        assert "rotary_emb" not in k, k
        sd[k] = v.detach().to(spec["dtype"]).contiguous().clone()
    expected = {"model.embed_tokens.weight", "model.norm.weight"}
    for l in range(spec["num_hidden_layers"]):
        p = f"model.layers.{l}."
        expected |= {p + s + ".weight" for s in (
            "input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj",
            "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
        expected |= {p + f"self_attn.{s}.bias" for s in BIASED}
    if not spec["tie_word_embeddings"]:
        expected.add("lm_head.weight")
    assert set(sd) == expected, sorted(set(sd) ^ expected)
    D, H, Hkv, I = (spec[k] for k in ("hidden_size", "num_attention_heads", "num_key_value_heads",
                                      "intermediate_size"))
    Dh = D // H
    assert sd["model.layers.0.self_attn.q_proj.weight"].shape == (H * Dh, D)
    assert sd["model.layers.0.self_attn.q_proj.bias"].shape == (H * Dh,)
    assert sd["model.layers.0.self_attn.k_proj.bias"].shape == (Hkv * Dh,)
    assert sd["model.layers.0.self_attn.o_proj.weight"].shape == (D, H * Dh)
    assert sd["model.layers.0.mlp.down_proj.weight"].shape == (D, I)
    save_file(sd, str(outdir / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(outdir / "model.safetensors", 0o644)

    model.config.to_json_file(str(outdir / "config.json"))
    cfg = json.loads((outdir / "config.json").read_text())
    for key, want in [("model_type", "qwen2"), ("hidden_size", D), ("intermediate_size", I),
                      ("num_hidden_layers", spec["num_hidden_layers"]), ("num_attention_heads", H),
                      ("num_key_value_heads", Hkv), ("rms_norm_eps", spec["rms_norm_eps"]),
                      ("max_position_embeddings", spec["max_position_embeddings"]),
                      ("tie_word_embeddings", spec["tie_word_embeddings"]), ("vocab_size", VOCAB),
                      ("bos_token_id", EOT_ID), ("eos_token_id", EOT_ID), ("hidden_act", "silu"),
                      ("use_sliding_window", False), ("sliding_window", None),
                      ("layer_types", ["full_attention"] * spec["num_hidden_layers"])]:
        assert cfg.get(key) == want, (key, cfg.get(key), want)
    assert "head_dim" not in cfg and "attention_bias" not in cfg, sorted(cfg)
    assert cfg["rope_parameters"] == {"rope_type": "default", "rope_theta": spec["rope_theta"]}, cfg
    return sorted(sd)


def reload_and_check(outdir: Path, spec, ref_by_k):
    """from_pretrained(outdir) reproduces the stored logits exactly, with the biases loaded."""
    stored = load_file(str(outdir / "model.safetensors"))
    for k, v in stored.items():
        assert v.dtype == spec["dtype"], (k, v.dtype)
    fresh, info = Qwen2ForCausalLM.from_pretrained(
        str(outdir), dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    fresh.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    fsd = fresh.state_dict()
    for k, v in stored.items():
        assert fsd[k].dtype == torch.float32 and torch.equal(fsd[k], v.float()), k
    tied = fresh.lm_head.weight.data_ptr() == fresh.model.embed_tokens.weight.data_ptr()
    assert tied == spec["tie_word_embeddings"], ("reloaded tie state", tied)
    with torch.no_grad():
        for k, ref in ref_by_k.items():
            lg = fresh(ref["tokens"][None], use_cache=False).logits[0]
            assert torch.equal(lg, ref["logits"]), (outdir.name, k, (lg - ref["logits"]).abs().max())


# --------------------------------------------------------------------------- reference capture

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

    prompt_info = []
    refs = {}
    for k, text in enumerate(prompts):
        ids = mf.encode(tok, text)
        assert ids == tok.encode(text, add_special_tokens=True).ids  # no BOS is ever added
        assert 0 < len(ids) <= NP
        if k == 2:
            assert len(ids) == NP - 6, (len(ids), NP)
        ref = ml.run_reference(model, ids, NP, modeling_qwen2)
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
    assert size < 1_000_000, size
    print(spec["name"], {"tensors": len(names), "prompt_tokens": [p["n_tokens"] for p in prompt_info],
                         "generated": [len(p["generated"]) for p in prompt_info], "bytes": size}, flush=True)
    print("versions:", "torch", torch.__version__, "numpy", np.__version__, file=sys.stderr)
    print("ok")


if __name__ == "__main__":
    main()
