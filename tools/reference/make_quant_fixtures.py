"""Reference logits of fake-quantized / pruned models, computed inside Hugging Face transformers.

Reads the fixture models tests/fixtures/gpt2-odd-a (GPT2LMHeadModel) and tests/fixtures/llama-odd-a
(LlamaForCausalLM), both float32, eager attention, and for each case below edits the weights of the
linear layers inside the transformer blocks (pruning, then weight fake-quantization) and/or
fake-quantizes their inputs with forward_pre_hooks, then runs prompt k=2 of the model's
prompts.json (batch 1). Writes

    tests/fixtures/quant/<model>.safetensors   "<case>.logits" [T, V] f32 per case, "fp32.logits"
    tests/fixtures/quant/cases.json            [{"name", "model", "prompt_ids", "scheme"}, ...]

Scheme definitions (what the Rust engine implements, src/compress/ and crates/core/src/study_types.rs):
  * Layers: GPT-2 attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj (Conv1D, weight [in, out]);
    Llama q/k/v/o_proj, gate/up/down_proj (Linear, weight [out, in]). Never embeddings, LM head,
    biases or norms.
  * Protected input channels: protect["d"] for every linear reading the model width, protect["inner"]
    for the MLP down projection (GPT-2 mlp.c_proj, Llama down_proj); same lists in every layer.
    Protected input channels are left out of every absmax, never quantized and never pruned.
  * Weights, b bits: qmax = 2^(b-1)-1; scale s = absmax over the unprotected inputs of each output
    channel ("channel") or of the whole HF tensor ("tensor"), / qmax;
    w -> clamp(round_half_even(w / s), -qmax, qmax) * s, and 0 where s == 0.
  * Activations, a bits: same formula on each linear's input, one scale per forward call over all
    tokens and unprotected channels.
  * Pruning, share p: per HF tensor, zero floor(p*n) of its n unprotected weights, smallest |w|
    first, ties to the lower flat index of the stored (HF layout) weight. Done before weight quant.

Also checks (and prints): each case's max|q - fp32| / max|fp32| of the logits, that pruning zeroed
exactly floor(p*n) unprotected weights per tensor, that protected weights are bit-identical, a
hand-computed planted example, and that fake-quantizing twice is idempotent.

    python tools/reference/make_quant_fixtures.py
"""
import json
import math
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import GPT2LMHeadModel, LlamaForCausalLM

torch.manual_seed(0)
torch.set_num_threads(1)

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
OUT = FIXTURES / "quant"
MODELS = {"gpt2-odd-a": GPT2LMHeadModel, "llama-odd-a": LlamaForCausalLM}
PROMPT_K = 2

NO_PROTECT = {"d": [], "inner": []}
PROTECT = {"d": [3, 40], "inner": [10, 100, 150]}


def scheme(w_bits=None, w_gran=None, a_bits=None, prune=None, protect=NO_PROTECT):
    return {"w_bits": w_bits, "w_granularity": w_gran if w_bits is not None else None,
            "a_bits": a_bits, "prune": prune, "protect": protect}


CASES = {
    "w8": scheme(8, "channel"),
    "w8t": scheme(8, "tensor"),
    "w4": scheme(4, "channel"),
    "w4t": scheme(4, "tensor"),
    "a8": scheme(a_bits=8),
    "w8a8": scheme(8, "channel", a_bits=8),
    "prune50": scheme(prune=0.5),
    "w4t_protect": scheme(4, "tensor", protect=PROTECT),
    "a8_protect": scheme(a_bits=8, protect=PROTECT),
    "w4a8_protect": scheme(4, "channel", a_bits=8, protect=PROTECT),
    "prune50_protect": scheme(prune=0.5, protect=PROTECT),
    "prune50_w8_protect": scheme(8, "channel", prune=0.5, protect=PROTECT),
}


def linears(model):
    """[(name, module, in_axis, input kind)] of the block linears; in_axis = axis of weight's input."""
    out = []
    if isinstance(model, GPT2LMHeadModel):
        for l, blk in enumerate(model.transformer.h):
            for name, mod, kind in [("attn.c_attn", blk.attn.c_attn, "d"), ("attn.c_proj", blk.attn.c_proj, "d"),
                                    ("mlp.c_fc", blk.mlp.c_fc, "d"), ("mlp.c_proj", blk.mlp.c_proj, "inner")]:
                out.append((f"h.{l}.{name}", mod, 0, kind))  # Conv1D weight [in, out]
    else:
        for l, blk in enumerate(model.model.layers):
            a, m = blk.self_attn, blk.mlp
            for name, mod, kind in [("self_attn.q_proj", a.q_proj, "d"), ("self_attn.k_proj", a.k_proj, "d"),
                                    ("self_attn.v_proj", a.v_proj, "d"), ("self_attn.o_proj", a.o_proj, "d"),
                                    ("mlp.gate_proj", m.gate_proj, "d"), ("mlp.up_proj", m.up_proj, "d"),
                                    ("mlp.down_proj", m.down_proj, "inner")]:
                out.append((f"layers.{l}.{name}", mod, 1, kind))  # Linear weight [out, in]
    return out


