#!/usr/bin/env python3
"""transformers' answers for the SentencePiece (`tokenizer.ggml.model = "llama"`) GGUF tokenizer
(tests/gguf_spm.rs).

1. Trains two tiny SentencePiece BPE models (byte fallback, a few hundred pieces) on a text made up
   here, and writes each as a GGUF the way llama.cpp's converter does (`tokens`, `scores`,
   `token_type`: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6; special ids;
   `add_bos_token` / `add_space_prefix`), plus the few `{arch}.*` keys transformers needs to
   read a config. No tensors. Into tests/fixtures/spm/:
     * spm-llama.gguf: `general.architecture = "llama"`, `<unk> <s> </s>` at 0..2, no
       `add_bos_token` key (a SentencePiece file without it gets a BOS), add_space_prefix = true,
       a CONTROL `<|im_start|>`, USER_DEFINED `<think>` and `\\n\\n`, two UNUSED `[PAD…]` tokens
       appended as the converter pads a vocabulary;
     * spm-llama-nospace.gguf: the same with add_space_prefix = false and add_bos_token = false
       (transformers ignores add_space_prefix for a `llama` file: it prepends "▁" anyway);
     * spm-gemma.gguf: `general.architecture = "gemma3"` with Gemma's layout (`<pad> <eos> <bos>
       <unk> <mask>` at 0..4, `<start_of_turn>`/`<end_of_turn>` CONTROL, `\\n` and runs of
       spaces USER_DEFINED and stored as real spaces, add_bos_token = true,
       add_space_prefix = false). transformers picks its Gemma builder by architecture.
   and expected.json: for each file and each string of STRINGS, the ids of
   `AutoTokenizer.from_pretrained(dir, gguf_file=...)(text)` with and without special tokens,
   and `decode(ids, skip_special_tokens=True/False)` of the ids with special tokens.
2. For the real Gemma-3-270M GGUF ($GEMMA3_GGUF, else .cache/gemma3/gemma-3-270m-q4_k_m.gguf in the
   main checkout), the same for GEMMA_STRINGS into gemma3-270m-ids.json: ids and decoded text
   only -- no vocabulary (Gemma terms). Skipped with a message when the file is absent.

Needs `sentencepiece` (pip install sentencepiece) besides tools/reference/requirements.txt.
Re-run (about a minute): /work/venv/bin/python tools/reference/make_spm_fixtures.py
"""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import gguf
import sentencepiece as spm
from transformers import AutoTokenizer

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "spm"
GEMMA_DEFAULT = Path("/work/main/.cache/gemma3/gemma-3-270m-q4_k_m.gguf")

CORPUS_LINES = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Summer is warm. Winter is cold. Spring and autumn are mild.",
    "def main():\n    print('hello, world')\n    return 0\n",
    "for (int i = 0; i < 10; i++) { sum += i; }",
    "Numbers: 1 2 3 12 123 1234 2026 3.14159 -42",
    "Café, naïve, résumé, façade, jalapeño, über, Ærø.",
    "the quick brown fox jumps over the lazy dog",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "She said: \"it's fine\" -- and then (quietly) left...",
    "東京は日本の首都です。",
    "  indented text\twith a tab\n\nand a blank line",
    "email me at someone@example.com or visit https://example.org/path?q=1",
    "x = [a, b, c]; y = {'k': v}; z = f(x, y) * 2",
    "Once upon a time there was a little model that learned to count tokens.",
]

LLAMA_TYPES = {"normal": 1, "unknown": 2, "control": 3, "user": 4, "unused": 5, "byte": 6}

STRINGS = [
    "", " ", "  ", "   ", "a", "Hello", "Hello world", " Hello world", "Hello world ",
    "Hello  world", "Hello   world  ", "The capital of France is",
    "Summer is warm.\nWinter is cold.\n", "line one\n\nline two", "\n", "\n\n\n", "\ttab\tsep",
    "1234567890", "3.14159 and 2026", "def f(x):\n    return x * 2\n", "a+b=c; d-e/f",
    "Café naïve résumé", "Ærø über", "東京", "東京は日本の首都です。", "中文字符", "🙂", "Hi 🙂!",
    "👨‍👩‍👧 family", "zzzzqqqq", "ẞ ǅ Ω", "<s>Hello", "Hello</s>", "<unk>", "<think>why</think>",
    "<|im_start|>user\nhi", "<bos><start_of_turn>user\nhi<end_of_turn>", "[PAD400] pad", "<mask>",
    "<pad>x", "   leading", "trailing   ", " \n ", "email@example.com https://x.org/?a=1",
]

GEMMA_STRINGS = STRINGS + [
    "The quick brown fox jumps over the lazy dog.",
    "    four spaces", "a\tb\t\tc", "\r\nwindows\r\n", "mixed \t \n whitespace",
    "for (int i = 0; i < n; ++i) { s += a[i]; }", "fn main() { println!(\"{}\", 1 + 2); }",
    "<start_of_turn>model\nSure.<end_of_turn>\n", "<bos>", "<eos>", "<bos>text", "<unused0>",
    "[multimodal]", "<table><tr><td>1</td></tr></table>", "¿Dónde está la biblioteca?",
    "Привет, мир!", "مرحبا بالعالم", "नमस्ते दुनिया", "こんにちは世界", "안녕하세요",
    "∑ x² ≤ ∞", "\u00a0non-breaking", "\u200bzero-width", "🎉🎉🎉", "🇫🇷 flag",
    "100,000.50 $ € £ ¥", "ALL CAPS SHOUTING", "camelCaseIdentifier snake_case_name",
]


