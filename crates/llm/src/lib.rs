//! The llama-family language model on burn: GGUF weights kept quantized on the GPU, a KV cache
//! on the device, and sampling.

pub mod device;
pub mod error;
pub mod generate;
pub mod info;
pub mod kernels;
pub mod llama;
pub mod ops;
pub mod sampler;
pub mod weights;

pub use error::{LlmError, Result};
pub use llama::{KvCache, Llama, LlamaConfig};
pub use generate::{FinishReason, GenerateOptions, GenerationStats, Generator, PrefillProgress, Step};
pub use sampler::{DryParams, Sampler, SamplingParams, SequenceBreakers};
pub use confidant_tokenizer::{ChatMessage, ChatTemplate, Tokenizer};
pub use info::ModelInfo;
pub use burn::tensor::Device;
