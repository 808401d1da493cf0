//! What a GGUF holds, from its header alone.

use std::collections::HashMap;

use burn::tensor::DType;
use gguf::Gguf;

use crate::error::{LlmError, Result};
use crate::llama::LlamaConfig;
use crate::weights::{MAX_WEIGHT_BUFFER_BYTES, is_quantized_on_device};

/// A model's description, for display and for refusing a model before it is downloaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// `general.name` as the file has it (often a training run's name).
    pub name: String,
    /// A name for people: curated for known models ("SmolLM2 135M Instruct"), else
    /// `general.basename` and the size label ("smollm2 135M").
    pub display_name: String,
    pub architecture: String,
    pub parameters: u64,
    /// The file's quantization as llama.cpp names it (`general.file_type`: "Q4_K_M", "Q4_1",
    /// …), else the type holding most of the weights ("Q4_1", "Q4_K", …).
    pub quantization: String,
    pub context_length: usize,
    pub vocab_size: usize,
    pub layers: usize,
    /// The chat template used: "own" when the file has one, else the family template that
    /// stands in for it ("gemma" for Gemma models, "chatml" otherwise; see
    /// [`confidant_tokenizer::family_template`]).
    pub chat_template: String,
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
        let majority = by_type.into_iter().max_by_key(|(ty, n)| (*n, ty.clone())).map(|(ty, _)| ty).unwrap_or_default();
        // A mixed file (Gemma 3 270M's Q4_K_M keeps its large embedding table in Q8_0) is named
        // by its recipe, as llama.cpp names it.
        let quantization = g.get("general.file_type").and_then(|v| v.as_u64()).and_then(file_type_name).map_or(majority, str::to_string);
        let name = g.get("general.name").and_then(|v| v.as_str()).unwrap_or("unnamed model").to_string();
        let text = |key: &str| g.get(key).and_then(|v| v.as_str()).map(str::trim).filter(|s| !s.is_empty());
        let display_name = display_name(
            text("general.basename"),
            text("general.size_label"),
            text("general.finetune"),
            text("general.name"),
            g.architecture()?,
            config.parameter_count(),
        );
        Ok(Self {
            name,
            display_name,
            architecture: g.architecture()?.to_string(),
            parameters: config.parameter_count(),
            quantization,
            context_length: config.context_length,
            vocab_size: config.vocab_size,
            layers: config.block_count,
            chat_template: match g.get("tokenizer.chat_template") {
                Some(_) => "own".to_string(),
                None => confidant_tokenizer::family_template(g.architecture()?).0.to_string(),
            },
        })
    }
}

/// What a model needs in memory: its weights as the file stores them (the engine keeps them
/// quantized, in about that size) and its key/value cache at a context length (keys and values
/// for every layer and position, f32, or f16 on a GPU with `shader-f16`: see
/// [`Self::with_cache`]). Needs only the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryNeed {
    pub weights: u64,
    pub kv_cache: u64,
    /// The largest single tensor: what one read of the file holds while loading.
    pub largest_tensor: u64,
    /// The largest single buffer on a GPU: one layer's keys (or values) at the context, or a
    /// weight buffer (matrices are kept in blocks of at most [`MAX_WEIGHT_BUFFER_BYTES`]).
    pub largest_buffer: u64,
}

impl MemoryNeed {
    /// With the key/value cache in f32 (the CPU backend; GPUs without `shader-f16`).
    pub fn of(g: &Gguf, max_context: usize) -> Result<Self> {
        Self::with_cache(g, max_context, DType::F32)
    }

    /// With the key/value cache's values of `cache` (f32 or f16: see
    /// [`crate::KvPrecision::dtype_on`]).
    pub fn with_cache(g: &Gguf, max_context: usize, cache: DType) -> Result<Self> {
        let config = LlamaConfig::from_gguf(g)?;
        let sizes = g.tensors.iter().map(|t| t.byte_size().unwrap_or(0));
        let weights = sizes.clone().fold(0u64, u64::saturating_add);
        let largest_tensor = sizes.max().unwrap_or(0);
        let (layer_per_position, positions) = kv_layer(&config, max_context, cache);
        let per_position = 2 * config.block_count as u64 * layer_per_position;
        let weight_buffer = g.tensors.iter().map(weight_buffer_bytes).max().unwrap_or(0);
        Ok(Self {
            weights,
            kv_cache: per_position.saturating_mul(positions),
            largest_tensor,
            largest_buffer: weight_buffer.max(layer_per_position.saturating_mul(positions)),
        })
    }

    /// Refuse, naming the numbers, a model with a buffer larger than a GPU's `max_buffer` bytes
    /// (see [`crate::device::AdapterInfo::max_buffer`]) at `max_context` tokens: a key/value cache
    /// too long for the GPU (with the context that would fit), or a weight buffer past the limit
    /// (never on a WebGPU adapter, which allows 128 MiB at least: larger matrices are kept in
    /// blocks of rows of [`MAX_WEIGHT_BUFFER_BYTES`]).
    pub fn check_gpu_buffers(g: &Gguf, max_context: usize, max_buffer: u64) -> Result<Self> {
        Self::check_gpu_buffers_with_cache(g, max_context, max_buffer, DType::F32)
    }

