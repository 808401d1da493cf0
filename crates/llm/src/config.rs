//! The hyper-parameters every decoder architecture shares, read from a GGUF's `{arch}.*`
//! metadata, and the checks that make a hostile header fail before anything is sized by it.
//! What only one architecture has (Gemma 3's sliding window, Qwen 2's biases) is read by its
//! own model file.

use gguf::Gguf;

use crate::error::{LlmError, Result};
use crate::weights::{WeightLoader, is_loadable};
use crate::{gemma3, llama, phi3, qwen2, qwen3};

/// A header value that is present but makes no sense for the model (a format error).
pub(crate) fn bad_metadata(key: &str, reason: String) -> LlmError {
    LlmError::Format(gguf::GgufError::BadMetadata { key: key.into(), reason })
}

/// The model architectures this engine runs, by `general.architecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
    Phi3,
}

impl Architecture {
    pub const ALL: [Architecture; 5] = [Self::Llama, Self::Qwen2, Self::Qwen3, Self::Gemma3, Self::Phi3];

    /// The name GGUF files use, which also prefixes the architecture's metadata keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Gemma3 => "gemma3",
            Self::Phi3 => "phi3",
        }
    }

    /// The architecture of a GGUF, or [`LlmError::Unsupported`] naming the ones this engine runs.
    pub fn of(g: &Gguf) -> Result<Self> {
        let name = g.architecture()?;
        Self::ALL.into_iter().find(|a| a.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|a| a.name()).collect();
            LlmError::Unsupported(format!("architecture {name:?}: this engine runs {} models", known.join(", ")))
        })
    }

    /// The fewest tensors one block of this architecture has (its required ones).
    fn tensors_per_block(self) -> usize {
        match self {
            Self::Llama => llama::BLOCK_TENSORS,
            Self::Qwen2 => qwen2::BLOCK_TENSORS,
            Self::Qwen3 => qwen3::BLOCK_TENSORS,
            Self::Gemma3 => gemma3::BLOCK_TENSORS,
            Self::Phi3 => phi3::BLOCK_TENSORS,
        }
    }

    /// Rotary embeddings pair `x[i]` with `x[i + dims/2]` (GPT-NeoX style) rather than
    /// neighbours, as llama.cpp's `LLAMA_ROPE_TYPE_NEOX` for these architectures.
    pub fn neox_rope(self) -> bool {
        !matches!(self, Self::Llama)
    }
}

/// Hyper-parameters shared by the decoder architectures, read from `{arch}.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    pub block_count: usize,
    pub embedding_length: usize,
    pub feed_forward_length: usize,
    pub head_count: usize,
    pub head_count_kv: usize,
    pub head_dim: usize,
    /// Leading dimensions of each head that are rotated (usually all of them).
    pub rope_dimensions: usize,
    pub rope_freq_base: f32,
    /// Linear rope scaling: positions are multiplied by this (1 / scaling factor).
    pub rope_freq_scale: f32,
    pub rms_norm_eps: f32,
    pub context_length: usize,
    pub vocab_size: usize,
    /// The output head is the token embedding matrix.
    pub tied_embeddings: bool,
}

/// Reads `{arch}.{key}` values.
pub(crate) struct Metadata<'a> {
    pub g: &'a Gguf,
    pub arch: Architecture,
}

impl Metadata<'_> {
    pub fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.arch.name())
    }

    pub fn has(&self, key: &str) -> bool {
        self.g.get(&self.key(key)).is_some()
    }

    pub fn int(&self, key: &str) -> Result<usize> {
        let full = self.key(key);
        let v = self.g.get_u64(&full)?;
        usize::try_from(v).map_err(|_| LlmError::Unsupported(format!("{full} = {v} is too large")))
    }

    pub fn int_or(&self, key: &str, default: usize) -> Result<usize> {
        if self.has(key) { self.int(key) } else { Ok(default) }
    }

    pub fn float_or(&self, key: &str, default: f32) -> Result<f32> {
        if self.has(key) { Ok(self.g.get_f64(&self.key(key))? as f32) } else { Ok(default) }
    }

    /// A float that must be finite and positive when present.
    pub fn positive_or(&self, key: &str, default: f32) -> Result<f32> {
        let v = self.float_or(key, default)?;
        if !(v.is_finite() && v > 0.0) {
            return Err(bad_metadata(&self.key(key), format!("{v} is not a positive number")));
        }
        Ok(v)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.g.get(&self.key(key)).and_then(|v| v.as_str())
    }
}

