//! ggml tensor types: ids, names and block sizes (as `gguf.constants.GGML_QUANT_SIZES`).
//! File format only: no wgpu, no models.

use std::fmt;

/// A ggml tensor type, by its id in the file. Unknown ids are kept (and rejected at open, since
/// their byte size is unknown).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType(pub u32);

/// (name, id, elements per block, bytes per block), as `gguf.constants.GGML_QUANT_SIZES`.
const GGML_TYPES: &[(&str, u32, u64, u64)] = &[
    ("F32", 0, 1, 4),
    ("F16", 1, 1, 2),
    ("Q4_0", 2, 32, 18),
    ("Q4_1", 3, 32, 20),
    ("Q5_0", 6, 32, 22),
    ("Q5_1", 7, 32, 24),
    ("Q8_0", 8, 32, 34),
    ("Q8_1", 9, 32, 40),
    ("Q2_K", 10, 256, 84),
    ("Q3_K", 11, 256, 110),
    ("Q4_K", 12, 256, 144),
    ("Q5_K", 13, 256, 176),
    ("Q6_K", 14, 256, 210),
    ("Q8_K", 15, 256, 292),
    ("IQ2_XXS", 16, 256, 66),
    ("IQ2_XS", 17, 256, 74),
    ("IQ3_XXS", 18, 256, 98),
    ("IQ1_S", 19, 256, 50),
    ("IQ4_NL", 20, 32, 18),
    ("IQ3_S", 21, 256, 110),
    ("IQ2_S", 22, 256, 82),
    ("IQ4_XS", 23, 256, 136),
    ("I8", 24, 1, 1),
    ("I16", 25, 1, 2),
    ("I32", 26, 1, 4),
    ("I64", 27, 1, 8),
    ("F64", 28, 1, 8),
    ("IQ1_M", 29, 256, 56),
    ("BF16", 30, 1, 2),
    ("TQ1_0", 34, 256, 54),
    ("TQ2_0", 35, 256, 66),
    ("MXFP4", 39, 32, 17),
    ("NVFP4", 40, 64, 36),
    ("Q1_0", 41, 128, 18),
];

impl GgmlType {
    pub const F32: Self = Self(0);
    pub const F16: Self = Self(1);
    pub const Q4_0: Self = Self(2);
    pub const Q4_1: Self = Self(3);
    pub const Q5_0: Self = Self(6);
    pub const Q5_1: Self = Self(7);
    pub const Q8_0: Self = Self(8);
    pub const Q2_K: Self = Self(10);
    pub const Q3_K: Self = Self(11);
    pub const Q4_K: Self = Self(12);
    pub const Q5_K: Self = Self(13);
    pub const Q6_K: Self = Self(14);
    pub const IQ2_XXS: Self = Self(16);
    pub const BF16: Self = Self(30);

    /// The types [`dequantize`](super::dequantize) handles. Every other type (Q8_1, Q8_K, IQ*,
    /// TQ*, MXFP4, …) is refused by name wherever a tensor is read.
    pub const SUPPORTED: [Self; 13] = [
        Self::F32,
        Self::F16,
        Self::BF16,
        Self::Q8_0,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q2_K,
        Self::Q3_K,
        Self::Q4_K,
        Self::Q5_K,
        Self::Q6_K,
    ];

    fn entry(self) -> Option<&'static (&'static str, u32, u64, u64)> {
        GGML_TYPES.iter().find(|e| e.1 == self.0)
    }

    /// The type from its name (`"Q4_1"`), as ggml spells it.
    pub fn from_name(name: &str) -> Option<Self> {
        GGML_TYPES.iter().find(|e| e.0 == name).map(|e| Self(e.1))
    }

    /// ggml's name for the type (`"Q4_1"`), or `"type#N"` for an id this reader does not know.
    pub fn name(self) -> String {
        match self.entry() {
            Some(e) => e.0.to_string(),
            None => format!("type#{}", self.0),
        }
    }

    /// `(elements per block, bytes per block)`; `None` for an unknown id.
    pub fn block(self) -> Option<(u64, u64)> {
        self.entry().map(|e| (e.2, e.3))
    }

    /// Whether [`dequantize`](super::dequantize) handles the type (see [`Self::SUPPORTED`]).
    pub fn is_supported(self) -> bool {
        Self::SUPPORTED.contains(&self)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Debug for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The supported types, comma-separated, for error messages.
pub(super) fn supported_list() -> String {
    GgmlType::SUPPORTED
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}
