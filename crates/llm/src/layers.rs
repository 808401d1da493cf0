//! The pieces decoder architectures share: rotary position tables, the attention block (query,
//! key and value projections with optional biases and q/k norms), the gated feed-forward, the
//! pre-norm block of llama-like models, and the token embedding with the output head. Each
//! model file (llama.rs, qwen2.rs, …) says which pieces it uses and how they connect.

use std::sync::Mutex;

use burn::tensor::{Device, Tensor, TensorData};

use crate::config::DecoderConfig;
use crate::error::{LlmError, Result};
use crate::kv_cache::KvCache;
use crate::kernels::Projection;
use crate::ops::{self, Heads};
use crate::weights::{Linear, WeightLoader};

/// Rotary position embedding of one kind of layer.
#[derive(Debug)]
pub(crate) struct Rope {
    /// Rotated dimensions of each head.
    pub dims: usize,
    pub base: f32,
    /// Linear scaling: angles are multiplied by this.
    pub scale: f32,
    /// Per-pair frequency divisors (`rope_freqs.weight`, Llama 3.1+).
    pub factors: Option<Vec<f32>>,
    /// The tables from position 0 on, kept on the device and grown by doubling, so a decode
    /// step slices its row instead of sending two small tables from the host (each host write
    /// also makes CubeCL submit the work queued before it).
    table: Mutex<Option<RopeTables>>,
}

/// cos and sin of each rotated pair's angle at each position, `[positions, dims / 2]`.
#[derive(Debug, Clone)]
pub(crate) struct RopeTables {
    pub cos: Tensor<2>,
    pub sin: Tensor<2>,
}

impl Rope {
    pub fn new(c: &DecoderConfig) -> Self {
        Self { dims: c.rope_dimensions, base: c.rope_freq_base, scale: c.rope_freq_scale, factors: None, table: Mutex::default() }
    }

    /// The same rope with another base and scale (Gemma 3's sliding-window layers).
    pub fn with_base(&self, base: f32, scale: f32) -> Self {
        Self { dims: self.dims, base, scale, factors: self.factors.clone(), table: Mutex::default() }
    }

    /// The tables for positions `start..start + count`: rows of the table kept on the device.
    pub fn tables(&self, start: usize, count: usize, device: &Device) -> RopeTables {
        let end = start + count;
        let pairs = self.dims / 2;
        // A poisoned lock only means a panic elsewhere mid-update: the table is rebuilt if short.
        let mut kept = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let rows = kept.as_ref().map_or(0, |t| t.cos.dims()[0]);
        let table = match kept.as_ref() {
            Some(table) if rows >= end && table.cos.device() == *device => table.clone(),
            _ => {
                let table = self.compute(0, end.max(2 * rows).max(256), device);
                *kept = Some(table.clone());
                table
            }
        };
        RopeTables { cos: table.cos.slice([start..end, 0..pairs]), sin: table.sin.slice([start..end, 0..pairs]) }
    }

    /// The tables for positions `start..start + count`, computed as ggml's `rope_f32` does (a
    /// running product of the frequency ratio, in f32).
    fn compute(&self, start: usize, count: usize, device: &Device) -> RopeTables {
        let pairs = self.dims / 2;
        let ratio = self.base.powf(-2.0 / self.dims as f32);
        let mut cos = Vec::with_capacity(count * pairs);
        let mut sin = Vec::with_capacity(count * pairs);
        for p in start..start + count {
            let mut theta = p as f32;
            for i in 0..pairs {
                let factor = self.factors.as_ref().map_or(1.0, |f| f[i]);
                let angle = self.scale * theta / factor;
                cos.push(angle.cos());
                sin.push(angle.sin());
                theta *= ratio;
            }
        }
        crate::device_work::count_upload(cos.len() * 4);
        crate::device_work::count_upload(sin.len() * 4);
        RopeTables {
            cos: Tensor::from_data(TensorData::new(cos, [count, pairs]), device),
            sin: Tensor::from_data(TensorData::new(sin, [count, pairs]), device),
        }
    }

    /// `rope_freqs.weight` when the file has it (Llama 3.1-style frequency divisors).
    pub fn load_factors(&mut self, w: &WeightLoader) -> Result<()> {
        let Some(info) = w.gguf.tensor("rope_freqs.weight") else { return Ok(()) };
        let factors = gguf::dequantize(info.ty, &w.data(info)?)?;
        if factors.len() != self.dims / 2 {
            return Err(LlmError::Unsupported(format!("rope_freqs.weight has {} entries", factors.len())));
        }
        self.factors = Some(factors);
        Ok(())
    }
}

