#!/usr/bin/env python3
"""Convert a test fixture (a Hugging Face directory) to GGUF with llama.cpp's own converter.

The GGUF fixtures of architectures other than `llama` (whose GGUF test files tests/gguf_writer
writes) are made by llama.cpp's `convert_hf_to_gguf.py`, so the tensor names, layouts and metadata
the Rust GGUF readers are tested on are the converter's, not our reading of it. Two adjustments,
neither touching a tensor or a model key:

* `config.json` gets `architectures` (transformers' class name, which the fixtures' configs lack
  and the converter dispatches on), in a temporary copy of the directory;
* the fixtures' tokenizer is a tiny byte-level BPE whose pre-tokenizer hash the converter does not
  know: `--pre` names the `tokenizer.ggml.pre` to write instead (default `gpt-2`);
* `--raw-config`: the converter's hyper-parameters are config.json as written (its own fallback
  when AutoConfig fails) instead of transformers 5's AutoConfig: transformers 5 moves GPT-NeoX's
  `rotary_pct` into `rope_parameters`, and the converter's GPT-NeoX class reads `rotary_pct`;
* `--plain-tokenizer`: a `tokenizer_config.json` in the copy makes AutoTokenizer read tokenizer.json
  as a plain `PreTrainedTokenizerFast` (GPT-NeoX's own tokenizer class would add a `<|padding|>`
  token the fixture's vocabulary does not have).

The converter: the llama-cpp-python 0.3.36 source distribution vendors llama.cpp with it
(`vendor/llama.cpp/convert_hf_to_gguf.py`, `conversion/`, `gguf-py/`). Get it with
    /work/venv/bin/pip install scikit-build-core && /work/venv/bin/pip download --no-deps \
        --no-build-isolation --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d /work/cache/llamacpp
and unpack it; pass `--llama-cpp DIR/vendor/llama.cpp`.

Run:  /work/venv/bin/python tools/reference/llama_cpp_convert.py --llama-cpp DIR \
          tests/fixtures/qwen2-odd-a Qwen2ForCausalLM tests/fixtures/qwen2-odd-a/model-f32.gguf
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, type=Path, help="llama.cpp source directory")
    ap.add_argument("--pre", default="gpt-2", help="tokenizer.ggml.pre to write")
    ap.add_argument("--outtype", default="f32")
    ap.add_argument("--raw-config", action="store_true", help="hparams from config.json, not AutoConfig")
    ap.add_argument("--plain-tokenizer", action="store_true", help="read tokenizer.json as PreTrainedTokenizerFast")
    ap.add_argument("model", type=Path)
    ap.add_argument("architecture", help="transformers class, e.g. Qwen2ForCausalLM")
    ap.add_argument("out", type=Path)
    a = ap.parse_args()

    src = a.llama_cpp.resolve()
    sys.path.insert(0, str(src / "gguf-py"))
    sys.path.insert(0, str(src))
    import conversion.base as base  # noqa: E402  (the converter's own modules)

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: a.pre
    if a.raw_config:
        def raw_hparams(dir_model, is_mistral_format):
            return json.loads((Path(dir_model) / "config.json").read_text())
        base.ModelBase.load_hparams = staticmethod(raw_hparams)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / a.model.name
        shutil.copytree(a.model, d, ignore=shutil.ignore_patterns("ref-*", "*.gguf"))
        cfg = json.loads((d / "config.json").read_text())
        cfg["architectures"] = [a.architecture]
        (d / "config.json").write_text(json.dumps(cfg, indent=1))
        if a.plain_tokenizer:
            (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
        sys.argv = ["convert_hf_to_gguf.py", str(d), "--outtype", a.outtype, "--outfile", str(a.out.resolve())]
        sys.path.insert(0, str(src))
        import runpy  # noqa: E402

        runpy.run_path(str(src / "convert_hf_to_gguf.py"), run_name="__main__")


if __name__ == "__main__":
    main()
