#!/usr/bin/env python3
"""Generate the Qwen3 reference fixture for outlier-probe's Rust tests (tests/qwen3.rs).

Writes tests/fixtures/qwen3-odd-a/: a tiny random-init Qwen3ForCausalLM (Qwen2 without q/k/v
biases, with a per-head RMSNorm of q and k before RoPE and an explicit head_dim): GQA 6 q heads /
2 kv heads, head_dim 12 (query width 72, not hidden_size 48), 2 layers, intermediate 60,
rope_theta 1e6, tied embeddings, f32; every RMSNorm weight (block norms, q_norm, k_norm, final
norm) randomised. config.json as transformers 5 writes it, model.safetensors, tokenizer.json (a
copy of gpt2-odd-a's), prompts.json and ref-{0,1,2}.safetensors with every hook of the HF forward
pass (make_llama_fixtures.run_reference, which also records attn.q_norm / attn.k_norm) plus
greedy generations.

Deterministic (fixed seeds), CPU, float32, attn_implementation="eager". The tokenizer, prompts and
files are made as make_qwen2_fixtures.py makes them. Re-run with:

    python3 -m venv v && v/bin/pip install -r tools/reference/requirements.txt \
        && v/bin/python tools/reference/make_qwen3_fixtures.py
"""

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (sets deterministic torch, single thread)
import make_llama_fixtures as ml  # noqa: E402  (the hook recorder, shared with Llama and Qwen2)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import Qwen3Config, Qwen3ForCausalLM  # noqa: E402
from transformers.models.qwen3 import modeling_qwen3  # noqa: E402

FIXTURES = mf.FIXTURES
SOURCE_TOKENIZER = FIXTURES / "gpt2-odd-a" / "tokenizer.json"
VOCAB = 1021
EOT_ID = VOCAB - 1

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

SPEC = dict(name="qwen3-odd-a", hidden_size=48, num_attention_heads=6, num_key_value_heads=2, head_dim=12,
            intermediate_size=60, num_hidden_layers=2, max_position_embeddings=24, rms_norm_eps=1e-6,
            rope_theta=1000000.0, seed=8008)


def make_model(spec) -> Qwen3ForCausalLM:
    config = Qwen3Config(
        vocab_size=VOCAB, hidden_size=spec["hidden_size"], intermediate_size=spec["intermediate_size"],
        num_hidden_layers=spec["num_hidden_layers"], num_attention_heads=spec["num_attention_heads"],
        num_key_value_heads=spec["num_key_value_heads"], head_dim=spec["head_dim"], hidden_act="silu",
        max_position_embeddings=spec["max_position_embeddings"], initializer_range=0.1,
        rms_norm_eps=spec["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": spec["rope_theta"]},
        attention_bias=False, use_sliding_window=False, bos_token_id=EOT_ID, eos_token_id=EOT_ID,
        pad_token_id=None, tie_word_embeddings=True, attn_implementation="eager",
    )
    assert config.layer_types == ["full_attention"] * spec["num_hidden_layers"]
    torch.manual_seed(spec["seed"])
    model = Qwen3ForCausalLM(config)
    model.config._attn_implementation = "eager"
    model.eval()
    g = torch.Generator().manual_seed(spec["seed"] + 7)
    with torch.no_grad():
        n_norms = 0
        for m in model.modules():
            if isinstance(m, modeling_qwen3.Qwen3RMSNorm):
                m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=g))
                n_norms += 1
        assert n_norms == 4 * spec["num_hidden_layers"] + 1, n_norms
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32, name
        if not name.endswith("norm.weight"):
            assert 0.085 < float(p.detach().std()) < 0.115, name
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            assert m.bias is None, name
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


def save_model(model, spec, outdir: Path):
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    expected = {"model.embed_tokens.weight", "model.norm.weight"}
    for l in range(spec["num_hidden_layers"]):
        p = f"model.layers.{l}."
        expected |= {p + s + ".weight" for s in (
            "input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj",
            "self_attn.v_proj", "self_attn.o_proj", "self_attn.q_norm", "self_attn.k_norm", "mlp.gate_proj",
            "mlp.up_proj", "mlp.down_proj")}
    assert set(sd) == expected, sorted(set(sd) ^ expected)
    D, H, Dh = spec["hidden_size"], spec["num_attention_heads"], spec["head_dim"]
    assert H * Dh != D and sd["model.layers.0.self_attn.o_proj.weight"].shape == (D, H * Dh)
    save_file(sd, str(outdir / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(outdir / "model.safetensors", 0o644)
    model.config.to_json_file(str(outdir / "config.json"))
    cfg = json.loads((outdir / "config.json").read_text())
    for key, want in [("model_type", "qwen3"), ("head_dim", Dh), ("attention_bias", False),
                      ("use_sliding_window", False), ("tie_word_embeddings", True), ("vocab_size", VOCAB)]:
        assert cfg.get(key) == want, (key, cfg.get(key), want)
    return sorted(sd)


def main():
    train_text, heldout = mf.split_corpus()
    retrained = mf.train_tokenizer(train_text, VOCAB)
    assert Tokenizer.from_file(str(SOURCE_TOKENIZER)).get_vocab() == retrained.get_vocab(), "stale tokenizer"
    spec = SPEC
    outdir = FIXTURES / spec["name"]
    outdir.mkdir(parents=True, exist_ok=True)
    NP = spec["max_position_embeddings"]
    shutil.copyfile(SOURCE_TOKENIZER, outdir / "tokenizer.json")
    tok = Tokenizer.from_file(str(outdir / "tokenizer.json"))
    prompts = [mf.PROMPT_0, mf.PROMPT_1, mf.pick_long_prompt(tok, heldout, NP)]
    mf.check_roundtrip(tok, prompts + mf.TOKENIZER_STRINGS + [heldout[:3000]])

    model = make_model(spec)
    names = save_model(model, spec, outdir)
    prompt_info, refs = [], {}
    for k, text in enumerate(prompts):
        ids = mf.encode(tok, text)
        ref = ml.run_reference(model, ids, NP, modeling_qwen3)
        assert "blocks.0.attn.q_norm.hook_normalized" in ref
        save_file(ref, str(outdir / f"ref-{k}.safetensors"), metadata={"format": "pt"})
        os.chmod(outdir / f"ref-{k}.safetensors", 0o644)
        refs[k] = ref
        prompt_info.append({"k": k, "text": text, "ids": ids, "n_tokens": len(ids),
                            "generated": ref["generated"].tolist()})
    mf.dump_json_list(outdir / "prompts.json", prompt_info)
    fresh = Qwen3ForCausalLM.from_pretrained(str(outdir), dtype=torch.float32, attn_implementation="eager")
    fresh.eval()
    with torch.no_grad():
        for k, ref in refs.items():
            back = load_file(str(outdir / f"ref-{k}.safetensors"))
            assert set(back) == set(ref) and all(torch.equal(back[n], ref[n]) for n in ref)
            assert torch.equal(fresh(ref["tokens"][None], use_cache=False).logits[0], ref["logits"]), k
    size = sum(f.stat().st_size for f in outdir.iterdir())
    assert size < 1_000_000, size
    print(spec["name"], {"tensors": len(names), "prompt_tokens": [p["n_tokens"] for p in prompt_info],
                         "generated": [len(p["generated"]) for p in prompt_info], "bytes": size}, flush=True)
    print("versions:", "torch", torch.__version__, "numpy", np.__version__, file=sys.stderr)
    print("ok")


if __name__ == "__main__":
    main()
