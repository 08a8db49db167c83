//! A small GGUF v3 writer for tests (F32 tensors), and builders for Llama GGUF files: a tiny
//! random one of any geometry and the llama-odd-a fixture converted as llama.cpp's
//! `convert_hf_to_gguf.py` would (Q/K rows permuted, tied head dropped).
#![allow(dead_code)]

pub mod audit;

use std::path::Path;

use outlier_probe::gguf::{permute_qk, GgufValue};

/// Metadata and F32 tensors, written in insertion order.
#[derive(Clone, Default)]
pub struct GgufBuilder {
    pub kv: Vec<(String, GgufValue)>,
    /// (name, row-major shape, values)
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

fn type_id(v: &GgufValue) -> u32 {
    match v {
        GgufValue::U8(_) => 0,
        GgufValue::I8(_) => 1,
        GgufValue::U16(_) => 2,
        GgufValue::I16(_) => 3,
        GgufValue::U32(_) => 4,
        GgufValue::I32(_) => 5,
        GgufValue::F32(_) => 6,
        GgufValue::Bool(_) => 7,
        GgufValue::String(_) => 8,
        GgufValue::Array(_) => 9,
        GgufValue::U64(_) => 10,
        GgufValue::I64(_) => 11,
        GgufValue::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.push(*x as u8),
        GgufValue::U16(x) => out.extend(x.to_le_bytes()),
        GgufValue::I16(x) => out.extend(x.to_le_bytes()),
        GgufValue::U32(x) => out.extend(x.to_le_bytes()),
        GgufValue::I32(x) => out.extend(x.to_le_bytes()),
        GgufValue::F32(x) => out.extend(x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(*x as u8),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::Array(a) => {
            let elem = a.first().map_or(4, type_id);
            out.extend(elem.to_le_bytes());
            out.extend((a.len() as u64).to_le_bytes());
            for x in a {
                put_value(out, x);
            }
        }
        GgufValue::U64(x) => out.extend(x.to_le_bytes()),
        GgufValue::I64(x) => out.extend(x.to_le_bytes()),
        GgufValue::F64(x) => out.extend(x.to_le_bytes()),
    }
}

pub fn s(x: &str) -> GgufValue {
    GgufValue::String(x.to_string())
}

pub fn u32s(xs: &[u32]) -> GgufValue {
    GgufValue::Array(xs.iter().map(|&x| GgufValue::U32(x)).collect())
}

pub fn strs(xs: &[&str]) -> GgufValue {
    GgufValue::Array(xs.iter().map(|x| s(x)).collect())
}

impl GgufBuilder {
    /// Set `key` (replacing an earlier value in place).
    pub fn set(&mut self, key: &str, v: GgufValue) -> &mut Self {
        match self.kv.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = v,
            None => self.kv.push((key.to_string(), v)),
        }
        self
    }

    pub fn remove(&mut self, key: &str) -> &mut Self {
        self.kv.retain(|(k, _)| k != key);
        self
    }

    pub fn tensor(&mut self, name: &str, shape: &[usize], data: Vec<f32>) -> &mut Self {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "{name}");
        self.tensors.retain(|(n, _, _)| n != name);
        self.tensors.push((name.to_string(), shape.to_vec(), data));
        self
    }

    pub fn remove_tensor(&mut self, name: &str) -> &mut Self {
        self.tensors.retain(|(n, _, _)| n != name);
        self
    }

    /// The file bytes; the alignment is `general.alignment` when set (a u32), else 32.
    pub fn bytes(&self) -> Vec<u8> {
        let align = match self.kv.iter().find(|(k, _)| k == "general.alignment") {
            Some((_, GgufValue::U32(a))) => *a as usize,
            _ => 32,
        };
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.kv.len() as u64).to_le_bytes());
        for (k, v) in &self.kv {
            put_str(&mut out, k);
            out.extend(type_id(v).to_le_bytes());
            put_value(&mut out, v);
        }
        let mut offset = 0usize;
        for (name, shape, data) in &self.tensors {
            put_str(&mut out, name);
            out.extend((shape.len() as u32).to_le_bytes());
            for d in shape.iter().rev() {
                out.extend((*d as u64).to_le_bytes());
            }
            out.extend(0u32.to_le_bytes()); // F32
            out.extend((offset as u64).to_le_bytes());
            offset += (data.len() * 4).div_ceil(align) * align;
        }
        out.resize(out.len().div_ceil(align) * align, 0);
        for (_, _, data) in &self.tensors {
            let start = out.len();
            out.extend(data.iter().flat_map(|x| x.to_le_bytes()));
            out.resize(start + (data.len() * 4).div_ceil(align) * align, 0);
        }
        out
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.bytes()).unwrap();
    }
}

