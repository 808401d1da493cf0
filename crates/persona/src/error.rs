use thiserror::Error;

/// Everything that can be wrong with a card or lorebook file. Every variant is reachable from
/// bytes alone: import never panics and never allocates more than the limits in
/// [`crate::limits`] allow.
#[derive(Debug, Error)]
pub enum CardError {
    /// The input (or a part of it) is larger than the limit for its kind.
    #[error("{what} is {size} bytes, more than the limit of {limit}")]
    TooLarge { what: &'static str, size: usize, limit: usize },

    /// Too many items of one kind (PNG chunks, lorebook entries, greetings, keys…).
    #[error("{what}: {count} is more than the limit of {limit}")]
    TooMany { what: &'static str, count: usize, limit: usize },

    /// The bytes are neither JSON, PNG nor a zip archive.
    #[error("not a character card: the bytes are not JSON, PNG or CHARX")]
    UnknownFormat,

    /// The PNG is malformed, truncated or has a bad checksum.
    #[error("bad PNG: {0}")]
    Png(String),

    /// Writing a PNG failed (the image given as avatar was not usable).
    #[error("cannot write PNG: {0}")]
    PngWrite(String),

    /// The `.charx` zip archive is malformed, or a file in it cannot be read.
    #[error("bad CHARX archive: {0}")]
    Charx(String),

    /// A PNG without a `chara` or `ccv3` text chunk.
    #[error("the PNG has no character card in it (no `chara` or `ccv3` text chunk)")]
    NoCardInPng,

    /// The card chunk is not valid base64.
    #[error("the card chunk {chunk:?} is not valid base64: {source}")]
    Base64 { chunk: &'static str, source: base64::DecodeError },

    /// Card text that is not UTF-8.
    #[error("{what} is not valid UTF-8 (at byte {valid_up_to})")]
    NotUtf8 { what: &'static str, valid_up_to: usize },

    /// Invalid JSON, nested too deep (more than 128 levels), or a value of the wrong type.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// Valid JSON that is not a card (or lorebook) of any known version.
    #[error("not a character card: {0}")]
    NotACard(String),

    /// The namespaced `extensions.confidant` data (profile, options) has the wrong shape.
    #[error("bad Confidant extension data: {0}")]
    BadExtension(String),
}

pub type Result<T, E = CardError> = std::result::Result<T, E>;
