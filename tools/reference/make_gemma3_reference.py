#!/usr/bin/env python3
"""Reference activations of the real Gemma-3-270M (GGUF Q4_K_M) for outlier-probe.

Loads the GGUF with Hugging Face transformers (which dequantizes every tensor to f32 and undoes
llama.cpp's +1 on Gemma's norm weights), runs the eager float32 Gemma 3 forward pass on CPU and
records, with forward hooks on the modules (independently of the Rust code), under
tests/fixtures/gemma3-270m/:

  * ref-{k}.safetensors for k = 0 "Summer is warm. Winter is cold.\\n", 1 "The capital of France is"
    (tokenized by the GGUF tokenizer with its defaults: BOS <bos>=2 first, as the base model needs),
    holding (no batch axis, f32 unless noted):
      tokens int64 [T], generated int64 [12] (greedy, HF generate),
      blocks.0.hook_resid_pre [T,D] (the scaled embedding: embed_tokens(x)·sqrt(640)),
      blocks.{RESID}.hook_resid_post [T,D] (decoder layer outputs),
      blocks.{PATTERN}.attn.hook_pattern [H,T,T] (eager attention probabilities),
      blocks.{MLP}.mlp.hook_post [T,I] (gelu_tanh(gate)·up = down_proj input),
      ln_final.hook_normalized [T,D] (model.norm output),
      logits_last [V] (k = 1 only: the vocabulary is 262,144).
  * prompts.json: text, ids, generated ids and text per prompt;
  * facts.json + README.md: per-layer outlier facts on prompt k=0 for all 18 layers (top-3
    |resid_post| with (position, channel), median, attention share and excess of key 0, sinks;
    the same statistics as make_smollm2_reference.py), the GGUF sha256 and package versions.

Re-run (about 5 minutes on 2 CPU cores):

    /work/venv/bin/python tools/reference/make_gemma3_reference.py [path/to/model.gguf]

The GGUF defaults to .cache/gemma3/gemma-3-270m-q4_k_m.gguf under the repository root (or
$GEMMA3_GGUF); `outlier-probe`'s tests fetch it there (Gemma terms of use: never commit it).
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_smollm2_reference as sm  # noqa: E402  (facts, versions, sha256; deterministic torch)

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUTDIR = REPO / "tests" / "fixtures" / "gemma3-270m"
DEFAULT_GGUF = REPO / ".cache" / "gemma3" / "gemma-3-270m-q4_k_m.gguf"

PROMPTS = ["Summer is warm. Winter is cold.\n", "The capital of France is"]
MAX_NEW_TOKENS = 12
RESID_LAYERS = [0, 1, 5, 11, 16, 17]
PATTERN_LAYERS = [0, 5, 11, 17]
MLP_POST_LAYERS = [3, 17]
FACTS_PROMPT = 0
LOGITS_PROMPTS = [1]

EXPECT = dict(model_type="gemma3_text", num_hidden_layers=18, hidden_size=640, num_attention_heads=4,
              num_key_value_heads=1, head_dim=256, intermediate_size=2048, vocab_size=262144,
              query_pre_attn_scalar=256, sliding_window=512, tie_word_embeddings=True)


def load(gguf: Path):
    d, n = str(gguf.parent), gguf.name
    tok = AutoTokenizer.from_pretrained(d, gguf_file=n)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=n, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.config._attn_implementation = "eager"
    model.eval()
    cfg = model.config
    for key, want in EXPECT.items():
        assert getattr(cfg, key) == want, (key, getattr(cfg, key), want)
    assert cfg.final_logit_softcapping is None and cfg.attn_logit_softcapping is None
    for p in model.parameters():
        assert p.dtype == torch.float32
    return tok, model


def run(model, ids: list) -> dict:
    """One forward pass with every layer's output, pattern and down_proj input recorded."""
    L = model.config.num_hidden_layers
    out, handles = {}, []
    layers = model.model.layers
    for l in range(L):
        def post(mod, args, res, l=l):
            out[f"blocks.{l}.hook_resid_post"] = (res[0] if isinstance(res, tuple) else res)[0].clone()

        def pre_down(mod, args, l=l):
            out[f"blocks.{l}.mlp.hook_post"] = args[0][0].clone()
        handles.append(layers[l].register_forward_hook(post))
        handles.append(layers[l].mlp.down_proj.register_forward_pre_hook(pre_down))
    handles.append(model.model.norm.register_forward_hook(
        lambda mod, args, res: out.__setitem__("ln_final.hook_normalized", res[0].clone())))
    try:
        with torch.no_grad():
            r = model(torch.tensor([ids]), output_attentions=True, output_hidden_states=True, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    out["blocks.0.hook_resid_pre"] = r.hidden_states[0][0].clone()
    for l in range(1, L):  # layer l's input is layer l-1's output
        assert torch.equal(r.hidden_states[l][0], out[f"blocks.{l - 1}.hook_resid_post"]), l
    assert torch.equal(r.hidden_states[L][0], out["ln_final.hook_normalized"])
    for l in range(L):
        out[f"blocks.{l}.attn.hook_pattern"] = r.attentions[l][0].clone()
    out["logits"] = r.logits[0].clone()
    return out


def main():
    gguf = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("GEMMA3_GGUF", DEFAULT_GGUF)).resolve()
    assert gguf.is_file(), gguf
    digest = sm.sha256(gguf)
    tok, model = load(gguf)
    cfg = model.config
    L, V = cfg.num_hidden_layers, cfg.vocab_size
    OUTDIR.mkdir(parents=True, exist_ok=True)
    prompt_info, facts = [], None
    for k, text in enumerate(PROMPTS):
        ids = tok(text).input_ids
        assert ids[0] == tok.bos_token_id == 2 and ids.count(2) == 1, ids
        full = run(model, ids)
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=False, max_new_tokens=MAX_NEW_TOKENS)
        new = gen[0, len(ids):].tolist()
        assert new[0] == int(torch.argmax(full["logits"][-1])), "first generated token != argmax"
        assert len(new) == MAX_NEW_TOKENS, new
        ref = {"tokens": torch.tensor(ids, dtype=torch.int64), "generated": torch.tensor(new, dtype=torch.int64),
               "blocks.0.hook_resid_pre": full["blocks.0.hook_resid_pre"],
               "ln_final.hook_normalized": full["ln_final.hook_normalized"]}
        for l in RESID_LAYERS:
            ref[f"blocks.{l}.hook_resid_post"] = full[f"blocks.{l}.hook_resid_post"]
        for l in PATTERN_LAYERS:
            ref[f"blocks.{l}.attn.hook_pattern"] = full[f"blocks.{l}.attn.hook_pattern"]
        for l in MLP_POST_LAYERS:
            ref[f"blocks.{l}.mlp.hook_post"] = full[f"blocks.{l}.mlp.hook_post"]
        if k in LOGITS_PROMPTS:
            ref["logits_last"] = full["logits"][-1]
        ref = {n: v.contiguous().clone() for n, v in ref.items()}
        path = OUTDIR / f"ref-{k}.safetensors"
        save_file(ref, str(path), metadata={"format": "pt"})
        os.chmod(path, 0o644)
        back = load_file(str(path))
        assert set(back) == set(ref) and all(torch.equal(back[n], ref[n]) for n in ref)
        cont = tok.decode(new)
        prompt_info.append({"k": k, "text": text, "ids": ids, "n_tokens": len(ids), "generated": new,
                            "continuation": cont})
        print(f"k={k} T={len(ids)} ids={ids}\n  generated={new}\n  continuation={cont!r}", flush=True)
        if k == FACTS_PROMPT:
            facts = sm.layer_facts(full, L, ids, tok)
    sm.mlf.mf.dump_json_list(OUTDIR / "prompts.json", prompt_info)
    info = {"gguf_name": gguf.name, "gguf_bytes": gguf.stat().st_size, "gguf_sha256": digest,
            "versions": sm.versions(),
            "config": {k: getattr(cfg, k) for k in EXPECT} | {"rope_parameters": cfg.rope_parameters,
                                                              "layer_types": cfg.layer_types}}
    (OUTDIR / "facts.json").write_text(json.dumps(
        {"info": info, "facts_prompt": FACTS_PROMPT, "layers": facts,
         "continuations": {p["k"]: p["continuation"] for p in prompt_info}}, indent=1, ensure_ascii=False) + "\n")
    lines = ["# Gemma-3-270M reference (HF transformers, GGUF Q4_K_M dequantized to f32)", "",
             "Generated by `tools/reference/make_gemma3_reference.py` (CPU, float32, eager attention, forward",
             "hooks on transformers' modules). Do not edit by hand.", "",
             f"* GGUF: `{info['gguf_name']}` ({info['gguf_bytes']} bytes), sha256 `{digest}`",
             "* versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
             f"* config: {info['config']}", "", "## Prompts and greedy continuations (BOS first)", ""]
    for p in prompt_info:
        lines += [f"* k={p['k']} `{json.dumps(p['text'])}` ids {p['ids']}",
                  f"  * generated {p['generated']}: `{json.dumps(p['continuation'])}`"]
    lines += ["", f"## Per-layer facts on prompt k={FACTS_PROMPT}", "",
              "| layer | top-1 | top-2 | top-3 | median abs | key-0 share | key-0 excess | sinks |",
              "|---|---|---|---|---|---|---|---|"]
    for r in facts:
        cells = [f"{t['abs']:.4f} ({t['token']}, {t['channel']})" for t in r["top3"]]
        lines.append(f"| {r['layer']} | " + " | ".join(cells) + f" | {r['median_abs']:.5f} | "
                     f"{r['attn_key0_share']:.4f} | {r['attn_excess_key0']:.4f} | {r['attn_sink_keys']} |")
    (OUTDIR / "README.md").write_text("\n".join(lines) + "\n")
    total = sum(f.stat().st_size for f in OUTDIR.iterdir())
    assert total < 2_500_000, total
    for r in facts:
        top = "  ".join(f"{t['abs']:9.3f} ({t['token']},{t['channel']:3d})" for t in r["top3"])
        print(f"{r['layer']:2d} | {top} | {r['median_abs']:.5f} | {r['attn_key0_share']:.4f}"
              f" | {r['attn_excess_key0']:.4f} | {r['attn_sink_keys']}")


if __name__ == "__main__":
    main()
