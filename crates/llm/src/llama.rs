//! The llama architecture (also Mistral, SmolLM, TinyLlama, Llama 3.x).
//!
//! Pre-norm decoder blocks: RMSNorm → attention with rotary position embeddings and grouped
//! key/value heads → residual; RMSNorm → SwiGLU feed-forward → residual. A final RMSNorm and
//! the output head (often the token embeddings, tied) give next-token logits. Names follow the
//! GGUF tensor names (`blk.N.attn_q.weight`, …), which follow llama.cpp.
//!
//! GGUF stores `attn_q` and `attn_k` with rows permuted for llama.cpp's rotary embedding,
//! which rotates adjacent pairs `(x0, x1), (x2, x3), …` of each head. So this architecture
//! rotates adjacent pairs too, and uses the weights exactly as stored. Llama 3.1's per-pair
//! frequency divisors (`rope_freqs.weight`) and linear rope scaling apply.

use crate::config::{DecoderConfig, TensorCheck};
use crate::error::Result;
use crate::layers::{AttentionParts, PreNormBlock, PreNormDecoder, Rope};
use crate::ops::Heads;
use crate::weights::WeightLoader;

/// The configuration's earlier name, from when llama was the only architecture.
pub use crate::config::DecoderConfig as LlamaConfig;

/// Tensors of one block: norms, q, k, v, output, gate, up, down.
pub(crate) const BLOCK_TENSORS: usize = 9;

/// The shapes of every block's tensors (see [`DecoderConfig::from_gguf`]).
pub(crate) fn check_tensors(c: &DecoderConfig, check: &TensorCheck) -> Result<()> {
    check_blocks(c, check)?;
    if check.has("rope_freqs.weight") {
        check.vector("rope_freqs.weight", c.rope_dimensions / 2)?;
    }
    Ok(())
}

/// The tensors of a llama block, which Qwen 2 and Qwen 3 share.
pub(crate) fn check_blocks(c: &DecoderConfig, check: &TensorCheck) -> Result<()> {
    let (d, f) = (c.embedding_length, c.feed_forward_length);
    let (q_dim, kv_dim) = c.qkv_dims();
    for i in 0..c.block_count {
        let name = |part: &str| format!("blk.{i}.{part}.weight");
        check.matrix(&name("attn_norm"), &[d])?;
        check.matrix(&name("attn_q"), &[q_dim, d])?;
        check.matrix(&name("attn_k"), &[kv_dim, d])?;
        check.matrix(&name("attn_v"), &[kv_dim, d])?;
        check.matrix(&name("attn_output"), &[d, q_dim])?;
        check.matrix(&name("ffn_norm"), &[d])?;
        check.matrix(&name("ffn_gate"), &[f, d])?;
        check.matrix(&name("ffn_up"), &[f, d])?;
        check.matrix(&name("ffn_down"), &[d, f])?;
    }
    Ok(())
}

/// The blocks of a llama model.
pub(crate) fn load(w: &WeightLoader, c: &DecoderConfig) -> Result<PreNormDecoder> {
    let mut rope = Rope::new(c);
    rope.load_factors(w)?;
    let blocks = (0..c.block_count).map(|i| PreNormBlock::load(w, i, c, AttentionParts::default(), false)).collect::<Result<_>>()?;
    Ok(PreNormDecoder { blocks, rope, heads: heads(c, false), eps: c.rms_norm_eps })
}

/// The head shapes of a configuration without a sliding window.
pub(crate) fn heads(c: &DecoderConfig, neox: bool) -> Heads {
    Heads { heads: c.head_count, kv_heads: c.head_count_kv, head_dim: c.head_dim, rope_dims: c.rope_dimensions, neox, window: None }
}