/// A block's input with the RMSNorm that comes before its first products, not yet applied: a
/// quantized product takes the norm itself (one dispatch instead of two on a GPU).
pub(crate) struct PreNormed<'a> {
    pub x: Tensor<2>,
    pub weight: &'a Tensor<1>,
    pub eps: f32,
}

impl PreNormed<'_> {
    /// The normalized input, for products that cannot take the norm themselves.
    fn apply(self) -> Tensor<2> {
        ops::rms_norm(self.x, self.weight, self.eps)
    }

    /// `rms_norm(x) · wᵀ` through `projection`.
    fn through(self, w: &Linear, projection: Projection) -> Tensor<2> {
        w.normed(self.x, self.weight, self.eps, projection)
    }
}

/// Query, key and value projections: one stacked matrix when their layouts allow (or the file
/// stores them fused), so one kernel computes all three.
pub(crate) enum QkvProjection {
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
    fn forward(&self, input: PreNormed) -> Tensor<2> {
        match self {
            Self::Stacked(w) => input.through(w, Projection::Plain),
            Self::Separate(q, k, v) => {
                let x = input.apply();
                Tensor::cat(vec![q.forward(x.clone()), k.forward(x.clone()), v.forward(x)], 1)
            }
        }
    }

    fn linears(&self) -> Vec<&Linear> {
        match self {
            Self::Stacked(w) => vec![w],
            Self::Separate(q, k, v) => vec![q, k, v],
        }
    }
}

/// Which optional parts an architecture's attention has.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AttentionParts {
    /// `attn_{q,k,v}.bias` (Qwen 2).
    pub bias: bool,
    /// `attn_{q,k}_norm.weight`: RMSNorm of each query and key head before rope (Qwen 3, Gemma 3).
    pub qk_norm: bool,
    /// One `attn_qkv.weight` instead of three matrices (Phi-3), when the file has it.
    pub fused_qkv: bool,
}

/// Self-attention with rotary embeddings over the KV cache.
pub(crate) struct Attention {
    qkv: QkvProjection,
    /// Query, key and value biases, concatenated as the projection's output.
    bias: Option<Tensor<1>>,
    qk_norm: Option<(Tensor<1>, Tensor<1>)>,
    /// Multiplies the rotated queries, so that the kernel's `1 / sqrt(head_dim)` becomes the
    /// model's score scale (Gemma 3 27B); `None` when they agree.
    pub query_scale: Option<f32>,
    pub output: Linear,
}

impl Attention {
    /// Block `i`'s tensors, checked by the architecture's `check_tensors`.
    pub fn load(w: &WeightLoader, i: usize, c: &DecoderConfig, parts: AttentionParts) -> Result<Self> {
        let name = |part: &str| format!("blk.{i}.{part}");
        let (d, (q_dim, kv_dim)) = (c.embedding_length, c.qkv_dims());
        let qkv = if parts.fused_qkv && w.has(&name("attn_qkv.weight")) {
            QkvProjection::Stacked(w.linear(&name("attn_qkv.weight"), q_dim + 2 * kv_dim, d)?)
        } else {
            QkvProjection::new(
                w.linear(&name("attn_q.weight"), q_dim, d)?,
                w.linear(&name("attn_k.weight"), kv_dim, d)?,
                w.linear(&name("attn_v.weight"), kv_dim, d)?,
            )
        };
        let bias = if parts.bias {
            let parts = [w.vector(&name("attn_q.bias"), q_dim)?, w.vector(&name("attn_k.bias"), kv_dim)?, w.vector(&name("attn_v.bias"), kv_dim)?];
            Some(Tensor::cat(parts.to_vec(), 0))
        } else {
            None
        };
        let qk_norm = if parts.qk_norm {
            Some((w.vector(&name("attn_q_norm.weight"), c.head_dim)?, w.vector(&name("attn_k_norm.weight"), c.head_dim)?))
        } else {
            None
        };
        Ok(Self { qkv, bias, qk_norm, query_scale: None, output: w.linear(&name("attn_output.weight"), d, q_dim)? })
    }

    /// The same attention with its queries multiplied by `scale` (see `query_scale`).
    pub fn with_query_scale(self, scale: Option<f32>) -> Self {
        Self { query_scale: scale, ..self }
    }

