#!/usr/bin/env python3
"""Generate the OPT reference fixtures for outlier-probe's Rust tests (tests/opt.rs).

Writes tests/fixtures/opt-odd-a/ and opt-odd-b/: tiny random-init OPTForCausalLM models of odd
sizes, f32, tied embeddings, ReLU MLP, every LayerNorm weight and bias and every linear bias
randomised to non-trivial values:

* opt-odd-a: pre-LN (do_layer_norm_before), hidden 36, 3 heads, 3 layers, ffn_dim 75,
  word_embed_proj_dim = hidden (no project_in/out), final LayerNorm.
* opt-odd-b: post-LN (OPT-350m style: x = LN(x + f(x)), no final LayerNorm), hidden 44, 4 heads,
  2 layers, ffn_dim 57, word_embed_proj_dim 20 (project_in 20 -> 44, project_out 44 -> 20).

Each holds config.json, model.safetensors, tokenizer.json (a copy of gpt2-odd-a's trained
byte-level BPE, vocab 1021, <|endoftext|> = 1020), prompts.json and ref-{0,1,2}.safetensors with
every hook outlier-probe names for OPT (TransformerLens names; see src/model/opt.rs for where each
sits in pre- and post-LN blocks, plus hook_project_in / hook_project_out) and greedy generations.
The script also checks that transformers gives a left-padded batch the positions of each prompt
alone (OPT's positions come from the attention mask's cumsum, + 2), the engine's convention.

Deterministic (fixed seeds), CPU, float32, attn_implementation="eager". Helpers (corpus split,
prompt choice, JSON dump) come from make_fixtures.py, which must have been run first (for the
tokenizer). Re-run with:

    python3 -m venv v && v/bin/pip install -r tools/reference/requirements.txt \
        && v/bin/python tools/reference/make_opt_fixtures.py
"""

import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (sets deterministic torch, single thread)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import OPTConfig, OPTForCausalLM  # noqa: E402
from transformers.models.opt import modeling_opt  # noqa: E402

FIXTURES = mf.FIXTURES
SOURCE_TOKENIZER = FIXTURES / "gpt2-odd-a" / "tokenizer.json"
VOCAB = 1021
EOT_ID = VOCAB - 1

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

SPECS = [
    dict(name="opt-odd-a", hidden_size=36, num_attention_heads=3, num_hidden_layers=3, ffn_dim=75,
         word_embed_proj_dim=36, do_layer_norm_before=True, max_position_embeddings=24, seed=7007),
    dict(name="opt-odd-b", hidden_size=44, num_attention_heads=4, num_hidden_layers=2, ffn_dim=57,
         word_embed_proj_dim=20, do_layer_norm_before=False, max_position_embeddings=24, seed=7107),
]


def make_model(spec) -> OPTForCausalLM:
    config = OPTConfig(
        vocab_size=VOCAB,
        hidden_size=spec["hidden_size"],
        num_hidden_layers=spec["num_hidden_layers"],
        ffn_dim=spec["ffn_dim"],
        num_attention_heads=spec["num_attention_heads"],
        max_position_embeddings=spec["max_position_embeddings"],
        do_layer_norm_before=spec["do_layer_norm_before"],
        word_embed_proj_dim=spec["word_embed_proj_dim"],
        activation_function="relu",
        enable_bias=True,
        layer_norm_elementwise_affine=True,
        init_std=0.1,
        bos_token_id=EOT_ID,
        eos_token_id=EOT_ID,
        pad_token_id=EOT_ID,
        tie_word_embeddings=True,
        attn_implementation="eager",
    )
    torch.manual_seed(spec["seed"])
    model = OPTForCausalLM(config)
    model.config._attn_implementation = "eager"
    model.eval()
    g = torch.Generator().manual_seed(spec["seed"] + 7)
    with torch.no_grad():
        n_norms = 0
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                n_norms += 1
        want = 2 * spec["num_hidden_layers"] + (1 if spec["do_layer_norm_before"] else 0)
        assert n_norms == want, n_norms
        n_bias = 0
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear) and m.bias is not None:
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
                n_bias += 1
        assert n_bias == 6 * spec["num_hidden_layers"], n_bias
        # The padding row of embed_tokens is zero after init: make it a normal row.
        emb = model.model.decoder.embed_tokens.weight
        emb[EOT_ID].copy_(0.1 * torch.randn(emb.shape[1], generator=g))
    dec = model.model.decoder
    assert (dec.project_in is None) == (spec["word_embed_proj_dim"] == spec["hidden_size"])
    assert (dec.final_layer_norm is None) == (not spec["do_layer_norm_before"])
    assert dec.embed_positions.weight.shape == (spec["max_position_embeddings"] + 2, spec["hidden_size"])
    tied = model.lm_head.weight.data_ptr() == dec.embed_tokens.weight.data_ptr()
    assert tied
    return model


