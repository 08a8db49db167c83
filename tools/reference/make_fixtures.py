#!/usr/bin/env python3
"""Generate the reference fixtures for outlier-probe's Rust tests.

Writes, under tests/fixtures/ of the repository:
  * gpt2-odd-a/, gpt2-odd-b/, gpt2-odd-c/: tiny random-init GPT-2 models with odd
    shapes (config.json, model.safetensors, tokenizer.json, prompts.json and
    ref-{0,1,2}.safetensors holding every intermediate activation of the HF forward
    pass plus greedy generations);
  * gpt2_tokenizer_ids.json: ids of the real GPT-2 tokenizer for a set of strings;
  * gpt2-tokenizer.json: the real GPT-2 tokenizer.json, minified (same JSON content).

Everything is deterministic (fixed seeds), CPU, float32, HF GPT2LMHeadModel with
attn_implementation="eager".  Re-run with:

    python3 -m venv v && v/bin/pip install -r tools/reference/requirements.txt \
        && v/bin/python tools/reference/make_fixtures.py
"""

import json
import math
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # tokenizers trainer: keep it single-threaded
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer, GPT2TokenizerFast
from transformers.pytorch_utils import Conv1D

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
DATA = Path(os.environ.get("OUTLIER_PROBE_DATA", "/work/shared/data"))
GPT2_TOK_DIR = DATA / "gpt2-tokenizer"
CORPUS = DATA / "tinyshakespeare.txt"
EOT = "<|endoftext|>"

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

FIXTURE_SPECS = [
    dict(name="gpt2-odd-a", n_embd=72, n_head=3, n_layer=2, n_positions=48, vocab_size=1021,
         layer_norm_epsilon=1e-5, dtype=torch.float32, prefix="", lm_head=False, seed=1001),
    dict(name="gpt2-odd-b", n_embd=80, n_head=5, n_layer=3, n_positions=64, vocab_size=777,
         layer_norm_epsilon=1e-6, dtype=torch.float16, prefix="transformer.", lm_head=False, seed=2002),
    dict(name="gpt2-odd-c", n_embd=144, n_head=4, n_layer=3, n_positions=72, vocab_size=2001,
         layer_norm_epsilon=1e-5, dtype=torch.bfloat16, prefix="transformer.", lm_head=True, seed=3003),
]

PROMPT_0 = "Summer is warm. Winter is cold.\n"
PROMPT_1 = "Hello"
GEN_TOKENS = 8

TOKENIZER_STRINGS = [
    "Hello world, it's GPT-2!",
    "Summer is warm. Winter is cold.\n",
    "naïve café 日本語 🙂",
    "tab\tseparated\tvalues\t\tend",
    "multiple   spaces    here     and  there",
    "before<|endoftext|>after",
    "",
    "12345 67.89",
    "   leading and trailing spaces   ",
    "line one\nline two\r\n\nline four",
    "I'm sure you'll say we've done it; they'd DON'T!",
    "Ünïcödé: Ελληνικά, русский, العربية, emoji 👍🏽🎉",
    " Hello",
]


# --------------------------------------------------------------------------- helpers

