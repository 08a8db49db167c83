//! Convert a checkpoint of the paper's nanoGPT-based training code (`ckpt.pt`: a torch.save'd
//! dict with `model` (the state dict, nn.Linear [out, in], maybe `_orig_mod.`-prefixed) and
//! `model_args`) into this crate's Hugging Face GPT-2 layout (Conv1D [in, out]), variant extras
//! included:
//!
//! | paper's code | here |
//! |---|---|
//! | `transformer.h.{l}.attn.c_attn.weight` [3D, D] | `h.{l}.attn.c_attn.weight` [D, 3D] (transposed; likewise c_proj, mlp.c_fc, mlp.c_proj) |
//! | biases absent (`bias=False`) | zero biases |
//! | `attn.k_bias`, `attn.v_bias` [1, H, 1, Dh] | `attn.k_prime`, `attn.v_prime` [H, Dh] |
//! | `attn.v_bias` `[D]` (value-bias code) | `attn.v_prime` `[D]` (h·Dh + d) |
//! | `attn.context_scale.0.weight` `[H, D]`, `.0.bias` `[H]` | `attn.context_scale.weight`, `.bias` |
//! | `attn.bias` (the causal-mask buffer) | dropped |
//! | `lm_head.weight` (tied) | dropped when equal to `wte` |
//!
//! nanoGPT uses the exact GELU (`activation_function: "gelu"`), LayerNorm eps 1e-5, and the GPT-2
//! BPE (vocab padded to 50304); pass the GPT-2 `tokenizer.json` to copy it alongside.
//! File formats: depends on config and tensor; never on wgpu or models.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use repugnant_pickle::{evaluate, parse_ops, SequenceType, Value};

use crate::config::AttnVariant;
use crate::tensor::Tensor;

/// What a conversion produced.
#[derive(Debug)]
pub struct Converted {
    pub variant: AttnVariant,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub vocab_size: usize,
    pub block_size: usize,
    pub tensors: usize,
}

