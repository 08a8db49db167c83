//! What outlier-probe does with every GGUF metadata key and every tensor a `llama` GGUF file can
//! carry: the audit table [`KEYS`] (one row per key llama.cpp reads for `LLM_ARCH_LLAMA`, from
//! `src/llama-model.cpp`, `src/models/llama.cpp`, `src/llama-vocab.cpp`,
//! `gguf-py/gguf/constants.py`), the tensor rules [`TENSORS`], and the checks that enforce them.
//! docs/gguf-keys.md is the same table in prose.
//!
//! The rule: a key that changes the computation is applied exactly or refused with an error
//! naming the key, its value and the file; a key that cannot change it is listed as ignored, with
//! the reason. A key that is in no row — `llama.*`, `tokenizer.*` or any other namespace — is
//! refused by name, never skipped. Every tensor in the file must be one the forward pass loads;
//! any other is an error naming it, and a missing required tensor is named too.
//!
//! The tables are spelled for `llama`; another GGUF architecture (`crate::gguf_config::ALL`)
//! reads their `llama.*` rows as its own prefix's and adds or overrides rows of its own
//! ([`key_rule_in`], [`tensor_rule_in`]). An unsupported `general.architecture` (GPT-2 GGUF
//! included) is refused before this audit (see [`crate::gguf_config::from_gguf`]).
//!
//! Depends on the GGUF reader and, in `checks` only, on `crate::config::ModelConfig`; never on
//! wgpu or models. The parts: `keys` (the key table), `tensors` (the tensor table), `checks` (the
//! audit of a file against both); here the shared [`Handling`] and the row lookups.

mod checks;
mod keys;
mod tensors;

pub use crate::config_fields::{Handling, KeyRule};
pub use checks::{check_metadata, check_tensors, llama_tensors, render, uniform_per_layer};
pub use keys::KEYS;
pub use tensors::{TensorRule, TENSORS};

/// `pattern` with `*` matching any run of characters (possibly empty).
fn glob(pattern: &str, s: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    if parts.is_empty() {
        return rest.is_empty();
    }
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.len() >= p.len() && rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    true
}

/// The audit row for `key` in the shared table [`KEYS`] (exact rows win over patterns).
pub fn key_rule(key: &str) -> Option<&'static KeyRule> {
    find_key(KEYS, key)
}

fn find_key<'a>(rows: &'a [KeyRule], key: &str) -> Option<&'a KeyRule> {
    rows.iter().find(|k| k.key == key).or_else(|| {
        rows.iter()
            .find(|k| k.key.contains('*') && glob(k.key, key))
    })
}

/// The audit row for `key` in a file of GGUF architecture `arch` whose own rows are `own`: `own`
/// first, then [`KEYS`]. With `llama_rows` (a Llama-shaped architecture) an `{arch}.` key is
/// looked up as `llama.` (the shared rows are spelled for `llama`); without, only `own` speaks
/// for `{arch}.` keys. A `llama.` key in another architecture's file is in no row. Returns the
/// row and the key as the row's table spells it.
pub fn key_rule_in(
    arch: &str,
    own: &'static [KeyRule],
    llama_rows: bool,
    key: &str,
) -> Option<(&'static KeyRule, String)> {
    if let Some(r) = find_key(own, key) {
        return Some((r, key.to_string()));
    }
    if arch == "llama" {
        return key_rule(key).map(|r| (r, key.to_string()));
    }
    if key.starts_with("llama.") {
        return None;
    }
    let shared = match key.strip_prefix(arch).and_then(|r| r.strip_prefix('.')) {
        Some(_) if !llama_rows => return None,
        Some(rest) => format!("llama.{rest}"),
        None => key.to_string(),
    };
    key_rule(&shared).map(|r| (r, shared))
}

/// The tensor row for a GGUF tensor name (`blk.7.attn_q.bias` matches `blk.N.attn_q.bias`) in
/// the shared table [`TENSORS`].
pub fn tensor_rule(name: &str) -> Option<&'static TensorRule> {
    tensor_rule_in(&[], true, name)
}

/// The tensor row for a GGUF tensor name in an architecture's own rows `own`, then (with
/// `llama_rows`, a Llama-shaped architecture) in [`TENSORS`].
pub fn tensor_rule_in(
    own: &'static [TensorRule],
    llama_rows: bool,
    name: &str,
) -> Option<&'static TensorRule> {
    let generic = match name.strip_prefix("blk.").and_then(|r| r.split_once('.')) {
        Some((n, leaf)) if n.parse::<usize>().is_ok() => format!("blk.N.{leaf}"),
        _ => name.to_string(),
    };
    let find = |rows: &'static [TensorRule]| {
        rows.iter().find(|t| t.name == generic).or_else(|| {
            rows.iter()
                .find(|t| t.name.contains('*') && glob(t.name, name))
        })
    };
    find(own).or_else(|| if llama_rows { find(TENSORS) } else { None })
}

#[cfg(test)]
mod tests {
    use super::Handling::Refused;
    use super::*;

    #[test]
    fn glob_and_lookup() {
        assert!(glob("general.base_model.*", "general.base_model.0.name"));
        assert!(glob(
            "tokenizer.ggml.fim_*_token_id",
            "tokenizer.ggml.fim_pre_token_id"
        ));
        assert!(!glob(
            "tokenizer.ggml.fim_*_token_id",
            "tokenizer.ggml.fim_pre"
        ));
        assert!(glob("*.scale", "blk.0.attn_q.scale"));
        assert!(!glob("general.url", "general.urls"));
        assert_eq!(
            key_rule("llama.rope.scaling.yarn_beta_fast").map(|k| k.handling),
            Some(Refused)
        );
        assert!(key_rule("llama.unheard_of").is_none());
        assert_eq!(
            tensor_rule("blk.12.attn_q.bias").map(|t| t.name),
            Some("blk.N.attn_q.bias")
        );
        assert_eq!(
            tensor_rule("blk.3.ffn_up.input_scale").map(|t| t.name),
            Some("*.input_scale")
        );
        assert!(tensor_rule("mystery.weight").is_none());
    }

    #[test]
    fn rows_are_unique() {
        let mut keys: Vec<_> = KEYS.iter().map(|k| k.key).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate key rows");
        let mut names: Vec<_> = TENSORS.iter().map(|t| t.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate tensor rows");
    }
}
