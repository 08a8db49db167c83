#!/usr/bin/env python3
"""HF transformers (PyTorch, CPU, float32) side of the outlier-probe side-by-side benchmark.

    /work/venv/bin/python tools/bench/hf_bench.py --model .cache/gpt2-124m-random \\
        [--prefill 32,128,512] [--decode-batch 1,8] [--decode-tokens 16] [--threads N] \\
        [--repeats 3] [--seed 0] [--logits all|last] [--json OUT|-]

--model is a HF model directory (config.json + safetensors) or a .gguf file (loaded with
`AutoModelForCausalLM.from_pretrained(dir, gguf_file=name)`, which dequantizes to f32).
The model runs in float32, eval(), torch.inference_mode(), default attention implementation
(sdpa), on random token ids (torch.randint over the vocab, fixed --seed).

  prefill  for each T (capped at n_positions / max_position_embeddings): one forward of
           batch 1 x T tokens, use_cache=False; one warm-up, then the median wall time of
           --repeats runs. Reports ms and tokens/s. --logits last computes the LM head for
           the last position only (logits_to_keep=1); default all positions.
  decode   for each batch B: prefill B x 32 tokens (use_cache=True), then one warm-up step
           plus --decode-tokens steps, each feeding one random token per sequence with the
           KV cache; reports the median ms per step (one token for each of the B sequences).

JSON (to OUT, or to stdout with --json -; a human table always goes to stderr):
  {"engine": "transformers <ver> / torch <ver>", "device": "CPU: <model> (<n> threads)",
   "model": PATH, "params": int, "prefill": [{"T", "ms", "tok_s"}],
   "decode": [{"batch", "ms_per_token", "tok_s"}], "settings": {...}}
stdout carries nothing but that JSON (library chatter is redirected to stderr). Errors: a
one-line "hf_bench: error: ..." on stderr and exit status 1 (2 for bad arguments).
"""

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

DECODE_CONTEXT = 32  # prompt tokens per sequence before the decode steps