    /// Attention of the normalized input `h [t, d]` at positions `start..start + t`: keys and
    /// values go into `layer`'s cache; returns the attended values `[t, heads × head_dim]`,
    /// before the output projection, and the cache.
    pub fn attend(&self, h: PreNormed, layer: (Tensor<3>, Tensor<3>), start: usize, rope: &RopeTables, heads: Heads, eps: f32) -> (Tensor<2>, (Tensor<3>, Tensor<3>)) {
        let mut qkv = self.qkv.forward(h);
        if let Some(bias) = &self.bias {
            qkv = qkv + bias.clone().unsqueeze::<2>();
        }
        if let Some((q_norm, k_norm)) = &self.qk_norm {
            qkv = ops::qk_norm(qkv, q_norm, k_norm, eps, heads);
        }
        let Some(scale) = self.query_scale else {
            let (attended, k_cache, v_cache) = ops::rope_cache_attention(qkv, &rope.cos, &rope.sin, layer.0, layer.1, start, heads);
            return (attended, (k_cache, v_cache));
        };
        let (q, k_cache, v_cache) = ops::rope_and_cache(qkv, &rope.cos, &rope.sin, layer.0, layer.1, start, heads);
        let attended = ops::attention(q * scale, &k_cache, &v_cache, start, heads);
        (attended, (k_cache, v_cache))
    }

    pub fn device_bytes(&self) -> usize {
        let vectors = self.bias.iter().chain(self.qk_norm.iter().flat_map(|(q, k)| [q, k])).map(|v| v.shape().num_elements() * 4).sum::<usize>();
        self.qkv.linears().into_iter().chain([&self.output]).map(Linear::device_bytes).sum::<usize>() + vectors
    }
}

/// The gate's activation in a gated feed-forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// SwiGLU (llama, Qwen, Phi-3).
    Silu,
    /// GeGLU with the tanh approximation of GELU (Gemma).
    GeluTanh,
}

/// Gate and up projections, stacked into one matrix when their layouts allow (or the file
/// stores them fused, gate first), so one kernel computes both and their product.
enum GateUp {
    Stacked(Linear),
    Separate(Linear, Linear),
}

/// `down(act(x · gateᵀ) * (x · upᵀ))`.
pub(crate) struct FeedForward {
    gate_up: GateUp,
    pub down: Linear,
    activation: Activation,
}

impl FeedForward {
    /// Block `i`'s `ffn_gate`, `ffn_up` and `ffn_down`; with `fused`, `ffn_up` holds the gate's
    /// rows then the up projection's (Phi-3) and there is no `ffn_gate`.
    pub fn load(w: &WeightLoader, i: usize, c: &DecoderConfig, fused: bool, activation: Activation) -> Result<Self> {
        let name = |part: &str| format!("blk.{i}.{part}.weight");
        let (d, f) = (c.embedding_length, c.feed_forward_length);
        let gate_up = if fused {
            GateUp::Stacked(w.linear(&name("ffn_up"), 2 * f, d)?)
        } else {
            let (gate, up) = (w.linear(&name("ffn_gate"), f, d)?, w.linear(&name("ffn_up"), f, d)?);
            match Linear::stack_rows(&[&gate, &up]) {
                Some(stacked) => GateUp::Stacked(stacked),
                None => GateUp::Separate(gate, up),
            }
        };
        Ok(Self { gate_up, down: w.linear(&name("ffn_down"), d, f)?, activation })
    }

    /// `act(x · gateᵀ) * (x · upᵀ)` of the normalized input, the input of the down projection.
    pub fn hidden(&self, input: PreNormed) -> Tensor<2> {
        match (&self.gate_up, self.activation) {
            (GateUp::Stacked(w), Activation::Silu) => input.through(w, Projection::SwiGlu),
            (GateUp::Stacked(w), Activation::GeluTanh) => input.through(w, Projection::GeGlu),
            (GateUp::Separate(gate, up), Activation::Silu) => {
                let x = input.apply();
                burn::tensor::activation::silu(gate.forward(x.clone())) * up.forward(x)
            }
            (GateUp::Separate(gate, up), Activation::GeluTanh) => {
                let x = input.apply();
                ops::gelu_mul(gate.forward(x.clone()), up.forward(x))
            }
        }
    }

    pub fn device_bytes(&self) -> usize {
        let gate_up = match &self.gate_up {
            GateUp::Stacked(w) => w.device_bytes(),
            GateUp::Separate(g, u) => g.device_bytes() + u.device_bytes(),
        };
        gate_up + self.down.device_bytes()
    }
}

/// The pre-norm decoder block of llama-like models: RMSNorm → attention → residual; RMSNorm →
/// feed-forward → residual.
pub(crate) struct PreNormBlock {
    attn_norm: Tensor<1>,
    attn: Attention,
    ffn_norm: Tensor<1>,
    ffn: FeedForward,
}

