//! `outlier_probe.Model`: loading, config, hook names, tokens, `run_with_cache` and `generate`,
//! in TransformerLens's vocabulary. Bindings layer: uses the library's public API only.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{IntoPyArray, PyArrayDyn};
use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use outlier_probe::generate::{generate_with, Sampling};
use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::intervene::{HookEdit, Knockout};
use outlier_probe::model::{ForwardOptions, LoadOptions, LogitsMode, Model};

use crate::py_arrays::{array, logits_array, stack};
use crate::py_errors::{detached, json_to_py, to_json, to_py, value_error, Fallback};
use crate::py_inputs::{
    encode, names_filter as hook_filter, prompts, specs, weights_option, Prompts,
};

/// A transformer loaded onto one GPU (any wgpu backend: Vulkan, Metal, DX12, GL).
#[pyclass(name = "Model", module = "outlier_probe", frozen)]
pub struct PyModel {
    pub(crate) m: Arc<Model>,
}

impl PyModel {
    /// The edits and knockout of `edits` on `ids` (mean edits take their mean over `ids`),
    /// checked against the model before anything runs.
    fn interventions(
        &self,
        py: Python<'_>,
        edits: Option<Vec<String>>,
        ids: &[Vec<u32>],
    ) -> PyResult<(Vec<HookEdit>, Option<Knockout>)> {
        let specs = specs(edits)?;
        if specs.is_empty() {
            return Ok((Vec::new(), None));
        }
        let shortest = ids.iter().map(Vec::len).min().unwrap_or(0);
        outlier_probe::select::check_specs(&specs, &self.m.hooks(), shortest)
            .map_err(|e| to_py(e, Fallback::Input))?;
        let m = &self.m;
        detached(py, || {
            outlier_probe::ppl::resolve(m, &specs, ids, ids.len())
                .map_err(|e| to_py(e, Fallback::Device))
        })
    }

    /// One forward pass over `p` (a fresh KV cache): logits of every token and the captures.
    fn run(
        &self,
        py: Python<'_>,
        p: &Prompts,
        opts: ForwardOptions,
    ) -> PyResult<outlier_probe::model::ForwardOutput> {
        let lens: Vec<usize> = p.ids.iter().map(Vec::len).collect();
        outlier_probe::select::check_forward(&opts, &self.m.hooks(), &lens)
            .map_err(|e| to_py(e, Fallback::Input))?;
        let m = &self.m;
        detached(py, || {
            let run = || {
                let mut sess = m.session(lens.len(), lens.iter().copied().max().unwrap_or(1))?;
                let refs: Vec<&[u32]> = p.ids.iter().map(Vec::as_slice).collect();
                m.forward(&mut sess, &refs, &opts)
            };
            run().map_err(|e| to_py(e, Fallback::Device))
        })
    }
}

