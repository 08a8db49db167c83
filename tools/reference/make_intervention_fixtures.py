"""Reference results of interventions, done inside Hugging Face transformers (eager attention).

Reads the fixture models written by make_fixtures.py and, for each case below, runs the model with
the edit applied by PyTorch forward hooks (or, for key knockout, by a patched eager attention), then
writes tests/fixtures/<model>/interventions.safetensors with tensors named "<case>.<hook>" and
tests/fixtures/<model>/interventions.json with each case's specs in outlier-probe's grammar.

A case's specs act together, in order, as `--intervene 'A;B'` does: knockout specs add up layer by
layer, each with its own layers=; `blocks.*.` globs expand to every layer; a `mean` edit sets each
channel to its mean over the sequence at the spec's positions, taken with the specs before it
applied.

    python tools/reference/make_intervention_fixtures.py
"""
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import GPT2LMHeadModel
from transformers.models.gpt2 import modeling_gpt2

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"

# case name -> list of specs acting together; each spec is parsed below into a hook action.
CASES = {
    "zero": ["blocks.0.hook_resid_post:ch=5,17,40:zero"],
    "value": ["blocks.1.mlp.hook_post:ch=3,100:pos=0,4:value=2.5"],
    "knockout": ["knockout:keys=0"],
    "mixed": ["knockout:keys=0,3:layers=1", "blocks.0.attn.hook_k:ch=2,7:pos=1:value=0.5",
              "blocks.1.hook_resid_mid:ch=1:pos=0,2,9:value=-3"],
    # Knockout in a subset of the layers (issue 11: layers= was ignored on the command line).
    "knockout_layer0": ["knockout:keys=0:layers=0"],
    "knockout_keys_layer1": ["knockout:keys=0,2,5:layers=1"],
    "two_knockouts": ["knockout:keys=0:layers=0", "knockout:keys=3,4:layers=1"],
    "edit_and_knockout": ["blocks.0.hook_resid_post:ch=5,17:pos=0:value=4", "knockout:keys=1:layers=1"],
    "two_edits": ["blocks.0.hook_resid_post:ch=5,17:zero", "blocks.1.mlp.hook_post:ch=3:pos=2,3:value=-1"],
    "glob_pos": ["blocks.*.hook_resid_post:ch=7,30:pos=1,3:value=1.5"],
    "mean_pos": ["knockout:keys=0:layers=0", "blocks.0.hook_resid_post:ch=5,17:pos=0,2:mean"],
}
SAVE_HOOKS = ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern", "blocks.1.hook_resid_post"]

# Knockout rules of the running case: (keys, layers or None for every layer).
_knockout = []
_orig_eager = modeling_gpt2.eager_attention_forward


