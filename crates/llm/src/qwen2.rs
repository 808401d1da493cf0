//! The Qwen 2 architecture (Qwen 2, Qwen 2.5): the llama block with biases on the query, key
//! and value projections, and GPT-NeoX-style rope (pairs `x[i]`, `x[i + d/2]`), as llama.cpp's
//! `LLM_ARCH_QWEN2`.

use crate::config::{DecoderConfig, TensorCheck};
use crate::error::Result;
use crate::layers::{AttentionParts, PreNormBlock, PreNormDecoder, Rope};
use crate::llama;
use crate::weights::WeightLoader;

/// The llama block's nine tensors and three biases.
pub(crate) const BLOCK_TENSORS: usize = 12;

pub(crate) fn check_tensors(c: &DecoderConfig, check: &TensorCheck) -> Result<()> {
    llama::check_blocks(c, check)?;
    let (q_dim, kv_dim) = c.qkv_dims();
    for i in 0..c.block_count {
        check.vector(&format!("blk.{i}.attn_q.bias"), q_dim)?;
        check.vector(&format!("blk.{i}.attn_k.bias"), kv_dim)?;
        check.vector(&format!("blk.{i}.attn_v.bias"), kv_dim)?;
    }
    Ok(())
}

pub(crate) fn load(w: &WeightLoader, c: &DecoderConfig) -> Result<PreNormDecoder> {
    let parts = AttentionParts { bias: true, ..Default::default() };
    let blocks = (0..c.block_count).map(|i| PreNormBlock::load(w, i, c, parts, false)).collect::<Result<_>>()?;
    Ok(PreNormDecoder { blocks, rope: Rope::new(c), heads: llama::heads(c, true), eps: c.rms_norm_eps })
}
