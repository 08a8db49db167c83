"""The Python API's own contract: batches equal single prompts, tokens round-trip, every
documented exception for bad input, the report and study dicts have the files' keys, and the
GIL is released while the GPU works."""

import json
import shutil
import threading

import numpy as np
import pytest

import outlier_probe as op
from conftest import FIXTURES, assert_close

PROMPTS = ["Summer is warm. Winter is cold.\n", "Hello", "GREMIO:\nGood morrow"]


def test_a_batch_equals_single_prompts(gpt2a):
    logits, cache = gpt2a.run_with_cache(PROMPTS)
    toks = [gpt2a.to_tokens(p) for p in PROMPTS]
    tmax = max(len(t) for t in toks)
    assert logits.shape == (3, tmax, gpt2a.cfg["vocab_size"])
    for b, (p, t) in enumerate(zip(PROMPTS, toks)):
        n = len(t)
        one_logits, one = gpt2a.run_with_cache(p)
        assert_close(f"prompt {b} logits", logits[b, :n], one_logits, 1e-5)
        assert np.isnan(logits[b, n:]).all(), "padding is NaN"
        assert set(one) == set(cache)
        for name, a in one.items():
            got = cache[name][b]
            if name.endswith(("hook_pattern", "hook_attn_scores")):
                got = got[:, :n, :n]
                assert np.isnan(cache[name][b][:, n:, :]).all() and np.isnan(cache[name][b][:, :, n:]).all()
            else:
                got = got[:n]
            assert_close(f"prompt {b} {name}", got, a, 1e-5)
    # Token input gives the same as text input.
    l2 = gpt2a([t for t in toks])
    np.testing.assert_array_equal(l2, logits)


def test_tokens_round_trip_and_bos(gpt2a):
    t = gpt2a.to_tokens(PROMPTS[0])
    assert t.dtype == np.int64 and t.ndim == 1
    assert gpt2a.to_string(t) == PROMPTS[0]
    assert gpt2a.to_string([t, t[:3]]) == [PROMPTS[0], gpt2a.to_string(t[:3])]
    bos = gpt2a.cfg["bos_token_id"]
    # GPT-2's tokenizer adds no BOS; prepend_bos=True puts the config's first.
    assert gpt2a.to_tokens("Hello", prepend_bos=True).tolist() == [bos] + gpt2a.to_tokens("Hello").tolist()
    assert gpt2a.to_tokens("Hello", prepend_bos=False).tolist() == gpt2a.to_tokens("Hello").tolist()
    llama = op.Model.load(FIXTURES / "llama-odd-a")
    with_bos = llama.to_tokens("Hello")
    without = llama.to_tokens("Hello", prepend_bos=False)
    assert len(with_bos) == len(without) + 1 or with_bos.tolist() == without.tolist()


