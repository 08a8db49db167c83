//! Sharded safetensors checkpoints (`model.safetensors.index.json`: `weight_map` tensor → shard
//! file, as transformers' `save_pretrained` writes them) as one [`WeightSource`], and the refusal
//! of pickled PyTorch checkpoints with the command that converts them.
//! File formats: depends on the parent `weights` module, serde_json and std; never on wgpu or models.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::{WeightFile, WeightSource};

/// A checkpoint split over several safetensors files, read through its index. Tensor lookup,
/// prefixes and dtypes are those of [`WeightFile`]; every error names the index or the shard.
pub struct ShardedWeights {
    index: PathBuf,
    shards: Vec<WeightFile>,
    /// Full tensor name (with the checkpoint's prefix) → index into `shards`.
    map: HashMap<String, usize>,
    prefix: String,
}

impl ShardedWeights {
    /// Open the index `index` (`model.safetensors.index.json`) and every shard it lists. `probe`
    /// and `prefixes` detect the naming scheme as [`WeightFile::open`] does, over the index's names.
    ///
    /// # Errors
    /// Naming the index or the shard: the index is not JSON or has no `weight_map` object of
    /// strings; a shard path is absolute or leaves the index's directory; a listed shard is
    /// missing or not a valid safetensors file; a tensor listed for a shard is absent from it;
    /// the probe tensor is under none of the prefixes.
    pub fn open(index: &Path, probe: &str, prefixes: &[&str]) -> Result<Self> {
        let text = std::fs::read_to_string(index)
            .with_context(|| format!("reading {}", index.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{} is not valid JSON: {e}", index.display()))?;
        let weight_map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| {
                anyhow!(
                    "{}: no `weight_map` object (tensor name → shard file)",
                    index.display()
                )
            })?;
        let dir = index.parent().unwrap_or(Path::new("."));
        // Shard file → its tensors, in file-name order.
        let mut by_shard: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (tensor, file) in weight_map {
            let file = file.as_str().ok_or_else(|| {
                anyhow!(
                    "{}: `weight_map` entry of `{tensor}` is {file}, not a file name",
                    index.display()
                )
            })?;
            by_shard.entry(file).or_default().push(tensor);
        }
        if by_shard.is_empty() {
            bail!("{}: `weight_map` is empty", index.display());
        }
        let mut shards = Vec::new();
        let mut map = HashMap::new();
        for (file, tensors) in &by_shard {
            let path = shard_path(index, dir, file, tensors[0])?;
            if !path.is_file() {
                bail!(
                    "{}: shard {file} (listed for {} tensors, e.g. `{}`) is missing: no file {}",
                    index.display(),
                    tensors.len(),
                    tensors[0],
                    path.display()
                );
            }
            let wf = WeightFile::open_unprobed(&path)?;
            for t in tensors {
                if wf.meta.info(t).is_none() {
                    bail!(
                        "{}: tensor `{t}` is listed in shard {file}, but {} does not hold it",
                        index.display(),
                        path.display()
                    );
                }
                map.insert(t.to_string(), shards.len());
            }
            shards.push(wf);
        }
        let Some(prefix) = prefixes
            .iter()
            .find(|p| map.contains_key(&format!("{p}{probe}")))
        else {
            let mut names: Vec<_> = map.keys().cloned().collect();
            names.sort();
            names.truncate(8);
            bail!(
                "{}: missing tensor '{probe}' (looked for it under the prefixes {prefixes:?}); the index lists e.g. {names:?}",
                index.display()
            );
        };
        for s in &mut shards {
            s.prefix = prefix.to_string();
        }
        Ok(Self {
            index: index.to_path_buf(),
            shards,
            map,
            prefix: prefix.to_string(),
        })
    }

    /// The shard holding `name` (with the prefix, else bare: heads outside the prefix).
    fn shard(&self, name: &str) -> Option<&WeightFile> {
        let i = self
            .map
            .get(&format!("{}{name}", self.prefix))
            .or_else(|| self.map.get(name))?;
        Some(&self.shards[*i])
    }

    fn shard_or_err(&self, name: &str) -> Result<&WeightFile> {
        self.shard(name).ok_or_else(|| {
            anyhow!(
                "{}: missing tensor '{}{name}' (not in the `weight_map`)",
                self.index.display(),
                self.prefix
            )
        })
    }
}

/// `dir/file` when `file` is a plain relative path inside `dir` (no root, no `..`, no symlink
/// out of it); an error naming the index and the tensor otherwise.
fn shard_path(index: &Path, dir: &Path, file: &str, tensor: &str) -> Result<PathBuf> {
    let rel = Path::new(file);
    let plain = !file.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    let path = dir.join(rel);
    let escapes = match (path.canonicalize(), dir.canonicalize()) {
        (Ok(p), Ok(d)) => !p.starts_with(d),
        _ => false, // missing: reported as missing
    };
    if !plain || escapes {
        bail!(
            "{}: shard path `{file}` (of tensor `{tensor}`) escapes the directory {}; shards must be files inside it",
            index.display(),
            dir.display()
        );
    }
    Ok(path)
}

impl WeightSource for ShardedWeights {
    fn path(&self) -> &Path {
        &self.index
    }
    fn contains(&self, name: &str) -> bool {
        self.shard(name).is_some()
    }
    fn load(&self, name: &str, shape: &[usize]) -> Result<Cow<'_, [f32]>> {
        self.shard_or_err(name)?.f32(name, shape)
    }
    fn same(&self, a: &str, b: &str) -> bool {
        match (self.shard(a), self.shard(b)) {
            (Some(x), Some(y)) => matches!((x.raw(a), y.raw(b)), (Some(p), Some(q)) if p == q),
            _ => false,
        }
    }
    fn tensor(&self, name: &str) -> Result<crate::tensor::Tensor> {
        self.shard_or_err(name)?.tensor(name)
    }
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .map
            .keys()
            .map(|k| {
                k.strip_prefix(self.prefix.as_str())
                    .unwrap_or(k)
                    .to_string()
            })
            .collect();
        names.sort();
        names
    }
}