def train(prefix, user, control, ids):
    text = Path(prefix + ".txt")
    text.write_text("\n".join(CORPUS_LINES * 20) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=prefix, model_type="bpe", vocab_size=480,
        byte_fallback=True, character_coverage=0.98, split_digits=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, user_defined_symbols=user, control_symbols=control,
        minloglevel=2, num_threads=1, **ids,
    )
    p = spm.SentencePieceProcessor(model_file=prefix + ".model")
    return p


def pieces(p):
    out = []
    for i in range(p.get_piece_size()):
        kind = ("unknown" if p.is_unknown(i) else "control" if p.is_control(i)
                else "unused" if p.is_unused(i) else "byte" if p.is_byte(i) else "normal")
        out.append([p.id_to_piece(i), p.get_score(i), LLAMA_TYPES[kind]])
    return out


def write_gguf(path, arch, toks, special, flags):
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(64)
    w.add_embedding_length(16)
    w.add_block_count(1)
    w.add_feed_forward_length(32)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_key_length(8)
    w.add_value_length(8)
    w.add_rope_dimension_count(8)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list([t for t, _, _ in toks])
    w.add_token_scores([s for _, s, _ in toks])
    w.add_token_types([ty for _, _, ty in toks])
    for key, value in special.items():
        getattr(w, f"add_{key}_token_id")(value)
    for key, value in flags.items():
        getattr(w, f"add_{key}")(value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_vocab(work):
    p = train(str(work / "llama"), ["<think>", "</think>", "\n\n"], ["<|im_start|>"],
              dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1))
    toks = pieces(p)
    user = {"<think>", "</think>", "\n\n"}
    toks = [[t, s, 4 if t in user else ty] for t, s, ty in toks]
    toks += [[f"[PAD{len(toks) + k}]", -1000.0, 5] for k in range(2)]
    return toks


def gemma_vocab(work):
    p = train(str(work / "gemma"), ["\n", "\n\n", "▁▁", "▁▁▁", "[multimodal]"],
              ["<mask>", "<start_of_turn>", "<end_of_turn>", "<unused0>"],
              dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3,
                   pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>"))
    toks = pieces(p)
    user = {"\n", "\n\n", "▁▁", "▁▁▁", "[multimodal]"}
    # Gemma's GGUF stores whitespace-only user pieces with real spaces; scores are -1000 for
    # every non-normal piece there, as in the real file.
    out = []
    for t, s, ty in toks:
        if t in user:
            ty = 4
        if t and set(t) == {"▁"} and len(t) > 1:
            t = " " * len(t)
        out.append([t, -1000.0 if ty != 1 else s, ty])
    return out


def run_tokenizer(gguf_path, strings):
    tmp = Path(tempfile.mkdtemp())
    shutil.copy(gguf_path, tmp / gguf_path.name)
    tok = AutoTokenizer.from_pretrained(str(tmp), gguf_file=gguf_path.name)
    shutil.rmtree(tmp)
    cases = []
    for s in strings:
        ids = tok(s)["input_ids"]
        cases.append({
            "text": s,
            "ids": ids,
            "ids_plain": tok(s, add_special_tokens=False)["input_ids"],
            "decoded": tok.decode(ids, skip_special_tokens=True),
            "decoded_special": tok.decode(ids, skip_special_tokens=False),
        })
    return {"class": type(tok).__name__, "cases": cases}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp())
    llama = llama_vocab(work)
    gemma = gemma_vocab(work)
    write_gguf(OUT / "spm-llama.gguf", "llama", llama,
               {"bos": 1, "eos": 2, "unk": 0}, {"add_space_prefix": True})
    write_gguf(OUT / "spm-llama-nospace.gguf", "llama", llama,
               {"bos": 1, "eos": 2, "unk": 0},
               {"add_space_prefix": False, "add_bos_token": False})
    write_gguf(OUT / "spm-gemma.gguf", "gemma3", gemma,
               {"bos": 2, "eos": 1, "unk": 3, "pad": 0},
               {"add_bos_token": True, "add_eos_token": False, "add_space_prefix": False})
    shutil.rmtree(work)
    expected = {name: run_tokenizer(OUT / f"{name}.gguf", STRINGS)
                for name in ["spm-llama", "spm-llama-nospace", "spm-gemma"]}
    (OUT / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=0) + "\n")
    print("wrote", OUT / "expected.json")

    real = Path(os.environ.get("GEMMA3_GGUF", GEMMA_DEFAULT))
    if not real.exists():
        print(f"{real} not found: gemma3-270m-ids.json not regenerated", file=sys.stderr)
        return
    ref = run_tokenizer(real, GEMMA_STRINGS)
    (OUT / "gemma3-270m-ids.json").write_text(json.dumps(ref, ensure_ascii=False, indent=0) + "\n")
    print("wrote", OUT / "gemma3-270m-ids.json", len(GEMMA_STRINGS), "strings")


if __name__ == "__main__":
    main()