#[pymethods]
impl PyModel {
    /// Load a model onto a GPU.
    ///
    /// path_or_gguf: a Hugging Face directory (config.json, model.safetensors or its shards,
    /// tokenizer.json), a .gguf file, or a Hugging Face id such as "gpt2" (from the local hub
    /// cache, downloaded when the network allows). backend: "vulkan", "metal", "dx12" or "gl"
    /// (default: all, or $WGPU_BACKEND). adapter: index as listed by devices() ($WGPU_ADAPTER_NAME
    /// matches by name). weights: how the linear layers live on the GPU, as the CLI's
    /// `--weights`: "stored" (default: a GGUF's quantized blocks stay quantized and are decoded
    /// inside the kernels; safetensors become f32), "f32", "f16" or "q8" (Q8_0 at load).
    /// f16_weights=True is weights="f16" (half the memory, f32 math; logits within
    /// 1e-2·(median|b| + |b|) of f32).
    ///
    /// Raises FileNotFoundError for a path that does not exist, ValueError for files that do not
    /// parse or validate, RuntimeError when there is no GPU adapter or the weights do not fit.
    #[staticmethod]
    #[pyo3(signature = (path_or_gguf, backend=None, adapter=None, f16_weights=false, weights=None))]
    fn load(
        py: Python<'_>,
        path_or_gguf: PathBuf,
        backend: Option<String>,
        adapter: Option<usize>,
        f16_weights: bool,
        weights: Option<String>,
    ) -> PyResult<Self> {
        let weights = weights_option(weights.as_deref(), f16_weights)?;
        let spec = path_or_gguf.to_string_lossy().into_owned();
        let local = path_or_gguf.exists();
        let opts = GpuOptions {
            backend,
            adapter_index: adapter,
            ..GpuOptions::from_env()
        };
        detached(py, move || {
            // Neither a local path nor a model id the hub knows: nothing by that name exists.
            let dir = outlier_probe::hub::resolve_model(&spec).map_err(|e| {
                if local {
                    to_py(e, Fallback::Input)
                } else {
                    PyFileNotFoundError::new_err(format!("{e:#}"))
                }
            })?;
            let ctx = GpuContext::new(&opts).map_err(|e| to_py(e, Fallback::Device))?;
            let lo = LoadOptions { weights };
            let m = Model::load_with(ctx, &dir, &lo).map_err(|e| {
                to_py(
                    e.context(format!("loading {}", dir.display())),
                    Fallback::Input,
                )
            })?;
            Ok(PyModel { m: Arc::new(m) })
        })
    }