/// The key/value items of a pickled dict or OrderedDict value.
fn dict_items<'a>(v: &'a Value<'a>) -> Option<Vec<(&'a str, &'a Value<'a>)>> {
    // Items are (key, value) pairs, possibly batched one level deeper (SETITEMS groups).
    fn kv<'a>(items: &'a [Value<'a>], out: &mut Vec<(&'a str, &'a Value<'a>)>) -> Option<()> {
        for it in items {
            match it {
                Value::Seq(SequenceType::Tuple, p)
                    if p.len() == 2 && matches!(p[0], Value::String(_)) =>
                {
                    if let Value::String(k) = &p[0] {
                        out.push((*k, &p[1]));
                    }
                }
                Value::Seq(_, inner) => kv(inner, out)?,
                _ => return None,
            }
        }
        Some(())
    }
    let kv = |items: &'a [Value<'a>]| -> Option<Vec<(&'a str, &'a Value<'a>)>> {
        let mut out = Vec::new();
        kv(items, &mut out)?;
        Some(out)
    };
    match v {
        Value::Seq(SequenceType::Dict, items) => kv(items),
        Value::Build(a, _) => dict_items(a),
        Value::Global(_, args) | Value::Object(_, args) | Value::App(_, args) => {
            args.iter().find_map(|a| match a {
                Value::Seq(_, items) if !items.is_empty() => kv(items),
                _ => None,
            })
        }
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

/// A tensor rebuilt from `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`.
fn tensor_of(v: &Value, zip: &mut zip::ZipArchive<File>, prefix: &str) -> Result<Option<Tensor>> {
    let args = match v {
        Value::Global(g, args) if format!("{g:?}").contains("_rebuild_tensor_v2") => args,
        _ => return Ok(None),
    };
    let seq = match args.as_slice() {
        [Value::Seq(SequenceType::Tuple, s)] => s,
        _ => bail!("unexpected arguments to _rebuild_tensor_v2"),
    };
    let (pid, offset, shape, stride) = match seq.as_slice() {
        [Value::PersId(p), Value::Int(o), Value::Seq(_, sh), Value::Seq(_, st), ..] => {
            (p, *o as usize, sh, st)
        }
        _ => bail!("unexpected tensor layout in the pickle"),
    };
    let dims = |v: &[Value]| {
        v.iter()
            .map(|x| int(x).map(|i| i as usize))
            .collect::<Option<Vec<_>>>()
    };
    let shape = dims(shape).ok_or_else(|| anyhow!("bad tensor shape"))?;
    let stride = dims(stride).ok_or_else(|| anyhow!("bad tensor stride"))?;
    let (stype, key) = match pid.as_ref() {
        Value::Seq(SequenceType::Tuple, p) => match p.as_slice() {
            [Value::String("storage"), ty, Value::String(key), ..] => (format!("{ty:?}"), *key),
            _ => bail!("unexpected storage reference in the pickle"),
        },
        _ => bail!("unexpected persistent id in the pickle"),
    };
    let mut raw = Vec::new();
    zip.by_name(&format!("{prefix}/data/{key}"))
        .with_context(|| format!("storage {key} missing from the archive"))?
        .read_to_end(&mut raw)?;
    let (size, conv): (usize, fn(&[u8]) -> f32) = if stype.contains("FloatStorage") {
        (4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    } else if stype.contains("HalfStorage") {
        (2, |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
    } else if stype.contains("BFloat16Storage") {
        (2, |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
    } else {
        bail!("tensor storage type {stype} is not supported (float32, float16, bfloat16 are)");
    };
    let n: usize = shape.iter().product();
    let mut data = Vec::with_capacity(n);
    // Walk the (possibly strided) view in row-major order.
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        let e = offset + idx.iter().zip(&stride).map(|(i, s)| i * s).sum::<usize>();
        let b = raw
            .get(e * size..(e + 1) * size)
            .ok_or_else(|| anyhow!("tensor data runs past its storage {key}"))?;
        data.push(conv(b));
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(Some(Tensor::new(shape, data)))
}

/// Read `ckpt` and write `config.json` and `model.safetensors` (and `tokenizer.json` when given)
/// into `out`. `variant` is required when the parameter names do not tell it (default vs sigmoid,
/// context_bias vs attn_bias).
pub fn convert_nanogpt(
    ckpt: &Path,
    out: &Path,
    variant: Option<AttnVariant>,
    tokenizer: Option<&Path>,
) -> Result<Converted> {
    let ctx = || format!("converting {}", ckpt.display());
    let mut zip = zip::ZipArchive::new(File::open(ckpt).with_context(ctx)?)
        .map_err(|e| anyhow!("{}: not a torch.save zip archive: {e}", ckpt.display()))?;
    let pkl = zip
        .file_names()
        .find(|n| n.ends_with("/data.pkl"))
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{}: no data.pkl in the archive", ckpt.display()))?;
    let prefix = pkl
        .rsplit_once('/')
        .map(|x| x.0.to_string())
        .unwrap_or_default();
    let mut buf = Vec::new();
    zip.by_name(&pkl)?.read_to_end(&mut buf)?;
    let (_, ops) = parse_ops::<nom::error::VerboseError<&[u8]>>(&buf)
        .map_err(|e| anyhow!("{}: pickle: {e:?}", ckpt.display()))?;
    let (vals, _) = evaluate(&ops, true).map_err(|e| anyhow!("{}: pickle: {e}", ckpt.display()))?;
    let top = vals
        .first()
        .and_then(dict_items)
        .ok_or_else(|| anyhow!("{}: the checkpoint is not a dict", ckpt.display()))?;
    let get = |k: &str| top.iter().find(|(n, _)| *n == k).map(|x| x.1);
    let args = get("model_args")
        .and_then(dict_items)
        .ok_or_else(|| anyhow!("{}: no model_args in the checkpoint", ckpt.display()))?;
    let arg = |k: &str| {
        args.iter()
            .find(|(n, _)| *n == k)
            .and_then(|(_, v)| int(v))
            .ok_or_else(|| anyhow!("{}: model_args has no integer '{k}'", ckpt.display()))
    };
    let (n_layer, n_head, n_embd) = (
        arg("n_layer")? as usize,
        arg("n_head")? as usize,
        arg("n_embd")? as usize,
    );
    let (block, vocab) = (arg("block_size")? as usize, arg("vocab_size")? as usize);
    let model = get("model")
        .and_then(dict_items)
        .ok_or_else(|| anyhow!("{}: no model state dict in the checkpoint", ckpt.display()))?;
    let mut sd: BTreeMap<String, Tensor> = BTreeMap::new();
    for (k, v) in model {
        if let Some(t) = tensor_of(v, &mut zip, &prefix).with_context(|| format!("tensor {k}"))? {
            let k = k.strip_prefix("_orig_mod.").unwrap_or(k);
            let k = k.strip_prefix("transformer.").unwrap_or(k);
            sd.insert(k.to_string(), t);
        }
    }
    let (d, h) = (n_embd, n_head);
    let dh = d / h;
    let has = |s: &str| sd.keys().any(|k| k.ends_with(s));
    let guessed = if has("attn.context_scale.0.weight") {
        Some(AttnVariant::ContextScale)
    } else if has("attn.k_bias") {
        None // context_bias or attn_bias
    } else if has("attn.v_bias") {
        Some(AttnVariant::ValueBias)
    } else {
        None // default or sigmoid
    };
    let variant = match (variant, guessed) {
        (Some(v), Some(g)) if v != g => bail!(
            "--variant {} disagrees with the checkpoint's parameters ({})",
            v.name(),
            g.name()
        ),
        (Some(v), _) => v,
        (None, Some(g)) => g,
        (None, None) if has("attn.k_bias") => {
            bail!("the checkpoint has k_bias/v_bias: say --variant context_bias or attn_bias")
        }
        (None, None) => AttnVariant::Default,
    };
    let mut out_t: Vec<(String, Tensor)> = Vec::new();
    let mut take = |name: &str| {
        sd.remove(name)
            .ok_or_else(|| anyhow!("{}: missing tensor '{name}'", ckpt.display()))
    };
    let zeros = |n: usize| Tensor::new(vec![n], vec![0.0; n]);
    out_t.push(("wte.weight".into(), take("wte.weight")?));
    out_t.push(("wpe.weight".into(), take("wpe.weight")?));
    for l in 0..n_layer {
        let p = |s: &str| format!("h.{l}.{s}");
        for ln in ["ln_1", "ln_2"] {
            out_t.push((
                p(&format!("{ln}.weight")),
                take(&p(&format!("{ln}.weight")))?,
            ));
            let b = take(&p(&format!("{ln}.bias"))).unwrap_or_else(|_| zeros(d));
            out_t.push((p(&format!("{ln}.bias")), b));
        }
        for (lin, n_out) in [
            ("attn.c_attn", 3 * d),
            ("attn.c_proj", d),
            ("mlp.c_fc", 4 * d),
            ("mlp.c_proj", d),
        ] {
            let w = take(&p(&format!("{lin}.weight")))?;
            out_t.push((p(&format!("{lin}.weight")), w.transposed()));
            let b = take(&p(&format!("{lin}.bias"))).unwrap_or_else(|_| zeros(n_out));
            out_t.push((p(&format!("{lin}.bias")), b));
        }
        let _ = take(&p("attn.bias"));
        let _ = take(&p("attn.masked_bias"));
        if variant.has_k_prime() {
            let k = take(&p("attn.k_bias"))?;
            out_t.push((p("attn.k_prime"), Tensor::new(vec![h, dh], k.data)));
        }
        if variant.has_v_prime() {
            let v = take(&p("attn.v_bias"))?;
            let shape = if v.numel() == d && v.shape.len() == 1 {
                vec![d]
            } else {
                vec![h, dh]
            };
            out_t.push((p("attn.v_prime"), Tensor::new(shape, v.data)));
        }
        if variant == AttnVariant::ContextScale {
            out_t.push((
                p("attn.context_scale.weight"),
                take(&p("attn.context_scale.0.weight"))?,
            ));
            out_t.push((
                p("attn.context_scale.bias"),
                take(&p("attn.context_scale.0.bias")).unwrap_or_else(|_| zeros(h)),
            ));
        }
    }
    out_t.push(("ln_f.weight".into(), take("ln_f.weight")?));
    let lnf_b = take("ln_f.bias").unwrap_or_else(|_| zeros(d));
    out_t.push(("ln_f.bias".into(), lnf_b));
    let mut tied = true;
    if let Some(head) = sd.remove("lm_head.weight") {
        if head.data != out_t[0].1.data {
            out_t.push(("lm_head.weight".into(), head));
            tied = false;
        }
    }
    let left: Vec<&String> = sd.keys().collect();
    if !left.is_empty() {
        bail!(
            "{}: tensors this converter does not know: {left:?}",
            ckpt.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut cfg = serde_json::json!({
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": vocab,
        "n_positions": block,
        "n_ctx": block,
        "n_embd": d,
        "n_layer": n_layer,
        "n_head": n_head,
        "layer_norm_epsilon": 1e-5,
        "activation_function": "gelu",
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "attn_variant": variant.name(),
        "tie_word_embeddings": tied,
        "converted_from": ckpt.display().to_string(),
    });
    if variant == AttnVariant::Sigmoid {
        // The paper's sigmoid attention trained at a fixed length, T = block_size.
        cfg["sigmoid_fixed_t"] = serde_json::json!(block);
    }
    std::fs::write(out.join("config.json"), serde_json::to_string_pretty(&cfg)?)?;
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = out_t
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                bytemuck::cast_slice(&t.data).to_vec(),
                t.shape.clone(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, b, s)| {
            Ok((
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    safetensors::serialize_to_file(views, Some(meta), &out.join("model.safetensors"))?;
    if let Some(t) = tokenizer {
        std::fs::copy(t, out.join("tokenizer.json"))
            .with_context(|| format!("copying {}", t.display()))?;
    }
    Ok(Converted {
        variant,
        n_layer,
        n_head,
        n_embd,
        vocab_size: vocab,
        block_size: block,
        tensors: out_t.len(),
    })
}
