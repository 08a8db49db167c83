//! The Python arguments the methods share, turned into the library's types: prompts (text or
//! token ids, one or a batch), `prepend_bos`, `names_filter` and intervention specs.
//! Bindings layer: uses the library's public API only.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use outlier_probe::hooks::{HookFilter, HookSpace};
use outlier_probe::intervene::Spec;
use outlier_probe::model::{Model, Weights};

use crate::py_errors::{to_py, value_error, Fallback};

/// Prompts as token ids, and whether the caller gave one (`false`) or a batch (`true`).
pub struct Prompts {
    pub ids: Vec<Vec<u32>>,
    pub batch: bool,
}

/// Token ids of `text` under TransformerLens's `prepend_bos`: `None` adds the special tokens the
/// tokenizer's files ask for (as the CLI does), `False` adds none (`--no-bos`), `True` makes sure
/// the sequence starts with a BOS (the tokenizer's own, else the config's `bos_token_id`).
///
/// # Errors
/// ValueError when the model has no tokenizer, or `True` on a model without any BOS token.
pub fn encode(m: &Model, text: &str, prepend_bos: Option<bool>) -> PyResult<Vec<u32>> {
    let tok = m.tokenizer().map_err(|e| to_py(e, Fallback::Input))?;
    let add = prepend_bos != Some(false);
    let mut ids = tok
        .encode_with_special(text, add)
        .map_err(|e| to_py(e, Fallback::Input))?;
    if prepend_bos == Some(true) && tok.special_prefix().is_empty() {
        let bos = m.cfg.bos_token_id.ok_or_else(|| {
            value_error(format!(
                "prepend_bos=True: {} has no BOS token (its tokenizer adds none and its config has no bos_token_id); pass prepend_bos=None or False",
                m.source.display()
            ))
        })?;
        if ids.first() != Some(&bos) {
            ids.insert(0, bos);
        }
    }
    Ok(ids)
}

/// `text_or_tokens`: a str, a list of str (a batch), a sequence of ints (token ids; a 1-D numpy
/// array works), or a sequence of int sequences (a batch of token ids; a 2-D array works).
///
/// # Errors
/// ValueError for anything else, an empty batch or an empty prompt.
pub fn prompts(
    m: &Model,
    input: &Bound<'_, PyAny>,
    prepend_bos: Option<bool>,
) -> PyResult<Prompts> {
    let p = if let Ok(s) = input.cast::<PyString>() {
        Prompts {
            ids: vec![encode(m, &s.to_cow()?, prepend_bos)?],
            batch: false,
        }
    } else if let Ok(texts) = input.extract::<Vec<String>>() {
        let ids = texts
            .iter()
            .map(|t| encode(m, t, prepend_bos))
            .collect::<PyResult<Vec<_>>>()?;
        Prompts { ids, batch: true }
    } else if let Ok(one) = input.extract::<Vec<u32>>() {
        Prompts {
            ids: vec![one],
            batch: false,
        }
    } else if let Ok(many) = input.extract::<Vec<Vec<u32>>>() {
        Prompts {
            ids: many,
            batch: true,
        }
    } else {
        return Err(value_error(format!(
            "text_or_tokens must be a str, a list of str, token ids (a list or 1-D array of non-negative ints) or a batch of them; got {}",
            input.get_type().name()?
        )));
    };
    if p.ids.is_empty() {
        return Err(value_error("an empty batch: give at least one prompt"));
    }
    if let Some(b) = p.ids.iter().position(Vec::is_empty) {
        return Err(value_error(format!(
            "prompt {b} has no tokens: at least one is needed"
        )));
    }
    let (v, n_pos) = (m.cfg.vocab_size, m.cfg.n_positions);
    for (b, ids) in p.ids.iter().enumerate() {
        if let Some((i, t)) = ids.iter().enumerate().find(|(_, t)| **t as usize >= v) {
            return Err(value_error(format!(
                "prompt {b}: token {t} at position {i} is outside the vocabulary (vocab_size = {v})"
            )));
        }
        if ids.len() > n_pos {
            return Err(value_error(format!(
                "prompt {b}: {} tokens are longer than the model's n_positions = {n_pos}",
                ids.len()
            )));
        }
    }
    Ok(p)
}

/// `names_filter` as a [`HookFilter`]: `None` (every hook, as TransformerLens caches
/// everything), a str of comma-separated globs (`"blocks.*.hook_resid_post,logits"`, the
/// `--hooks` syntax of `outlier-probe capture`), a list of names or globs, or a callable taking a
/// hook name and returning a bool.
///
/// # Errors
/// ValueError for a glob that matches no hook point of this model (the message lists the
/// model's hooks), or a callable that selects none.
pub fn names_filter(space: &HookSpace, filter: Option<&Bound<'_, PyAny>>) -> PyResult<HookFilter> {
    let Some(f) = filter else {
        return Ok(HookFilter::all());
    };
    let spec = if let Ok(s) = f.cast::<PyString>() {
        s.to_cow()?.into_owned()
    } else if f.is_callable() {
        let mut chosen = Vec::new();
        for h in space.hooks() {
            if f.call1((h.as_str(),))?.is_truthy()? {
                chosen.push(h);
            }
        }
        if chosen.is_empty() {
            return Err(value_error(
                "names_filter: the callable selected no hook point (see model.hook_names())",
            ));
        }
        chosen.join(",")
    } else if f.cast::<PyList>().is_ok() || f.cast::<PyTuple>().is_ok() {
        f.extract::<Vec<String>>()?.join(",")
    } else {
        return Err(value_error(format!(
            "names_filter must be None, a str of comma-separated globs, a list of names or a callable; got {}",
            f.get_type().name()?
        )));
    };
    let filter = HookFilter::parse(&spec).map_err(|e| to_py(e, Fallback::Input))?;
    filter.check(space).map_err(|e| to_py(e, Fallback::Input))?;
    Ok(filter)
}

/// Intervention specs acting together, in the CLI's grammar (`--intervene`): each entry is one
/// spec or several joined by `;`.
///
/// # Errors
/// ValueError naming the spec that does not parse.
pub fn specs(edits: Option<Vec<String>>) -> PyResult<Vec<Spec>> {
    let mut out = Vec::new();
    for row in edits.unwrap_or_default() {
        out.extend(Spec::parse_row(&row).map_err(|e| to_py(e, Fallback::Input))?);
    }
    Ok(out)
}

/// `Model.load`'s `weights` and `f16_weights` as one `Weights`: the CLI's `--weights` names
/// (stored, f32, f16, q8); `f16_weights=True` alone is `"f16"`. ValueError for an unknown name or
/// a pair that disagrees.
pub fn weights_option(weights: Option<&str>, f16: bool) -> PyResult<Weights> {
    let Some(w) = weights else {
        return Ok(if f16 { Weights::F16 } else { Weights::Stored });
    };
    let w: Weights = w
        .parse()
        .map_err(|e: anyhow::Error| value_error(format!("weights: {e:#}")))?;
    if f16 && w != Weights::F16 {
        return Err(value_error(format!(
            "f16_weights=True and weights={:?} disagree: give one of them",
            w.name()
        )));
    }
    Ok(w)
}