def test_model_metadata(gpt2a):
    cfg = gpt2a.cfg
    assert cfg["n_layer"] == 2 and cfg["n_embd"] == 72 and cfg["vocab_size"] == 1021
    names = gpt2a.hook_names()
    assert names[0] == "hook_embed" and names[-1] == "logits"
    assert "blocks.1.attn.hook_pattern" in names
    assert gpt2a.device and "gpt2-odd-a" in gpt2a.source
    devs = op.devices()
    assert devs and {"index", "name", "backend", "device_type", "summary"} <= set(devs[0])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m.run_with_cache("Hello", names_filter="blocks.*.hook_nonesuch"), "hook_nonesuch"),
        (lambda m: m.run_with_cache("Hello", names_filter=lambda n: False), "selected no hook"),
        (lambda m: m.run_with_cache("Hello", names_filter=3), "names_filter"),
        (lambda m: m.run_with_cache("Hello", edits=["blocks.0.hook_resid_post:ch=9999:zero"]), "9999"),
        (lambda m: m.run_with_cache("Hello", edits=["blocks.0.hook_resid_post:ch=1:pos=50:zero"]), "50"),
        (lambda m: m.run_with_cache("Hello", edits=["blocks.0.hook_resid_post:zero"]), "ch="),
        (lambda m: m.run_with_cache("Hello", edits=["knockout:keys=0:layers=7"]), "7"),
        (lambda m: m.run_with_cache([1, 2, 5000]), "5000"),
        (lambda m: m.run_with_cache(list(range(49))), "n_positions"),
        (lambda m: m.run_with_cache([]), "empty|no tokens"),
        (lambda m: m.run_with_cache(3.5), "text_or_tokens"),
        (lambda m: m.generate("Hello", top_k=5), "temperature"),
        (lambda m: m.generate("Hello", temperature=-1.0), "temperature"),
        (lambda m: m.generate("Hello", temperature=1.0, top_p=1.5), "top-p"),
        (lambda m: m.to_tokens(5), "str"),
        (lambda m: op.probe(m, key_frac=2.0), "key_frac"),
        (lambda m: op.probe(m, text="a", corpus="b"), "not both"),
        (lambda m: op.ppl(m, FIXTURES / "ppl" / "corpus.txt", batch=0), "batch"),
        (lambda m: op.ppl(m, FIXTURES / "ppl" / "corpus.txt", interventions=["bogus"]), "bogus"),
        (lambda m: op.compress(m, FIXTURES / "ppl" / "corpus.txt", schemes="bogus"), "bogus"),
        (lambda m: op.compress(m, FIXTURES / "ppl" / "corpus.txt", protect="none", protect_max=3), "protect"),
    ],
)
def test_bad_input_is_a_value_error(gpt2a, call, match):
    with pytest.raises(ValueError, match=match):
        call(gpt2a)


def test_missing_files_are_file_not_found(gpt2a, tmp_path):
    with pytest.raises(FileNotFoundError, match="nonesuch"):
        op.Model.load(tmp_path / "nonesuch")
    with pytest.raises(FileNotFoundError, match="nonesuch.gguf"):
        op.Model.load(str(tmp_path / "nonesuch.gguf"))
    with pytest.raises(FileNotFoundError):
        op.Model.load(tmp_path)  # a directory without config.json
    with pytest.raises(FileNotFoundError, match="nonesuch.txt"):
        op.ppl(gpt2a, tmp_path / "nonesuch.txt")


def test_broken_model_files_are_value_errors(tmp_path):
    d = tmp_path / "broken"
    shutil.copytree(FIXTURES / "gpt2-odd-a", d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["n_embd"] = 71
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="config.json|n_embd|71"):
        op.Model.load(d)
    (d / "config.json").write_text("{ not json")
    with pytest.raises(ValueError, match="config.json"):
        op.Model.load(d)


def test_no_adapter_is_a_runtime_error():
    # No Metal on Linux, no Vulkan on macOS: one of them finds no adapter.
    import sys

    backend = "vulkan" if sys.platform == "darwin" else "metal"
    with pytest.raises(RuntimeError):
        op.Model.load(FIXTURES / "gpt2-odd-a", backend=backend)


def test_probe_report_has_the_schema_keys(gpt2a, tmp_path):
    r = op.probe(gpt2a, out_dir=tmp_path)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert r == on_disk, "the dict is report.json"
    assert set(r) >= {"schema_version", "model", "input", "thresholds", "summary", "sequences", "corpus", "weights"}
    assert (tmp_path / "report.md").exists()
    assert any(p.suffix == ".png" for p in tmp_path.iterdir())
    quiet = op.probe(gpt2a, text=op.PROBE_PROMPT)
    assert quiet["summary"] == r["summary"]
    corpus = op.probe(gpt2a, corpus=FIXTURES / "ppl" / "corpus.txt", seqs=2, seq_len=16)
    assert corpus["corpus"]["n_sequences"] == 2 and corpus["input"]["tokens_per_sequence"] == [16, 16]


