//! Weights kept in ggml blocks on the GPU (`--weights stored`, the GGUF default, and `--weights
//! q8`) against the dequantize-at-load path: every hook and the logits agree elementwise (the
//! math is the same; only the order of the f32 sums differs), the weights take at most 1.1× the
//! GGUF's tensor bytes, and a model quantized at load equals the f32 model of its Q8_0
//! round-tripped weights. Run: `cargo test --release --test quant_weights`.

mod common;

use std::path::Path;

use common::*;
use outlier_probe::hooks::HookFilter;
use outlier_probe::model::{LoadOptions, Model, Weights};

/// The engine's own tolerance against transformers on these models (tests/smollm2.rs).
const TOL: Tol = Tol {
    rtol: 1e-4,
    atol: 5e-4,
};

fn load_as(path: &Path, weights: Weights) -> Model {
    Model::load_with(ctx(), path, &LoadOptions { weights })
        .unwrap_or_else(|e| panic!("loading {} with --weights {weights}: {e:#}", path.display()))
}

/// Both paths on `tokens`: every hook and the logits within `TOL`; returns the worst ratio.
fn assert_paths_agree(blocks: &Model, f32s: &Model, tokens: &[u32]) -> f64 {
    let a = blocks.capture(tokens, &HookFilter::all()).unwrap();
    let b = f32s.capture(tokens, &HookFilter::all()).unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut worst = 0f64;
    for (name, want) in &b {
        worst = worst.max(assert_close(name, &a[name], want, TOL));
    }
    let (la, lb) = (blocks.logits(tokens).unwrap(), f32s.logits(tokens).unwrap());
    worst = worst.max(check_tol("logits", &la, &lb, TOL));
    assert_eq!(la.argmax_rows(), lb.argmax_rows(), "top-1 tokens differ");
    eprintln!(
        "worst |a−b| / allowed over {} hooks and the logits: {worst:.3}",
        b.len()
    );
    worst
}

/// The GGUF's linear layers, embedding and tied head stay in their blocks: at most 1.1× the
/// file's tensor bytes on the GPU, and the same hooks and logits as the f32 path.
fn stored_matches_f32(path: &Path, tokens: &[u32]) {
    let gguf = outlier_probe::gguf::GgufFile::open(path).unwrap();
    let file_bytes: u64 = gguf.tensors().iter().map(|t| t.n_bytes).sum();
    let blocks = load_as(path, Weights::Stored);
    let f32s = load_as(path, Weights::F32);
    eprintln!(
        "{}: {} MiB of tensors in the file; on the GPU {} MiB stored ({} MiB in blocks), {} MiB f32",
        path.display(),
        file_bytes >> 20,
        blocks.weight_bytes >> 20,
        blocks.quant_bytes >> 20,
        f32s.weight_bytes >> 20
    );
    assert_eq!(f32s.quant_bytes, 0);
    assert!(
        blocks.weight_bytes as f64 <= 1.1 * file_bytes as f64,
        "{} bytes on the GPU for {file_bytes} bytes of tensors",
        blocks.weight_bytes
    );
    assert_paths_agree(&blocks, &f32s, tokens);
}

#[test]
fn smollm2_stored_blocks_match_dequantized() {
    // Q4_1 linear layers, Q8_0 embedding and tied head; Llama's Q/K rows reordered.
    stored_matches_f32(&smollm2_gguf(), &[504, 3458, 282, 4649, 314, 253]);
}

#[test]
fn gemma3_270m_stored_blocks_match_dequantized() {
    // Q5_0 q/k/gate/up, Q8_0 v and the 262,144-row embedding and head, Q4_K o, Q6_K down.
    stored_matches_f32(&gemma3_gguf(), &[2, 818, 5279, 529, 7001, 563]);
}

/// `--weights q8` on a safetensors model equals the f32 model of the same weights rounded
/// through Q8_0 (the matrices with rows a multiple of 32 and the embedding; down_proj's 200-wide
/// rows stay f32 in both).
#[test]
fn q8_at_load_equals_f32_of_the_rounded_weights() {
    use outlier_probe::kernels::qmatmul::quantize_q8_0;
    let src = fixtures_dir().join("llama-odd-a");
    let dir = TempDir::new("q8-rounded");
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "json") {
            std::fs::copy(&f, dir.0.join(f.file_name().unwrap())).unwrap();
        }
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, v) in st.tensors() {
        assert_eq!(v.dtype(), safetensors::Dtype::F32, "{name}");
        let x: Vec<f32> = bytemuck::pod_collect_to_vec(v.data());
        let shape = v.shape().to_vec();
        let rounded = if shape.len() == 2 && shape[1] % 32 == 0 {
            let q = quantize_q8_0(&x);
            outlier_probe::gguf::dequantize(outlier_probe::gguf::GgmlType::Q8_0, &q, x.len())
                .unwrap()
        } else {
            x
        };
        out.push((name, shape, bytemuck::cast_slice(&rounded).to_vec()));
    }
    let views: Vec<_> = out
        .iter()
        .map(|(n, s, d)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d);
            (n.clone(), v.unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.0.join("model.safetensors")).unwrap();
    let q8 = load_as(&src, Weights::Q8);
    let f32s = load_as(&dir.0, Weights::F32);
    assert!(q8.quant_bytes > 0 && f32s.quant_bytes == 0);
    assert!(q8.weight_bytes < f32s.weight_bytes);
    // Few rows (the quantized matvec) and more than the matvec takes (dequantized into the
    // scratch, then the tiled matmul).
    assert_paths_agree(&q8, &f32s, &[5, 17, 300, 2, 999, 41, 7]);
    let long: Vec<u32> = (0..45).map(|i| (i * 37 + 11) % 1021).collect();
    assert_paths_agree(&q8, &f32s, &long);
}
