//! [`GgufFile`]'s file facts and typed metadata getters (errors name the key, its value and the
//! file). File format only: no wgpu, no models.

use std::path::Path;

use anyhow::{anyhow, Result};

use super::{GgufFile, GgufValue, TensorInfo};

impl GgufFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 2 or 3.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// `general.alignment`, or 32.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte offset of the data section in the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// All metadata, in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &GgufValue)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// `general.architecture` (`"llama"`).
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The value of `key`; an error naming the key (and the file) when it is missing.
    pub fn get_value(&self, key: &str) -> Result<&GgufValue> {
        self.get(key).ok_or_else(|| {
            anyhow!(
                "GGUF {}: metadata key `{key}` is missing",
                self.path.display()
            )
        })
    }

    fn wrong_type(&self, key: &str, v: &GgufValue, wanted: &str) -> anyhow::Error {
        anyhow!(
            "GGUF {}: metadata `{key}` is {} {}, not {wanted}",
            self.path.display(),
            v.type_name(),
            v.brief()
        )
    }

    fn get_int<T: TryFrom<i128>>(&self, key: &str, wanted: &str) -> Result<T> {
        let v = self.get_value(key)?;
        v.as_i128()
            .and_then(|i| T::try_from(i).ok())
            .ok_or_else(|| self.wrong_type(key, v, wanted))
    }

    /// Any integer type whose value fits in a u32.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_int(key, "an integer that fits a u32")
    }

    /// Any integer type whose value fits in a u64.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_int(key, "an integer that fits a u64")
    }

    /// Any integer type whose value fits in an i32.
    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.get_int(key, "an integer that fits an i32")
    }

    /// Any integer type whose value fits in an i64.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.get_int(key, "an integer that fits an i64")
    }

    /// Any integer type whose value fits in a usize.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        self.get_int(key, "an integer that fits a usize")
    }

    /// An f32 (or an f64, rounded to f32).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.get_value(key)?;
        v.as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| self.wrong_type(key, v, "a float"))
    }

    /// An f64 (or an f32, widened).
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.get_value(key)?;
        v.as_f64().ok_or_else(|| self.wrong_type(key, v, "a float"))
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let v = self.get_value(key)?;
        v.as_bool().ok_or_else(|| self.wrong_type(key, v, "a bool"))
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.get_value(key)?;
        v.as_str()
            .ok_or_else(|| self.wrong_type(key, v, "a string"))
    }

    pub fn get_array(&self, key: &str) -> Result<&[GgufValue]> {
        let v = self.get_value(key)?;
        v.as_array()
            .ok_or_else(|| self.wrong_type(key, v, "an array"))
    }

    fn get_array_of<'s, T>(
        &'s self,
        key: &str,
        wanted: &str,
        f: impl Fn(&'s GgufValue) -> Option<T>,
    ) -> Result<Vec<T>> {
        let v = self.get_value(key)?;
        let items = v
            .as_array()
            .ok_or_else(|| self.wrong_type(key, v, wanted))?;
        items
            .iter()
            .enumerate()
            .map(|(i, x)| {
                f(x).ok_or_else(|| {
                    anyhow!(
                        "GGUF {}: metadata `{key}`[{i}] is {} {}, not {wanted}",
                        self.path.display(),
                        x.type_name(),
                        x.brief()
                    )
                })
            })
            .collect()
    }

    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.get_array_of(key, "an array of strings", GgufValue::as_str)
    }

    /// An array of f32 (or f64, rounded).
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.get_array_of(key, "an array of floats", |x| x.as_f64().map(|f| f as f32))
    }

    /// An array of integers that fit an i32.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.get_array_of(key, "an array of i32-sized integers", |x| {
            x.as_i128().and_then(|i| i32::try_from(i).ok())
        })
    }

    /// An array of integers that fit a u32.
    pub fn get_u32_array(&self, key: &str) -> Result<Vec<u32>> {
        self.get_array_of(key, "an array of u32-sized integers", |x| {
            x.as_i128().and_then(|i| u32::try_from(i).ok())
        })
    }

    /// An array of integers that fit an i64.
    pub fn get_i64_array(&self, key: &str) -> Result<Vec<i64>> {
        self.get_array_of(key, "an array of i64-sized integers", |x| {
            x.as_i128().and_then(|i| i64::try_from(i).ok())
        })
    }

    /// An array of bools.
    pub fn get_bool_array(&self, key: &str) -> Result<Vec<bool>> {
        self.get_array_of(key, "an array of bools", GgufValue::as_bool)
    }
}
