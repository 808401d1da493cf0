//! The llama architecture: configuration, modules, forward pass.
//!
//! Pre-norm decoder blocks: RMSNorm → attention with rotary position embeddings and grouped
//! key/value heads → residual; RMSNorm → SwiGLU feed-forward → residual. A final RMSNorm and
//! the output head (often the token embeddings, tied) give next-token logits. Names follow the
//! GGUF tensor names (`blk.N.attn_q.weight`, …), which follow llama.cpp.
//!
//! GGUF stores `attn_q` and `attn_k` with rows permuted for llama.cpp's rotary embedding,
//! which rotates adjacent pairs `(x0, x1), (x2, x3), …` of each head. So this implementation
//! rotates adjacent pairs too, and uses the weights exactly as stored.

use burn::tensor::{Device, Int, Tensor, TensorData};
use gguf::Gguf;

use crate::error::{LlmError, Result};
use crate::ops::{self, Heads};
use crate::weights::{Linear, WeightLoader, is_loadable};

/// The tensors of one block, `blk.N.{part}.weight`, in the order `check_tensors` checks them.
const BLOCK_TENSORS: [&str; 9] =
    ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"];

/// A header value that is present but makes no sense for the model (a format error).
fn bad_metadata(key: &str, reason: String) -> LlmError {
    LlmError::Format(gguf::GgufError::BadMetadata { key: key.into(), reason })
}

/// Hyper-parameters, read from the GGUF's `llama.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
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

impl LlamaConfig {
    /// Read and check the configuration. Fails with [`LlmError::Unsupported`] for any
    /// architecture other than llama and for tensor types this engine cannot run, so a caller
    /// holding only the header can refuse a model before downloading the rest.
    ///
    /// Hostile headers fail with [`LlmError::Format`] before anything is sized by them: the
    /// block count must be backed by the tensor count, and every tensor the model uses must
    /// have the shape the dimensions give it and its data inside [`Gguf::file_len`], so no
    /// dimension can claim more than the file holds.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let arch = g.architecture()?;
        if arch != "llama" {
            return Err(LlmError::Unsupported(format!(
                "architecture {arch:?}: this engine runs llama-architecture models only"
            )));
        }
        let int = |key: &str| -> Result<usize> {
            let v = g.get_u64(&format!("llama.{key}"))?;
            usize::try_from(v).map_err(|_| LlmError::Unsupported(format!("llama.{key} = {v} is too large")))
        };
        let int_or = |key: &str, default: usize| -> Result<usize> {
            if g.get(&format!("llama.{key}")).is_some() { int(key) } else { Ok(default) }
        };
        let float_or = |key: &str, default: f32| -> Result<f32> {
            match g.get(&format!("llama.{key}")) {
                Some(_) => Ok(g.get_f64(&format!("llama.{key}"))? as f32),
                None => Ok(default),
            }
        };

