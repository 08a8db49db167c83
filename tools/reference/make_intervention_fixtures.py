"""Reference results of interventions, done inside Hugging Face transformers (eager attention).

Reads the fixture models written by make_fixtures.py and, for each case below, runs the model with
the edit applied by PyTorch forward hooks (or, for key knockout, by a patched eager attention), then
writes tests/fixtures/<model>/interventions.safetensors with tensors named "<case>.<hook>" and
tests/fixtures/<model>/interventions.json with each case's specs in outlier-probe's grammar.

    python tools/reference/make_intervention_fixtures.py
"""
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import GPT2LMHeadModel
from transformers.models.gpt2 import modeling_gpt2

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"

# case name -> list of specs; each spec is parsed below into a hook action.
CASES = {
    "zero": ["blocks.0.hook_resid_post:ch=5,17,40:zero"],
    "value": ["blocks.1.mlp.hook_post:ch=3,100:pos=0,4:value=2.5"],
    "knockout": ["knockout:keys=0"],
    "mixed": ["knockout:keys=0,3:layers=1", "blocks.0.attn.hook_k:ch=2,7:pos=1:value=0.5",
              "blocks.1.hook_resid_mid:ch=1:pos=0,2,9:value=-3"],
}
SAVE_HOOKS = ["blocks.1.attn.hook_pattern", "blocks.1.hook_resid_post"]

_knockout = {"keys": [], "layers": None}
_orig_eager = modeling_gpt2.eager_attention_forward


def eager_with_knockout(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """HF's eager attention, plus: knocked-out keys get -inf for every later query."""
    keys, layers = _knockout["keys"], _knockout["layers"]
    if not keys or (layers is not None and module.layer_idx not in layers):
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
    return d


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


def run_case(model, ids, specs):
    D = model.config.n_embd
    handles = []
    _knockout["keys"], _knockout["layers"] = [], None
    for s in specs:
        d = parse(s)
        if d["hook"] == "knockout":
            _knockout["keys"], _knockout["layers"] = d["keys"], d.get("layers")
            continue
        mod, kind, off = module_and_slice(model, d["hook"], D)
        cols = [off + c for c in d["ch"]]
        pos = d.get("pos")

        def edit(t, cols=cols, pos=pos, v=d["value"]):
            t = t.clone()
            idx = slice(None) if pos is None else torch.tensor(pos)
            for c in cols:
                t[0, idx, c] = v
            return t

        if kind == "input":
            # hook_resid_mid is ln_2's input; the edit must also flow on into the residual, so edit
            # the attention output added to it instead: resid_mid = resid_pre + attn_out.
            raise NotImplementedError
        if kind == "tuple0":
            handles.append(mod.register_forward_hook(lambda m, i, o, e=edit: (e(o[0]),) + tuple(o[1:]) if isinstance(o, tuple) else e(o)))
        else:
            handles.append(mod.register_forward_hook(lambda m, i, o, e=edit: e(o)))
    try:
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
        _knockout["keys"], _knockout["layers"] = [], None
    res = {"logits": out.logits[0], "blocks.1.attn.hook_pattern": out.attentions[1][0],
           "blocks.1.hook_resid_post": out.hidden_states[2][0] if model.config.n_layer > 2 else None}
    return {k: v for k, v in res.items() if v is not None}


def main():
    for fx in ["gpt2-odd-a", "gpt2-odd-c"]:
        d = FIXTURES / fx
        model = GPT2LMHeadModel.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
        prompts = json.loads((d / "prompts.json").read_text())
        ids = prompts[0]["ids"] if fx == "gpt2-odd-a" else prompts[2]["ids"][:40]
        tensors, cases = {"tokens": torch.tensor(ids, dtype=torch.int64)}, {}
        for case, specs in CASES.items():
            if any("hook_resid_mid" in s for s in specs):
                # resid_mid edits flow into both ln_2 and the second residual add: do it at the
                # block level by patching the block's forward residual.
                res = run_resid_mid_case(model, ids, specs)
            else:
                res = run_case(model, ids, specs)
            for k, v in res.items():
                tensors[f"{case}.{k}"] = v.contiguous()
            cases[case] = specs
        # The unedited run through the patched attention must equal the plain model.
        base = run_case(model, ids, [])
        with torch.no_grad():
            plain = model(torch.tensor([ids])).logits[0]
        assert torch.equal(base["logits"], plain)
        save_file(tensors, d / "interventions.safetensors", metadata={"format": "pt"})
        (d / "interventions.json").write_text(json.dumps({"tokens": ids, "cases": cases}, indent=1) + "\n")
        print(fx, {c: len(s) for c, s in cases.items()}, "T =", len(ids))


def run_resid_mid_case(model, ids, specs):
    """Like run_case, with resid_mid edits applied by wrapping GPT2Block.forward's residual."""
    mid = [parse(s) for s in specs if "hook_resid_mid" in s]
    rest = [s for s in specs if "hook_resid_mid" not in s]
    blocks = {}
    for d in mid:
        blocks.setdefault(int(d["hook"].split(".")[1]), []).append(d)
    originals = {}
    for l, ds in blocks.items():
        blk = model.transformer.h[l]
        ln2 = blk.ln_2
        orig = ln2.forward

        # ln_2(x) is called with x = resid_mid; editing x in place before ln_2 runs changes both
        # ln_2's input and the residual that the MLP output is added to (the same tensor object).
        def pre(m, args, ds=ds):
            (x,) = args
            for d in ds:
                idx = slice(None) if "pos" not in d else torch.tensor(d["pos"])
                for c in d["ch"]:
                    x[0, idx, c] = d["value"]
            return None

        originals[l] = ln2.register_forward_pre_hook(pre)
    try:
        return run_case(model, ids, rest)
    finally:
        for h in originals.values():
            h.remove()


if __name__ == "__main__":
    main()
