#!/usr/bin/env python3
"""outlier-probe, llama.cpp and transformers on the same model, prompt and token count, in one run.

    /work/venv/bin/python tools/bench/side_by_side.py --model M.gguf [--hf DIR] [--gguf FILE] \\
        [--prompt-tokens 126] [--decode-tokens 16] [--repeats 2] [--threads 2] [--runs 2] \\
        [--engine-args "--weights f16"] [--baseline-exe OLD_ENGINE_TIMING [--baseline-args ..]] \\
        [--skip llama.cpp,transformers] [--json OUT]

Needs the Python packages torch, transformers, gguf, numpy and llama-cpp-python (built from
source by pip for the CPU: ``pip install llama-cpp-python``, ~10-20 min on 2 cores), and the
engine's ``examples/engine_timing.rs`` (built here with cargo when missing or older than its
source).

What is timed, for every tool, on the same token ids:
  prefill  one forward pass of the prompt (batch 1, logits of the last position); one warm-up,
           then the median of --repeats runs (s and tokens/s).
  decode   after a prefill of the prompt, --decode-tokens greedy steps of one token each (argmax of
           the last logits, fed back), each timed; the median ms/token. The generated ids are
           compared between the tools: the same model under greedy decoding should pick the same
           tokens, so the column "same tokens" says how many of the first steps agree with the
           engine (quantized storage or f16 can make near-ties differ late).
  memory   peak resident memory (RSS) of each tool's own process (os.wait4), and for the engine
           also its peak GPU buffer bytes (wgpu's accounting; on lavapipe that memory is host
           memory and is part of the RSS).
Each tool runs in its own child process (this script re-invoked with --worker), one after the
other, so they never compete for the cores; --runs repeats the whole round (each figure is then
shown as min-max over the rounds).

The models:
  engine        --model (a .gguf file or a Hugging Face directory), with --engine-args.
  llama.cpp     --gguf, else --model when it is a .gguf file. Weights as stored (quantized types
                stay quantized: llama.cpp's own kernels), --threads threads, n_batch 512.
  transformers  --hf, else --model (a .gguf file is loaded with ``gguf_file=`` and dequantized to
                float32 by transformers). float32, eager attention, torch.set_num_threads(--threads),
                inference_mode.
Prompt: the opening of Anna Pavlovna's salon in data/war-and-peace-opening.txt, tokenized by the
model's own tokenizer (transformers' reading of it), cut to --prompt-tokens ids; a model without a
tokenizer gets seeded random ids (said in the output).

Output: a Markdown table on stdout (ratios: tool speed / engine speed, so 2.0 means the tool is
twice as fast as the engine), JSON with every figure with --json. Errors: "side_by_side: error:
..." on stderr and exit status 1.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMPT_FILE = ROOT / "data" / "war-and-peace-opening.txt"
PROMPT_START = "“Well, Prince, so Genoa and Lucca"


class Fail(Exception):
    pass


def median(v):
    return statistics.median(v) if v else float("nan")


# ---------------------------------------------------------------- workers (child processes)


def worker_llama(gguf, ids, decode, repeats, threads):
    import numpy as np
    from llama_cpp import Llama, __version__

    llm = Llama(model_path=str(gguf), n_ctx=len(ids) + decode + 8, n_threads=threads,
                n_threads_batch=threads, n_batch=512, n_ubatch=512, verbose=False)
    pre = []
    for i in range(repeats + 1):
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        if i > 0:
            pre.append(time.perf_counter() - t)
    n_vocab = llm.n_vocab()

    def last_logits():
        # Without logits_all, Llama.eval no longer copies logits into llm.scores: read the last
        # position's row from the context (llama_get_logits_ith(ctx, -1)).
        return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,))

    llm.reset()
    llm.eval(ids)
    nxt = int(np.argmax(last_logits()))
    gen, steps = [nxt], []
    for _ in range(decode):
        t = time.perf_counter()
        llm.eval([nxt])
        nxt = int(np.argmax(last_logits()))
        steps.append(time.perf_counter() - t)
        gen.append(nxt)
    return {"engine": f"llama.cpp (llama-cpp-python {__version__}), CPU, {threads} threads",
            "prefill_runs_s": pre, "decode_steps_ms": [s * 1e3 for s in steps], "generated": gen}


def worker_transformers(path, ids, decode, repeats, threads):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    path = Path(path)
    kw = dict(dtype=torch.float32, attn_implementation="eager")
    if path.suffix.lower() == ".gguf":
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, **kw)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kw)
    model = model.to(torch.float32).eval()
    x = torch.tensor([ids])
    pre = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            t = time.perf_counter()
            model(x, use_cache=False, logits_to_keep=1)
            if i > 0:
                pre.append(time.perf_counter() - t)
        out = model(x, use_cache=True, logits_to_keep=1)
        past = out.past_key_values
        nxt = int(out.logits[0, -1].argmax())
        gen, steps = [nxt], []
        for _ in range(decode):
            t = time.perf_counter()
            out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True, logits_to_keep=1)
            past = out.past_key_values
            nxt = int(out.logits[0, -1].argmax())
            steps.append(time.perf_counter() - t)
            gen.append(nxt)
    return {"engine": f"transformers {transformers.__version__} / torch {torch.__version__}, CPU f32 eager, "
                      f"{threads} threads",
            "prefill_runs_s": pre, "decode_steps_ms": [s * 1e3 for s in steps], "generated": gen}


# ---------------------------------------------------------------- parent


def run_child(cmd):
    """Run cmd, return (stdout, stderr, peak RSS bytes of that child)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    out, err = p.communicate()
    # communicate() reaped the child; its rusage is in RUSAGE_CHILDREN only cumulatively, so
    # each child reports its own peak instead (see worker main and engine wrapper below).
    if p.returncode != 0:
        raise Fail(f"{cmd[0]} {' '.join(cmd[1:3])}... exited with {p.returncode}:\n{err.decode()[-3000:]}")
    return out.decode(), err.decode()


