use thiserror::Error;

/// What can go wrong between text and a remembered, retrieved memory.
#[derive(Debug, Error)]
pub enum MemoryError {
    /// The embedding model's files are unreadable or describe a model this crate cannot run.
    #[error("embedding model: {0}")]
    Model(String),

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// No GPU adapter, or the GPU failed while running.
    #[error("GPU: {0}")]
    Device(String),

    /// The store refused or failed a read or write; nothing of a failed write was applied.
    #[error("storage: {0}")]
    Storage(String),

    /// The store is full (the browser's quota); nothing of the failed write was applied.
    #[error("storage quota exceeded: {0}")]
    Quota(String),

    /// Stored data that cannot be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),

    /// Data written by a newer version of this crate; refused rather than misread.
    #[error("stored data has schema version {found}; this build reads up to {supported}")]
    NewerSchema { found: u32, supported: u32 },

    #[error("no memory with id {0:?}")]
    NotFound(String),

    /// A request the memory cannot serve (bad importance, duplicate id, empty character id).
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl MemoryError {
    /// A short stable code for each kind, for the JS bindings.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Model(_) | Self::Tokenizer(_) => "embedder_format",
            Self::Device(_) => "device_lost",
            Self::Storage(_) => "storage",
            Self::Quota(_) => "storage_quota",
            Self::Corrupt(_) => "storage_corrupt",
            Self::NewerSchema { .. } => "schema_too_new",
            Self::NotFound(_) => "not_found",
            Self::BadRequest(_) => "bad_request",
        }
    }
}

pub type Result<T, E = MemoryError> = core::result::Result<T, E>;