def test_compress_returns_the_study(tmp_path):
    m = op.Model.load(FIXTURES / "gpt2-odd-a")
    st = op.compress(m, FIXTURES / "ppl" / "corpus.txt", schemes="w8", seqs=2, seq_len=16, out_dir=tmp_path)
    on_disk = json.loads((tmp_path / "compress.json").read_text())
    assert st in on_disk if isinstance(on_disk, list) else st == on_disk
    with pytest.raises(ValueError, match="f16"):
        op.compress(op.Model.load(FIXTURES / "gpt2-odd-a", f16_weights=True), FIXTURES / "ppl" / "corpus.txt")
    with pytest.raises(ValueError, match="q8"):
        op.compress(op.Model.load(FIXTURES / "gpt2-odd-a", weights="q8"), FIXTURES / "ppl" / "corpus.txt")


def test_weights_option_is_the_clis(gpt2a):
    # The same choices as --weights; q8 changes the logits a little, f32 not at all.
    assert gpt2a.weights == "stored"
    f32 = op.Model.load(FIXTURES / "gpt2-odd-a", weights="f32")
    q8 = op.Model.load(FIXTURES / "gpt2-odd-a", weights="q8")
    assert (f32.weights, q8.weights) == ("f32", "q8")
    a, b, c = gpt2a(PROMPTS[0]), f32(PROMPTS[0]), q8(PROMPTS[0])
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(c).all() and not np.array_equal(a, c)
    assert np.abs(a - c).max() < 0.05 * np.abs(a).max()
    with pytest.raises(ValueError, match="weights"):
        op.Model.load(FIXTURES / "gpt2-odd-a", weights="int4")
    with pytest.raises(ValueError, match="disagree"):
        op.Model.load(FIXTURES / "gpt2-odd-a", weights="q8", f16_weights=True)


def test_the_gil_is_released_while_the_gpu_works(gpt2a):
    # Two threads run passes side by side; the results equal a lone run.
    want = gpt2a(PROMPTS[0])
    out = [None, None]

    def work(i):
        out[i] = gpt2a(PROMPTS[0])

    ts = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    for o in out:
        np.testing.assert_array_equal(o, want)


ZOO = FIXTURES.parent.parent / "zoo"


def test_implicit_scale_of_softmax_and_explicit_of_scaled():
    # The zoo's trigger tokens . , ; (ids 60-62): the softmax head's implicit factor is ~1 there and
    # small elsewhere (its sink switches it off); the scaled head's hook_scale does the same.
    # Measured on these 4 held-out sequences: (a) 0.998 vs 0.04, (e) hook_scale 1.98 vs 0.003.
    def layer1(groups, label):
        (g,) = [g for g in groups if g["layer"] == 1 and g["label"] == label]
        return g

    a = op.Model.load(ZOO / "default_s0")
    ga = op.implicit_scale(a, corpus=ZOO / "heldout.txt", seqs=4, seq_len=64, triggers=[60, 61, 62])
    t, o = layer1(ga, "trigger"), layer1(ga, "non-trigger")
    assert t["explicit"] is None and t["implicit"]["mean"] > 0.9 and o["implicit"]["mean"] < 0.2, (t, o)
    e = op.Model.load(ZOO / "context_scale_s0")
    ge = op.implicit_scale(e, corpus=ZOO / "heldout.txt", seqs=4, seq_len=64, triggers=[60, 61, 62])
    t, o = layer1(ge, "trigger"), layer1(ge, "non-trigger")
    assert t["explicit"]["mean"] > 1.5 and o["explicit"]["mean"] < 0.05, (t, o)
    by_class = op.implicit_scale(a, "abc.dEf,gh;ij")
    assert {g["label"] for g in by_class} <= {"strong delimiter", "weak semantic", "other"}
    with pytest.raises(ValueError, match="key_frac"):
        op.implicit_scale(a, key_frac=0.0)