    /// How the linear layers live on the GPU: "stored", "f32", "f16" or "q8" (see `load`).
    #[getter]
    fn weights(&self) -> &'static str {
        self.m.weights.name()
    }

    /// The model's configuration (HF config field names: n_layer, n_embd, n_head, vocab_size,
    /// n_positions, arch, ...) as a dict.
    #[getter]
    fn cfg<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_json(&self.m.cfg)?)
    }

    /// The GPU adapter the model runs on, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    #[getter]
    fn device(&self) -> String {
        self.m.device_name().to_string()
    }

    /// Where the weights came from (a model directory or a .gguf file).
    #[getter]
    fn source(&self) -> String {
        self.m.source.display().to_string()
    }

    /// Every hook point of this model in forward order (TransformerLens names:
    /// "hook_embed", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_pattern", ..., "logits").
    fn hook_names(&self) -> Vec<String> {
        self.m.hooks().hooks()
    }

    /// Token ids of a text (int64 array [T]) or of a list of texts (a list of arrays).
    /// prepend_bos: None adds the special tokens the tokenizer's files ask for (as the CLI does),
    /// False adds none, True makes sure the sequence starts with a BOS.
    #[pyo3(signature = (text, prepend_bos=None))]
    fn to_tokens<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        prepend_bos: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let to_array = |ids: Vec<u32>| -> Bound<'py, PyAny> {
            let v: Vec<i64> = ids.into_iter().map(i64::from).collect();
            v.into_pyarray(py).into_any()
        };
        if let Ok(s) = text.extract::<String>() {
            return Ok(to_array(encode(&self.m, &s, prepend_bos)?));
        }
        let texts: Vec<String> = text
            .extract()
            .map_err(|_| value_error("to_tokens takes a str or a list of str"))?;
        let out = texts
            .iter()
            .map(|t| encode(&self.m, t, prepend_bos).map(to_array))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, out)?.into_any())
    }

    /// The text of token ids (special tokens spelled out): a str for one sequence, a list of str
    /// for a batch (a list of sequences or a 2-D array).
    fn to_string<'py>(
        &self,
        py: Python<'py>,
        tokens: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let tok = self.m.tokenizer().map_err(|e| to_py(e, Fallback::Input))?;
        let dec = |ids: &[u32]| {
            tok.decode_with_special(ids, true)
                .map_err(|e| to_py(e, Fallback::Input))
        };
        if let Ok(one) = tokens.extract::<Vec<u32>>() {
            return Ok(dec(&one)?.into_pyobject(py)?.into_any());
        }
        let many: Vec<Vec<u32>> = tokens.extract().map_err(|_| {
            value_error("to_string takes token ids (non-negative ints) or a batch of them")
        })?;
        let out = many.iter().map(|s| dec(s)).collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, out)?.into_any())
    }

    /// Logits of every token: float32 [T, vocab] for one prompt, [B, T_max, vocab] for a batch
    /// (NaN beyond a shorter prompt's end). Arguments as for run_with_cache.
    #[pyo3(signature = (text_or_tokens, edits=None, prepend_bos=None))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        text_or_tokens: &Bound<'py, PyAny>,
        edits: Option<Vec<String>>,
        prepend_bos: Option<bool>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let p = prompts(&self.m, text_or_tokens, prepend_bos)?;
        let (edits, knockout) = self.interventions(py, edits, &p.ids)?;
        let opts = ForwardOptions {
            logits: LogitsMode::All,
            edits,
            knockout,
            ..Default::default()
        };
        let out = self.run(py, &p, opts)?;
        logits_array(py, out.logits, p.batch)
    }

    /// Run the model and keep what flows through its hook points.
    ///
    /// text_or_tokens: a str, a list of str (a batch), token ids (a list or 1-D array), or a
    /// batch of token ids. names_filter: None (every hook), comma-separated globs
    /// ("blocks.*.hook_resid_post,logits", the CLI's --hooks), a list of names or globs, or a
    /// callable name -> bool. edits: interventions acting together, the CLI's --intervene
    /// grammar ("blocks.*.hook_resid_post:ch=507:pos=0:zero", "knockout:keys=0"; ":mean" takes
    /// the mean over the given prompts). prepend_bos: as for to_tokens.
    ///
    /// Returns (logits, cache): logits float32 [T, vocab] ([B, T_max, vocab] for a batch), and
    /// a dict hook name -> float32 array with the shapes of `outlier-probe capture` (e.g.
    /// hook_resid_post [T, d_model], attn.hook_pattern [n_heads, T, T]), with a leading batch
    /// axis for a batch; entries beyond a shorter prompt's end are NaN. Captures show edited
    /// values, as TransformerLens hooks do.
    ///
    /// Raises ValueError for bad input (a glob or edit that selects nothing, a token outside the
    /// vocabulary, a prompt longer than n_positions), RuntimeError for the device (out of
    /// memory) or non-finite values (naming the first hook that holds one).
    #[pyo3(signature = (text_or_tokens, names_filter=None, edits=None, prepend_bos=None))]
    fn run_with_cache<'py>(
        &self,
        py: Python<'py>,
        text_or_tokens: &Bound<'py, PyAny>,
        names_filter: Option<&Bound<'py, PyAny>>,
        edits: Option<Vec<String>>,
        prepend_bos: Option<bool>,
    ) -> PyResult<(Bound<'py, PyArrayDyn<f32>>, Bound<'py, PyDict>)> {
        let p = prompts(&self.m, text_or_tokens, prepend_bos)?;
        let capture = hook_filter(&self.m.hooks(), names_filter)?;
        let (edits, knockout) = self.interventions(py, edits, &p.ids)?;
        let opts = ForwardOptions {
            logits: LogitsMode::All,
            capture,
            edits,
            knockout,
        };
        let out = self.run(py, &p, opts)?;
        let logits = logits_array(py, out.logits, p.batch)?;
        let cache = PyDict::new(py);
        let mut per_seq = out.captures;
        let names: Vec<String> = per_seq
            .first()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        // Forward order, as hook_names() lists them.
        let order = self.m.hooks().hooks();
        let mut names = names;
        names.sort_by_key(|n| order.iter().position(|h| h == n).unwrap_or(usize::MAX));
        for name in names {
            let ts = per_seq
                .iter_mut()
                .map(|c| {
                    c.remove(&name).ok_or_else(|| {
                        PyRuntimeError::new_err(format!(
                            "{name} missing from a sequence's captures"
                        ))
                    })
                })
                .collect::<PyResult<Vec<_>>>()?;
            let a = if p.batch {
                stack(py, ts)?
            } else {
                array(py, ts.into_iter().next().expect("one sequence"))?
            };
            cache.set_item(name, a)?;
        }
        Ok((logits, cache))
    }

    /// Continue a prompt (or a batch of prompts) token by token over the KV cache.
    ///
    /// temperature 0 is greedy (top_k, top_p and seed are then refused: they would change
    /// nothing); top_k keeps the k most likely tokens; top_p is the nucleus mass in (0, 1];
    /// seed seeds the sampler (default 0). Stops at the end-of-text token, after
    /// max_new_tokens, or at n_positions. edits: as for run_with_cache, acting in every pass.
    /// Returns the prompt followed by the new text (a list for a batch); with token ids as
    /// input, the prompt's ids followed by the new ones.
    #[pyo3(signature = (text_or_tokens, max_new_tokens=32, temperature=0.0, top_k=None, top_p=None, seed=None, edits=None, prepend_bos=None))]
    #[allow(clippy::too_many_arguments)]
    fn generate<'py>(
        &self,
        py: Python<'py>,
        text_or_tokens: &Bound<'py, PyAny>,
        max_new_tokens: usize,
        temperature: f32,
        top_k: Option<usize>,
        top_p: Option<f32>,
        seed: Option<u64>,
        edits: Option<Vec<String>>,
        prepend_bos: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !(temperature >= 0.0 && temperature.is_finite()) {
            return Err(value_error(format!(
                "temperature must be 0 (greedy) or positive, got {temperature}"
            )));
        }
        if temperature == 0.0 && (top_k.is_some() || top_p.is_some() || seed.is_some()) {
            return Err(value_error(
                "top_k, top_p and seed act only when sampling: with temperature 0 (greedy) they would change nothing; give temperature > 0",
            ));
        }
        let texts = text_or_tokens
            .extract::<String>()
            .map(|s| vec![s])
            .or_else(|_| text_or_tokens.extract::<Vec<String>>())
            .ok();
        let p = prompts(&self.m, text_or_tokens, prepend_bos)?;
        let (edits, knockout) = self.interventions(py, edits, &p.ids)?;
        let tok = self.m.tokenizer().map_err(|e| to_py(e, Fallback::Input))?;
        let sampling = Sampling {
            temperature,
            top_k: top_k.unwrap_or(0),
            top_p: top_p.unwrap_or(1.0),
            seed: seed.unwrap_or(0),
            max_new_tokens,
            eos: self
                .m
                .cfg
                .eos_token_id
                .or_else(|| tok.token_to_id("<|endoftext|>")),
        };
        outlier_probe::generate::Sampler::new(sampling.clone())
            .map_err(|e| to_py(e, Fallback::Input))?;
        let m = &self.m;
        let ids = &p.ids;
        let new = detached(py, || {
            generate_with(m, ids, &sampling, &edits, knockout.as_ref(), |_, _| {})
                .map_err(|e| to_py(e, Fallback::Device))
        })?;
        let out: Vec<Bound<'py, PyAny>> = match &texts {
            Some(texts) => texts
                .iter()
                .zip(&new)
                .map(|(t, n)| {
                    let s = format!(
                        "{t}{}",
                        tok.decode(n).map_err(|e| to_py(e, Fallback::Device))?
                    );
                    Ok(s.into_pyobject(py)?.into_any())
                })
                .collect::<PyResult<_>>()?,
            None => ids
                .iter()
                .zip(&new)
                .map(|(pr, n)| {
                    let all: Vec<i64> = pr.iter().chain(n).map(|&t| i64::from(t)).collect();
                    Ok(all.into_pyarray(py).into_any())
                })
                .collect::<PyResult<_>>()?,
        };
        if p.batch {
            Ok(PyList::new(py, out)?.into_any())
        } else {
            Ok(out.into_iter().next().expect("one prompt"))
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Model({} {:?}: {} layers, d_model {}, vocab {}, on {})",
            self.m.source.display(),
            self.m.cfg.arch,
            self.m.cfg.n_layer,
            self.m.cfg.n_embd,
            self.m.cfg.vocab_size,
            self.m.device_name()
        )
    }
}
