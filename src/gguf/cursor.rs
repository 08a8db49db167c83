//! The bounds-checked little-endian cursor the GGUF parser reads with (limits: truncation,
//! array nesting and element counts checked before allocating). File format only: no wgpu, no models.

use std::path::Path;

use anyhow::{bail, Result};

use super::GgufValue;

/// Max nesting of arrays in metadata.
pub(super) const MAX_DEPTH: usize = 8;

pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    pub(super) path: &'a Path,
}

impl<'a> Cursor<'a> {
    pub(super) fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let remaining = (self.buf.len() - self.pos) as u64;
        if n > remaining {
            bail!(
                "GGUF {}: truncated or corrupt: {} needs {n} bytes at offset {}, but the file has {} bytes",
                self.path.display(),
                what(),
                self.pos,
                self.buf.len()
            );
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    pub(super) fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        Ok(self.take(N as u64, what)?.try_into().unwrap())
    }

    pub(super) fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(super) fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string. Invalid UTF-8 is replaced by U+FFFD (as Python's `errors="replace"`).
    pub(super) fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    pub(super) fn value(
        &mut self,
        ty: u32,
        depth: usize,
        what: &dyn Fn() -> String,
    ) -> Result<GgufValue> {
        Ok(match ty {
            0 => GgufValue::U8(self.array::<1>(what)?[0]),
            1 => GgufValue::I8(self.array::<1>(what)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => GgufValue::U32(self.u32(what)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => bail!(
                    "GGUF {}: {}: invalid bool byte {b}",
                    self.path.display(),
                    what()
                ),
            },
            8 => GgufValue::String(self.string(what)?),
            9 => {
                if depth >= MAX_DEPTH {
                    bail!(
                        "GGUF {}: {}: arrays nested deeper than {MAX_DEPTH}",
                        self.path.display(),
                        what()
                    );
                }
                let elem_ty = self.u32(what)?;
                let count = self.u64(what)?;
                // Every element takes at least this many bytes: reject absurd counts before allocating.
                let min_size: u64 = match elem_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => bail!(
                        "GGUF {}: {}: unknown array element type {t}",
                        self.path.display(),
                        what()
                    ),
                };
                let remaining = (self.buf.len() - self.pos) as u64;
                if count.saturating_mul(min_size) > remaining {
                    bail!(
                        "GGUF {}: truncated or corrupt: {} is an array of {count} elements at offset {}, more than the {remaining} bytes left in the file",
                        self.path.display(),
                        what(),
                        self.pos
                    );
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(elem_ty, depth + 1, what)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(what)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            t => bail!(
                "GGUF {}: {}: unknown metadata value type {t}",
                self.path.display(),
                what()
            ),
        })
    }
}