impl DecoderConfig {
    /// Read and check the configuration. Fails with [`LlmError::Unsupported`] for an
    /// architecture this engine does not run and for tensor types it cannot run, so a caller
    /// holding only the header can refuse a model before downloading the rest.
    ///
    /// Hostile headers fail with [`LlmError::Format`] before anything is sized by them: the
    /// block count must be backed by the tensor count, and every tensor the model uses must
    /// have the shape the dimensions give it and its data inside [`Gguf::file_len`], so no
    /// dimension can claim more than the file holds.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let arch = Architecture::of(g)?;
        let m = Metadata { g, arch };

        let embedding_length = m.int("embedding_length")?;
        let head_count = m.int("attention.head_count")?;
        if head_count == 0 || embedding_length == 0 {
            return Err(LlmError::Unsupported("zero heads or zero embedding length".into()));
        }
        let head_count_kv = m.int_or("attention.head_count_kv", head_count)?;
        if head_count_kv == 0 || head_count % head_count_kv != 0 {
            return Err(LlmError::Unsupported(format!(
                "{head_count} attention heads cannot share {head_count_kv} key/value heads evenly"
            )));
        }
        let head_dim = m.int_or("attention.key_length", embedding_length / head_count)?;
        let value_dim = m.int_or("attention.value_length", head_dim)?;
        if value_dim != head_dim || head_dim == 0 || head_dim % 2 != 0 {
            return Err(LlmError::Unsupported(format!("head sizes key {head_dim} / value {value_dim}")));
        }
        let rope_dimensions = m.int_or("rope.dimension_count", head_dim)?;
        if rope_dimensions > head_dim || rope_dimensions % 2 != 0 {
            return Err(LlmError::Unsupported(format!("rope dimension count {rope_dimensions}")));
        }
        let rope_freq_scale = match m.str("rope.scaling.type") {
            None | Some("none") => 1.0,
            Some("linear") => 1.0 / m.positive_or("rope.scaling.factor", 1.0)?.max(1e-6),
            Some(other) => return Err(LlmError::Unsupported(format!("rope scaling {other:?}"))),
        };
        let rope_freq_base = m.positive_or("rope.freq_base", 10_000.0)?;
        let rms_norm_eps = m.float_or("attention.layer_norm_rms_epsilon", 1e-5)?;
        if !(rms_norm_eps.is_finite() && rms_norm_eps >= 0.0) {
            return Err(bad_metadata(&m.key("attention.layer_norm_rms_epsilon"), format!("{rms_norm_eps} is not a number ≥ 0")));
        }
        let vocab_size = match m.has("vocab_size") {
            true => m.int("vocab_size")?,
            false => g.get_array("tokenizer.ggml.tokens")?.len(),
        };
        let feed_forward_length = m.int("feed_forward_length")?;
        if vocab_size == 0 || feed_forward_length == 0 {
            return Err(LlmError::Unsupported("zero vocabulary size or zero feed-forward length".into()));
        }
        // The products the model allocates by; each is bounded by a tensor's size below.
        if head_count.checked_mul(head_dim).is_none() || vocab_size.checked_mul(embedding_length).is_none() {
            return Err(bad_metadata(&m.key("attention.head_count"), "the model's dimensions overflow".into()));
        }

        // Every block has its tensors listed in the header: a block count that the tensor count
        // cannot back is refused before anything loops over the blocks.
        let block_count = m.int("block_count")?;
        let per_block = arch.tensors_per_block();
        let tensors_needed = block_count.checked_mul(per_block).and_then(|n| n.checked_add(2));
        if tensors_needed.is_none_or(|n| n > g.tensors.len()) {
            return Err(bad_metadata(
                &m.key("block_count"),
                format!("{block_count} blocks need {per_block} tensors each; the file has {} tensors", g.tensors.len()),
            ));
        }

