//! The Qwen 3 architecture: the llama block with RMSNorm of each query and key head before
//! rope (`attn_q_norm`, `attn_k_norm`), no biases, a head size of its own
//! (`qwen3.attention.key_length`, so `heads × head_dim` may differ from the embedding width),
//! and GPT-NeoX-style rope, as llama.cpp's `LLM_ARCH_QWEN3`.

use crate::config::{DecoderConfig, TensorCheck};
use crate::error::Result;
use crate::layers::{AttentionParts, PreNormBlock, PreNormDecoder, Rope};
use crate::llama;
use crate::weights::WeightLoader;

/// The llama block's nine tensors and two head norms.
pub(crate) const BLOCK_TENSORS: usize = 11;

pub(crate) fn check_tensors(c: &DecoderConfig, check: &TensorCheck) -> Result<()> {
    llama::check_blocks(c, check)?;
    for i in 0..c.block_count {
        check.matrix(&format!("blk.{i}.attn_q_norm.weight"), &[c.head_dim])?;
        check.matrix(&format!("blk.{i}.attn_k_norm.weight"), &[c.head_dim])?;
    }
    Ok(())
}

pub(crate) fn load(w: &WeightLoader, c: &DecoderConfig) -> Result<PreNormDecoder> {
    let parts = AttentionParts { qk_norm: true, ..Default::default() };
    let blocks = (0..c.block_count).map(|i| PreNormBlock::load(w, i, c, parts, false)).collect::<Result<_>>()?;
    Ok(PreNormDecoder { blocks, rope: Rope::new(c), heads: llama::heads(c, true), eps: c.rms_norm_eps })
}