/// Geometry of a Llama model.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub d: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ff: usize,
    pub layers: usize,
    pub vocab: usize,
    pub ctx: usize,
}

pub const TINY: Geometry = Geometry {
    d: 8,
    heads: 2,
    kv_heads: 1,
    ff: 12,
    layers: 2,
    vocab: 10,
    ctx: 16,
};

/// Deterministic pseudo-random values in [-0.5, 0.5).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// The keys llama.cpp's converter writes for a llama model of geometry `g` (no tokenizer).
pub fn llama_metadata(b: &mut GgufBuilder, g: Geometry) {
    b.set("general.architecture", s("llama"))
        .set("general.type", s("model"))
        .set("general.name", s("test model"))
        .set("llama.block_count", GgufValue::U32(g.layers as u32))
        .set("llama.context_length", GgufValue::U32(g.ctx as u32))
        .set("llama.embedding_length", GgufValue::U32(g.d as u32))
        .set("llama.feed_forward_length", GgufValue::U32(g.ff as u32))
        .set("llama.attention.head_count", GgufValue::U32(g.heads as u32))
        .set(
            "llama.attention.head_count_kv",
            GgufValue::U32(g.kv_heads as u32),
        )
        .set("llama.rope.freq_base", GgufValue::F32(10000.0))
        .set(
            "llama.attention.layer_norm_rms_epsilon",
            GgufValue::F32(1e-5),
        )
        .set("general.file_type", GgufValue::U32(0))
        .set("llama.vocab_size", GgufValue::U32(g.vocab as u32))
        .set(
            "llama.rope.dimension_count",
            GgufValue::U32((g.d / g.heads) as u32),
        )
        .set("general.quantization_version", GgufValue::U32(2));
}

/// A byte-level BPE tokenizer of `vocab` single-character tokens `a`, `b`, ... (no merges).
pub fn tiny_tokenizer(b: &mut GgufBuilder, vocab: usize) {
    let toks: Vec<String> = (0..vocab)
        .map(|i| ((b'a' + i as u8) as char).to_string())
        .collect();
    let refs: Vec<&str> = toks.iter().map(String::as_str).collect();
    b.set("tokenizer.ggml.model", s("gpt2"))
        .set("tokenizer.ggml.tokens", strs(&refs))
        .set(
            "tokenizer.ggml.token_type",
            GgufValue::Array(vec![GgufValue::I32(1); vocab]),
        )
        .set("tokenizer.ggml.merges", GgufValue::Array(vec![]));
}

/// A random tiny Llama GGUF of geometry `g` (tied head), with a tiny tokenizer.
pub fn tiny_llama(g: Geometry) -> GgufBuilder {
    let mut b = GgufBuilder::default();
    llama_metadata(&mut b, g);
    tiny_tokenizer(&mut b, g.vocab);
    let hd = g.d / g.heads;
    let kvd = g.kv_heads * hd;
    let mut seed = 1;
    let mut t = |b: &mut GgufBuilder, name: &str, shape: &[usize]| {
        seed += 1;
        b.tensor(name, shape, noise(shape.iter().product(), seed));
    };
    t(&mut b, "token_embd.weight", &[g.vocab, g.d]);
    for l in 0..g.layers {
        let n = |x: &str| format!("blk.{l}.{x}.weight");
        t(&mut b, &n("attn_norm"), &[g.d]);
        t(&mut b, &n("attn_q"), &[g.d, g.d]);
        t(&mut b, &n("attn_k"), &[kvd, g.d]);
        t(&mut b, &n("attn_v"), &[kvd, g.d]);
        t(&mut b, &n("attn_output"), &[g.d, g.d]);
        t(&mut b, &n("ffn_norm"), &[g.d]);
        t(&mut b, &n("ffn_gate"), &[g.ff, g.d]);
        t(&mut b, &n("ffn_up"), &[g.ff, g.d]);
        t(&mut b, &n("ffn_down"), &[g.d, g.ff]);
    }
    t(&mut b, "output_norm.weight", &[g.d]);
    b
}