def dump_json_list(path: Path, entries):
    """One JSON object per line inside a list: diff-friendly and compact."""
    body = ",\n".join(" " + json.dumps(e, ensure_ascii=False) for e in entries)
    path.write_text("[\n" + body + "\n]\n", encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8")) == entries


def split_corpus():
    text = CORPUS.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    return text[:cut], text[cut:]


def train_tokenizer(train_text: str, vocab_size: int) -> Tokenizer:
    """GPT-2 style byte-level BPE; <|endoftext|> is the last id (vocab_size - 1)."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # the special token is appended afterwards as the last id
        min_frequency=1,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    lines = train_text.splitlines(keepends=True)
    tok.train_from_iterator(lines, trainer=trainer)
    assert tok.get_vocab_size() == vocab_size - 1, (tok.get_vocab_size(), vocab_size)
    tok.add_special_tokens([EOT])
    assert tok.get_vocab_size() == vocab_size, (tok.get_vocab_size(), vocab_size)
    assert tok.token_to_id(EOT) == vocab_size - 1, tok.token_to_id(EOT)
    assert max(tok.get_vocab().values()) == vocab_size - 1
    return tok


def encode(tok: Tokenizer, text: str) -> list:
    return tok.encode(text, add_special_tokens=False).ids


def check_roundtrip(tok: Tokenizer, texts):
    for t in texts:
        ids = encode(tok, t)
        back = tok.decode(ids, skip_special_tokens=False)
        assert back == t, (t, ids, back)


def pick_long_prompt(tok: Tokenizer, heldout: str, n_positions: int):
    """A held-out Shakespeare passage with n_positions-10 <= T <= n_positions-1 tokens that
    round-trips (decode(ids) re-encodes to exactly ids). Target T = n_positions - 6."""
    start = heldout.index("\n\n") + 2  # begin at a speech boundary
    passage = heldout[start:start + 4000]
    ids = encode(tok, passage)
    for T in [n_positions - 6, n_positions - 5, n_positions - 7, n_positions - 4, n_positions - 8,
              n_positions - 3, n_positions - 9, n_positions - 2, n_positions - 10, n_positions - 1]:
        cand = ids[:T]
        text = tok.decode(cand, skip_special_tokens=False)
        if encode(tok, text) == cand and text == passage[:len(text)]:
            return text
    raise RuntimeError("no round-tripping truncation found")


def make_model(spec) -> GPT2LMHeadModel:
    V = spec["vocab_size"]
    config = GPT2Config(
        vocab_size=V,
        n_positions=spec["n_positions"],
        n_embd=spec["n_embd"],
        n_layer=spec["n_layer"],
        n_head=spec["n_head"],
        layer_norm_epsilon=spec["layer_norm_epsilon"],
        activation_function="gelu_new",
        initializer_range=0.1,
        bos_token_id=V - 1,
        eos_token_id=V - 1,
        tie_word_embeddings=True,
        attn_implementation="eager",
    )
    if hasattr(config, "n_ctx") or "n_ctx" in config.to_dict():
        config.n_ctx = spec["n_positions"]
    torch.manual_seed(spec["seed"])
    model = GPT2LMHeadModel(config)
    model.config._attn_implementation = "eager"
    model.eval()
    g = torch.Generator().manual_seed(spec["seed"] + 7)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, (torch.nn.Linear, Conv1D)) and m.bias is not None:
                m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g))
        # Round to the storage dtype and back so references are exact for the stored weights.
        for p in model.parameters():
            p.copy_(p.to(spec["dtype"]).to(torch.float32))
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr(), "not tied"
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, Conv1D)) and m.bias is not None:
            assert (m.bias != 0).all()
    return model


def save_model(model: GPT2LMHeadModel, spec, outdir: Path):
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"):
            continue
        if k == "lm_head.weight":
            continue
        assert k.startswith("transformer."), k
        name = spec["prefix"] + k[len("transformer."):]
        sd[name] = v.detach().to(spec["dtype"]).contiguous().clone()
    if spec["lm_head"]:
        sd["lm_head.weight"] = model.transformer.wte.weight.detach().to(spec["dtype"]).contiguous().clone()
    save_file(sd, str(outdir / "model.safetensors"), metadata={"format": "pt"})
    model.config.to_json_file(str(outdir / "config.json"))
    cfg = json.loads((outdir / "config.json").read_text())
    for key, want in [("model_type", "gpt2"), ("n_embd", spec["n_embd"]), ("n_head", spec["n_head"]),
                      ("n_layer", spec["n_layer"]), ("n_positions", spec["n_positions"]),
                      ("vocab_size", spec["vocab_size"]), ("layer_norm_epsilon", spec["layer_norm_epsilon"]),
                      ("activation_function", "gelu_new"), ("bos_token_id", spec["vocab_size"] - 1),
                      ("eos_token_id", spec["vocab_size"] - 1)]:
        assert cfg.get(key) == want, (key, cfg.get(key), want)
    return sorted(sd)


def reload_and_check(outdir: Path, spec, ref_by_k):
    """Rebuild the model from the written config.json + model.safetensors only and check
    that it reproduces the stored logits exactly."""
    from safetensors.torch import load_file
    cfg = GPT2Config.from_json_file(str(outdir / "config.json"))
    cfg._attn_implementation = "eager"
    fresh = GPT2LMHeadModel(cfg).eval()
    sd = load_file(str(outdir / "model.safetensors"))
    for k, v in sd.items():
        assert v.dtype == spec["dtype"], (k, v.dtype)
    if spec["lm_head"]:
        assert torch.equal(sd["lm_head.weight"], sd["transformer.wte.weight"])
        sd.pop("lm_head.weight")
    sd = {"transformer." + (k[len(spec["prefix"]):]): v.float() for k, v in sd.items()}
    missing, unexpected = fresh.load_state_dict(sd, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    fresh.tie_weights()
    assert torch.equal(fresh.lm_head.weight, fresh.transformer.wte.weight)
    with torch.no_grad():
        for k, ref in ref_by_k.items():
            lg = fresh(ref["tokens"][None], use_cache=False).logits[0]
            assert torch.equal(lg, ref["logits"]), (outdir.name, k, (lg - ref["logits"]).abs().max())


# --------------------------------------------------------------------------- reference capture

def run_reference(model: GPT2LMHeadModel, ids: list, n_positions: int):
    cfg = model.config
    H, D = cfg.n_head, cfg.n_embd
    Dh = D // H
    T = len(ids)
    tr = model.transformer
    cap = {}
    handles = []

    def out_hook(name):
        def f(_m, _inp, out):
            o = out[0] if isinstance(out, tuple) else out
            cap[name] = o.detach().clone()
        return f

    def in_hook(name):
        def f(_m, inp):
            cap[name] = inp[0].detach().clone()
        return f

    handles.append(tr.wte.register_forward_hook(out_hook("hook_embed")))
    handles.append(tr.wpe.register_forward_hook(out_hook("hook_pos_embed")))
    for l, blk in enumerate(tr.h):
        p = f"blocks.{l}."
        handles.append(blk.register_forward_pre_hook(in_hook(p + "hook_resid_pre")))
        handles.append(blk.register_forward_hook(out_hook(p + "hook_resid_post")))
        handles.append(blk.ln_1.register_forward_hook(out_hook(p + "ln1.hook_normalized")))
        handles.append(blk.attn.c_attn.register_forward_hook(out_hook(p + "_qkv")))
        handles.append(blk.attn.c_proj.register_forward_pre_hook(in_hook(p + "_z_merged")))
        handles.append(blk.attn.c_proj.register_forward_hook(out_hook(p + "hook_attn_out")))
        handles.append(blk.ln_2.register_forward_pre_hook(in_hook(p + "hook_resid_mid")))
        handles.append(blk.ln_2.register_forward_hook(out_hook(p + "ln2.hook_normalized")))
        handles.append(blk.mlp.c_fc.register_forward_hook(out_hook(p + "mlp.hook_pre")))
        handles.append(blk.mlp.act.register_forward_hook(out_hook(p + "mlp.hook_post")))
        handles.append(blk.mlp.c_proj.register_forward_hook(out_hook(p + "hook_mlp_out")))
    handles.append(tr.ln_f.register_forward_hook(out_hook("ln_final.hook_normalized")))

    input_ids = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids, output_hidden_states=True, output_attentions=True, use_cache=False)
    for h in handles:
        h.remove()

    ref = {"tokens": torch.tensor(ids, dtype=torch.int64)}

    def sq(t):  # drop the batch axis
        assert t.shape[0] == 1, t.shape
        return t[0].float().contiguous()

    ref["hook_embed"] = sq(cap["hook_embed"])
    pe = cap["hook_pos_embed"]
    ref["hook_pos_embed"] = (pe[0] if pe.dim() == 3 else pe).float().contiguous()
    assert torch.equal(ref["hook_embed"], tr.wte.weight[input_ids[0]])
    assert torch.equal(ref["hook_pos_embed"], tr.wpe.weight[:T])
    assert torch.equal(ref["hook_embed"] + ref["hook_pos_embed"], sq(cap["blocks.0.hook_resid_pre"]))

    causal = torch.ones(T, T, dtype=torch.bool).tril()
    hs = out.hidden_states
    assert len(hs) == cfg.n_layer + 1, len(hs)
    for l, blk in enumerate(tr.h):
        p = f"blocks.{l}."
        ref[p + "hook_resid_pre"] = sq(cap[p + "hook_resid_pre"])
        assert torch.equal(ref[p + "hook_resid_pre"], sq(hs[l])), f"hidden_states[{l}]"
        ref[p + "ln1.hook_normalized"] = sq(cap[p + "ln1.hook_normalized"])
        qkv = sq(cap[p + "_qkv"])  # [T, 3D]
        q, k, v = qkv.split(D, dim=-1)
        q, k, v = (x.reshape(T, H, Dh).contiguous() for x in (q, k, v))
        ref[p + "attn.hook_q"], ref[p + "attn.hook_k"], ref[p + "attn.hook_v"] = q, k, v
        qh, kh, vh = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [H, T, Dh]
        scores = torch.matmul(qh, kh.transpose(-1, -2)) * blk.attn.scaling
        scores = scores.masked_fill(~causal, float("-inf"))
        ref[p + "attn.hook_attn_scores"] = scores.contiguous()
        pattern = sq(out.attentions[l])  # [H, T, T], HF output_attentions
        ref[p + "attn.hook_pattern"] = pattern
        my_pattern = torch.softmax(scores, dim=-1)
        assert torch.allclose(my_pattern, pattern, atol=1e-6, rtol=1e-5), (my_pattern - pattern).abs().max()
        assert (pattern[~causal.expand(H, T, T)] == 0).all()
        z = sq(cap[p + "_z_merged"]).reshape(T, H, Dh).contiguous()
        ref[p + "attn.hook_z"] = z
        z_re = torch.matmul(pattern, vh).transpose(0, 1)
        assert torch.allclose(z_re, z, atol=1e-6, rtol=1e-5), (z_re - z).abs().max()
        ref[p + "hook_attn_out"] = sq(cap[p + "hook_attn_out"])
        ref[p + "hook_resid_mid"] = sq(cap[p + "hook_resid_mid"])
        assert torch.equal(ref[p + "hook_resid_mid"], ref[p + "hook_attn_out"] + ref[p + "hook_resid_pre"])
        ref[p + "ln2.hook_normalized"] = sq(cap[p + "ln2.hook_normalized"])
        ref[p + "mlp.hook_pre"] = sq(cap[p + "mlp.hook_pre"])
        ref[p + "mlp.hook_post"] = sq(cap[p + "mlp.hook_post"])
        ref[p + "hook_mlp_out"] = sq(cap[p + "hook_mlp_out"])
        ref[p + "hook_resid_post"] = sq(cap[p + "hook_resid_post"])
        assert torch.equal(ref[p + "hook_resid_post"], ref[p + "hook_resid_mid"] + ref[p + "hook_mlp_out"])
        if l + 1 < cfg.n_layer:
            assert torch.equal(ref[p + "hook_resid_post"], sq(cap[f"blocks.{l + 1}.hook_resid_pre"]))
        # independent re-computations (loose tolerances, not HF code paths)
        x = ref[p + "hook_resid_pre"]
        ln1 = torch.nn.functional.layer_norm(x, (D,), blk.ln_1.weight, blk.ln_1.bias, cfg.layer_norm_epsilon)
        assert torch.allclose(ln1, ref[p + "ln1.hook_normalized"], atol=1e-5, rtol=1e-5)
        a = ref[p + "mlp.hook_pre"]
        gelu = 0.5 * a * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (a + 0.044715 * torch.pow(a, 3.0))))
        assert torch.allclose(gelu, ref[p + "mlp.hook_post"], atol=1e-6, rtol=1e-5)

    ref["ln_final.hook_normalized"] = sq(cap["ln_final.hook_normalized"])
    assert torch.equal(ref["ln_final.hook_normalized"], sq(hs[-1])), "last hidden state != ln_f output"
    assert torch.equal(ref["ln_final.hook_normalized"], sq(out.hidden_states[cfg.n_layer]))
    ref["logits"] = sq(out.logits)
    with torch.no_grad():
        logits_re = model.lm_head(cap["ln_final.hook_normalized"])
    assert torch.equal(sq(logits_re), ref["logits"])
    logits_mm = ref["ln_final.hook_normalized"] @ tr.wte.weight.T
    assert torch.allclose(logits_mm, ref["logits"], atol=1e-4, rtol=1e-4)

    # greedy generation
    n_new = min(GEN_TOKENS, n_positions - T)
    V = cfg.vocab_size
    with torch.no_grad():
        gen = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            max_new_tokens=n_new,
            min_new_tokens=0,
            pad_token_id=V - 1,
            eos_token_id=V - 1,
        )
    new = gen[0, T:].tolist()
    # independent greedy loop without KV cache
    seq = list(ids)
    manual = []
    with torch.no_grad():
        for _ in range(n_new):
            lg = model(torch.tensor([seq]), use_cache=False).logits[0, -1]
            nxt = int(torch.argmax(lg))
            manual.append(nxt)
            seq.append(nxt)
            if nxt == V - 1:
                break
    assert new == manual, (new, manual)
    assert len(new) == n_new, f"generation stopped early at EOS: {new}"
    ref["generated"] = torch.tensor(new, dtype=torch.int64)

    for k_, v_ in ref.items():
        if k_ not in ("tokens", "generated"):
            assert v_.dtype == torch.float32, k_
        assert v_.is_contiguous()
    return ref


# --------------------------------------------------------------------------- GPT-2 tokenizer ids

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class ReferenceBPE:
    """Pure-Python port of OpenAI's gpt-2 encoder.py (independent of `tokenizers`)."""

    def __init__(self, vocab_file, merges_file):
        import regex
        self.encoder = json.loads(Path(vocab_file).read_text(encoding="utf-8"))
        lines = Path(merges_file).read_text(encoding="utf-8").split("\n")
        merges = [tuple(l.split()) for l in lines[1:] if l.strip()]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.b2u = bytes_to_unicode()
        self.pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = list(token)
        while len(word) > 1:
            pairs = [(self.ranks.get((word[i], word[i + 1]), math.inf), i) for i in range(len(word) - 1)]
            best = min(pairs)[0]
            if best == math.inf:
                break
            pair = next((word[i], word[i + 1]) for r, i in pairs if r == best)
            new, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == pair:
                    new.append(word[i] + word[i + 1])
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = new
        self.cache[token] = word
        return word

    def encode(self, text):
        ids = []
        parts = text.split(EOT)
        for j, part in enumerate(parts):
            if j > 0:
                ids.append(self.encoder[EOT])
            for tok in self.pat.findall(part):
                u = "".join(self.b2u[b] for b in tok.encode("utf-8"))
                ids.extend(self.encoder[w] for w in self.bpe(u))
        return ids


def write_gpt2_tokenizer_ids():
    fast = GPT2TokenizerFast(tokenizer_file=str(GPT2_TOK_DIR / "tokenizer.json"))
    from_files = GPT2Tokenizer(vocab=str(GPT2_TOK_DIR / "vocab.json"), merges=str(GPT2_TOK_DIR / "merges.txt"))
    ref_bpe = ReferenceBPE(GPT2_TOK_DIR / "vocab.json", GPT2_TOK_DIR / "merges.txt")
    raw = Tokenizer.from_file(str(GPT2_TOK_DIR / "tokenizer.json"))
    entries = []
    for s in TOKENIZER_STRINGS:
        ids = fast(s, add_special_tokens=False)["input_ids"]
        ids2 = from_files(s, add_special_tokens=False)["input_ids"]
        ids3 = ref_bpe.encode(s)
        ids4 = raw.encode(s, add_special_tokens=False).ids
        assert ids == ids2 == ids3 == ids4, (s, ids, ids2, ids3, ids4)
        assert raw.decode(ids, skip_special_tokens=False) == s, s
        entries.append({"text": s, "ids": ids})
    assert entries[0]["ids"] == [15496, 995, 11, 340, 338, 402, 11571, 12, 17, 0], entries[0]
    dump_json_list(FIXTURES / "gpt2_tokenizer_ids.json", entries)
    # Same content as the shared GPT-2 tokenizer.json, without indentation (half the bytes).
    with open(GPT2_TOK_DIR / "tokenizer.json", encoding="utf-8") as f:
        tok_json = json.load(f)
    with open(FIXTURES / "gpt2-tokenizer.json", "w", encoding="utf-8") as f:
        json.dump(tok_json, f, ensure_ascii=False, separators=(",", ":"))
    return entries


# --------------------------------------------------------------------------- main

def main():
    FIXTURES.mkdir(parents=True, exist_ok=True)
    train_text, heldout = split_corpus()
    summary = {}
    for spec in FIXTURE_SPECS:
        outdir = FIXTURES / spec["name"]
        outdir.mkdir(parents=True, exist_ok=True)
        V, NP = spec["vocab_size"], spec["n_positions"]

        tok = train_tokenizer(train_text, V)
        tok.save(str(outdir / "tokenizer.json"), pretty=True)
        tok = Tokenizer.from_file(str(outdir / "tokenizer.json"))
        assert tok.get_vocab_size() == V and tok.token_to_id(EOT) == V - 1
        long_prompt = pick_long_prompt(tok, heldout, NP)
        prompts = [PROMPT_0, PROMPT_1, long_prompt]
        check_roundtrip(tok, prompts + TOKENIZER_STRINGS + [heldout[:3000]])
        assert encode(tok, "a" + EOT + "b")[1] == V - 1

        model = make_model(spec)
        names = save_model(model, spec, outdir)

        prompt_info = []
        refs = {}
        for k, text in enumerate(prompts):
            ids = encode(tok, text)
            assert 0 < len(ids) <= NP
            if k == 2:
                assert NP - 10 <= len(ids) <= NP - 1, (len(ids), NP)
            ref = run_reference(model, ids, NP)
            save_file(ref, str(outdir / f"ref-{k}.safetensors"), metadata={"format": "pt"})
            refs[k] = ref
            prompt_info.append({"k": k, "text": text, "ids": ids, "n_tokens": len(ids),
                                "generated": ref["generated"].tolist()})
        dump_json_list(outdir / "prompts.json", prompt_info)
        reload_and_check(outdir, spec, refs)
        summary[spec["name"]] = {"tensors": len(names), "prompt_tokens": [p["n_tokens"] for p in prompt_info],
                                 "generated": [len(p["generated"]) for p in prompt_info]}
        print(spec["name"], summary[spec["name"]], flush=True)

    write_gpt2_tokenizer_ids()
    print("versions:", "torch", torch.__version__, "numpy", np.__version__, file=sys.stderr)
    print("ok")


if __name__ == "__main__":
    main()
