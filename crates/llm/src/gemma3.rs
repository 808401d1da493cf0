//! The Gemma 3 architecture, as llama.cpp's `LLM_ARCH_GEMMA3`:
//!
//! - token embeddings multiplied by √d;
//! - each block: RMSNorm → attention → RMSNorm (`post_attention_norm`) → residual; RMSNorm →
//!   GeGLU feed-forward (tanh GELU) → RMSNorm (`post_ffw_norm`) → residual. GGUF norm weights
//!   already hold Gemma's `1 + w`, so every norm is a plain RMSNorm;
//! - queries and keys RMS-normalized per head before rope (`attn_q_norm`, `attn_k_norm`);
//! - GPT-NeoX-style rope; five of every six layers attend over a sliding window of
//!   `gemma3.attention.sliding_window` positions with their own rope base (10000, or
//!   `gemma3.rope.freq_base_swa`) and no scaling; every sixth layer sees everything, with
//!   `gemma3.rope.freq_base` and the file's rope scaling;
//! - attention scores scaled by `1 / sqrt(head_dim)`, except for the 27B model (62 layers),
//!   which scales by `1 / sqrt(d / heads)`;
//! - the output head tied to the embeddings unless the file has `output.weight`.

use burn::tensor::Tensor;

use crate::config::{DecoderConfig, Metadata, TensorCheck};
use crate::error::{LlmError, Result};
use crate::kv_cache::KvCache;
use crate::layers::{Activation, Attention, AttentionParts, FeedForward, PreNormed, Rope};
use crate::llama;
use crate::ops::{self, Heads};
use crate::weights::WeightLoader;

/// Four norms, two head norms, q, k, v, output, gate, up, down.
pub(crate) const BLOCK_TENSORS: usize = 13;

/// Of every `SWA_PATTERN` layers, all but the last use the sliding window (llama.cpp's
/// `set_swa_pattern(6)` for Gemma 3).
const SWA_PATTERN: usize = 6;

pub(crate) fn check_tensors(c: &DecoderConfig, check: &TensorCheck) -> Result<()> {
    let (d, f) = (c.embedding_length, c.feed_forward_length);
    let (q_dim, kv_dim) = c.qkv_dims();
    for i in 0..c.block_count {
        let name = |part: &str| format!("blk.{i}.{part}.weight");
        for norm in ["attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"] {
            check.matrix(&name(norm), &[d])?;
        }
        check.matrix(&name("attn_q_norm"), &[c.head_dim])?;
        check.matrix(&name("attn_k_norm"), &[c.head_dim])?;
        check.matrix(&name("attn_q"), &[q_dim, d])?;
        check.matrix(&name("attn_k"), &[kv_dim, d])?;
        check.matrix(&name("attn_v"), &[kv_dim, d])?;
        check.matrix(&name("attn_output"), &[d, q_dim])?;
        check.matrix(&name("ffn_gate"), &[f, d])?;
        check.matrix(&name("ffn_up"), &[f, d])?;
        check.matrix(&name("ffn_down"), &[d, f])?;
    }
    Ok(())
}

struct Block {
    attn_norm: Tensor<1>,
    attn: Attention,
    post_attention_norm: Tensor<1>,
    ffn_norm: Tensor<1>,
    ffn: FeedForward,
    post_ffw_norm: Tensor<1>,
    /// Sliding-window layer: local rope and a window.
    local: bool,
}

pub(crate) struct Gemma3 {
    blocks: Vec<Block>,
    /// Rope of the sliding-window layers and of the global ones.
    local_rope: Rope,
    global_rope: Rope,
    local_heads: Heads,
    global_heads: Heads,
    embedding_scale: f32,
    eps: f32,
}

impl Gemma3 {
    pub fn load(w: &WeightLoader, c: &DecoderConfig) -> Result<Self> {
        let m = Metadata { g: w.gguf, arch: crate::config::Architecture::Gemma3 };
        let window = match m.int_or("attention.sliding_window", 0)? {
            0 => None,
            n => Some(n),
        };
        let local_rope = Rope::new(c).with_base(m.positive_or("rope.freq_base_swa", 10_000.0)?, 1.0);
        let global_heads = llama::heads(c, true);
        let d = c.embedding_length;
        // llama.cpp's `f_attention_scale`: the 27B model (62 layers) scales scores by the
        // embedding width per head instead of the head size; the queries are multiplied so that
        // the kernel's `1 / sqrt(head_dim)` becomes that.
        let query_scale = (c.block_count == 62).then(|| (c.head_dim as f32).sqrt() / ((c.embedding_length / c.head_count) as f32).sqrt());
        if query_scale.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
            return Err(LlmError::Unsupported("gemma3: the attention scale is not a positive number".into()));
        }
        let blocks = (0..c.block_count)
            .map(|i| {
                let norm = |part: &str| w.vector(&format!("blk.{i}.{part}.weight"), d);
                Ok(Block {
                    attn_norm: norm("attn_norm")?,
                    attn: Attention::load(w, i, c, AttentionParts { qk_norm: true, ..Default::default() })?.with_query_scale(query_scale),
                    post_attention_norm: norm("post_attention_norm")?,
                    ffn_norm: norm("ffn_norm")?,
                    ffn: FeedForward::load(w, i, c, false, Activation::GeluTanh)?,
                    post_ffw_norm: norm("post_ffw_norm")?,
                    local: window.is_some() && i % SWA_PATTERN < SWA_PATTERN - 1,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            blocks,
            local_rope,
            global_rope: Rope::new(c),
            local_heads: Heads { window, ..global_heads },
            global_heads,
            embedding_scale: (d as f32).sqrt(),
            eps: c.rms_norm_eps,
        })
    }

    /// Runs embedded tokens `x [t, d]` (at positions `cache.len()..`) through every block.
    pub fn forward(&self, x: Tensor<2>, cache: &mut KvCache) -> Tensor<2> {
        let (start, count) = (cache.len, x.dims()[0]);
        let device = x.device();
        let (local_rope, global_rope) = (self.local_rope.tables(start, count, &device), self.global_rope.tables(start, count, &device));
        let mut x = x * self.embedding_scale;
        let layers = std::mem::take(&mut cache.layers);
        for (block, layer) in self.blocks.iter().zip(layers) {
            let (rope, heads) = if block.local { (&local_rope, self.local_heads) } else { (&global_rope, self.global_heads) };
            let h = PreNormed { x: x.clone(), weight: &block.attn_norm, eps: self.eps };
            let (attended, layer) = block.attn.attend(h, layer, start, rope, heads, self.eps);
            cache.layers.push(layer);
            let attended = block.attn.output.forward(attended);
            x = x + ops::rms_norm(attended, &block.post_attention_norm, self.eps);
            let h = PreNormed { x: x.clone(), weight: &block.ffn_norm, eps: self.eps };
            let ffn = block.ffn.down.forward(block.ffn.hidden(h));
            x = x + ops::rms_norm(ffn, &block.post_ffw_norm, self.eps);
        }
        x
    }

    pub fn device_bytes(&self) -> usize {
        let norms = |b: &Block| (b.attn_norm.shape().num_elements() * 4) * 4;
        self.blocks.iter().map(|b| b.attn.device_bytes() + b.ffn.device_bytes() + norms(b)).sum()
    }
}
