use thiserror::Error;

/// Everything that can go wrong building a tokenizer from a GGUF, tokenizing, or rendering a
/// chat template. Every variant is reachable from file contents or caller input; nothing here
/// panics on a malformed file.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TokenizerError {
    /// A metadata key is missing or has the wrong type.
    #[error(transparent)]
    Gguf(#[from] gguf::GgufError),

    /// `tokenizer.ggml.model` names a tokenizer this crate does not implement.
    #[error("tokenizer model {0:?} is not supported (only \"gpt2\" byte-level BPE and \"llama\" SentencePiece are)")]
    Unsupported(String),

    /// Metadata that is present and well-typed but inconsistent.
    #[error("tokenizer metadata {key:?}: {reason}")]
    BadMetadata { key: String, reason: String },

    /// The same token text appears twice in `tokenizer.ggml.tokens` (llama.cpp refuses this too).
    #[error("token {text:?} appears twice in the vocabulary, as ids {first} and {second}")]
    DuplicateToken { text: String, first: u32, second: u32 },

    /// A `tokenizer.ggml.merges` entry is not "left right" or names tokens outside the vocabulary.
    #[error("BPE merge #{index} {merge:?}: {reason}")]
    BadMerge { index: usize, merge: String, reason: String },

    /// The byte-pair model could not be built or run.
    #[error("BPE model: {0}")]
    Bpe(String),

    /// SentencePiece byte fallback needed a `<0xXX>` token that the vocabulary lacks.
    #[error("the vocabulary has no token for byte 0x{0:02X}, needed for byte fallback")]
    NoByteToken(u8),

    /// A token id outside the vocabulary was given to decode.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    BadTokenId { id: u32, vocab_size: usize },

    /// The chat template failed to parse or render. For `raise_exception(msg)` in the template
    /// this is exactly `msg`.
    #[error("chat template: {0}")]
    Template(String),

    /// Tokenizer metadata or a chat template larger than this crate accepts (see
    /// [`crate::limits`]).
    #[error("{what}: {size} is more than the limit of {limit}")]
    TooLarge { what: &'static str, size: u64, limit: u64 },

    /// The chat template ran more than [`crate::limits::TEMPLATE_FUEL`] instructions.
    #[error("chat template: rendering took more than {0} instructions")]
    TemplateTooExpensive(u64),

    /// The chat template wrote more than the rendered-length cap allows.
    #[error("chat template: the rendered prompt is longer than {0} bytes")]
    TemplateOutputTooLong(usize),
}

pub type Result<T, E = TokenizerError> = core::result::Result<T, E>;
