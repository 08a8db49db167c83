#!/usr/bin/env python3
"""transformers' answers for the BOS and streamed-text cases (tests/bos.rs, tests/cli_text.rs).

Reads the case inputs copied under tests/fixtures/cases/ (from /work/shared/cases: bos/llama-dir,
bos/tiny-add-bos.gguf, stream-utf8/llama; bos/corpus.txt is the first 640 bytes of Tiny
Shakespeare) and writes tests/fixtures/cases/expected.json with, for the prompt
"Summer is warm. Winter is cold.\\n":

  * llama_dir: ids with and without special tokens (tokenizer(...)["input_ids"],
    add_special_tokens=True/False), and the greedy continuation (8 new tokens, HF generate,
    eager f32) of each;
  * gguf: ids from AutoTokenizer(gguf_file=...) of tiny-add-bos.gguf and of three variants that
    tests/bos.rs makes the same way, by patching bytes of the file: add_bos_token = false
    ("false"), the key renamed to tokenizer.ggml.add_xxx_token ("absent"), the key renamed to
    tokenizer.ggml.add_eos_token ("eos": add_eos_token = true, no add_bos_token);
  * corpus: the corpus text's ids without special tokens, and the perplexity of 3 windows of 16
    tokens (BOS + 15 text tokens each, cut from those ids) under the llama-dir model:
    sum over windows of the cross-entropy of tokens[1:] given tokens[:-1];
  * stream: the greedy continuation of "Summer" (15 new tokens) of stream-utf8/llama, its
    decoded text with and without special tokens.

Re-run (seconds): /work/venv/bin/python tools/reference/make_bos_cases.py
"""

import json
import math
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "tests" / "fixtures" / "cases"
PROMPT = "Summer is warm. Winter is cold.\n"
KEY = b"tokenizer.ggml.add_bos_token"
SEQ_LEN, SEQS = 16, 3

torch.manual_seed(0)
torch.set_num_threads(1)


def model_of(path):
    m = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager", dtype=torch.float32)
    return m.eval()


def greedy(model, ids, n):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False)
    return out[0, len(ids):].tolist()


def gguf_variants():
    src = (CASES / "bos" / "tiny-add-bos.gguf").read_bytes()
    at = src.index(KEY) + len(KEY)
    assert src.count(KEY) == 1 and src[at:at + 5] == b"\x07\x00\x00\x00\x01", "bool true expected"
    return {
        "true": src,
        "false": src[:at + 4] + b"\x00" + src[at + 5:],
        "absent": src.replace(KEY, b"tokenizer.ggml.add_xxx_token"),
        "eos": src.replace(KEY, b"tokenizer.ggml.add_eos_token"),
    }


def main():
    out = {"prompt": PROMPT}
    d = CASES / "bos" / "llama-dir"
    tok = AutoTokenizer.from_pretrained(d)
    model = model_of(d)
    with_bos = tok(PROMPT)["input_ids"]
    without = tok(PROMPT, add_special_tokens=False)["input_ids"]
    out["llama_dir"] = {
        "ids": with_bos,
        "ids_no_special": without,
        "generated": greedy(model, with_bos, 8),
        "generated_no_bos": greedy(model, without, 8),
    }

    tmp = Path(tempfile.mkdtemp())
    try:
        out["gguf"] = {}
        for name, data in gguf_variants().items():
            (tmp / f"{name}.gguf").write_bytes(data)
            t = AutoTokenizer.from_pretrained(tmp, gguf_file=f"{name}.gguf")
            out["gguf"][name] = t(PROMPT)["input_ids"]
    finally:
        shutil.rmtree(tmp)

    text = (CASES / "bos" / "corpus.txt").read_text()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    bos = tok("")["input_ids"][0]  # the post-processor's BOS (no tokenizer_config.json here)
    assert tok("")["input_ids"] == [bos] == with_bos[:1]
    chunk = SEQ_LEN - 1
    windows = [[bos] + ids[i * chunk:(i + 1) * chunk] for i in range(SEQS)]
    nll, n = 0.0, 0
    with torch.no_grad():
        for w in windows:
            logits = model(torch.tensor([w])).logits[0]
            nll += torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(w[1:]), reduction="sum").item()
            n += len(w) - 1
    out["corpus"] = {
        "file": "bos/corpus.txt",
        "ids_no_special": ids,
        "seq_len": SEQ_LEN,
        "seqs": SEQS,
        "windows": windows,
        "nll_sum": nll,
        "tokens": n,
        "ppl": math.exp(nll / n),
    }

    s = CASES / "stream-utf8" / "llama"
    stok = AutoTokenizer.from_pretrained(s)
    smodel = model_of(s)
    p = stok("Summer")["input_ids"]
    gen = greedy(smodel, p, 15)
    out["stream"] = {
        "prompt": "Summer",
        "prompt_ids": p,
        "generated": gen,
        "text": stok.decode(gen, skip_special_tokens=True),
        "text_with_special": stok.decode(gen),
    }
    (CASES / "expected.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(out, ensure_ascii=False)[:2000])


if __name__ == "__main__":
    main()
