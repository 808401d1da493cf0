//! The Phi-3 architecture (Phi-3, Phi-3.5 mini): the llama block with the query, key and value
//! projections fused in one `attn_qkv` matrix (separate ones are accepted too) and the gate and
//! up projections fused in `ffn_up` (gate rows first), GPT-NeoX-style rope over
//! `phi3.rope.dimension_count` dimensions, as llama.cpp's `LLM_ARCH_PHI3`. llama.cpp ignores
//! Phi-3's sliding-window metadata, and so does this. LongRoPE files (`rope_factors_long`,
//! `rope_factors_short`: the 128k-context variants) are refused rather than run with the wrong
//! angles.

use crate::config::{DecoderConfig, TensorCheck};
use crate::error::Result;
use crate::layers::{AttentionParts, PreNormBlock, PreNormDecoder, Rope};
use crate::llama;
use crate::weights::WeightLoader;

/// Norms, qkv, output, up (gate and up), down.
pub(crate) const BLOCK_TENSORS: usize = 6;

pub(crate) fn check_tensors(c: &DecoderConfig, check: &TensorCheck) -> Result<()> {
    check.refuse("rope_factors_long.weight", "LongRoPE scaling (Phi-3 128k)")?;
    check.refuse("rope_factors_short.weight", "LongRoPE scaling (Phi-3 128k)")?;
    check.refuse("output.bias", "an output bias")?;
    let (d, f) = (c.embedding_length, c.feed_forward_length);
    let (q_dim, kv_dim) = c.qkv_dims();
    for i in 0..c.block_count {
        let name = |part: &str| format!("blk.{i}.{part}.weight");
        check.matrix(&name("attn_norm"), &[d])?;
        if check.has(&name("attn_qkv")) {
            check.matrix(&name("attn_qkv"), &[q_dim + 2 * kv_dim, d])?;
        } else {
            check.matrix(&name("attn_q"), &[q_dim, d])?;
            check.matrix(&name("attn_k"), &[kv_dim, d])?;
            check.matrix(&name("attn_v"), &[kv_dim, d])?;
        }
        check.matrix(&name("attn_output"), &[d, q_dim])?;
        check.matrix(&name("ffn_norm"), &[d])?;
        check.matrix(&name("ffn_up"), &[2 * f, d])?;
        check.matrix(&name("ffn_down"), &[d, f])?;
    }
    Ok(())
}

pub(crate) fn load(w: &WeightLoader, c: &DecoderConfig) -> Result<PreNormDecoder> {
    let parts = AttentionParts { fused_qkv: true, ..Default::default() };
    let blocks = (0..c.block_count).map(|i| PreNormBlock::load(w, i, c, parts, true)).collect::<Result<_>>()?;
    Ok(PreNormDecoder { blocks, rope: Rope::new(c), heads: llama::heads(c, true), eps: c.rms_norm_eps })
}
