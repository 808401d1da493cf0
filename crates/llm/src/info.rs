//! What a GGUF holds, from its header alone.

use std::collections::HashMap;

use gguf::Gguf;

use crate::error::Result;
use crate::llama::LlamaConfig;

/// A model's description, for display and for refusing a model before it is downloaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub architecture: String,
    pub parameters: u64,
    /// The type holding most of the weights ("Q4_1", "Q4_K", …).
    pub quantization: String,
    pub context_length: usize,
    pub vocab_size: usize,
    pub layers: usize,
}

impl ModelInfo {
    /// Describe the model and check that this engine can run it: architecture, tensor types
    /// and tokenizer. Needs only the header (see [`Gguf::parse_prefix`]).
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let config = LlamaConfig::from_gguf(g)?;
        confidant_tokenizer::Tokenizer::check_supported(g)?;
        let mut by_type: HashMap<String, u64> = HashMap::new();
        for t in g.tensors.iter().filter(|t| t.dims.len() == 2) {
            let count = by_type.entry(t.ty.to_string()).or_default();
            *count = count.saturating_add(t.element_count());
        }
        let quantization = by_type.into_iter().max_by_key(|(ty, n)| (*n, ty.clone())).map(|(ty, _)| ty).unwrap_or_default();
        Ok(Self {
            name: g.get("general.name").and_then(|v| v.as_str()).unwrap_or("unnamed model").to_string(),
            architecture: g.architecture()?.to_string(),
            parameters: config.parameter_count(),
            quantization,
            context_length: config.context_length,
            vocab_size: config.vocab_size,
            layers: config.block_count,
        })
    }
}
