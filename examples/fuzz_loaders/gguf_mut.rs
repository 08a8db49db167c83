//! GGUF-aware mutations: a lenient walk of the header records where every count, length, type
//! id, dim and offset lies, so that one of them can be set to a boundary value; strings, whole
//! metadata entries and tensor infos can be replaced, dropped, duplicated or added, with the
//! data section moved to the next aligned offset after the new header.

use crate::mutate::{boundary_u64, get_le, put_le, Rng};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// version, tensor count, metadata count
    Header,
    ValueType,
    ArrayLen,
    /// integer metadata value (or array element) of this width
    Scalar,
    NDims,
    Dim,
    GgmlType,
    Offset,
}

struct Field {
    off: usize,
    width: usize,
    kind: Kind,
}

/// Where things are in one GGUF file (as far as it parses).
struct Layout {
    fields: Vec<Field>,
    /// (offset of the u64 length, length) of every string (keys, values, tensor names).
    strings: Vec<(usize, usize)>,
    /// byte ranges of whole metadata entries and tensor infos
    kvs: Vec<(usize, usize)>,
    infos: Vec<(usize, usize)>,
    header_end: usize,
    data_start: usize,
    alignment: usize,
}

struct Walk<'a> {
    d: &'a [u8],
    pos: usize,
    l: Layout,
}

impl Walk<'_> {
    fn field(&mut self, width: usize, kind: Kind) -> Option<u64> {
        if self.pos + width > self.d.len() {
            return None;
        }
        let v = get_le(self.d, self.pos, width);
        self.l.fields.push(Field {
            off: self.pos,
            width,
            kind,
        });
        self.pos += width;
        Some(v)
    }

    fn string(&mut self) -> Option<&[u8]> {
        let at = self.pos;
        let n = self.field(8, Kind::ArrayLen)? as usize;
        if n > self.d.len() - self.pos {
            return None;
        }
        self.l.strings.push((at, n));
        self.pos += n;
        Some(&self.d[self.pos - n..self.pos])
    }

    fn value(&mut self, ty: u64, depth: usize) -> Option<u64> {
        let width = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => return self.string().map(|_| 0),
            9 if depth < 4 => {
                let et = self.field(4, Kind::ValueType)?;
                let n = self.field(8, Kind::ArrayLen)?;
                for _ in 0..n.min(self.d.len() as u64) {
                    self.value(et, depth + 1)?;
                }
                return Some(0);
            }
            _ => return None,
        };
        if matches!(ty, 6 | 7 | 12) {
            // Floats and bools: left to the byte-level mutations.
            if self.pos + width > self.d.len() {
                return None;
            }
            self.pos += width;
            return Some(0);
        }
        self.field(width, Kind::Scalar)
    }
}

fn walk(d: &[u8]) -> Option<Layout> {
    if d.get(..4)? != b"GGUF" {
        return None;
    }
    let mut w = Walk {
        d,
        pos: 4,
        l: Layout {
            fields: Vec::new(),
            strings: Vec::new(),
            kvs: Vec::new(),
            infos: Vec::new(),
            header_end: 0,
            data_start: 0,
            alignment: 32,
        },
    };
    w.field(4, Kind::Header)?;
    let n_tensors = w.field(8, Kind::Header)?;
    let n_kv = w.field(8, Kind::Header)?;
    let mut alignment = 32u64;
    for _ in 0..n_kv.min(d.len() as u64) {
        let start = w.pos;
        let key = w.string()?.to_vec();
        let ty = w.field(4, Kind::ValueType)?;
        let v = w.value(ty, 0)?;
        if key == b"general.alignment" && v.is_power_of_two() && v < 1 << 16 {
            alignment = v;
        }
        w.l.kvs.push((start, w.pos));
    }
    for _ in 0..n_tensors.min(d.len() as u64) {
        let start = w.pos;
        w.string()?;
        let n_dims = w.field(4, Kind::NDims)?;
        for _ in 0..n_dims.min(8) {
            w.field(8, Kind::Dim)?;
        }
        w.field(4, Kind::GgmlType)?;
        w.field(8, Kind::Offset)?;
        w.l.infos.push((start, w.pos));
    }
    w.l.header_end = w.pos;
    w.l.alignment = alignment as usize;
    w.l.data_start = w.pos.div_ceil(w.l.alignment) * w.l.alignment;
    Some(w.l)
}

/// Keys, tensor names and values the loaders look for.
const KEYS: &[&str] = &[
    "general.architecture",
    "general.alignment",
    "llama.context_length",
    "llama.embedding_length",
    "llama.block_count",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.rope.dimension_count",
    "llama.rope.freq_base",
    "llama.attention.layer_norm_rms_epsilon",
    "llama.vocab_size",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
    "token_embd.weight",
    "output.weight",
    "output_norm.weight",
    "blk.0.attn_q.weight",
    "blk.0.attn_k.weight",
    "blk.0.attn_q.bias",
    "blk.1.attn_norm.weight",
    "llama",
    "gpt2",
    "llama-bpe",
    "qwen2",
    "tekken",
    "gpt-4o",
    "smollm",
    "",
    " ",
    "a b",
    "\u{120} \u{120}",
    "<|endoftext|>",
];

