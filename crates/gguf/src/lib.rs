//! Reading GGUF files: the header (metadata of every value type, tensor infos, alignment) and
//! tensor data in the ggml block formats.
//!
//! The reader works on bytes already in memory (a native `Vec` or a browser `ArrayBuffer`) and
//! on a prefix of a file: [`Gguf::parse`] on the first megabytes tells whether a model can be run
//! before the rest has been downloaded. Hostile input gives a [`GgufError`], never a panic, and
//! no allocation is sized by a header field before that field is checked against the input.

mod error;
mod quant;
mod reader;
mod split;
mod types;
mod value;
mod writer;

pub use error::{GgufError, Result};
pub use quant::{Groups, dequantize, unpack};
pub use reader::{DEFAULT_ALIGNMENT, Gguf, MAX_DIMS, TensorInfo};
pub use split::{KEY_SPLIT_COUNT, KEY_SPLIT_NO, KEY_SPLIT_TENSORS_COUNT, SplitPart, parse_parts, split_gguf, split_part_name};
pub use types::{GgmlType, QK_K};
pub use value::{Array, Value};
pub use writer::GgufWriter;

/// Typed metadata look-ups with errors that name the key.
impl Gguf {
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.get(key).ok_or_else(|| GgufError::MissingKey(key.into()))?;
        v.as_str().ok_or_else(|| wrong_type(key, "a string", v))
    }

    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.get(key).ok_or_else(|| GgufError::MissingKey(key.into()))?;
        v.as_u64().ok_or_else(|| wrong_type(key, "an unsigned integer", v))
    }

    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.get(key).ok_or_else(|| GgufError::MissingKey(key.into()))?;
        v.as_f64().ok_or_else(|| wrong_type(key, "a number", v))
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let v = self.get(key).ok_or_else(|| GgufError::MissingKey(key.into()))?;
        v.as_bool().ok_or_else(|| wrong_type(key, "a bool", v))
    }

    pub fn get_array(&self, key: &str) -> Result<&Array> {
        let v = self.get(key).ok_or_else(|| GgufError::MissingKey(key.into()))?;
        v.as_array().ok_or_else(|| wrong_type(key, "an array", v))
    }

    pub fn get_strings(&self, key: &str) -> Result<&[String]> {
        match self.get_array(key)? {
            Array::String(v) => Ok(v),
            _ => Err(GgufError::BadMetadata { key: key.into(), reason: "expected an array of strings".into() }),
        }
    }

    /// `general.architecture`, the prefix of the model's hyper-parameter keys.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }
}

fn wrong_type(key: &str, expected: &str, found: &Value) -> GgufError {
    GgufError::BadMetadata { key: key.into(), reason: format!("expected {expected}, found {}", found.type_name()) }
}
