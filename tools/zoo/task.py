#!/usr/bin/env python3
"""Bigram-Backcopy, the synthetic task of Guo et al. 2024 ("Active-Dormant Attention Heads",
arXiv 2410.13835), seeded, with a readable ``tokenizer.json``.

Task
----
* 63 ordinary tokens with a fixed random bigram table: row i ~ Dirichlet(alpha = 0.2) over the 63
  tokens (numpy ``default_rng(task_seed)``).
* The three tokens most frequent at the equilibrium of that chain (its stationary distribution,
  from the leading left eigenvector) are the *triggers*. After a trigger the next token copies the
  token BEFORE the trigger (x[t+1] = x[t-1] when x[t] is a trigger); elsewhere x[t+1] ~ table[x[t]].
* Every sequence starts with BOS (id 63) at position 0; x[1] is drawn from the stationary
  distribution restricted to the non-trigger tokens (so a trigger always has a real token before it).
* Sequence length 64 (BOS + 63 tokens); the model is trained on all 63 next-token predictions.

Ids and symbols (``tokenizer.json``)
------------------------------------
Ids are permuted so that the 60 non-triggers are 0..59 (symbols ``a``-``z``, ``A``-``Z``, ``0``-``7``)
and the triggers 60, 61, 62 (symbols ``.``, ``,``, ``;`` - delimiters, so the engine's token-class
analysis puts the triggers in the paper's "strong delimiter" class and everything else in "other").
BOS = id 63, symbol ``<s>``, a special token that the post-processor puts before every text, so
``tokenizer("abc")`` gives [63, a, b, c] in transformers and in the engine. One character = one token
(a WordLevel model over single characters, split by an ``isolated`` empty-pattern pre-tokenizer).
Line breaks are dropped by the normalizer, so ``heldout.txt`` read as one text is the 32 sequences
back to back: corpus windows of 64 tokens (BOS + 63, as ``ppl``/``compress`` cut them) are exactly
the held-out sequences.

Files written by ``python tools/zoo/task.py OUT_DIR``: ``tokenizer.json``, ``task.json`` (table,
triggers, stationary distribution, seeds), ``heldout.txt`` (32 held-out sequences, one per line,
without BOS, from their own seed).
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

N_TOKENS = 63
N_TRIGGERS = 3
BOS = 63
VOCAB = 64
SEQ_LEN = 64
ALPHA = 0.2
TASK_SEED = 2024
HELDOUT_SEED = 777
N_HELDOUT = 32
SYMBOLS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)] \
    + [str(d) for d in range(8)] + [".", ",", ";"]
BOS_SYMBOL = "<s>"
assert len(SYMBOLS) == N_TOKENS and len(set(SYMBOLS)) == N_TOKENS


class Task:
    """The bigram table (float64 [63, 63], ids already permuted: triggers are 60, 61, 62)."""

    def __init__(self, seed: int = TASK_SEED):
        rng = np.random.default_rng(seed)
        table = rng.dirichlet([ALPHA] * N_TOKENS, size=N_TOKENS)
        pi = stationary(table)
        trig = np.argsort(-pi, kind="stable")[:N_TRIGGERS]
        order = [i for i in range(N_TOKENS) if i not in set(trig.tolist())] + trig.tolist()
        perm = np.array(order)  # new id k = old id perm[k]
        self.table = table[np.ix_(perm, perm)]
        self.pi = pi[perm]
        self.triggers = list(range(N_TOKENS - N_TRIGGERS, N_TOKENS))
        self.seed = seed
        start = self.pi.copy()
        start[self.triggers] = 0.0
        self.start = start / start.sum()
        self._table_t = torch.tensor(self.table, dtype=torch.float64)
        self._start_t = torch.tensor(self.start, dtype=torch.float64)
        self._is_trig = torch.zeros(VOCAB, dtype=torch.bool)
        self._is_trig[self.triggers] = True

    def sample(self, batch: int, gen: torch.Generator) -> torch.Tensor:
        """[batch, 64] int64 sequences, BOS first, drawn with ``gen`` (torch RNG, resumable)."""
        x = torch.empty(batch, SEQ_LEN, dtype=torch.long)
        x[:, 0] = BOS
        x[:, 1] = torch.multinomial(self._start_t.expand(batch, -1), 1, generator=gen)[:, 0]
        for t in range(1, SEQ_LEN - 1):
            nxt = torch.multinomial(self._table_t[x[:, t]], 1, generator=gen)[:, 0]
            copy = self._is_trig[x[:, t]]
            x[:, t + 1] = torch.where(copy, x[:, t - 1], nxt)
        return x

    def is_trigger(self, ids: torch.Tensor) -> torch.Tensor:
        return self._is_trig[ids]

    def bayes_loss(self, x: torch.Tensor) -> float:
        """Mean cross-entropy (nats) of the true next-token distribution on ``x``'s 63 predictions
        (copies are free; position 1 follows the restricted stationary start)."""
        tot, n = 0.0, 0
        for row in x.tolist():
            tot += -np.log(self.start[row[1]])
            n += 1
            for t in range(1, SEQ_LEN - 1):
                n += 1
                if row[t] in self.triggers:
                    continue
                tot += -np.log(self.table[row[t], row[t + 1]])
        return tot / n


def stationary(table: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eig(table.T)
    i = int(np.argmin(np.abs(w - 1.0)))
    p = np.real(v[:, i])
    p = p / p.sum()
    return np.clip(p, 0.0, None) / np.clip(p, 0.0, None).sum()


def tokenizer_json() -> dict:
    vocab = {s: i for i, s in enumerate(SYMBOLS)}
    vocab[BOS_SYMBOL] = BOS
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": BOS, "content": BOS_SYMBOL, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": {"type": "Replace", "pattern": {"String": "\n"}, "content": ""},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": ""}, "behavior": "Isolated", "invert": False},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BOS_SYMBOL, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": BOS_SYMBOL, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {BOS_SYMBOL: {"id": BOS_SYMBOL, "ids": [BOS], "tokens": [BOS_SYMBOL]}},
        },
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": BOS_SYMBOL},
    }


def decode(ids) -> str:
    return "".join(BOS_SYMBOL if i == BOS else SYMBOLS[i] for i in ids)


def heldout(task: Task) -> torch.Tensor:
    g = torch.Generator().manual_seed(HELDOUT_SEED)
    return task.sample(N_HELDOUT, g)


def write(out: Path, task: Task):
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(tokenizer_json(), indent=1, ensure_ascii=False) + "\n")
    ho = heldout(task)
    (out / "heldout.txt").write_text("".join(decode(r[1:]) + "\n" for r in ho.tolist()))
    meta = {"task": "Bigram-Backcopy (Guo et al. 2024, arXiv 2410.13835)", "task_seed": task.seed, "alpha": ALPHA,
            "n_tokens": N_TOKENS, "bos_id": BOS, "vocab_size": VOCAB, "seq_len": SEQ_LEN,
            "triggers": task.triggers, "trigger_symbols": [SYMBOLS[i] for i in task.triggers],
            "symbols": SYMBOLS + [BOS_SYMBOL], "heldout_seed": HELDOUT_SEED, "n_heldout": N_HELDOUT,
            "heldout_bayes_loss": round(task.bayes_loss(ho), 5),
            "stationary": [round(float(p), 6) for p in task.pi],
            "bigram_table": [[round(float(p), 6) for p in row] for row in task.table]}
    (out / "task.json").write_text(json.dumps(meta) + "\n")
    return meta


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "zoo")
    m = write(out, Task())
    print(json.dumps({k: m[k] for k in ("triggers", "trigger_symbols", "heldout_bayes_loss")}))
