//! Decoder language models on burn (llama, Qwen 2, Qwen 3, Gemma 3, Phi-3): GGUF weights kept
//! quantized on the device, a KV cache on the device, and sampling.

pub mod config;
pub mod device;
pub mod device_work;
pub mod error;
mod gemma3;
pub mod generate;
pub mod info;
pub mod kernels;
pub mod kv_cache;
mod layers;
pub mod llama;
pub mod model;
pub mod ops;
mod phi3;
mod qwen2;
mod qwen3;
pub mod sampler;
pub mod weights;

pub use config::{Architecture, DecoderConfig};
pub use device_work::{DeviceWork, DeviceWorkPerToken};
pub use error::{LlmError, Result};
pub use kv_cache::{KvCache, KvPrecision};
pub use llama::LlamaConfig;
pub use model::Model;
pub use generate::{FinishReason, GenerateOptions, GenerationStats, Generator, Lookahead, PrefillProgress, Step};
pub use sampler::{DryParams, Sampler, SamplingParams, SequenceBreakers};
pub use confidant_tokenizer::{ChatMessage, ChatTemplate, Tokenizer};
pub use info::{MemoryNeed, ModelInfo};
pub use burn::tensor::{DType, Device};