def peak_rss_wrapper(cmd):
    """The command under this script's --rss wrapper, which reports the child's peak RSS."""
    return [sys.executable, str(Path(__file__).resolve()), "--rss", "--", *cmd]


def rss_main(cmd):
    p = subprocess.Popen(cmd)
    _, status, ru = os.wait4(p.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux.
    print(json.dumps({"peak_rss_bytes": ru.ru_maxrss * 1024}), file=sys.stderr)
    sys.exit(code)


def last_json_line(text, what):
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise Fail(f"{what}: no JSON in its output:\n{text[-2000:]}")


def engine_binary(args):
    exe = ROOT / "target" / "release" / "examples" / "engine_timing"
    src = ROOT / "examples" / "engine_timing.rs"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime or args.build:
        print("building examples/engine_timing.rs (cargo build --release)", file=sys.stderr)
        r = subprocess.run(["cargo", "build", "--release", "--example", "engine_timing"], cwd=ROOT)
        if r.returncode != 0:
            raise Fail("cargo build --release --example engine_timing failed")
    return exe


def prompt_ids(args, hf_path):
    text = PROMPT_FILE.read_text(encoding="utf-8")
    text = text[text.index(PROMPT_START):]
    try:
        from transformers import AutoTokenizer

        p = Path(hf_path)
        if p.suffix.lower() == ".gguf":
            tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
        else:
            tok = AutoTokenizer.from_pretrained(str(p))
        ids = tok(text)["input_ids"][: args.prompt_tokens]
        return [int(i) for i in ids], f"{len(ids)} tokens of the War and Peace opening (the model's tokenizer)"
    except Exception as e:  # no tokenizer (or no transformers): the engine draws seeded random ids
        return None, f"{args.prompt_tokens} seeded random ids (no tokenizer: {type(e).__name__})"


def agree(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def span(v, fmt):
    lo, hi = min(v), max(v)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--rss":
        return rss_main(sys.argv[3:])
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        spec = json.loads(sys.argv[2])
        fn = {"llama.cpp": worker_llama, "transformers": worker_transformers}[spec.pop("tool")]
        print(json.dumps(fn(**spec)))
        return 0

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--hf", type=Path, help="what transformers loads (default: --model)")
    ap.add_argument("--gguf", type=Path, help="what llama.cpp loads (default: --model if .gguf)")
    ap.add_argument("--prompt-tokens", type=int, default=126)
    ap.add_argument("--decode-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engine-args", default="", help="extra arguments for engine_timing")
    ap.add_argument("--baseline-exe", type=Path,
                    help="another engine_timing binary (e.g. built from an older commit), timed as a fourth tool")
    ap.add_argument("--baseline-args", default="", help="extra arguments for --baseline-exe")
    ap.add_argument("--skip", default="", help="comma-separated: llama.cpp, transformers")
    ap.add_argument("--build", action="store_true", help="rebuild engine_timing first")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    for name in ("prompt_tokens", "decode_tokens", "repeats", "runs", "threads"):
        if getattr(args, name) <= 0:
            raise Fail(f"--{name.replace('_', '-')} must be positive")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - {"llama.cpp", "transformers"}:
        raise Fail(f"--skip {args.skip!r}: expected llama.cpp and/or transformers")
    if not args.model.exists():
        raise Fail(f"--model {args.model}: no such file or directory")
    hf = args.hf or args.model
    gguf = args.gguf or (args.model if args.model.suffix.lower() == ".gguf" else None)
    if gguf is None and "llama.cpp" not in skip:
        raise Fail("llama.cpp needs a .gguf file: pass --gguf FILE (tools/reference/llama_cpp_convert.py "
                   "writes one from a Hugging Face directory) or --skip llama.cpp")

    exe = engine_binary(args)
    ids, prompt_desc = prompt_ids(args, hf)
    common = dict(ids=ids, decode=args.decode_tokens, repeats=args.repeats, threads=args.threads)
    tools = [("outlier-probe", None)]
    if args.baseline_exe:
        if not args.baseline_exe.is_file():
            raise Fail(f"--baseline-exe {args.baseline_exe}: no such file")
        tools.append(("outlier-probe (baseline)", None))
    if "llama.cpp" not in skip:
        tools.append(("llama.cpp", dict(tool="llama.cpp", gguf=str(gguf), **common)))
    if "transformers" not in skip:
        tools.append(("transformers", dict(tool="transformers", path=str(hf), **common)))

    results = {name: [] for name, _ in tools}
    for r in range(args.runs):
        for name, spec in tools:
            print(f"round {r + 1}/{args.runs}: {name}", file=sys.stderr)
            if spec is None:
                base = name != "outlier-probe"
                prompt = ["--tokens", ",".join(map(str, ids))] if ids else ["--random-tokens",
                                                                           str(args.prompt_tokens)]
                cmd = [str(args.baseline_exe if base else exe), "--model", str(args.model), *prompt,
                       "--decode-tokens", str(args.decode_tokens), "--repeats", str(args.repeats),
                       *(args.baseline_args if base else args.engine_args).split()]
            else:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
            out, err = run_child(peak_rss_wrapper(cmd))
            res = last_json_line(out, name)
            res.update(last_json_line(err, f"{name} (rss)"))
            if spec is not None:
                res["prefill_ms"] = median(res["prefill_runs_s"]) * 1e3
                res["decode_ms_per_token"] = median(res["decode_steps_ms"])
            results[name].append(res)
            if ids is None:  # the engine went first and drew the ids: everyone else uses them
                ids = res["prompt_ids"]
                for _, sp in tools[1:]:
                    if sp is not None:
                        sp["ids"] = ids

    eng = results["outlier-probe"]
    e_pre = median([x["prefill_ms"] for x in eng])
    e_dec = median([x["decode_ms_per_token"] for x in eng])
    print(f"model: `{args.model}`" + (f" (transformers: `{hf}`)" if hf != args.model else "")
          + (f" (llama.cpp: `{gguf}`)" if gguf not in (None, args.model) else ""))
    print(f"prompt: {prompt_desc}; {args.decode_tokens} greedy decode steps; {args.runs} rounds "
          f"(min–max over rounds), each the median of {args.repeats} prefills after a warm-up\n")
    for name, _ in tools:
        print(f"- {name}: {results[name][0]['engine']}"
              + (f" on {results[name][0]['device']}, weights {results[name][0]['weights']}"
                 if name.startswith("outlier-probe") else ""))
    print()
    print(f"| tool | prefill {len(ids)} tokens | prefill tokens/s | decode ms/token | peak RSS "
          f"| peak GPU buffers | prefill speed / engine | decode speed / engine | same greedy tokens |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, _ in tools:
        rs = results[name]
        pre = [x["prefill_ms"] / 1e3 for x in rs]
        tps = [len(ids) / p for p in pre]
        dec = [x["decode_ms_per_token"] for x in rs]
        rss = [x["peak_rss_bytes"] / 2**20 for x in rs]
        gpu = span([x["peak_gpu_bytes"] / 2**20 for x in rs], "{:.0f} MiB") if name.startswith("outlier-probe") else "–"
        same = agree(rs[0]["generated"], eng[0]["generated"])
        print(f"| {name} | {span(pre, '{:.2f} s')} | {span(tps, '{:.0f}')} | {span(dec, '{:.1f}')} "
              f"| {span(rss, '{:.0f} MiB')} | {gpu} | {e_pre / 1e3 / median(pre):.2f}× "
              f"| {e_dec / median(dec):.2f}× | {same}/{len(eng[0]['generated'])} |")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "prompt": prompt_desc, "ids": ids,
                                         "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        print(f"side_by_side: error: {e}", file=sys.stderr)
        sys.exit(1)
