#!/usr/bin/env python3
"""Reference logits for the RoPE-scaling rows of the GGUF / config.json key audit.

Writes tests/fixtures/gguf-keys/rope-refs.safetensors with, for the llama-odd-a weights
(tests/fixtures/llama-odd-a, written by make_llama_fixtures.py) and the 42 tokens of its ref-2:

  * tokens            i64 [42]
  * logits_linear     f32 [42, 1021]  transformers LlamaForCausalLM, rope_parameters
                                      {rope_type: linear, factor: 4}
  * logits_llama3     f32 [42, 1021]  rope_parameters {rope_type: llama3, factor: 8,
                                      low_freq_factor: 1, high_freq_factor: 4,
                                      original_max_position_embeddings: 40}
                                      (wavelengths 6.3, 19.9, 62.8, ... 19869 for head_dim 16,
                                      theta 1e4: one pair untouched, one in the smooth band,
                                      six divided by 8)
  * rope_freqs_llama3 f32 [8]         the per-pair divisors llama.cpp's convert_hf_to_gguf.py stores
                                      as `rope_freqs.weight` for that llama3 config (1 for high
                                      frequencies, factor for low ones, 1/((1-s)/factor + s) between)

CPU, float32, attn_implementation="eager", deterministic. Re-run with:

    /work/venv/bin/python tools/reference/make_gguf_key_fixtures.py
"""

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "tests" / "fixtures" / "llama-odd-a"
OUT = ROOT / "tests" / "fixtures" / "gguf-keys"

LLAMA3 = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
              original_max_position_embeddings=40)
LINEAR = dict(rope_type="linear", factor=4.0)

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)


def model_with(rope: dict) -> LlamaForCausalLM:
    cfg = json.loads((SRC / "config.json").read_text())
    theta = cfg["rope_parameters"]["rope_theta"]
    cfg["rope_parameters"] = dict(rope, rope_theta=theta)
    cfg.pop("rope_theta", None)
    config = LlamaConfig(**cfg, attn_implementation="eager")
    model = LlamaForCausalLM(config).eval()
    state = load_file(SRC / "model.safetensors")
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert set(missing) <= {"lm_head.weight"}, missing  # tied head
    model.tie_weights()
    assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    return model


def llama3_divisors(theta: float, head_dim: int, p: dict) -> torch.Tensor:
    """convert_hf_to_gguf.py's llama3 `rope_freqs` (re-derived, float32 inverse frequencies)."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    factor, low, high = p["factor"], p["low_freq_factor"], p["high_freq_factor"]
    old = p["original_max_position_embeddings"]
    out = []
    for f in inv.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            s = (old / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - s) / factor + s))
    return torch.tensor(out, dtype=torch.float32)


def main() -> None:
    tokens = load_file(SRC / "ref-2.safetensors")["tokens"]
    ids = tokens.to(torch.long)[None, :]
    out = {"tokens": tokens.to(torch.int64)}
    with torch.no_grad():
        for name, rope in [("linear", LINEAR), ("llama3", LLAMA3)]:
            model = model_with(rope)
            out[f"logits_{name}"] = model(ids).logits[0].float().contiguous()
            if name == "llama3":
                cfg = json.loads((SRC / "config.json").read_text())
                hd = cfg["hidden_size"] // cfg["num_attention_heads"]
                theta = cfg["rope_parameters"]["rope_theta"]
                div = llama3_divisors(theta, hd, LLAMA3)
                base = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
                # the divisors reproduce transformers' own llama3 inverse frequencies
                torch.testing.assert_close(base / div, model.model.rotary_emb.inv_freq)
                out["rope_freqs_llama3"] = div
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(out, OUT / "rope-refs.safetensors", metadata={"format": "pt"})
    (OUT / "rope-refs.safetensors").chmod(0o644)
    base = load_file(SRC / "ref-2.safetensors")["logits"]
    for name in ["linear", "llama3"]:
        d = (out[f"logits_{name}"] - base).abs().max().item()
        print(f"{name}: max |logits - unscaled| = {d:.4f}")
    print("rope_freqs_llama3:", out["rope_freqs_llama3"].tolist())


if __name__ == "__main__":
    main()
