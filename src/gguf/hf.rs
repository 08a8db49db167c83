//! GGUF ↔ Hugging Face (transformers `LlamaForCausalLM`): tensor names and the Q/K row
//! permutation of llama.cpp's converter. File format only: no wgpu, no models.

/// Undo llama.cpp's RoPE permutation of a Q or K projection weight (`[rows, cols]` row-major,
/// rows = `n_head × head_dim`), exactly as transformers' GGUF loader does
/// (`w.reshape(n_head, head_dim/2, 2, cols).swapaxes(1, 2).reshape(rows, cols)`).
///
/// With `half = head_dim / 2`, for head `h`, `i < half`, `j < 2`:
/// `out[h·head_dim + j·half + i] = in[h·head_dim + 2·i + j]` (rows). So GGUF's interleaved pairs
/// (rows 2i, 2i+1 of a head) go back to HF's halves (rows i and half + i).
/// Use `n_head` = `attention.head_count` for Q and `attention.head_count_kv` for K.
///
/// # Panics
/// When `w.len() != rows × cols` or `rows` is not a multiple of `2 × n_head`.
pub fn unpermute_qk(w: &[f32], n_head: usize, rows: usize, cols: usize) -> Vec<f32> {
    permute_rows(w, n_head, rows, cols, false)
}

/// The forward permutation (llama.cpp's `convert_hf_to_gguf.py` `LlamaModel.permute`): HF layout
/// → GGUF layout. `unpermute_qk(&permute_qk(w, ..), ..) == w`.
///
/// # Panics
/// As [`unpermute_qk`].
pub fn permute_qk(w: &[f32], n_head: usize, rows: usize, cols: usize) -> Vec<f32> {
    permute_rows(w, n_head, rows, cols, true)
}

fn permute_rows(w: &[f32], n_head: usize, rows: usize, cols: usize, forward: bool) -> Vec<f32> {
    assert_eq!(
        w.len(),
        rows * cols,
        "permute_qk: {rows}×{cols} != {}",
        w.len()
    );
    assert!(
        n_head > 0 && rows % (2 * n_head) == 0,
        "permute_qk: {rows} rows is not a multiple of 2 × {n_head} heads"
    );
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_head {
        for i in 0..half {
            for j in 0..2 {
                let hf = h * head_dim + j * half + i;
                let gg = h * head_dim + 2 * i + j;
                let (dst, src) = if forward { (gg, hf) } else { (hf, gg) };
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// The transformers (`LlamaForCausalLM`) name of a Llama GGUF tensor, per the table in the
/// [`crate::gguf`] docs; `None` for names outside it (e.g. `rope_freqs.weight`).
pub fn hf_name(gguf_name: &str) -> Option<String> {
    let (stem, suffix) = gguf_name.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let mapped = match stem {
        "token_embd" => "model.embed_tokens".to_string(),
        "output_norm" => "model.norm".to_string(),
        "output" => "lm_head".to_string(),
        _ => {
            let rest = stem.strip_prefix("blk.")?;
            let (layer, leaf) = rest.split_once('.')?;
            let layer: usize = layer.parse().ok()?;
            let leaf = match leaf {
                "attn_norm" => "input_layernorm",
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "ffn_norm" => "post_attention_layernorm",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                _ => return None,
            };
            format!("model.layers.{layer}.{leaf}")
        }
    };
    Some(format!("{mapped}.{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgmlType;

    #[test]
    fn permute_roundtrip_and_index_map() {
        let (n_head, rows, cols) = (3, 12, 2);
        let w: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let u = unpermute_qk(&w, n_head, rows, cols);
        assert_eq!(permute_qk(&u, n_head, rows, cols), w);
        // head_dim 4, half 2: GGUF rows (0,1,2,3) = HF rows (0,2,1,3)
        let first_col: Vec<f32> = u.iter().step_by(cols).map(|x| x / 2.0).collect();
        assert_eq!(
            first_col,
            [0., 2., 1., 3., 4., 6., 5., 7., 8., 10., 9., 11.]
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            hf_name("blk.12.attn_output.weight").as_deref(),
            Some("model.layers.12.self_attn.o_proj.weight")
        );
        assert_eq!(
            hf_name("token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
        assert_eq!(GgmlType::from_name("Q4_1"), Some(GgmlType::Q4_1));
        assert_eq!(GgmlType(99).name(), "type#99");
    }
}