def eager_with_knockout(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """HF's eager attention, plus: knocked-out keys get -inf for every later query."""
    keys = sorted({j for ks, ls in _knockout if ls is None or module.layer_idx in ls for j in ks})
    if not keys:
        return _orig_eager(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    w = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        w = w + attention_mask
    T, K = w.shape[-2], w.shape[-1]
    for j in keys:
        if j < K:
            rows = torch.arange(T) > j  # queries at later positions (no past cache here)
            w[..., rows, j] = float("-inf")
    w = torch.nn.functional.softmax(w, dim=-1).type(value.dtype)
    out = torch.matmul(w, value).transpose(1, 2)
    return out, w


modeling_gpt2.eager_attention_forward = eager_with_knockout


def parse(spec):
    parts = spec.split(":")
    d = {"hook": parts[0]}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k in ("ch", "pos", "keys", "layers"):
            d[k] = [int(x) for x in v.split(",")]
        elif k == "value":
            d["value"] = float(v)
        elif k == "zero":
            d["value"] = 0.0
        elif k == "mean":
            d["mean"] = True
        else:
            raise ValueError(spec)
    return d


def expand(hook, n_layer):
    """blocks.*.X -> blocks.0.X, blocks.1.X, ...; a concrete name as is."""
    if hook.startswith("blocks.*."):
        return [f"blocks.{l}.{hook[len('blocks.*.'):]}" for l in range(n_layer)]
    assert "*" not in hook, hook
    return [hook]


def module_and_slice(model, hook, D):
    """(module, which output, column offset) whose forward output is the hook's tensor."""
    b = hook.split(".")
    l = int(b[1])
    blk = model.transformer.h[l]
    name = ".".join(b[2:])
    if name == "hook_resid_post":
        return blk, "tuple0", 0
    if name == "mlp.hook_post":
        return blk.mlp.act, "tensor", 0
    if name == "attn.hook_k":
        return blk.attn.c_attn, "tensor", D
    if name == "hook_resid_mid":
        return blk.ln_2, "input", 0
    raise ValueError(hook)


def resolve(model, ids, specs):
    """Concrete edits (hook, columns, positions or None, one value per column) and knockout rules,
    in the order the specs give them; mean values are taken with the earlier ones applied."""
    edits, rules = [], []
    for s in specs:
        d = parse(s)
        if d["hook"] == "knockout":
            rules.append((d["keys"], d.get("layers")))
            continue
        for hook in expand(d["hook"], model.config.n_layer):
            if d.get("mean"):
                t = forward(model, ids, edits, rules, grab=hook).pop("grab")
                _, _, off = module_and_slice(model, hook, model.config.n_embd)
                idx = slice(None) if d.get("pos") is None else torch.tensor(d["pos"])
                values = [t[idx, off + c].double().mean().float().item() for c in d["ch"]]
            else:
                values = [d["value"]] * len(d["ch"])
            edits.append((hook, d["ch"], d.get("pos"), values))
    return edits, rules


def forward(model, ids, edits, rules, grab=None):
    """Run the model with the edits and knockout rules; `grab`: also return that hook's tensor."""
    D = model.config.n_embd
    handles = []
    seen = {}
    for hook, chans, pos, values in edits:
        mod, kind, off = module_and_slice(model, hook, D)
        idx = slice(None) if pos is None else torch.tensor(pos)
        cols = [(off + c, v) for c, v in zip(chans, values)]
        if kind == "input":
            # hook_resid_mid is ln_2's input x = resid_pre + attn_out, the same tensor object the
            # MLP output is added to: editing x in place before ln_2 runs changes both.
            def pre(m, args, cols=cols, idx=idx):
                (x,) = args
                for c, v in cols:
                    x[0, idx, c] = v
                return None

            handles.append(mod.register_forward_pre_hook(pre))
            continue

        def edit(t, cols=cols, idx=idx):
            t = t.clone()
            for c, v in cols:
                t[0, idx, c] = v
            return t

        if kind == "tuple0":
            handles.append(mod.register_forward_hook(
                lambda m, i, o, e=edit: (e(o[0]),) + tuple(o[1:]) if isinstance(o, tuple) else e(o)))
        else:
            handles.append(mod.register_forward_hook(lambda m, i, o, e=edit: e(o)))
    # Registered after the edits, these see what the edits leave, as outlier-probe's captures do
    # (transformers' own hidden_states are recorded before them).
    for name, hook in [("blocks.1.hook_resid_post", "blocks.1.hook_resid_post"), ("grab", grab)]:
        if hook is None:
            continue
        mod, kind, _ = module_and_slice(model, hook, D)
        assert kind in ("tuple0", "tensor"), hook

        def keep(m, i, o, name=name):
            seen[name] = (o[0] if isinstance(o, tuple) else o).detach().clone()[0]

        handles.append(mod.register_forward_hook(keep))
    _knockout[:] = rules
    try:
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_attentions=True)
    finally:
        for h in handles:
            h.remove()
        _knockout.clear()
    res = {"logits": out.logits[0], "blocks.0.attn.hook_pattern": out.attentions[0][0],
           "blocks.1.attn.hook_pattern": out.attentions[1][0]}
    res.update(seen)
    return res


def run_case(model, ids, specs):
    edits, rules = resolve(model, ids, specs)
    return forward(model, ids, edits, rules)


def main():
    for fx in ["gpt2-odd-a", "gpt2-odd-c"]:
        d = FIXTURES / fx
        model = GPT2LMHeadModel.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
        prompts = json.loads((d / "prompts.json").read_text())
        ids = prompts[0]["ids"] if fx == "gpt2-odd-a" else prompts[2]["ids"][:40]
        tensors, cases = {"tokens": torch.tensor(ids, dtype=torch.int64)}, {}
        with torch.no_grad():
            plain = model(torch.tensor([ids])).logits[0]
        for case, specs in CASES.items():
            res = run_case(model, ids, specs)
            # Each case must change the model, or the test that reads it proves nothing.
            assert (res["logits"] - plain).abs().max() > 1e-3 * plain.abs().max(), (fx, case)
            for k, v in res.items():
                tensors[f"{case}.{k}"] = v.contiguous()
            cases[case] = specs
        # The unedited run through the patched attention must equal the plain model.
        base = run_case(model, ids, [])
        assert torch.equal(base["logits"], plain)
        save_file(tensors, d / "interventions.safetensors", metadata={"format": "pt"})
        (d / "interventions.json").write_text(json.dumps({"tokens": ids, "cases": cases}, indent=1) + "\n")
        print(fx, {c: len(s) for c, s in cases.items()}, "T =", len(ids))


if __name__ == "__main__":
    main()
