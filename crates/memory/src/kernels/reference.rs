//! The embedder's steps in burn's own operations, on any device: what the CPU backend runs
//! (the forward pass as it always was) and what the GPU kernels are tested against.

use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Int, Tensor};

use super::{LayerNorm, MASKED_SCORE};

/// Normalise each row of `x [n, d]` to zero mean and unit (biased) variance, then scale and shift.
pub fn layer_norm(x: Tensor<2>, norm: &LayerNorm) -> Tensor<2> {
    let (var, mean) = x.clone().var_mean_bias(1);
    (x - mean) / var.add_scalar(norm.eps).sqrt() * norm.gamma.clone() + norm.beta.clone()
}

/// See [`super::EmbedderKernels::embeddings`].
pub fn embeddings(ids: Tensor<1, Int>, words: &Tensor<2>, positions: &Tensor<2>, token_type: &Tensor<2>, norm: &LayerNorm, seq_len: usize) -> Tensor<2> {
    let [n] = ids.dims();
    let d = words.dims()[1];
    let b = n / seq_len.max(1);
    let words = words.clone().select(0, ids).reshape([b, seq_len, d]);
    let positions = positions.clone().slice([0..seq_len, 0..d]).unsqueeze_dim::<3>(0);
    let token_type = token_type.clone().unsqueeze_dim::<3>(0);
    layer_norm((words + positions + token_type).reshape([n, d]), norm)
}

/// See [`super::EmbedderKernels::bias_residual_layer_norm`].
pub fn bias_residual_layer_norm(x: Tensor<2>, bias: &Tensor<2>, residual: Tensor<2>, norm: &LayerNorm) -> Tensor<2> {
    layer_norm(x + bias.clone() + residual, norm)
}

/// See [`super::EmbedderKernels::bias_gelu`].
pub fn bias_gelu(x: Tensor<2>, bias: &Tensor<2>) -> Tensor<2> {
    gelu(x + bias.clone())
}

/// See [`super::EmbedderKernels::attention`].
pub fn attention(qkv: Tensor<2>, bias: &Tensor<2>, mask: &Tensor<2>, heads: usize) -> Tensor<2> {
    let [n, width] = qkv.dims();
    let [b, l] = mask.dims();
    let d = width / 3;
    let head_dim = d / heads;
    let qkv = qkv + bias.clone();
    // Padding keys get a huge negative score: `[b, 1, 1, l]`, broadcast over heads and queries.
    let mask_bias = mask.clone().sub_scalar(1.0).mul_scalar(-MASKED_SCORE).reshape([b, 1, 1, l]);
    let split = |part: usize| qkv.clone().slice([0..n, part * d..(part + 1) * d]).reshape([b, l, heads, head_dim]).swap_dims(1, 2);
    let (q, k, v) = (split(0).mul_scalar(1.0 / (head_dim as f32).sqrt()), split(1), split(2));
    let probs = softmax(q.matmul(k.swap_dims(2, 3)) + mask_bias, 3);
    probs.matmul(v).swap_dims(1, 2).reshape([n, d])
}

/// See [`super::EmbedderKernels::mean_pool`].
pub fn mean_pool(x: Tensor<2>, mask: &Tensor<2>) -> Tensor<2> {
    let [b, l] = mask.dims();
    let d = x.dims()[1];
    let summed = (x.reshape([b, l, d]) * mask.clone().reshape([b, l, 1])).sum_dim(1).reshape([b, d]);
    let mean = summed / mask.clone().sum_dim(1).clamp_min(1e-9);
    let norm = (mean.clone() * mean.clone()).sum_dim(1).sqrt().clamp_min(1e-12);
    mean / norm
}
