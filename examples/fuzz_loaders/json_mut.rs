//! JSON-aware mutations (config.json, tokenizer.json and the safetensors header): a value
//! somewhere in the tree replaced by a huge, negative, fractional or wrong-typed one, keys
//! removed, duplicated or added; for safetensors also the shapes, dtypes, data offsets and the
//! 8-byte header length.

use serde_json::{json, Map, Value};

use crate::mutate::{boundary_u64, put_le, Rng};

/// A replacement value: boundary numbers, wrong types, dictionary strings, deep nesting.
fn some_value(rng: &mut Rng, old: &Value, dict: &[&str]) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 | 3 => json!(boundary_u64(rng, old.as_u64().unwrap_or(1))),
        4 => json!(-(rng.below(1 << 20) as i64) - 1),
        5 => json!(*rng.pick(&[i64::MIN, -(1i64 << 31), -(1i64 << 53), i32::MIN as i64])),
        6 => json!(*rng.pick(&[
            0.5,
            -0.0,
            1e-300,
            1e300,
            -1e300,
            2.5,
            f64::MAX,
            4294967296.5
        ])),
        7 => json!(rng.pick(dict)),
        8 => json!("x".repeat(rng.small_len(5000))),
        9 => json!([]),
        10 => json!({}),
        _ => {
            let mut v = json!(0);
            for _ in 0..rng.below(200) {
                v = json!([v]);
            }
            v
        }
    }
}

/// Walk down from `v` to a random node, then mutate it (or one of its children).
fn mutate_node(rng: &mut Rng, v: &mut Value, dict: &[&str], depth: usize) {
    let descend = depth == 0 || !rng.one_in(3);
    match v {
        Value::Object(m) if !m.is_empty() && descend => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            match rng.below(8) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    let val = some_value(rng, &Value::Null, dict);
                    m.insert(rng.pick(dict).to_string(), val);
                }
                _ => mutate_node(rng, m.get_mut(&k).expect("listed"), dict, depth + 1),
            }
        }
        Value::Array(a) if !a.is_empty() && descend => {
            let i = rng.below(a.len());
            match rng.below(8) {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let x = a[i].clone();
                    let j = rng.below(a.len());
                    a.insert(j, x);
                }
                2 => {
                    let j = rng.below(a.len());
                    a.swap(i, j);
                }
                _ => mutate_node(rng, &mut a[i], dict, depth + 1),
            }
        }
        _ => {
            *v = match v {
                Value::Number(n) if rng.one_in(2) => {
                    let x = n.as_f64().unwrap_or(0.0);
                    json!(*rng.pick(&[x + 1.0, x - 1.0, x * 2.0, x * 1000.0, -x, x / 3.0]))
                }
                _ => some_value(rng, v, dict),
            }
        }
    }
}

/// One mutation of a JSON document's tree; `false` when `data` is not JSON.
pub fn mutate_json(rng: &mut Rng, data: &mut Vec<u8>, dict: &[&str]) -> bool {
    let Ok(mut v) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    for _ in 0..1 + rng.below(2) {
        mutate_node(rng, &mut v, dict, 0);
    }
    *data = serde_json::to_vec(&v).expect("a Value serializes");
    true
}

const DTYPES: &[&str] = &[
    "F32", "F16", "BF16", "F64", "I8", "U8", "I16", "I32", "I64", "U64", "BOOL", "F8_E4M3",
    "F8_E5M2", "F4", "F6_E2M3", "E8M0", "f32", "", "F32 ",
];

const NAMES: &[&str] = &[
    "wte.weight",
    "wpe.weight",
    "lm_head.weight",
    "transformer.wte.weight",
    "embed_tokens.weight",
    "model.embed_tokens.weight",
    "h.0.ln_1.weight",
    "h.2.ln_1.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "__metadata__",
];

/// A shape/dtype/offset/name mutation of one tensor entry in a safetensors header.
fn mutate_entry(rng: &mut Rng, m: &mut Map<String, Value>) {
    let keys: Vec<String> = m.keys().filter(|k| *k != "__metadata__").cloned().collect();
    if keys.is_empty() {
        return;
    }
    let k = rng.pick(&keys).clone();
    match rng.below(7) {
        0 => {
            m.remove(&k);
        }
        1 => {
            let e = m.remove(&k).expect("listed");
            let new = match rng.below(3) {
                0 => format!("transformer.{k}"),
                1 => k.rsplit_once('.').map_or(k.clone(), |(a, _)| a.to_string()),
                _ => rng.pick(NAMES).to_string(),
            };
            m.insert(new, e);
        }
        _ => {
            let e = m.get_mut(&k).expect("listed");
            let Some(obj) = e.as_object_mut() else {
                *e = json!(null);
                return;
            };
            match rng.below(4) {
                0 => {
                    obj.insert("dtype".into(), json!(rng.pick(DTYPES)));
                }
                1 => {
                    let mut offs: Vec<Value> = obj
                        .get("data_offsets")
                        .and_then(|v| v.as_array())
                        .cloned()
                        .unwrap_or_default();
                    match rng.below(4) {
                        0 if offs.len() == 2 => offs.swap(0, 1),
                        1 => offs.push(json!(boundary_u64(rng, 0))),
                        _ if !offs.is_empty() => {
                            let i = rng.below(offs.len());
                            let old = offs[i].as_u64().unwrap_or(0);
                            offs[i] = json!(boundary_u64(rng, old));
                        }
                        _ => offs.clear(),
                    }
                    obj.insert("data_offsets".into(), Value::Array(offs));
                }
                2 => {
                    let mut shape: Vec<Value> = obj
                        .get("shape")
                        .and_then(|v| v.as_array())
                        .cloned()
                        .unwrap_or_default();
                    match rng.below(4) {
                        0 => shape.push(json!(boundary_u64(rng, 1))),
                        1 => {
                            shape.pop();
                        }
                        _ if !shape.is_empty() => {
                            let i = rng.below(shape.len());
                            let old = shape[i].as_u64().unwrap_or(0);
                            shape[i] = json!(boundary_u64(rng, old));
                        }
                        _ => shape.push(json!(0)),
                    }
                    obj.insert("shape".into(), Value::Array(shape));
                }
                _ => {
                    let field = *rng.pick(&["dtype", "shape", "data_offsets"]);
                    if rng.one_in(2) {
                        obj.remove(field);
                    } else {
                        let old = obj.get(field).cloned().unwrap_or(Value::Null);
                        obj.insert(field.into(), some_value(rng, &old, DTYPES));
                    }
                }
            }
        }
    }
}

/// One safetensors-aware mutation; `false` when the header does not parse.
pub fn mutate_safetensors(rng: &mut Rng, data: &mut Vec<u8>) -> bool {
    if data.len() < 8 {
        return false;
    }
    let n = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    if n > (data.len() - 8) as u64 {
        return false;
    }
    let n = n as usize;
    if rng.one_in(6) {
        // The 8-byte header length alone.
        put_le(data, 0, 8, boundary_u64(rng, n as u64));
        return true;
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&data[8..8 + n]) else {
        return false;
    };
    match v.as_object_mut() {
        Some(m) if !rng.one_in(4) => mutate_entry(rng, m),
        _ => mutate_node(rng, &mut v, NAMES, 0),
    }
    let mut header = serde_json::to_vec(&v).expect("a Value serializes");
    // The writer pads with spaces to 8 bytes; sometimes keep the odd length.
    if !rng.one_in(4) {
        header.resize(header.len().div_ceil(8) * 8, b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend_from_slice(&data[8 + n..]);
    *data = out;
    true
}