/// tests/fixtures/llama-odd-a as a GGUF (F32, tied head, its byte-level BPE tokenizer).
pub fn odd_a(fixtures: &Path) -> GgufBuilder {
    let dir = fixtures.join("llama-odd-a");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let u = |k: &str| cfg[k].as_u64().unwrap() as usize;
    let g = Geometry {
        d: u("hidden_size"),
        heads: u("num_attention_heads"),
        kv_heads: u("num_key_value_heads"),
        ff: u("intermediate_size"),
        layers: u("num_hidden_layers"),
        vocab: u("vocab_size"),
        ctx: u("max_position_embeddings"),
    };
    let mut b = GgufBuilder::default();
    llama_metadata(&mut b, g);
    b.set(
        "llama.attention.layer_norm_rms_epsilon",
        GgufValue::F32(cfg["rms_norm_eps"].as_f64().unwrap() as f32),
    );
    // Tokenizer: the BPE vocabulary by id, then the added <|endoftext|> (CONTROL).
    let tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
            .unwrap();
    let mut tokens = vec![String::new(); g.vocab];
    let mut types = vec![GgufValue::I32(1); g.vocab];
    for (t, id) in tok["model"]["vocab"].as_object().unwrap() {
        tokens[id.as_u64().unwrap() as usize] = t.clone();
    }
    for a in tok["added_tokens"].as_array().unwrap() {
        let id = a["id"].as_u64().unwrap() as usize;
        tokens[id] = a["content"].as_str().unwrap().to_string();
        types[id] = GgufValue::I32(3);
    }
    let merges: Vec<String> = tok["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            serde_json::Value::Array(p) => {
                format!("{} {}", p[0].as_str().unwrap(), p[1].as_str().unwrap())
            }
            other => other.as_str().unwrap().to_string(),
        })
        .collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mrefs: Vec<&str> = merges.iter().map(String::as_str).collect();
    let eot = (g.vocab - 1) as u32;
    b.set("tokenizer.ggml.model", s("gpt2"))
        .set("tokenizer.ggml.pre", s("default"))
        .set("tokenizer.ggml.tokens", strs(&refs))
        .set("tokenizer.ggml.token_type", GgufValue::Array(types))
        .set("tokenizer.ggml.merges", strs(&mrefs))
        .set("tokenizer.ggml.bos_token_id", GgufValue::U32(eot))
        .set("tokenizer.ggml.eos_token_id", GgufValue::U32(eot))
        .set("tokenizer.ggml.add_bos_token", GgufValue::Bool(false));
    // Weights, HF names -> GGUF names, Q/K permuted into llama.cpp's layout.
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let get = |name: &str| -> (Vec<usize>, Vec<f32>) {
        let v = st.tensor(name).unwrap();
        assert_eq!(v.dtype(), safetensors::tensor::Dtype::F32, "{name}");
        let data = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (v.shape().to_vec(), data)
    };
    let hd = g.d / g.heads;
    let mut put = |gg: &str, hf: &str, permute_heads: Option<usize>| {
        let (shape, mut data) = get(hf);
        if let Some(h) = permute_heads {
            data = permute_qk(&data, h, shape[0], shape[1]);
        }
        b.tensor(gg, &shape, data);
    };
    put("token_embd.weight", "model.embed_tokens.weight", None);
    for l in 0..g.layers {
        let hf = |x: &str| format!("model.layers.{l}.{x}.weight");
        let gg = |x: &str| format!("blk.{l}.{x}.weight");
        put(&gg("attn_norm"), &hf("input_layernorm"), None);
        put(&gg("attn_q"), &hf("self_attn.q_proj"), Some(g.heads));
        put(&gg("attn_k"), &hf("self_attn.k_proj"), Some(g.kv_heads));
        put(&gg("attn_v"), &hf("self_attn.v_proj"), None);
        put(&gg("attn_output"), &hf("self_attn.o_proj"), None);
        put(&gg("ffn_norm"), &hf("post_attention_layernorm"), None);
        put(&gg("ffn_gate"), &hf("mlp.gate_proj"), None);
        put(&gg("ffn_up"), &hf("mlp.up_proj"), None);
        put(&gg("ffn_down"), &hf("mlp.down_proj"), None);
    }
    put("output_norm.weight", "model.norm.weight", None);
    assert_eq!(hd * g.heads, g.d);
    b
}
