"""Shared pytest helpers for the Python bindings: the committed reference fixtures (the same
files the Rust tests read, written by tools/reference/), a reader of their safetensors files
that needs only numpy, and the elementwise comparison the Rust tests use
(`Tensor::allclose`: |a - b| <= t * (median|b| + |b|), median over finite non-zero |b|, NaN and
inf fail, the worst entry named)."""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

import outlier_probe as op

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

_DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path):
    """name -> numpy array of a safetensors file (f32 and i64 tensors)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(body[a:b], dtype=_DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"])
    return out


def reference(fixture, k):
    """(token ids, {hook name: reference array}) of tests/fixtures/<fixture>/ref-<k>."""
    t = read_safetensors(FIXTURES / fixture / f"ref-{k}.safetensors")
    tokens = t.pop("tokens").astype(np.int64)
    t.pop("generated", None)
    return tokens, t


def assert_close(what, got, want, t):
    """Elementwise |got - want| <= t * (median|want| + |want|); shapes equal; NaN fails, an inf
    in the reference must be matched exactly (as `Tensor::allclose`)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, reference {want.shape}"
    if got.size == 0:
        return
    mag = np.abs(want[np.isfinite(want) & (want != 0)])
    median = np.sort(mag)[mag.size // 2] if mag.size else 0.0
    finite = np.isfinite(want)
    allowed = t * median + t * np.abs(np.where(finite, want, 0.0))
    diff = np.abs(np.where(finite, got, 0.0) - np.where(finite, want, 0.0))
    # A reference inf (a masked attention score) must be matched exactly; NaN never passes.
    ok = np.where(finite, np.isfinite(got) & (diff <= allowed), got == want)
    if not ok.all():
        ratio = np.where(ok, diff / np.maximum(allowed, 1e-300), np.inf)
        i = np.unravel_index(int(np.argmax(ratio)), got.shape)
        raise AssertionError(
            f"{what}: {int((~ok).sum())} of {got.size} entries outside |a-b| <= {t:g}*(median|b| + |b|) "
            f"(median {median:.3e}); worst at {i}: got {got[i]:e}, want {want[i]:e}"
        )


@pytest.fixture(scope="session")
def gpt2a():
    return op.Model.load(FIXTURES / "gpt2-odd-a")