/// Pickle-based checkpoint files transformers and PyTorch write.
fn is_pickled(name: &str) -> bool {
    name == "pytorch_model.bin"
        || (name.starts_with("pytorch_model-") && name.ends_with(".bin"))
        || name == "pytorch_model.bin.index.json"
        || [".pt", ".pth", ".ckpt"].iter().any(|e| name.ends_with(e))
}

/// When `dir` holds no safetensors weights but a pickled PyTorch checkpoint
/// (`pytorch_model.bin`, its shards and index, `*.pt`, `*.pth`, `*.ckpt`): the error that says
/// such files are not read (unpickling executes code they contain) and gives the one-line
/// commands that convert the directory to safetensors. `Ok(())` otherwise.
pub fn refuse_pickled(dir: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut found: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_pickled(n))
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    found.sort();
    let d = dir.display();
    let bin = found
        .iter()
        .find(|n| !n.ends_with(".json"))
        .cloned()
        .unwrap_or_else(|| "pytorch_model.bin".into());
    bail!(
        "{d} holds a pickled PyTorch checkpoint ({}) and no model.safetensors: pickled checkpoints \
         are not read (loading one executes code it contains). Convert the directory to \
         safetensors once, with transformers:\n  \
         python3 -c \"from transformers import AutoModelForCausalLM as M; M.from_pretrained('{d}').save_pretrained('{d}', safe_serialization=True)\"\n\
         or, for a single state dict, with safetensors:\n  \
         python3 -c \"import torch; from safetensors.torch import save_file; save_file({{k: v.contiguous().clone() for k, v in torch.load('{d}/{bin}', weights_only=True).items()}}, '{d}/model.safetensors')\"",
        found.join(", ")
    )
}