        let embedding_length = int("embedding_length")?;
        let head_count = int("attention.head_count")?;
        if head_count == 0 || embedding_length == 0 {
            return Err(LlmError::Unsupported("zero heads or zero embedding length".into()));
        }
        let head_count_kv = int_or("attention.head_count_kv", head_count)?;
        if head_count_kv == 0 || head_count % head_count_kv != 0 {
            return Err(LlmError::Unsupported(format!(
                "{head_count} attention heads cannot share {head_count_kv} key/value heads evenly"
            )));
        }
        let head_dim = int_or("attention.key_length", embedding_length / head_count)?;
        let value_dim = int_or("attention.value_length", head_dim)?;
        if value_dim != head_dim || head_dim == 0 || head_dim % 2 != 0 {
            return Err(LlmError::Unsupported(format!("head sizes key {head_dim} / value {value_dim}")));
        }
        let rope_dimensions = int_or("rope.dimension_count", head_dim)?;
        if rope_dimensions > head_dim || rope_dimensions % 2 != 0 {
            return Err(LlmError::Unsupported(format!("rope dimension count {rope_dimensions}")));
        }
        let rope_freq_scale = match g.get("llama.rope.scaling.type").and_then(|v| v.as_str()) {
            None | Some("none") => 1.0,
            Some("linear") => {
                let factor = float_or("rope.scaling.factor", 1.0)?;
                if !(factor.is_finite() && factor > 0.0) {
                    return Err(bad_metadata("llama.rope.scaling.factor", format!("{factor} is not a positive number")));
                }
                1.0 / factor.max(1e-6)
            }
            Some(other) => return Err(LlmError::Unsupported(format!("rope scaling {other:?}"))),
        };
        let rope_freq_base = float_or("rope.freq_base", 10_000.0)?;
        if !(rope_freq_base.is_finite() && rope_freq_base > 0.0) {
            return Err(bad_metadata("llama.rope.freq_base", format!("{rope_freq_base} is not a positive number")));
        }
        let rms_norm_eps = float_or("attention.layer_norm_rms_epsilon", 1e-5)?;
        if !(rms_norm_eps.is_finite() && rms_norm_eps >= 0.0) {
            return Err(bad_metadata("llama.attention.layer_norm_rms_epsilon", format!("{rms_norm_eps} is not a number ≥ 0")));
        }
        let vocab_size = match g.get("llama.vocab_size") {
            Some(_) => int("vocab_size")?,
            None => g.get_array("tokenizer.ggml.tokens")?.len(),
        };
        let feed_forward_length = int("feed_forward_length")?;
        if vocab_size == 0 || feed_forward_length == 0 {
            return Err(LlmError::Unsupported("zero vocabulary size or zero feed-forward length".into()));
        }
        // The products the model allocates by; each is bounded by a tensor's size below.
        if head_count.checked_mul(head_dim).is_none() || vocab_size.checked_mul(embedding_length).is_none() {
            return Err(bad_metadata("llama.attention.head_count", "the model's dimensions overflow".into()));
        }

        // Every block has its tensors listed in the header: a block count that the tensor count
        // cannot back is refused before anything loops over the blocks.
        let block_count = int("block_count")?;
        let tensors_needed = block_count.checked_mul(BLOCK_TENSORS.len()).and_then(|n| n.checked_add(2));
        if tensors_needed.is_none_or(|n| n > g.tensors.len()) {
            return Err(bad_metadata(
                "llama.block_count",
                format!("{block_count} blocks need {} tensors each; the file has {} tensors", BLOCK_TENSORS.len(), g.tensors.len()),
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
            context_length: int_or("context_length", 2048)?,
            vocab_size,
            tied_embeddings: g.tensor("output.weight").is_none(),
        };
        config.check_tensors(g)?;
        Ok(config)
    }

    /// Every tensor the forward pass needs exists, with a type this engine can run, the shape
    /// this configuration gives it, and its data inside the file ([`Gguf::file_len`]). Every
    /// dimension is thereby bounded by the file's size.
    fn check_tensors(&self, g: &Gguf) -> Result<()> {
        let (d, f, v) = (self.embedding_length, self.feed_forward_length, self.vocab_size);
        // Checked in `from_gguf` (kv_dim ≤ q_dim, as head_count_kv divides head_count).
        let (q_dim, kv_dim) = (self.head_count * self.head_dim, self.head_count_kv * self.head_dim);
        let check = |name: &str, dims: &[usize]| -> Result<()> {
            let info = g.tensor(name).ok_or_else(|| LlmError::Unsupported(format!("missing tensor {name}")))?;
            if !is_loadable(info.ty) {
                return Err(LlmError::Unsupported(format!(
                    "tensor {name} is {}; supported types are F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K",
                    info.ty
                )));
            }
            WeightLoader::check_shape(info, dims)?;
            g.tensor_range(info, g.file_len)?;
            Ok(())
        };
        check("token_embd.weight", &[v, d])?;
        check("output_norm.weight", &[d])?;
        if !self.tied_embeddings {
            check("output.weight", &[v, d])?;
        }
        for i in 0..self.block_count {
            for (part, dims) in BLOCK_TENSORS.iter().zip([
                &[d][..],
                &[q_dim, d],
                &[kv_dim, d],
                &[kv_dim, d],
                &[d, q_dim],
                &[d],
                &[f, d],
                &[f, d],
                &[d, f],
            ]) {
                check(&format!("blk.{i}.{part}.weight"), dims)?;
            }
        }
        if let Some(info) = g.tensor("rope_freqs.weight") {
            if !info.ty.can_dequantize() {
                return Err(LlmError::Unsupported(format!("tensor rope_freqs.weight is {}", info.ty)));
            }
            WeightLoader::check_shape(info, &[self.rope_dimensions / 2])?;
            g.tensor_range(info, g.file_len)?;
        }
        Ok(())
    }

    /// Number of weights, for display.
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

/// Query, key and value projections: one stacked matrix when their layouts allow, so one
/// kernel computes all three.
enum QkvProjection {
    Stacked(Linear),
    Separate(Linear, Linear, Linear),
}

impl QkvProjection {
    fn new(q: Linear, k: Linear, v: Linear) -> Self {
        match Linear::stack_rows(&[&q, &k, &v]) {
            Some(stacked) => Self::Stacked(stacked),
            None => Self::Separate(q, k, v),
        }
    }

    /// `[t, d] → [t, (heads + 2 kv_heads) × head_dim]`: queries, then keys, then values.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Stacked(w) => w.forward(x),
            Self::Separate(q, k, v) => Tensor::cat(vec![q.forward(x.clone()), k.forward(x.clone()), v.forward(x)], 1),
        }
    }

