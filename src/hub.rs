//! `--model`: a local directory, or a Hugging Face repo id resolved through the local hub cache
//! (`HF_HOME`, default `~/.cache/huggingface`) and downloaded when the network allows.
//! File formats: never wgpu or models.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

const FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// Directory holding the model files for `spec` (a path or a repo id such as `gpt2`).
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    let p = Path::new(spec);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    if spec.is_empty() || spec.starts_with('.') || spec.starts_with('/') || spec.contains('\\') {
        bail!("model path {spec} does not exist");
    }
    let cache = hf_hub::Cache::from_env();
    let repo = cache.model(spec.to_string());
    if let Some(dir) = FILES
        .iter()
        .map(|f| repo.get(f))
        .collect::<Option<Vec<_>>>()
        .and_then(|v| v[0].parent().map(Path::to_path_buf))
    {
        return Ok(dir);
    }
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(true)
        .build()?;
    let r = api.model(spec.to_string());
    let mut dir = None;
    for f in FILES {
        match r.get(f) {
            Ok(path) => dir = path.parent().map(Path::to_path_buf),
            Err(e) => bail!(
                "'{spec}' is not a local directory and is not in the Hugging Face cache ({}); \
                 downloading {f} failed: {e}. Offline? Copy config.json, model.safetensors and \
                 tokenizer.json of the model into a directory and pass that directory.",
                cache.path().display()
            ),
        }
    }
    dir.ok_or_else(|| anyhow::anyhow!("no files downloaded for {spec}"))
}
