use thiserror::Error;

/// Everything that can be wrong with a GGUF file. Every variant is reachable from bytes alone:
/// the reader never panics and never allocates more than the input could justify.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GgufError {
    #[error("not a GGUF file (magic bytes are {found:02x?}, expected \"GGUF\")")]
    BadMagic { found: [u8; 4] },

    #[error("GGUF version {0} is not supported (only versions 2 and 3 are)")]
    UnsupportedVersion(u32),

    /// The header or a tensor's data reaches past the end of the bytes given. When reading a
    /// prefix of a file, this means "read more"; `needed` is a lower bound on the bytes required.
    #[error("file is truncated: {what} needs at least {needed} bytes, only {available} available")]
    Truncated { what: String, needed: u64, available: u64 },

    #[error("{what} claims {count} entries, more than the {available} remaining bytes could hold")]
    AbsurdCount { what: String, count: u64, available: u64 },

    #[error("metadata key {key:?} has unknown value type {value_type}")]
    UnknownValueType { key: String, value_type: u32 },

    #[error("metadata nests arrays deeper than {0} levels")]
    TooDeep(usize),

    #[error("{what} is not valid UTF-8")]
    BadUtf8 { what: String },

    #[error("duplicate {what} {name:?}")]
    Duplicate { what: &'static str, name: String },

    #[error("tensor {name:?}: {reason}")]
    BadTensor { name: String, reason: String },

    #[error("tensor {name:?} has ggml type {type_id}, which this reader does not know")]
    UnknownTensorType { name: String, type_id: u32 },

    #[error("general.alignment is {0}; it must be a non-zero power of two")]
    BadAlignment(u64),

    #[error("metadata key {key:?}: {reason}")]
    BadMetadata { key: String, reason: String },

    #[error("missing metadata key {0:?}")]
    MissingKey(String),

    #[error("no tensor named {0:?}")]
    MissingTensor(String),

    /// The parts of a split GGUF do not fit together (wrong count, order or tensor total).
    #[error("split GGUF: {0}")]
    Split(String),

    #[error("dequantizing {ty} is not supported")]
    UnsupportedDequant { ty: String },
}

pub type Result<T, E = GgufError> = core::result::Result<T, E>;