    fn linears(&self) -> Vec<&Linear> {
        match self {
            Self::Stacked(w) => vec![w],
            Self::Separate(q, k, v) => vec![q, k, v],
        }
    }
}

struct Attention {
    qkv: QkvProjection,
    output: Linear,
}

/// The SwiGLU feed-forward. Gate and up projections are stacked into one matrix when their
/// layouts allow, so one kernel computes both and their product.
enum GateUp {
    Stacked(Linear),
    Separate(Linear, Linear),
}

impl GateUp {
    fn new(gate: Linear, up: Linear) -> Self {
        match Linear::stack_rows(&[&gate, &up]) {
            Some(stacked) => Self::Stacked(stacked),
            None => Self::Separate(gate, up),
        }
    }

    /// `silu(x · gateᵀ) * (x · upᵀ)`.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Stacked(w) => w.swiglu_stacked(x),
            Self::Separate(gate, up) => burn::tensor::activation::silu(gate.forward(x.clone())) * up.forward(x),
        }
    }

    fn linears(&self) -> Vec<&Linear> {
        match self {
            Self::Stacked(w) => vec![w],
            Self::Separate(g, u) => vec![g, u],
        }
    }
}

struct FeedForward {
    gate_up: GateUp,
    down: Linear,
}

struct Block {
    attn_norm: Tensor<1>,
    attn: Attention,
    ffn_norm: Tensor<1>,
    ffn: FeedForward,
}

/// A llama model on the device.
pub struct Llama {
    pub config: LlamaConfig,
    token_embd: Linear,
    blocks: Vec<Block>,
    output_norm: Tensor<1>,
    /// `None` when tied to `token_embd`.
    output: Option<Linear>,
    /// Per-pair frequency divisors (`rope_freqs.weight`, Llama 3.1+).
    rope_freq_factors: Option<Vec<f32>>,
    device: Device,
}

/// Keys and values of every position seen so far, per block: `[kv_heads, capacity, head_dim]`.
pub struct KvCache {
    /// Keys and values per block.
    layers: Vec<(Tensor<3>, Tensor<3>)>,
    len: usize,
    capacity: usize,
    max: usize,
}