        let config = Self {
            block_count,
            embedding_length,
            feed_forward_length,
            head_count,
            head_count_kv,
            head_dim,
            rope_dimensions,
            rope_freq_base,
            rope_freq_scale,
            rms_norm_eps,
            context_length: m.int_or("context_length", 2048)?,
            vocab_size,
            tied_embeddings: g.tensor("output.weight").is_none(),
        };
        let check = TensorCheck { g };
        check.matrix("token_embd.weight", &[vocab_size, embedding_length])?;
        check.matrix("output_norm.weight", &[embedding_length])?;
        if !config.tied_embeddings {
            check.matrix("output.weight", &[vocab_size, embedding_length])?;
        }
        match arch {
            Architecture::Llama => llama::check_tensors(&config, &check)?,
            Architecture::Qwen2 => qwen2::check_tensors(&config, &check)?,
            Architecture::Qwen3 => qwen3::check_tensors(&config, &check)?,
            Architecture::Gemma3 => gemma3::check_tensors(&config, &check)?,
            Architecture::Phi3 => phi3::check_tensors(&config, &check)?,
        }
        Ok(config)
    }

    /// Query and key/value widths: `heads × head_dim` and `kv_heads × head_dim`.
    pub fn qkv_dims(&self) -> (usize, usize) {
        (self.head_count * self.head_dim, self.head_count_kv * self.head_dim)
    }

    /// Number of weights, for display (the llama layout; biases and extra norms are noise).
    pub fn parameter_count(&self) -> u64 {
        let n = |x: usize| x as u64;
        let (d, f) = (n(self.embedding_length), n(self.feed_forward_length));
        let q = n(self.head_count).saturating_mul(n(self.head_dim));
        let kv = n(self.head_count_kv).saturating_mul(n(self.head_dim));
        // q, k, v and output projections, gate, up and down, two norms.
        let block = d.saturating_mul(q.saturating_mul(2).saturating_add(kv.saturating_mul(2)).saturating_add(f.saturating_mul(3)).saturating_add(2));
        let embed = n(self.vocab_size).saturating_mul(d).saturating_mul(if self.tied_embeddings { 1 } else { 2 });
        embed.saturating_add(n(self.block_count).saturating_mul(block)).saturating_add(d)
    }
}

/// Checks tensors against the shapes a configuration gives them.
pub(crate) struct TensorCheck<'a> {
    pub g: &'a Gguf,
}

impl TensorCheck<'_> {
    /// The tensor exists, with a type this engine can run, the shape `dims` (outermost first)
    /// and its data inside the file ([`Gguf::file_len`]); every dimension is thereby bounded by
    /// the file's size.
    pub fn matrix(&self, name: &str, dims: &[usize]) -> Result<()> {
        let info = self.g.tensor(name).ok_or_else(|| LlmError::Unsupported(format!("missing tensor {name}")))?;
        if !is_loadable(info.ty) {
            return Err(LlmError::Unsupported(format!(
                "tensor {name} is {}; supported types are F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K",
                info.ty
            )));
        }
        WeightLoader::check_shape(info, dims)?;
        self.g.tensor_range(info, self.g.file_len)?;
        Ok(())
    }

    /// A vector read as f32 on the CPU (norms, biases, rope factors): any type ggml can dequantize.
    pub fn vector(&self, name: &str, len: usize) -> Result<()> {
        let info = self.g.tensor(name).ok_or_else(|| LlmError::Unsupported(format!("missing tensor {name}")))?;
        if !info.ty.can_dequantize() {
            return Err(LlmError::Unsupported(format!("tensor {name} is {}", info.ty)));
        }
        WeightLoader::check_shape(info, &[len])?;
        self.g.tensor_range(info, self.g.file_len)?;
        Ok(())
    }

    pub fn has(&self, name: &str) -> bool {
        self.g.tensor(name).is_some()
    }

    /// Refuse a model that has `name`, a tensor whose meaning this engine does not implement
    /// (running without it would silently give wrong logits).
    pub fn refuse(&self, name: &str, what: &str) -> Result<()> {
        if self.has(name) {
            return Err(LlmError::Unsupported(format!("tensor {name}: {what} is not supported")));
        }
        Ok(())
    }
}