def input_mask(w, in_axis, channels):
    """Bool tensor shaped like w: True where the element reads a protected input channel."""
    k = w.shape[in_axis]
    prot = torch.zeros(k, dtype=torch.bool)
    for c in channels:
        assert 0 <= c < k, (c, k)
        prot[c] = True
    return prot[:, None].expand_as(w) if in_axis == 0 else prot[None, :].expand_as(w)


def fake_quant(x, s, qmax):
    """clamp(round_half_even(x / s), -qmax, qmax) * s, 0 where s == 0 (s broadcasts against x)."""
    s = torch.as_tensor(s, dtype=torch.float32).expand_as(x)
    safe = torch.where(s == 0, torch.ones_like(s), s)
    q = torch.clamp(torch.round(x / safe), -qmax, qmax) * safe
    return torch.where(s == 0, torch.zeros_like(q), q)


def quant_weight(w, in_axis, prot, bits, granularity):
    """Fake-quantize w (float32) with protected elements prot left untouched."""
    qmax = float(2 ** (bits - 1) - 1)
    a = torch.where(prot, torch.zeros_like(w), w.abs())
    if granularity == "channel":  # one scale per output channel: reduce over the input axis
        s = a.amax(dim=in_axis, keepdim=True) / qmax
    elif granularity == "tensor":
        s = a.amax() / qmax
    else:
        raise ValueError(granularity)
    return torch.where(prot, w, fake_quant(w, s, qmax))


def quant_act(x, prot_ch, bits):
    """Fake-quantize x [..., C]: one scale over all tokens and the unprotected channels."""
    qmax = float(2 ** (bits - 1) - 1)
    prot = torch.zeros(x.shape[-1], dtype=torch.bool)
    prot[prot_ch] = True
    prot = prot.expand_as(x)
    s = torch.where(prot, torch.zeros_like(x), x.abs()).amax() / qmax
    return torch.where(prot, x, fake_quant(x, s, qmax))


def prune_weight(w, prot, share):
    """Zero exactly floor(share*n) of the n unprotected elements with smallest |w| (ties: lower flat
    index of the stored layout). Returns (new weight, number zeroed)."""
    flat = w.reshape(-1).clone()
    idx = torch.nonzero(~prot.reshape(-1)).reshape(-1)  # ascending flat order
    n = idx.numel()
    k = math.floor(share * n)
    order = torch.argsort(flat[idx].abs(), stable=True)
    flat[idx[order[:k]]] = 0.0
    return flat.reshape(w.shape), k


def apply_scheme(model, sc, log):
    """Edit the weights in place (prune, then weight quant) and return the activation hook handles."""
    handles = []
    for name, mod, in_axis, kind in linears(model):
        w0 = mod.weight.data.clone()
        prot = input_mask(w0, in_axis, sc["protect"][kind])
        w = w0
        if sc["prune"] is not None:
            w, k = prune_weight(w, prot, sc["prune"])
            n = int((~prot).sum())
            # (b) exactly floor(p*n) unprotected elements zeroed (weights already exactly 0, e.g. two
            # in gpt2-odd-a h.0.mlp.c_fc, have the smallest |w| and count among them), others unchanged
            assert k == math.floor(sc["prune"] * n) and int((w0[~prot] == 0).sum()) <= k
            zeroed = (w == 0) & ~prot
            assert int(zeroed.sum()) == k, name
            assert torch.equal(w[~zeroed], w0[~zeroed]), name
            # the zeroed ones are the smallest: max |zeroed| <= min |kept| among unprotected
            assert w0[zeroed].abs().max() <= w0[~zeroed & ~prot].abs().min(), name
            log["pruned"] = log.get("pruned", 0) + k
        if sc["w_bits"] is not None:
            w = quant_weight(w, in_axis, prot, sc["w_bits"], sc["w_granularity"])
            # (c) on the real weights too: quantizing the quantized weight changes nothing
            assert torch.equal(quant_weight(w, in_axis, prot, sc["w_bits"], sc["w_granularity"]), w), name
            if sc["w_granularity"] == "tensor":  # at most 2*qmax+1 distinct values per tensor
                levels = w[~prot].unique().numel()
                assert levels <= 2 ** sc["w_bits"] - 1, (name, levels)
        # (b) protected weights bit-identical (compare bit patterns, so -0.0 / NaN would show)
        assert torch.equal(w[prot].view(torch.int32), w0[prot].view(torch.int32)), name
        log["protected"] = log.get("protected", 0) + int(prot.sum())
        mod.weight.data.copy_(w)
        if sc["a_bits"] is not None:
            ch = sc["protect"][kind]

            def pre(m, args, ch=ch, bits=sc["a_bits"]):
                (x,) = args
                return (quant_act(x, ch, bits),)

            handles.append(mod.register_forward_pre_hook(pre))
    return handles


