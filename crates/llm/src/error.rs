use thiserror::Error;

/// What can go wrong between a GGUF file and generated text.
#[derive(Debug, Error)]
pub enum LlmError {
    /// The file is not a readable GGUF (corrupt, truncated, not GGUF at all).
    #[error("model file: {0}")]
    Format(#[from] gguf::GgufError),

    /// The file is a GGUF but this engine cannot run it; the message names what is missing.
    #[error("unsupported model: {0}")]
    Unsupported(String),

    #[error("tokenizer: {0}")]
    Tokenizer(#[from] confidant_tokenizer::TokenizerError),

    /// No GPU adapter, or the GPU failed while running.
    #[error("GPU: {0}")]
    Device(String),

    /// A request the engine cannot serve (too long for the context, bad sampling values).
    #[error("bad request: {0}")]
    BadRequest(String),

    /// The model does not fit the device: a buffer larger than the GPU allows; the message
    /// names the numbers.
    #[error("too large for this device: {0}")]
    TooLarge(String),

    /// The model file could not be read (an I/O error, or a range outside it).
    #[error("reading the model: {0}")]
    Read(String),
}

impl LlmError {
    /// A short stable code for each kind, used by the JS bindings.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Format(_) => "model_format",
            Self::Unsupported(_) => "unsupported_model",
            Self::Tokenizer(confidant_tokenizer::TokenizerError::Unsupported(_)) => "unsupported_model",
            Self::Tokenizer(_) => "model_format",
            Self::Device(_) => "device_lost",
            Self::BadRequest(_) => "bad_request",
            Self::Read(_) => "model_read",
            Self::TooLarge(_) => "out_of_memory",
        }
    }
}

pub type Result<T, E = LlmError> = core::result::Result<T, E>;
