use thiserror::Error;

/// What can go wrong in a chat turn or in managing characters and sessions. Each variant has a
/// stable [`EngineError::code`] for JavaScript.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Card(#[from] persona::CardError),
    #[error(transparent)]
    Model(#[from] llm::LlmError),
    #[error(transparent)]
    Memory(#[from] memory::MemoryError),
    /// No character, session or message with that id.
    #[error("{what} {id:?} does not exist")]
    NotFound { what: &'static str, id: String },
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    BadRequest(String),
    /// A reply is being generated; wait for it or abort it first.
    #[error("a reply is being generated; wait for it to finish or abort it")]
    Busy,
    /// Stored data that cannot be read (chat store or backup file).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The chat store failed to read or write.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The browser refused to store more.
    #[error("the browser refused to store more (quota): {0}")]
    Quota(String),
    /// An import would replace characters or sessions changed here after the backup was made.
    #[error("{count} of the backup's characters and chats are older than the copies stored here; import again with replaceNewer to replace them")]
    NewerData { count: usize },
}

impl EngineError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Card(_) => "card_format",
            Self::Model(e) => e.code(),
            Self::Memory(e) => e.code(),
            Self::NotFound { .. } => "not_found",
            Self::BadRequest(_) => "bad_request",
            Self::Busy => "busy",
            Self::Corrupt(_) => "storage_corrupt",
            Self::Storage(_) => "storage",
            Self::Quota(_) => "storage_quota",
            Self::NewerData { .. } => "newer_data",
        }
    }

    pub(crate) fn not_found(what: &'static str, id: &str) -> Self {
        Self::NotFound { what, id: id.to_string() }
    }
}

pub type Result<T, E = EngineError> = core::result::Result<T, E>;
