//! A decoder model of any supported architecture on the device: its configuration, token
//! embedding and output head, and the architecture's blocks.

use burn::tensor::{Device, Int, Tensor};
use gguf::Gguf;

use crate::config::{Architecture, DecoderConfig};
use crate::error::{LlmError, Result};
use crate::gemma3::Gemma3;
use crate::kv_cache::{KvCache, KvPrecision};
use crate::layers::{PreNormDecoder, TokenIo};
use crate::weights::{TensorSource, WeightLoader};
use crate::{llama, phi3, qwen2, qwen3};

/// The blocks of one architecture.
enum Blocks {
    /// llama, Qwen 2, Qwen 3, Phi-3.
    PreNorm(PreNormDecoder),
    Gemma3(Gemma3),
}

/// A model on the device, ready to run tokens.
pub struct Model {
    pub config: DecoderConfig,
    architecture: Architecture,
    io: TokenIo,
    blocks: Blocks,
    device: Device,
}

impl Model {
    /// Upload the weights of a GGUF held in memory.
    pub fn load(gguf: &Gguf, file: &[u8], device: &Device) -> Result<Self> {
        Self::load_from(gguf, &file, device)
    }

    /// Upload the weights of a GGUF whose header is `gguf`, reading each tensor from `source`
    /// as it is uploaded.
    pub fn load_from(gguf: &Gguf, source: &dyn TensorSource, device: &Device) -> Result<Self> {
        let config = DecoderConfig::from_gguf(gguf)?;
        let architecture = Architecture::of(gguf)?;
        gguf.check_data(source.file_len())?;
        let w = WeightLoader { gguf, file: source, device };
        let io = TokenIo::load(&w, &config)?;
        let blocks = match architecture {
            Architecture::Llama => Blocks::PreNorm(llama::load(&w, &config)?),
            Architecture::Qwen2 => Blocks::PreNorm(qwen2::load(&w, &config)?),
            Architecture::Qwen3 => Blocks::PreNorm(qwen3::load(&w, &config)?),
            Architecture::Phi3 => Blocks::PreNorm(phi3::load(&w, &config)?),
            Architecture::Gemma3 => Blocks::Gemma3(Gemma3::load(&w, &config)?),
        };
        Ok(Self { config, architecture, io, blocks, device: device.clone() })
    }

    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A cache for up to `max_len` positions (capped at the model's context length), in f16 on
    /// a GPU with `shader-f16` ([`KvPrecision::Auto`]).
    pub fn new_cache(&self, max_len: usize) -> KvCache {
        self.new_cache_in(max_len, KvPrecision::Auto)
    }

    /// A cache for up to `max_len` positions of the type `precision` gives on this device.
    pub fn new_cache_in(&self, max_len: usize, precision: KvPrecision) -> KvCache {
        let c = &self.config;
        KvCache::new(c.block_count, c.head_count_kv, c.head_dim, max_len.min(c.context_length), &self.device, precision.dtype_on(&self.device))
    }

    /// Device bytes held by the weights.
    pub fn device_bytes(&self) -> usize {
        let blocks = match &self.blocks {
            Blocks::PreNorm(b) => b.device_bytes(),
            Blocks::Gemma3(b) => b.device_bytes(),
        };
        self.io.device_bytes() + blocks
    }

    /// Run `tokens` through the model after the positions already in `cache`, appending their
    /// keys and values. Returns logits `[1, vocab]` for the last token, or `[tokens, vocab]` for
    /// all of them when `all_logits`.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, all_logits: bool) -> Result<Tensor<2>> {
        let c = &self.config;
        let count = tokens.len();
        let start = cache.len;
        if count == 0 {
            return Err(LlmError::BadRequest("no tokens to run".into()));
        }
        if start + count > cache.max_len() {
            return Err(LlmError::BadRequest(format!("{} positions do not fit the context of {} tokens", start + count, cache.max_len())));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(LlmError::BadRequest(format!("token id {bad} is outside the vocabulary of {}", c.vocab_size)));
        }
        let x = self.io.embed(tokens, &self.device);
        self.run_blocks(x, cache, all_logits)
    }

    /// Whether [`Model::forward_ids`] can run: the embedding table is one matrix on the device.
    pub fn embeds_device_ids(&self) -> bool {
        self.io.embeds_device_ids()
    }

    /// [`Model::forward`] of one token whose id is already on the device (`ids [1]`, as an
    /// argmax left it), returning the logits `[1, vocab]`: decoding never sends the id from the
    /// host. The id is not checked here: it comes from an argmax over this model's vocabulary.
    pub fn forward_ids(&self, ids: Tensor<1, Int>, cache: &mut KvCache) -> Result<Tensor<2>> {
        let start = cache.len;
        if start + 1 > cache.max_len() {
            return Err(LlmError::BadRequest(format!("{} positions do not fit the context of {} tokens", start + 1, cache.max_len())));
        }
        if !self.embeds_device_ids() {
            return Err(LlmError::Unsupported("this model's embedding table is split across buffers: ids must come from the host".into()));
        }
        let x = self.io.embed_ids(ids);
        self.run_blocks(x, cache, false)
    }

    /// The blocks and the head over embedded tokens `x [t, d]` at positions `cache.len..`.
    fn run_blocks(&self, x: Tensor<2>, cache: &mut KvCache, all_logits: bool) -> Result<Tensor<2>> {
        let c = &self.config;
        let (start, count) = (cache.len, x.dims()[0]);
        if cache.layers.len() != c.block_count {
            return Err(LlmError::BadRequest("the cache was made for another model".into()));
        }
        cache.reserve(start + count);
        let x = match &self.blocks {
            Blocks::PreNorm(b) => b.forward(x, cache),
            Blocks::Gemma3(b) => b.forward(x, cache),
        };
        cache.len = start + count;
        Ok(self.io.logits(x, all_logits, c.rms_norm_eps))
    }
}