impl KvCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most positions this cache will hold (the model's context length, or less).
    pub fn max_len(&self) -> usize {
        self.max
    }

    /// Forget every position from `len` on; the first `len` stay valid for reuse.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Device bytes held by the cache.
    pub fn device_bytes(&self) -> usize {
        self.layers.iter().map(|(k, v)| (k.shape().num_elements() + v.shape().num_elements()) * 4).sum()
    }

    /// Make room for `needed` positions, doubling so appends stay amortised O(1).
    fn reserve(&mut self, needed: usize) {
        if needed <= self.capacity {
            return;
        }
        let new_capacity = needed.max(self.capacity * 2).max(256).next_multiple_of(64).min(self.max);
        for (k, v) in &mut self.layers {
            let [heads, _, dim] = k.dims();
            let grow = |old: &Tensor<3>| {
                let fresh = Tensor::<3>::zeros([heads, new_capacity, dim], &old.device());
                if self.len == 0 { fresh } else { fresh.slice_assign([0..heads, 0..self.len, 0..dim], old.clone().slice([0..heads, 0..self.len, 0..dim])) }
            };
            *k = grow(k);
            *v = grow(v);
        }
        self.capacity = new_capacity;
    }
}

impl Llama {
    /// Upload the weights of a llama GGUF held in memory.
    pub fn load(gguf: &Gguf, file: &[u8], device: &Device) -> Result<Self> {
        let config = LlamaConfig::from_gguf(gguf)?;
        gguf.check_data(file.len() as u64)?;
        let w = WeightLoader { gguf, file, device };
        let c = &config;
        let (d, q_dim, kv_dim) = (c.embedding_length, c.head_count * c.head_dim, c.head_count_kv * c.head_dim);

        let token_embd = w.linear("token_embd.weight", c.vocab_size, d)?;
        let mut blocks = Vec::with_capacity(c.block_count);
        for i in 0..c.block_count {
            let name = |part: &str| format!("blk.{i}.{part}.weight");
            blocks.push(Block {
                attn_norm: w.vector(&name("attn_norm"), d)?,
                attn: Attention {
                    qkv: QkvProjection::new(
                        w.linear(&name("attn_q"), q_dim, d)?,
                        w.linear(&name("attn_k"), kv_dim, d)?,
                        w.linear(&name("attn_v"), kv_dim, d)?,
                    ),
                    output: w.linear(&name("attn_output"), d, q_dim)?,
                },
                ffn_norm: w.vector(&name("ffn_norm"), d)?,
                ffn: FeedForward {
                    gate_up: GateUp::new(
                        w.linear(&name("ffn_gate"), c.feed_forward_length, d)?,
                        w.linear(&name("ffn_up"), c.feed_forward_length, d)?,
                    ),
                    down: w.linear(&name("ffn_down"), d, c.feed_forward_length)?,
                },
            });
        }
        let output = if c.tied_embeddings { None } else { Some(w.linear("output.weight", c.vocab_size, d)?) };
        let rope_freq_factors = match gguf.tensor("rope_freqs.weight") {
            Some(info) => {
                let factors = gguf::dequantize(info.ty, gguf.tensor_data(file, info)?)?;
                if factors.len() != c.rope_dimensions / 2 {
                    return Err(LlmError::Unsupported(format!("rope_freqs.weight has {} entries", factors.len())));
                }
                Some(factors)
            }
            None => None,
        };
        Ok(Self {
            output_norm: w.vector("output_norm.weight", d)?,
            config,
            token_embd,
            blocks,
            output,
            rope_freq_factors,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A cache for up to `max_len` positions (capped at the model's context length).
    pub fn new_cache(&self, max_len: usize) -> KvCache {
        let c = &self.config;
        let empty = || Tensor::<3>::zeros([c.head_count_kv, 0, c.head_dim], &self.device);
        KvCache {
            layers: (0..c.block_count).map(|_| (empty(), empty())).collect(),
            len: 0,
            capacity: 0,
            max: max_len.min(c.context_length).max(1),
        }
    }

    /// Device bytes held by the weights.
    pub fn device_bytes(&self) -> usize {
        let linears = self.blocks.iter().flat_map(|b| {
            let mut all = b.attn.qkv.linears();
            all.extend(b.ffn.gate_up.linears());
            all.extend([&b.attn.output, &b.ffn.down]);
            all
        });
        let norms = (2 * self.blocks.len() + 1) * self.config.embedding_length * 4;
        linears.chain([&self.token_embd]).chain(self.output.as_ref()).map(Linear::device_bytes).sum::<usize>() + norms
    }

    /// cos and sin of each rotated pair's angle at each position, `[positions, rope_dimensions / 2]`,
    /// computed as ggml's `rope_f32` does (a running product of the frequency ratio, in f32).
    fn rope_tables(&self, start: usize, count: usize) -> (Tensor<2>, Tensor<2>) {
        let c = &self.config;
        let pairs = c.rope_dimensions / 2;
        let ratio = c.rope_freq_base.powf(-2.0 / c.rope_dimensions as f32);
        let mut cos = Vec::with_capacity(count * pairs);
        let mut sin = Vec::with_capacity(count * pairs);
        for p in start..start + count {
            let mut theta = p as f32;
            for i in 0..pairs {
                let factor = self.rope_freq_factors.as_ref().map_or(1.0, |f| f[i]);
                let angle = c.rope_freq_scale * theta / factor;
                cos.push(angle.cos());
                sin.push(angle.sin());
                theta *= ratio;
            }
        }
        (
            Tensor::from_data(TensorData::new(cos, [count, pairs]), &self.device),
            Tensor::from_data(TensorData::new(sin, [count, pairs]), &self.device),
        )
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
        if start + count > cache.max {
            return Err(LlmError::BadRequest(format!(
                "{} positions do not fit the context of {} tokens",
                start + count,
                cache.max
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(LlmError::BadRequest(format!("token id {bad} is outside the vocabulary of {}", c.vocab_size)));
        }
        cache.reserve(start + count);

        let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [count]), &self.device);
        let mut x = self.token_embd.rows(ids);
        let (cos, sin) = self.rope_tables(start, count);
        let heads = Heads { heads: c.head_count, kv_heads: c.head_count_kv, head_dim: c.head_dim, rope_dims: c.rope_dimensions };

        let layers = std::mem::take(&mut cache.layers);
        for (block, (k_cache, v_cache)) in self.blocks.iter().zip(layers) {
            // Attention: queries, keys and values in one product; keys and values go to the cache.
            let h = ops::rms_norm(x.clone(), &block.attn_norm, c.rms_norm_eps);
            let qkv = block.attn.qkv.forward(h);
            let (q, k_cache, v_cache) = ops::rope_and_cache(qkv, &cos, &sin, k_cache, v_cache, start, heads);
            let attended = ops::attention(q, &k_cache, &v_cache, start, heads);
            x = block.attn.output.forward_add(attended, x);
            cache.layers.push((k_cache, v_cache));

            // Feed-forward: SwiGLU.
            let h = ops::rms_norm(x.clone(), &block.ffn_norm, c.rms_norm_eps);
            let ffn = &block.ffn;
            x = ffn.down.forward_add(ffn.gate_up.forward(h), x);
        }
        cache.len = start + count;

        let x = if all_logits { x } else { x.slice([count - 1..count, 0..c.embedding_length]) };
        let x = ops::rms_norm(x, &self.output_norm, c.rms_norm_eps);
        Ok(self.output.as_ref().unwrap_or(&self.token_embd).forward(x))
    }
}