def int_list(s: str) -> list:
    try:
        vals = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}")
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {s!r}")
    return vals


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_model(path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    if path.is_file() and path.suffix.lower() == ".gguf":
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    elif path.is_dir():
        if not (path / "config.json").is_file():
            raise RuntimeError(f"{path} has no config.json (not a HF model directory)")
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    elif path.exists():
        raise RuntimeError(f"{path} is neither a directory nor a .gguf file")
    else:
        raise RuntimeError(f"{path} does not exist")
    model = model.to(torch.float32).eval()
    return model


def cache_kwarg(model) -> str:
    """transformers 5.24 names the KV-cache argument `cache`; older versions `past_key_values`."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def out_cache(out):
    c = getattr(out, "cache", None)
    return c if c is not None else getattr(out, "past_key_values", None)


def run(args, model_path: Path) -> dict:
    import torch
    import transformers

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    t0 = time.perf_counter()
    model = load_model(model_path)
    load_s = time.perf_counter() - t0
    cfg = model.config
    vocab = model.get_input_embeddings().num_embeddings
    n_ctx = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)
    if not n_ctx:
        raise RuntimeError("config has neither n_positions nor max_position_embeddings")
    n_params = sum(p.numel() for p in model.parameters())  # tied weights counted once
    kv = cache_kwarg(model)
    attn_impl = getattr(cfg, "_attn_implementation", None)
    logits_kw = {"logits_to_keep": 1} if args.logits == "last" else {}
    gen = torch.Generator().manual_seed(args.seed)

    def ids(b, t):
        return torch.randint(0, vocab, (b, t), generator=gen, dtype=torch.long)

    log(f"loaded {model_path} ({type(model).__name__}, {n_params:,} params, vocab {vocab}, "
        f"n_ctx {n_ctx}, attn {attn_impl}) in {load_s:.1f} s; {threads} threads")

    prefill = []
    with torch.inference_mode():
        for T in args.prefill:
            if T > n_ctx:
                log(f"prefill T={T} capped at n_ctx={n_ctx}")
                T = n_ctx
            if any(p["T"] == T for p in prefill):
                continue
            x = ids(1, T)
            model(input_ids=x, use_cache=False, **logits_kw)  # warm-up
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                model(input_ids=x, use_cache=False, **logits_kw)
                times.append(time.perf_counter() - t)
            ms = statistics.median(times) * 1e3
            prefill.append({"T": T, "ms": round(ms, 3), "tok_s": round(T / ms * 1e3, 2)})
            log(f"prefill T={T}: {ms:.1f} ms ({T / ms * 1e3:.1f} tok/s)")

        decode = []
        ctx = min(DECODE_CONTEXT, max(1, n_ctx - args.decode_tokens - 1))
        steps = min(args.decode_tokens, n_ctx - ctx - 1)
        if steps < args.decode_tokens:
            log(f"decode tokens capped at {steps} (n_ctx={n_ctx})")
        if steps >= 1:
            for B in args.decode_batch:
                out = model(input_ids=ids(B, ctx), use_cache=True, logits_to_keep=1)
                cache = out_cache(out)
                if cache is None:
                    raise RuntimeError("model returned no KV cache with use_cache=True")
                times = []
                for i in range(steps + 1):  # step 0 is the warm-up
                    x = ids(B, 1)
                    t = time.perf_counter()
                    out = model(input_ids=x, use_cache=True, **{kv: cache})
                    dt = time.perf_counter() - t
                    cache = out_cache(out)
                    if i > 0:
                        times.append(dt)
                seq_len = cache.get_seq_length() if hasattr(cache, "get_seq_length") else None
                if seq_len is not None and seq_len != ctx + steps + 1:
                    raise RuntimeError(f"KV cache length {seq_len} != {ctx + steps + 1}: cache not being reused")
                ms = statistics.median(times) * 1e3
                decode.append({"batch": B, "ms_per_token": round(ms, 3), "tok_s": round(B / ms * 1e3, 2)})
                log(f"decode B={B}: {ms:.2f} ms/step ({B / ms * 1e3:.1f} tok/s)")
                del cache, out

    return {
        "engine": f"transformers {transformers.__version__} / torch {torch.__version__}",
        "device": f"CPU: {cpu_model()} ({threads} threads)",
        "model": str(args.model),
        "params": int(n_params),
        "prefill": prefill,
        "decode": decode,
        "settings": {
            "dtype": "float32",
            "attn_implementation": attn_impl,
            "threads": threads,
            "repeats": args.repeats,
            "seed": args.seed,
            "prefill_batch": 1,
            "prefill_use_cache": False,
            "prefill_logits": args.logits,
            "decode_context": ctx,
            "decode_steps": steps,
            "decode_warmup_steps": 1,
            "decode_logits": "last",
            "n_ctx": n_ctx,
            "vocab": vocab,
            "load_s": round(load_s, 3),
        },
    }


def table(res: dict) -> str:
    lines = [f"{res['engine']} | {res['device']}", f"model {res['model']} ({res['params']:,} params)",
             "", f"{'prefill T':>10} {'ms':>10} {'tok/s':>10}"]
    for p in res["prefill"]:
        lines.append(f"{p['T']:>10} {p['ms']:>10.2f} {p['tok_s']:>10.1f}")
    lines += ["", f"{'decode B':>10} {'ms/step':>10} {'tok/s':>10}"]
    for d in res["decode"]:
        lines.append(f"{d['batch']:>10} {d['ms_per_token']:>10.2f} {d['tok_s']:>10.1f}")
    return "\n".join(lines)


def log(msg: str):
    print(f"hf_bench: {msg}", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF model directory or .gguf file")
    ap.add_argument("--prefill", type=int_list, default=[32, 128, 512], help="prefill lengths T (default 32,128,512)")
    ap.add_argument("--decode-batch", type=int_list, default=[1, 8], help="decode batch sizes (default 1,8)")
    ap.add_argument("--decode-tokens", type=int, default=16, help="timed decode steps (default 16; 0 skips decode)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's default)")
    ap.add_argument("--repeats", type=int, default=3, help="timed prefill runs after one warm-up (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random token ids (default 0)")
    ap.add_argument("--logits", choices=["all", "last"], default="all",
                    help="prefill LM head over all positions (default) or the last one only")
    ap.add_argument("--json", metavar="OUT", default=None, help="write the JSON result to OUT ('-' = stdout)")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.decode_tokens < 0:
        ap.error("--decode-tokens must be >= 0")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")

    # Keep stdout for the JSON only: point fd 1 at stderr while libraries run (catches C-level
    # writes too) and keep a private duplicate of the real stdout.
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        res = run(args, Path(args.model))
    except KeyboardInterrupt:
        log("error: interrupted")
        return 130
    except Exception as e:  # noqa: BLE001  (one clear line for the calling Rust bench)
        sys.stdout.flush()
        log(f"error: {type(e).__name__}: {e}")
        if os.environ.get("HF_BENCH_TRACEBACK"):
            import traceback
            traceback.print_exc()
        return 1
    sys.stdout.flush()
    print(table(res), file=sys.stderr, flush=True)

    text = json.dumps(res, indent=2) + "\n"
    if args.json == "-":
        with os.fdopen(real_stdout, "w") as f:
            f.write(text)
    elif args.json:
        out = Path(args.json)
        tmp = out.with_name(out.name + ".tmp")
        try:
            tmp.write_text(text)
            tmp.replace(out)
        except OSError as e:
            log(f"error: cannot write {out}: {e}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