/// A string for a replacement: from the dictionary, another string of the file, or odd bytes.
fn some_string(rng: &mut Rng, d: &[u8], l: &Layout) -> Vec<u8> {
    match rng.below(6) {
        0 | 1 => rng.pick(KEYS).as_bytes().to_vec(),
        2 if !l.strings.is_empty() => {
            let (at, n) = *rng.pick(&l.strings);
            d[at + 8..at + 8 + n].to_vec()
        }
        3 => vec![0xff, 0xfe, b' ', 0xc3],
        4 => vec![b'a'; 1 + rng.below(5000)],
        _ => (0..rng.small_len(16)).map(|_| rng.next() as u8).collect(),
    }
}

/// A metadata entry (key, type, value) of any type, often with absurd array counts.
fn some_kv(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let key = rng.pick(KEYS).as_bytes();
    out.extend((key.len() as u64).to_le_bytes());
    out.extend(key);
    let ty = rng.below(13) as u32;
    out.extend(ty.to_le_bytes());
    match ty {
        8 => {
            let s = rng.pick(KEYS).as_bytes();
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s);
        }
        9 => {
            out.extend((rng.below(13) as u32).to_le_bytes());
            out.extend(boundary_u64(rng, 3).to_le_bytes());
            out.extend((0..rng.small_len(64)).map(|_| rng.next() as u8));
        }
        _ => out.extend(boundary_u64(rng, 1).to_le_bytes()),
    }
    out
}

/// Header bytes edited, then the data section moved to the aligned end of the new header.
fn rebuild(d: &[u8], l: &Layout, header: Vec<u8>) -> Vec<u8> {
    let mut out = header;
    let pad = out.len().div_ceil(l.alignment) * l.alignment - out.len();
    out.extend(std::iter::repeat_n(0u8, pad));
    out.extend_from_slice(d.get(l.data_start..).unwrap_or(&[]));
    out
}

fn bump_count(h: &mut [u8], off: usize, delta: i64) {
    let v = get_le(h, off, 8);
    put_le(h, off, 8, v.wrapping_add(delta as u64));
}

/// One GGUF-aware mutation; `false` when the file does not walk (the caller falls back to bytes).
pub fn mutate(rng: &mut Rng, d: &mut Vec<u8>) -> bool {
    let Some(l) = walk(d) else { return false };
    let mut h = d[..l.header_end].to_vec();
    match rng.below(8) {
        0..=2 => {
            // A field of a random kind (so that the many token strings do not drown the dims).
            let kinds = [
                Kind::Header,
                Kind::ValueType,
                Kind::ArrayLen,
                Kind::Scalar,
                Kind::NDims,
                Kind::Dim,
                Kind::GgmlType,
                Kind::Offset,
            ];
            let kind = *rng.pick(&kinds);
            let of: Vec<&Field> = l.fields.iter().filter(|f| f.kind == kind).collect();
            if of.is_empty() {
                return false;
            }
            let f = *rng.pick(&of);
            let old = get_le(d, f.off, f.width);
            let v = match kind {
                Kind::ValueType | Kind::GgmlType | Kind::NDims if rng.one_in(2) => {
                    rng.below(45) as u64
                }
                _ => boundary_u64(rng, old),
            };
            put_le(d, f.off, f.width, v);
            return true;
        }
        3 if !l.strings.is_empty() => {
            let (at, n) = *rng.pick(&l.strings);
            let s = some_string(rng, d, &l);
            let mut rec = (s.len() as u64).to_le_bytes().to_vec();
            rec.extend(s);
            h.splice(at..at + 8 + n, rec);
        }
        4 if !l.kvs.is_empty() => {
            let (a, b) = *rng.pick(&l.kvs);
            if rng.one_in(2) {
                h.drain(a..b);
                bump_count(&mut h, 16, -1);
            } else {
                let rec = h[a..b].to_vec();
                h.splice(b..b, rec);
                bump_count(&mut h, 16, 1);
            }
        }
        5 if !l.infos.is_empty() => {
            let (a, b) = *rng.pick(&l.infos);
            if rng.one_in(2) {
                h.drain(a..b);
                bump_count(&mut h, 8, -1);
            } else {
                let rec = h[a..b].to_vec();
                h.splice(b..b, rec);
                bump_count(&mut h, 8, 1);
            }
        }
        6 => {
            let at = l.kvs.first().map_or(24, |k| k.0).min(h.len());
            let kv = some_kv(rng);
            h.splice(at..at, kv);
            bump_count(&mut h, 16, 1);
        }
        _ => {
            // Bytes inside the data section (dequantizers see odd scales, NaN, inf).
            if d.len() > l.data_start {
                let at = l.data_start + rng.below(d.len() - l.data_start);
                d[at] = rng.next() as u8;
                return true;
            }
            return false;
        }
    }
    *d = rebuild(d, &l, h);
    true
}
