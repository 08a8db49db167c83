"""Write tests/fixtures/fuzz/tiny-llama.gguf: a complete (random-weight) 1-layer Llama GGUF that
`outlier_probe::model_files::ModelFiles::open` accepts, used as a seed by examples/fuzz_loaders.rs
so that mutations reach the config, tokenizer and per-tensor (HF layout, Q/K unpermute) code.

Tensors use every type the Rust reader dequantizes (F32, F16, BF16, Q8_0, Q4_0, Q4_1); the tokenizer
metadata is copied from tests/fixtures/gguf/tiny.gguf (266 tokens, 7 merges). d = 32, 2 heads of 16,
1 KV head, MLP 64, vocab 266, context 32. ~32 KB.

Run: /work/venv/bin/python tools/fuzz/make_seed.py   (gguf 0.19, numpy; deterministic)
"""

from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "tests" / "fixtures" / "gguf" / "tiny.gguf"
OUT = ROOT / "tests" / "fixtures" / "fuzz" / "tiny-llama.gguf"


def field(reader, key):
    f = reader.fields[key]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        return [f.contents(i) for i in range(len(f.data))]
    return f.contents()


def main():
    r = gguf.GGUFReader(str(SRC))
    tokens = field(r, "tokenizer.ggml.tokens")
    merges = field(r, "tokenizer.ggml.merges")
    types = field(r, "tokenizer.ggml.token_type")
    d, heads, kv, inner, vocab, ctx = 32, 2, 1, 64, len(tokens), 32
    hd = d // heads
    rng = np.random.default_rng(11)

    w = gguf.GGUFWriter(str(OUT), "llama")
    w.add_context_length(ctx)
    w.add_embedding_length(d)
    w.add_block_count(1)
    w.add_feed_forward_length(inner)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(0)

    def put(name, shape, qtype):
        x = rng.standard_normal(shape).astype(np.float32) * 0.1
        if qtype == T.F32:
            w.add_tensor(name, x)
        elif qtype == T.F16:
            w.add_tensor(name, x.astype(np.float16))
        else:
            q = gguf.quants.quantize(x, qtype)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)

    put("token_embd.weight", (vocab, d), T.Q8_0)
    put("blk.0.attn_norm.weight", (d,), T.F32)
    put("blk.0.attn_q.weight", (d, d), T.Q4_0)
    put("blk.0.attn_k.weight", (kv * hd, d), T.Q4_1)
    put("blk.0.attn_v.weight", (kv * hd, d), T.F16)
    put("blk.0.attn_output.weight", (d, d), T.BF16)
    put("blk.0.ffn_norm.weight", (d,), T.F32)
    put("blk.0.ffn_gate.weight", (inner, d), T.Q8_0)
    put("blk.0.ffn_up.weight", (inner, d), T.Q4_1)
    put("blk.0.ffn_down.weight", (d, inner), T.Q4_0)
    put("output_norm.weight", (d,), T.F32)
    put("output.weight", (vocab, d), T.Q8_0)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
