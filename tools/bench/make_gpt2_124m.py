#!/usr/bin/env python3
"""Write a random-init GPT-2 124M (HF GPT2Config() defaults) for benchmarking.

12 layers, n_embd 768, 12 heads, vocab 50257, n_positions 1024, tied lm_head; weights from
GPT2LMHeadModel's own init after torch.manual_seed(0), stored as float32. Writes
`model.safetensors` + `config.json` (HF `save_pretrained`, safetensors) into OUTDIR, default
`.cache/gpt2-124m-random` under the repository root. No tokenizer (the benchmarks use random ids)
unless `--tokenizer DIR` names a GPT-2 tokenizer directory (tokenizer.json, vocab.json, merges.txt;
e.g. ../shared/data/gpt2-tokenizer), whose files are copied in: then llama.cpp's converter can turn
the directory into a GGUF and tools/bench/side_by_side.py tokenizes real text for it.

    /work/venv/bin/python tools/bench/make_gpt2_124m.py [OUTDIR] [--tokenizer DIR]
"""

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / ".cache" / "gpt2-124m-random"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", nargs="?", default=str(DEFAULT_OUT), help=f"output directory (default {DEFAULT_OUT})")
    ap.add_argument("--tokenizer", type=Path, help="copy this GPT-2 tokenizer directory's files in")
    args = ap.parse_args()
    tok_files = ("tokenizer.json", "vocab.json", "merges.txt")
    if args.tokenizer is not None:
        missing = [f for f in tok_files if not (args.tokenizer / f).is_file()]
        if missing:
            print(f"make_gpt2_124m: error: --tokenizer {args.tokenizer} lacks {', '.join(missing)}", file=sys.stderr)
            return 1

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    t0 = time.perf_counter()
    torch.manual_seed(0)
    config = GPT2Config()
    model = GPT2LMHeadModel(config).to(torch.float32).eval()
    assert model.lm_head.weight is model.transformer.wte.weight, "lm_head should be tied to wte"
    n_params = sum(p.numel() for p in model.parameters())

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        model.save_pretrained(out, safe_serialization=True)
    except TypeError:  # transformers versions where safetensors is the only format
        model.save_pretrained(out)
    st = out / "model.safetensors"
    if not st.is_file() or not (out / "config.json").is_file():
        print(f"make_gpt2_124m: error: save_pretrained did not write {st} and config.json", file=sys.stderr)
        return 1
    if args.tokenizer is not None:
        import json
        import shutil

        # llama.cpp's GPT-2 converter reads the old alias n_ctx (= n_positions), which
        # transformers 5 no longer writes; the engine accepts it when equal to n_positions.
        cfg = json.loads((out / "config.json").read_text())
        cfg["n_ctx"] = cfg["n_positions"]
        (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")

        for f in tok_files:
            shutil.copyfile(args.tokenizer / f, out / f)
    print(f"wrote {out}: GPT-2 n_layer={config.n_layer} n_embd={config.n_embd} n_head={config.n_head} "
          f"vocab={config.vocab_size} n_positions={config.n_positions}, {n_params:,} params, "
          f"model.safetensors {st.stat().st_size / 2**20:.1f} MiB, {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
