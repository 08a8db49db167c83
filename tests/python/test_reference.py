"""Captures, interventions, generation and perplexity from Python against the committed
transformers reference fixtures, under the Rust tests' tolerances (tests/reference.rs,
tests/interventions.rs, tests/ppl.rs)."""

import json

import numpy as np
import pytest

import outlier_probe as op
from conftest import FIXTURES, assert_close, read_safetensors, reference

# tests/reference.rs: every hook within 1e-4 * (median|b| + |b|).
T_HOOKS = 1e-4
# tests/interventions.rs
T_EDITS = 5e-5


@pytest.mark.parametrize("fixture", ["gpt2-odd-a", "gpt2-odd-b", "gpt2-odd-c", "llama-odd-a"])
def test_every_hook_matches_the_reference(fixture):
    model = op.Model.load(FIXTURES / fixture)
    for k in range(3):
        tokens, refs = reference(fixture, k)
        logits, cache = model.run_with_cache(tokens)
        assert list(cache) == [h for h in model.hook_names() if h in refs], "forward order"
        assert sorted(cache) == sorted(refs), f"{fixture} ref-{k}: hook names"
        for name, want in refs.items():
            got = cache[name]
            assert got.dtype == np.float32
            assert_close(f"{fixture} ref-{k} {name}", got, want, T_HOOKS)
        assert_close(f"{fixture} ref-{k} logits", logits, refs["logits"], T_HOOKS)
        assert (logits.argmax(-1) == refs["logits"].argmax(-1)).all()


def test_names_filter_forms_select_the_same_hooks(gpt2a):
    tokens, _ = reference("gpt2-odd-a", 1)
    want = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    for f in ["blocks.*.hook_resid_post", want, lambda n: n.endswith("hook_resid_post")]:
        _, cache = gpt2a.run_with_cache(tokens, names_filter=f)
        assert list(cache) == want


def _cases(fixture):
    j = json.loads((FIXTURES / fixture / "interventions.json").read_text())
    refs = read_safetensors(FIXTURES / fixture / "interventions.safetensors")
    return np.array(j["tokens"]), j["cases"], refs


@pytest.mark.parametrize("fixture", ["gpt2-odd-a", "gpt2-odd-c"])
def test_interventions_match_transformers(fixture):
    model = op.Model.load(FIXTURES / fixture)
    tokens, cases, refs = _cases(fixture)
    assert len(cases) == 11
    plain = model(tokens)
    for case, specs in cases.items():
        hooks = [k[len(case) + 1 :] for k in refs if k.startswith(case + ".") and not k.endswith(".logits")]
        logits, cache = model.run_with_cache(tokens, names_filter=hooks, edits=specs)
        assert_close(f"{fixture} {case}: logits", logits, refs[f"{case}.logits"], T_EDITS)
        moved = np.abs(logits - plain).max() / np.abs(plain).max()
        assert moved > 1e-3, f"{fixture} {case}: the intervention changed nothing"
        for h in hooks:
            assert_close(f"{fixture} {case}: {h}", cache[h], refs[f"{case}.{h}"], T_EDITS)


def test_a_zero_edit_zeroes_exactly_its_channels_and_positions(gpt2a):
    tokens, _ = reference("gpt2-odd-a", 0)
    hook = "blocks.0.hook_resid_post"
    _, plain = gpt2a.run_with_cache(tokens, names_filter=hook)
    _, edited = gpt2a.run_with_cache(tokens, names_filter=hook, edits=[f"{hook}:ch=5,17:pos=0,3:zero"])
    a, b = plain[hook], edited[hook]
    assert (b[[0, 3]][:, [5, 17]] == 0).all()
    assert (a[[0, 3]][:, [5, 17]] != 0).all()
    mask = np.ones_like(a, dtype=bool)
    mask[np.ix_([0, 3], [5, 17])] = False
    assert (a[mask] == b[mask]).all(), "an edit at the hook leaves its other entries alone"


def test_greedy_generation_matches_the_reference(gpt2a):
    prompts = json.loads((FIXTURES / "gpt2-odd-a" / "prompts.json").read_text())
    for p in prompts:
        ids = np.array(p["ids"])
        out = gpt2a.generate(ids, max_new_tokens=len(p["generated"]))
        assert out.tolist() == p["ids"] + p["generated"], f"prompt {p['k']}"
    text = gpt2a.generate(prompts[1]["text"], max_new_tokens=4)
    assert text == prompts[1]["text"] + gpt2a.to_string(prompts[1]["generated"][:4])


def test_generation_under_an_edit_follows_the_edited_logits(gpt2a):
    ids = np.array(json.loads((FIXTURES / "gpt2-odd-a" / "prompts.json").read_text())[0]["ids"])
    edits = ["knockout:keys=0", "blocks.0.hook_resid_post:ch=5,17:value=4"]
    seq = ids.tolist()
    for _ in range(4):  # greedy: each token is the argmax of the edited pass over the sequence
        seq.append(int(gpt2a(np.array(seq), edits=edits)[-1].argmax()))
    assert gpt2a.generate(ids, max_new_tokens=4, edits=edits).tolist() == seq
    assert gpt2a.generate(ids, max_new_tokens=4).tolist() != seq, "the edit must matter"


def test_perplexity_matches_transformers():
    fx = json.loads((FIXTURES / "ppl" / "gpt2-odd-c.json").read_text())
    model = op.Model.load(FIXTURES / "gpt2-odd-c")
    rows = op.ppl(model, FIXTURES / "ppl" / "corpus.txt", seq_len=fx["seq_len"], seqs=fx["seqs"],
                  from_=fx["from"], batch=3)
    assert [r["label"] for r in rows] == ["plain"]
    assert rows[0]["tokens"] == fx["tokens"]
    assert abs(rows[0]["ppl"] / fx["ppl"] - 1) < 1e-4  # tests/ppl.rs PPL_TOL


def test_zeroing_channels_raises_perplexity_and_rows_follow_the_cli():
    model = op.Model.load(FIXTURES / "gpt2-odd-c")
    rows = op.ppl(model, FIXTURES / "ppl" / "corpus.txt", seq_len=24, seqs=3,
                  interventions=["blocks.*.hook_resid_post:ch=0,1,2,3:zero",
                                 "knockout:keys=0;blocks.0.hook_resid_post:ch=5:mean"])
    assert [r["label"] for r in rows] == ["plain", "blocks.*.hook_resid_post:ch=0,1,2,3:zero",
                                          "knockout:keys=0;blocks.0.hook_resid_post:ch=5:mean"]
    assert set(rows[0]) == {"label", "nll_sum", "tokens", "ppl"}
    assert all(r["tokens"] == rows[0]["tokens"] for r in rows)
    assert rows[1]["ppl"] != rows[0]["ppl"] and rows[2]["ppl"] != rows[0]["ppl"]