    /// [`Self::check_gpu_buffers`] with the key/value cache's values of `cache` (f16 halves
    /// the cache's buffers, so twice the context fits).
    pub fn check_gpu_buffers_with_cache(g: &Gguf, max_context: usize, max_buffer: u64, cache: DType) -> Result<Self> {
        let need = Self::with_cache(g, max_context, cache)?;
        if need.largest_buffer <= max_buffer {
            return Ok(need);
        }
        let (layer_per_position, positions) = kv_layer(&LlamaConfig::from_gguf(g)?, max_context, cache);
        let mb = bytes_for_people;
        let kv_layer = layer_per_position.saturating_mul(positions);
        let message = if kv_layer > max_buffer {
            format!(
                "the key/value cache at {positions} tokens of context needs {} per layer for its keys (and as much for its values) in one buffer; this GPU allows at most {} in one buffer, enough for {} tokens of context",
                mb(kv_layer),
                mb(max_buffer),
                max_buffer / layer_per_position.max(1)
            )
        } else {
            let (name, bytes) = g.tensors.iter().map(|t| (t.name.as_str(), weight_buffer_bytes(t))).max_by_key(|(_, b)| *b).unwrap_or(("", 0));
            format!("tensor {name} is kept in buffers of up to {}; this GPU allows at most {} in one buffer", mb(bytes), mb(max_buffer))
        };
        Err(LlmError::TooLarge(message))
    }

    pub fn total(&self) -> u64 {
        self.weights.saturating_add(self.kv_cache)
    }
}

/// One layer's keys (or values): their bytes per position, and the positions the cache holds at
/// `max_context` (capped at the model's own context, as [`crate::KvCache`] is), values of `cache`.
fn kv_layer(config: &LlamaConfig, max_context: usize, cache: DType) -> (u64, u64) {
    ((config.head_count_kv * config.head_dim * cache.size()) as u64, max_context.min(config.context_length) as u64)
}

/// "268 MB", "98 KB", "512 bytes".
fn bytes_for_people(n: u64) -> String {
    match n {
        n if n >= 10_000_000 => format!("{:.0} MB", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.0} KB", n as f64 / 1e3),
        n => format!("{n} bytes"),
    }
}

/// Bytes of the largest device buffer a tensor becomes: its packed values (4 bits a value for
/// 4-bit types, 8 for the other quantized ones, their scales taking less) or f32 values, in blocks
/// of whole rows of at most [`MAX_WEIGHT_BUFFER_BYTES`] (one row at least), as the loader keeps them.
fn weight_buffer_bytes(t: &gguf::TensorInfo) -> u64 {
    use gguf::GgmlType::*;
    let bits: u64 = match t.ty {
        Q4_0 | Q4_1 | Q4K => 4,
        ty if is_quantized_on_device(ty) => 8,
        _ => 32,
    };
    let row = t.dims.first().copied().unwrap_or(0).saturating_mul(bits) / 8;
    let total = t.element_count().saturating_mul(bits) / 8;
    if total <= MAX_WEIGHT_BUFFER_BYTES as u64 { total } else { row.max(MAX_WEIGHT_BUFFER_BYTES as u64 / row.max(1) * row) }
}

/// Models this project ships or suggests, by `general.basename`, `general.size_label` and
/// `general.finetune` (`None`: the file has none): their files carry a training run's name in
/// `general.name`, or none that says what the model is.
const CURATED: &[(&str, &str, Option<&str>, &str)] =
    &[("smollm2", "135M", Some("8k-lc100k-mix1-ep2"), "SmolLM2 135M Instruct"), ("gemma-3", "270M", None, "Gemma 3 270M (base model)")];

/// llama.cpp's name for a `general.file_type` (`llama_ftype`) whose tensors this engine can load.
fn file_type_name(file_type: u64) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

/// "135M", "1.2B": a parameter count as model names write it.
fn size_label(parameters: u64) -> String {
    match parameters {
        p if p >= 1_000_000_000 => format!("{:.1}B", p as f64 / 1e9).replace(".0B", "B"),
        p if p >= 1_000_000 => format!("{}M", (p as f64 / 1e6).round()),
        p => format!("{}K", (p as f64 / 1e3).round()),
    }
}

/// The name to show: curated, else the base name (or the file's name, or the architecture) with
/// the size, which `general.name` alone often lacks.
fn display_name(basename: Option<&str>, size: Option<&str>, finetune: Option<&str>, name: Option<&str>, architecture: &str, parameters: u64) -> String {
    if let (Some(b), Some(s)) = (basename, size)
        && let Some((.., curated)) = CURATED.iter().find(|(cb, cs, cf, _)| cb.eq_ignore_ascii_case(b) && cs.eq_ignore_ascii_case(s) && *cf == finetune)
    {
        return curated.to_string();
    }
    let base = basename.or(name).unwrap_or(architecture);
    let size = size.map(str::to_string).unwrap_or_else(|| size_label(parameters));
    if base.to_lowercase().contains(&size.to_lowercase()) { base.to_string() } else { format!("{base} {size}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        let d = display_name;
        assert_eq!(d(Some("smollm2"), Some("135M"), Some("8k-lc100k-mix1-ep2"), Some("Smollm2 135M 8k Lc100K Mix1 Ep2"), "llama", 134_515_008), "SmolLM2 135M Instruct");
        assert_eq!(d(Some("smollm2"), Some("135M"), None, Some("Smollm2 135M"), "llama", 134_515_008), "smollm2 135M");
        assert_eq!(d(Some("Llama-3.2"), Some("1B"), Some("Instruct"), Some("Llama 3.2 1B Instruct"), "llama", 1_235_814_400), "Llama-3.2 1B");
        assert_eq!(d(None, None, None, Some("My Tiny Model"), "llama", 15_200_000), "My Tiny Model 15M");
        assert_eq!(d(None, None, None, Some("tiny 15M"), "llama", 15_200_000), "tiny 15M");
        assert_eq!(d(None, None, None, None, "llama", 2_500_000_000), "llama 2.5B");
        assert_eq!(size_label(7_000_000_000), "7B");
        assert_eq!(d(Some("gemma-3"), Some("270M"), None, Some("Gemma 3 270m"), "gemma3", 268_098_176), "Gemma 3 270M (base model)");
    }
}
