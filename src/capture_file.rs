//! Captured hook tensors as one safetensors file: one f32 tensor per hook, named exactly as
//! the hook, plus `tokens` (i64). Loadable with `safetensors.numpy.load_file(path)`.
//! Data types: depends on tensor only; never on wgpu or models.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use safetensors::tensor::{Dtype, TensorView};

use crate::tensor::Tensor;

pub fn write(path: &Path, tokens: &[u32], caps: &BTreeMap<String, Tensor>) -> Result<()> {
    let tok_bytes: Vec<u8> = tokens
        .iter()
        .flat_map(|&t| (t as i64).to_le_bytes())
        .collect();
    let mut views = Vec::with_capacity(caps.len() + 1);
    views.push((
        "tokens".to_string(),
        TensorView::new(Dtype::I64, vec![tokens.len()], &tok_bytes)?,
    ));
    for (name, t) in caps {
        views.push((
            name.clone(),
            TensorView::new(Dtype::F32, t.shape.clone(), bytemuck::cast_slice(&t.data))?,
        ));
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "outlier-probe capture".to_string());
    safetensors::serialize_to_file(views, Some(meta), path)
        .with_context(|| format!("writing {}", path.display()))
}

/// Read a capture file back (all f32 tensors; `tokens` as f32 is skipped).
pub fn read(path: &Path) -> Result<(Vec<i64>, BTreeMap<String, Tensor>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut tokens = Vec::new();
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        match view.dtype() {
            Dtype::I64 => {
                tokens = view
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect()
            }
            Dtype::F32 => {
                let data: Vec<f32> = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect();
                out.insert(name, Tensor::new(view.shape().to_vec(), data));
            }
            other => anyhow::bail!(
                "{}: tensor {name} has unexpected dtype {other:?}",
                path.display()
            ),
        }
    }
    Ok((tokens, out))
}