def planted_checks():
    """(c) Hand-computed example, and fake-quantizing twice changes nothing."""
    # Linear-style [out=3, in=4], protect input 1; 4 bits -> qmax 7. Values exact in binary.
    w = torch.tensor([[1.75, 100.0, -0.875, 0.125],  # s = 0.25: 7, -3.5 -> -4 (half to even), 0.5 -> 0
                      [0.0, 5.0, 0.0, 0.0],           # s = 0: unprotected become 0, protected stays 5
                      [3.5, -2.0, 1.25, -0.25]])      # s = 0.5: 7, 2.5 -> 2, -0.5 -> -0
    prot = input_mask(w, 1, [1])
    q = quant_weight(w, 1, prot, 4, "channel")
    expect = torch.tensor([[1.75, 100.0, -1.0, 0.0], [0.0, 5.0, 0.0, 0.0], [3.5, -2.0, 1.0, -0.0]])
    assert torch.equal(q, expect), q
    # Per tensor: s = 3.5 / 7 = 0.5 over the unprotected elements (100, 5 and -2 are protected).
    qt = quant_weight(w, 1, prot, 4, "tensor")
    expect = torch.tensor([[2.0, 100.0, -1.0, 0.0], [0.0, 5.0, 0.0, 0.0], [3.5, -2.0, 1.0, -0.0]])
    assert torch.equal(qt, expect), qt
    # Pruning: n = 9 unprotected, floor(0.5 * 9) = 4 zeroed: the exact zeros (flat 4, 6, 7) and
    # 0.125 (flat 3); -0.25 (flat 11) is kept, protected column untouched.
    p, k = prune_weight(w, prot, 0.5)
    expect = torch.tensor([[1.75, 100.0, -0.875, 0.0], [0.0, 5.0, 0.0, 0.0], [3.5, -2.0, 1.25, -0.25]])
    assert k == 4 and torch.equal(p, expect), p
    tie = torch.tensor([[0.25, -0.25, 0.25, 0.125]])
    pt, _ = prune_weight(tie, input_mask(tie, 1, []), 0.5)
    assert pt.tolist() == [[0.0, -0.25, 0.25, 0.0]], pt  # smallest 0.125, then first of the 0.25 ties
    # Idempotence on real-sized random tensors, every granularity / bit width, with protection.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(96, 200, generator=g) * 0.1
    prot = input_mask(x, 1, [10, 100, 150])
    for bits in (4, 8):
        for gran in ("channel", "tensor"):
            once = quant_weight(x, 1, prot, bits, gran)
            twice = quant_weight(once, 1, prot, bits, gran)
            assert torch.equal(once, twice), (bits, gran, (once - twice).abs().max())
        a1 = quant_act(x, [10, 100, 150], bits)
        assert torch.equal(a1, quant_act(a1, [10, 100, 150], bits)), bits
    print("planted checks: hand example, pruning ties, quantize-twice idempotence: ok")


def main():
    planted_checks()
    OUT.mkdir(exist_ok=True)
    entries = []
    for fx, cls in MODELS.items():
        d = FIXTURES / fx
        model = cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
        ids = json.loads((d / "prompts.json").read_text())[PROMPT_K]["ids"]
        inp = torch.tensor([ids])
        orig = {n: m.weight.data.clone() for n, m, _, _ in linears(model)}

        def restore():
            for n, m, _, _ in linears(model):
                m.weight.data.copy_(orig[n])

        with torch.no_grad():
            fp = model(inp).logits[0].contiguous()
        tensors = {"fp32.logits": fp}
        print(f"{fx}: T = {len(ids)}, V = {fp.shape[1]}, max|fp32 logits| = {fp.abs().max():.4f}")
        rels = {}
        for case, sc in CASES.items():
            log = {}
            handles = apply_scheme(model, sc, log)
            try:
                with torch.no_grad():
                    q = model(inp).logits[0].contiguous()
            finally:
                for h in handles:
                    h.remove()
                restore()
            rel = float((q - fp).abs().max() / fp.abs().max())
            rels[case] = rel
            assert torch.isfinite(q).all() and rel > 1e-4, (fx, case, rel)
            tensors[f"{case}.logits"] = q
            entries.append({"name": case, "model": fx, "prompt_ids": ids, "scheme": sc})
            extra = f"  pruned {log['pruned']}" if "pruned" in log else ""
            print(f"  {case:20s} rel max diff {rel:.6f}{extra}")
        assert rels["w4"] > rels["w8"] and rels["w4t"] > rels["w8t"] and rels["a8"] > rels["w8"], rels
        # weights restored: the plain model is reproduced bit for bit
        with torch.no_grad():
            assert torch.equal(model(inp).logits[0], fp)
        save_file(tensors, OUT / f"{fx}.safetensors", metadata={"format": "pt"})
        os.chmod(OUT / f"{fx}.safetensors", 0o644)  # save_file writes 0600
    text = "[\n" + ",\n".join(" " + json.dumps(e) for e in entries) + "\n]\n"
    (OUT / "cases.json").write_text(text)
    print(f"wrote {OUT}: {len(entries)} cases")


if __name__ == "__main__":
    main()