def save_model(model: OPTForCausalLM, spec, outdir: Path):
    sd = {k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items()
          if k != "lm_head.weight"}
    save_file(sd, str(outdir / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(outdir / "model.safetensors", 0o644)
    model.config.to_json_file(str(outdir / "config.json"))
    return sorted(sd)


def reload_and_check(outdir: Path, ref_by_k):
    fresh, info = OPTForCausalLM.from_pretrained(
        str(outdir), dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    fresh.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    with torch.no_grad():
        for k, ref in ref_by_k.items():
            lg = fresh(ref["tokens"][None], use_cache=False).logits[0]
            assert torch.equal(lg, ref["logits"]), (outdir.name, k, (lg - ref["logits"]).abs().max())


class AttnSpy:
    """Wraps modeling_opt.eager_attention_forward (looked up at call time) to record its inputs."""

    def __enter__(self):
        self._orig = modeling_opt.eager_attention_forward
        self.calls = []
        spy = self

        def eager(module, query, key, value, attention_mask, scaling, *a, **kw):
            out, w = spy._orig(module, query, key, value, attention_mask, scaling, *a, **kw)
            spy.calls.append(dict(query=query.detach().clone(), key=key.detach().clone(),
                                  scaling=scaling, out=out.detach().clone()))
            return out, w

        modeling_opt.eager_attention_forward = eager
        return self

    def __exit__(self, *exc):
        modeling_opt.eager_attention_forward = self._orig
        return False


def run_reference(model, ids: list, n_positions: int):
    cfg = model.config
    D, H, I, E = cfg.hidden_size, cfg.num_attention_heads, cfg.ffn_dim, cfg.word_embed_proj_dim
    Dh = D // H
    L = cfg.num_hidden_layers
    T = len(ids)
    pre = cfg.do_layer_norm_before
    dec = model.model.decoder
    cap = {}
    handles = []

    def out_hook(name):
        def f(_m, _inp, out):
            o = out[0] if isinstance(out, tuple) else out
            cap[name] = o.detach().clone()
        return f

    def in_hook(name):
        def f(_m, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            cap[name] = x.detach().clone()
        return f

    reg = lambda m, n: handles.append(m.register_forward_hook(out_hook(n)))  # noqa: E731
    reg_in = lambda m, n: handles.append(m.register_forward_pre_hook(in_hook(n), with_kwargs=True))  # noqa: E731
    reg(dec.embed_tokens, "hook_embed")
    reg(dec.embed_positions, "hook_pos_embed")
    if dec.project_in is not None:
        reg(dec.project_in, "hook_project_in")
        reg(dec.project_out, "hook_project_out")
    if dec.final_layer_norm is not None:
        reg(dec.final_layer_norm, "ln_final.hook_normalized")
    for l, blk in enumerate(dec.layers):
        p = f"blocks.{l}."
        at = blk.self_attn
        reg_in(blk, p + "hook_resid_pre")
        reg(blk, p + "hook_resid_post")
        reg(blk.self_attn_layer_norm, p + "ln1.hook_normalized")
        reg_in(blk.self_attn_layer_norm, p + "_ln1_in")
        reg(at.q_proj, p + "_q")
        reg(at.k_proj, p + "_k")
        reg(at.v_proj, p + "_v")
        reg_in(at.out_proj, p + "_z")
        reg(at.out_proj, p + "hook_attn_out")
        reg(blk.final_layer_norm, p + "ln2.hook_normalized")
        reg_in(blk.final_layer_norm, p + "_ln2_in")
        reg(blk.fc1, p + "mlp.hook_pre")
        reg_in(blk.fc2, p + "mlp.hook_post")
        reg(blk.fc2, p + "hook_mlp_out")

    input_ids = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad(), AttnSpy() as spy:
        out = model(input_ids, output_hidden_states=True, output_attentions=True, use_cache=False)
    for h in handles:
        h.remove()
    assert len(spy.calls) == L

    def sq(t):  # drop the batch axis (2-D tensors are [T, .] already: OPT's MLP reshapes)
        t = t.float()
        if t.dim() >= 3:
            assert t.shape[0] == 1, t.shape
            t = t[0]
        return t.contiguous()

    ref = {"tokens": torch.tensor(ids, dtype=torch.int64)}
    ref["hook_embed"] = sq(cap["hook_embed"])
    assert torch.equal(ref["hook_embed"], dec.embed_tokens.weight[input_ids[0]])
    ref["hook_pos_embed"] = sq(cap["hook_pos_embed"])
    # position p reads row p + 2
    assert torch.equal(ref["hook_pos_embed"], dec.embed_positions.weight[torch.arange(T) + 2])
    tok_term = ref["hook_embed"]
    if dec.project_in is not None:
        ref["hook_project_in"] = sq(cap["hook_project_in"])
        tok_term = ref["hook_project_in"]
    assert torch.equal(sq(cap["blocks.0.hook_resid_pre"]), tok_term + ref["hook_pos_embed"])
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    hs = out.hidden_states
    for l, blk in enumerate(dec.layers):
        p = f"blocks.{l}."
        at, call = blk.self_attn, spy.calls[l]
        x = sq(cap[p + "hook_resid_pre"])
        ref[p + "hook_resid_pre"] = x
        assert torch.equal(x, sq(hs[l])), f"hidden_states[{l}]"
        q = sq(cap[p + "_q"]).reshape(T, H, Dh).contiguous()
        k = sq(cap[p + "_k"]).reshape(T, H, Dh).contiguous()
        v = sq(cap[p + "_v"]).reshape(T, H, Dh).contiguous()
        ref[p + "attn.hook_q"], ref[p + "attn.hook_k"], ref[p + "attn.hook_v"] = q, k, v
        # OPT scales q by head_dim^-0.5 before q·k and passes scaling=1.0
        assert call["scaling"] == 1.0 and at.scaling == Dh ** -0.5
        qs = sq(call["query"]).transpose(0, 1)
        assert torch.equal(qs, q * at.scaling)
        raw = torch.matmul(qs.transpose(0, 1)[None], k.transpose(0, 1)[None].transpose(2, 3))[0]
        ref[p + "attn.hook_attn_scores"] = raw.masked_fill(~causal, float("-inf")).contiguous()
        pattern = sq(out.attentions[l])
        ref[p + "attn.hook_pattern"] = pattern
        assert torch.allclose(torch.softmax(ref[p + "attn.hook_attn_scores"], -1), pattern, atol=1e-6, rtol=1e-5)
        z = sq(cap[p + "_z"]).reshape(T, H, Dh).contiguous()
        ref[p + "attn.hook_z"] = z
        ref[p + "hook_attn_out"] = sq(cap[p + "hook_attn_out"])
        ln1 = sq(cap[p + "ln1.hook_normalized"])
        ref[p + "ln1.hook_normalized"] = ln1
        ln2 = sq(cap[p + "ln2.hook_normalized"])
        ref[p + "ln2.hook_normalized"] = ln2
        ref[p + "mlp.hook_pre"] = sq(cap[p + "mlp.hook_pre"])
        ref[p + "mlp.hook_post"] = sq(cap[p + "mlp.hook_post"])
        assert torch.equal(torch.relu(ref[p + "mlp.hook_pre"]), ref[p + "mlp.hook_post"])
        ref[p + "hook_mlp_out"] = sq(cap[p + "hook_mlp_out"])
        post = sq(cap[p + "hook_resid_post"])
        ref[p + "hook_resid_post"] = post
        with torch.no_grad():
            if pre:
                assert torch.equal(sq(cap[p + "_ln1_in"]), x)
                mid = sq(cap[p + "_ln2_in"])
                assert torch.equal(mid, x + ref[p + "hook_attn_out"])
                ref[p + "hook_resid_mid"] = mid
                assert torch.equal(post, mid + ref[p + "hook_mlp_out"])
                q_in = ln1
            else:
                # post-LN: ln1 = LN(x + attn_out) is resid_mid; ln2 = LN(ln1 + mlp_out) is resid_post
                assert torch.equal(sq(cap[p + "_ln1_in"]), x + ref[p + "hook_attn_out"])
                assert torch.equal(sq(cap[p + "_ln2_in"]), ln1 + ref[p + "hook_mlp_out"])
                ref[p + "hook_resid_mid"] = ln1.clone()
                assert torch.equal(post, ln2)
                q_in = x
            lin = q_in @ at.q_proj.weight.T + at.q_proj.bias
            assert torch.allclose(lin, q.reshape(T, -1), atol=1e-5, rtol=1e-5)
            for n_in, n_out, norm in [("_ln1_in", "ln1", blk.self_attn_layer_norm),
                                      ("_ln2_in", "ln2", blk.final_layer_norm)]:
                y = sq(cap[p + n_in])
                mu, var = y.mean(-1, keepdim=True), y.var(-1, unbiased=False, keepdim=True)
                want = (y - mu) / torch.sqrt(var + 1e-5) * norm.weight + norm.bias
                assert torch.allclose(want, ref[p + n_out + ".hook_normalized"], atol=1e-5, rtol=1e-5)
        assert torch.equal(post, sq(hs[l + 1])) if l + 1 < L else True
    if dec.final_layer_norm is not None:
        ref["ln_final.hook_normalized"] = sq(cap["ln_final.hook_normalized"])
        head_in = ref["ln_final.hook_normalized"]
    else:
        head_in = ref[f"blocks.{L - 1}.hook_resid_post"]
    if dec.project_out is not None:
        ref["hook_project_out"] = sq(cap["hook_project_out"])
        with torch.no_grad():
            assert torch.equal(ref["hook_project_out"], dec.project_out(head_in))
        head_in = ref["hook_project_out"]
    ref["logits"] = sq(out.logits)
    assert torch.allclose(head_in @ model.lm_head.weight.T, ref["logits"], atol=1e-4, rtol=1e-4)

    n_new = min(mf.GEN_TOKENS, n_positions - T)
    V = cfg.vocab_size
    with torch.no_grad():
        gen = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                             max_new_tokens=n_new, min_new_tokens=0, pad_token_id=V - 1, eos_token_id=V - 1)
    new = gen[0, T:].tolist()
    seq, manual = list(ids), []
    with torch.no_grad():
        for _ in range(n_new):
            nxt = int(torch.argmax(model(torch.tensor([seq]), use_cache=False).logits[0, -1]))
            manual.append(nxt)
            seq.append(nxt)
            if nxt == V - 1:
                break
    assert new == manual, (new, manual)
    assert len(new) == n_new, f"generation stopped early at EOS: {new}"
    ref["generated"] = torch.tensor(new, dtype=torch.int64)
    for k_, v_ in ref.items():
        if k_ not in ("tokens", "generated"):
            assert v_.dtype == torch.float32 and v_.is_contiguous(), k_
            if "attn_scores" not in k_:
                assert torch.isfinite(v_).all(), k_
    return ref


def check_padded_batch(model, id_lists):
    """transformers' OPT positions come from the attention mask: with left or right padding each
    prompt's real tokens sit at positions 0.. (rows 2..), as alone; the engine does the same."""
    n = max(len(x) for x in id_lists)
    with torch.no_grad():
        for side in ("left", "right"):
            ids = torch.full((len(id_lists), n), EOT_ID, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for b, x in enumerate(id_lists):
                sl = slice(n - len(x), n) if side == "left" else slice(0, len(x))
                ids[b, sl] = torch.tensor(x)
                mask[b, sl] = 1
            lg = model(ids, attention_mask=mask, use_cache=False).logits
            for b, x in enumerate(id_lists):
                sl = slice(n - len(x), n) if side == "left" else slice(0, len(x))
                alone = model(torch.tensor([x]), use_cache=False).logits[0]
                assert torch.allclose(lg[b, sl], alone, atol=1e-5, rtol=1e-5), (side, b)


def main():
    train_text, heldout = mf.split_corpus()
    retrained = mf.train_tokenizer(train_text, VOCAB)
    src = Tokenizer.from_file(str(SOURCE_TOKENIZER))
    assert src.get_vocab() == retrained.get_vocab(), "gpt2-odd-a/tokenizer.json is stale"
    for spec in SPECS:
        outdir = FIXTURES / spec["name"]
        outdir.mkdir(parents=True, exist_ok=True)
        NP = spec["max_position_embeddings"]
        shutil.copyfile(SOURCE_TOKENIZER, outdir / "tokenizer.json")
        tok = Tokenizer.from_file(str(outdir / "tokenizer.json"))
        assert tok.get_vocab_size() == VOCAB and tok.token_to_id(mf.EOT) == EOT_ID
        prompts = [mf.PROMPT_0, mf.PROMPT_1, mf.pick_long_prompt(tok, heldout, NP)]
        model = make_model(spec)
        names = save_model(model, spec, outdir)
        prompt_info, refs = [], {}
        for k, text in enumerate(prompts):
            ids = mf.encode(tok, text)
            assert 0 < len(ids) <= NP
            ref = run_reference(model, ids, NP)
            save_file(ref, str(outdir / f"ref-{k}.safetensors"), metadata={"format": "pt"})
            os.chmod(outdir / f"ref-{k}.safetensors", 0o644)
            refs[k] = ref
            prompt_info.append({"k": k, "text": text, "ids": ids, "n_tokens": len(ids),
                                "generated": ref["generated"].tolist()})
        check_padded_batch(model, [p["ids"] for p in prompt_info])
        mf.dump_json_list(outdir / "prompts.json", prompt_info)
        for k, ref in refs.items():
            back = load_file(str(outdir / f"ref-{k}.safetensors"))
            assert set(back) == set(ref) and all(torch.equal(back[n], ref[n]) for n in ref)
        reload_and_check(outdir, refs)
        size = sum(f.stat().st_size for f in outdir.iterdir())
        assert size < 1_000_000, size
        print(spec["name"], {"tensors": len(names), "prompt_tokens": [p["n_tokens"] for p in prompt_info],
                             "hooks": len(refs[0]) - 2, "bytes": size}, flush=True)
    print("versions:", "torch", torch.__version__, "numpy", np.__version__, file=sys.stderr)
    print("ok")


if __name__ == "__main__":
    main()
