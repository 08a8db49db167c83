//! GGUF reader (versions 2 and 3, little-endian), memory-mapped, dequantizing F32, F16, BF16,
//! Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K to `f32` (bit for
//! bit as gguf-py; any other type is refused naming the tensor and the type). File format only:
//! no wgpu, no models.
//!
//! Layout of a file (all integers little-endian):
//!
//! ```text
//! "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//! kv_count  × (string key | u32 value_type | value)
//! tensor_count × (string name | u32 n_dims | n_dims × u64 dim | u32 ggml_type | u64 offset)
//! padding to `general.alignment` (default 32)
//! data section: each tensor at data_offset + offset (offset a multiple of the alignment)
//! ```
//!
//! Strings are `u64 length | bytes`; arrays are `u32 element_type | u64 count | elements` (arrays of
//! arrays and of strings included). Version 1 (u32 counts) and big-endian files are rejected.
//!
//! GGUF stores a tensor's dims fastest-varying first (`ne[0]` is the row length), so
//! [`TensorInfo::shape`] reverses them into the row-major shape PyTorch/transformers give the
//! dequantized tensor: `token_embd.weight` has dims `[576, 49152]` and shape `[49152, 576]`.
//!
//! # GGUF names → Hugging Face (transformers `LlamaForCausalLM`) names
//!
//! | GGUF                         | transformers                                    |
//! |------------------------------|-------------------------------------------------|
//! | `token_embd.weight`          | `model.embed_tokens.weight`                      |
//! | `blk.N.attn_norm.weight`     | `model.layers.N.input_layernorm.weight`          |
//! | `blk.N.attn_q.weight`        | `model.layers.N.self_attn.q_proj.weight` (*)     |
//! | `blk.N.attn_k.weight`        | `model.layers.N.self_attn.k_proj.weight` (*)     |
//! | `blk.N.attn_v.weight`        | `model.layers.N.self_attn.v_proj.weight`         |
//! | `blk.N.attn_output.weight`   | `model.layers.N.self_attn.o_proj.weight`         |
//! | `blk.N.ffn_norm.weight`      | `model.layers.N.post_attention_layernorm.weight` |
//! | `blk.N.ffn_gate.weight`      | `model.layers.N.mlp.gate_proj.weight`            |
//! | `blk.N.ffn_up.weight`        | `model.layers.N.mlp.up_proj.weight`              |
//! | `blk.N.ffn_down.weight`      | `model.layers.N.mlp.down_proj.weight`            |
//! | `output_norm.weight`         | `model.norm.weight`                              |
//! | `output.weight`              | `lm_head.weight` (absent when tied: SmolLM2 has none, `lm_head` = `embed_tokens`) |
//!
//! Every tensor's values are the dequantized GGUF values unchanged, except (*): llama.cpp's
//! `convert_hf_to_gguf.py` permutes the rows of Q and K (per head, from HF's "rotate half" RoPE
//! layout to GGML's interleaved pairs), and transformers undoes it on load
//! (`LlamaTensorProcessor._reverse_permute_weights`, with `n_head` = `attention.head_count` for Q
//! and `attention.head_count_kv` for K). [`unpermute_qk`] is that inverse; see it for the exact
//! index map. [`GgufFile::tensor_f32_hf`] applies it.
//!
//! The parts: `ggml_type` (tensor types and their block sizes), `value` (metadata values),
//! `cursor` and `reader` (header, metadata and tensor-info parser with its limits), `metadata`
//! (typed metadata getters), `tensors` (tensor data access), `dequant` (block dequantizers) and
//! `hf` (Hugging Face names and the Q/K permutation).

mod cursor;
mod dequant;
mod ggml_type;
mod hf;
mod metadata;
mod reader;
mod tensors;
mod value;

pub use dequant::dequantize;
pub use ggml_type::GgmlType;
pub use hf::{hf_name, permute_qk, unpermute_qk};
pub use reader::{GgufFile, TensorInfo, DEFAULT_ALIGNMENT};
pub use value::GgufValue;