impl PreNormBlock {
    pub fn load(w: &WeightLoader, i: usize, c: &DecoderConfig, attention: AttentionParts, fused_ffn: bool) -> Result<Self> {
        let d = c.embedding_length;
        Ok(Self {
            attn_norm: w.vector(&format!("blk.{i}.attn_norm.weight"), d)?,
            attn: Attention::load(w, i, c, attention)?,
            ffn_norm: w.vector(&format!("blk.{i}.ffn_norm.weight"), d)?,
            ffn: FeedForward::load(w, i, c, fused_ffn, Activation::Silu)?,
        })
    }

    pub fn device_bytes(&self) -> usize {
        self.attn.device_bytes() + self.ffn.device_bytes() + (self.attn_norm.shape().num_elements() + self.ffn_norm.shape().num_elements()) * 4
    }
}

/// A stack of [`PreNormBlock`]s with one rope: llama, Qwen 2, Qwen 3, Phi-3.
pub(crate) struct PreNormDecoder {
    pub blocks: Vec<PreNormBlock>,
    pub rope: Rope,
    pub heads: Heads,
    pub eps: f32,
}

impl PreNormDecoder {
    /// Runs `x [t, d]` (embedded tokens at positions `cache.len()..`) through every block,
    /// appending keys and values to the cache.
    pub fn forward(&self, mut x: Tensor<2>, cache: &mut KvCache) -> Tensor<2> {
        let (start, count) = (cache.len, x.dims()[0]);
        let rope = self.rope.tables(start, count, &x.device());
        let layers = std::mem::take(&mut cache.layers);
        for (block, layer) in self.blocks.iter().zip(layers) {
            let h = PreNormed { x: x.clone(), weight: &block.attn_norm, eps: self.eps };
            let (attended, layer) = block.attn.attend(h, layer, start, &rope, self.heads, self.eps);
            x = block.attn.output.forward_add(attended, x);
            cache.layers.push(layer);
            let h = PreNormed { x: x.clone(), weight: &block.ffn_norm, eps: self.eps };
            x = block.ffn.down.forward_add(block.ffn.hidden(h), x);
        }
        x
    }

    pub fn device_bytes(&self) -> usize {
        self.blocks.iter().map(PreNormBlock::device_bytes).sum()
    }
}

/// The token embedding table, the final norm and the output head (often the embedding table,
/// tied).
pub(crate) struct TokenIo {
    token_embd: Linear,
    output_norm: Tensor<1>,
    /// `None` when tied to `token_embd`.
    output: Option<Linear>,
}

impl TokenIo {
    pub fn load(w: &WeightLoader, c: &DecoderConfig) -> Result<Self> {
        let d = c.embedding_length;
        Ok(Self {
            token_embd: w.linear("token_embd.weight", c.vocab_size, d)?,
            output_norm: w.vector("output_norm.weight", d)?,
            output: if c.tied_embeddings { None } else { Some(w.linear("output.weight", c.vocab_size, d)?) },
        })
    }

    /// Embedding rows of `tokens`, `[tokens, d]`.
    pub fn embed(&self, tokens: &[u32], device: &Device) -> Tensor<2> {
        self.token_embd.rows_of(tokens, device)
    }

    /// Whether ids on the device can be looked up ([`TokenIo::embed_ids`]): a split table needs
    /// them on the host.
    pub fn embeds_device_ids(&self) -> bool {
        !matches!(self.token_embd, Linear::Split(_))
    }

    /// Embedding rows of ids already on the device, `[ids, d]` (see [`Self::embeds_device_ids`]).
    pub fn embed_ids(&self, ids: Tensor<1, burn::tensor::Int>) -> Tensor<2> {
        self.token_embd.rows(ids)
    }

    /// Logits of the last row of `x [t, d]`, or of every row when `all`.
    pub fn logits(&self, x: Tensor<2>, all: bool, eps: f32) -> Tensor<2> {
        let [t, d] = x.dims();
        let x = if all { x } else { x.slice([t - 1..t, 0..d]) };
        PreNormed { x, weight: &self.output_norm, eps }.through(self.output.as_ref().unwrap_or(&self.token_embd), Projection::Plain)
    }

    pub fn device_bytes(&self) -> usize {
        self.token_embd.device_bytes() + self.output.as_ref().map_or(0, Linear::device_bytes) + self.output_norm.shape().num_elements() * 4
    }
}
