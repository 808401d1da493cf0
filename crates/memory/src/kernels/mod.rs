//! The embedder's seam between its forward pass and the hardware: the steps of a BERT layer
//! that burn runs as many small passes (bias adds, slices made contiguous, softmax, erf GELU,
//! LayerNorm as a variance and five elementwise operations), each as one operation here.
//! burn's matmul stays for the float weights.
//!
//! - `cube`: GPUs through CubeCL (WebGPU in browsers, Vulkan natively): one kernel per step, so
//!   a layer costs its four matmuls and four dispatches, not about fifty;
//! - `flex`: burn's CPU backend, which runs [`reference`] (burn's own operations, as the
//!   embedder always did), so the CPU path gives the same numbers as before.
//!
//! Shapes: `n = b × l` token rows of `d` values, for `b` texts padded to `l` tokens; `mask
//! [b, l]` is 1 for a token and 0 for padding. Everything is f32.

use burn::backend::{Backend, Dispatch, backend_extension, tensor::FloatTensor, tensor::IntTensor};
use burn::tensor::{Int, Tensor};

#[cfg(any(feature = "wgpu", feature = "webgpu"))]
mod cube;
#[cfg(feature = "cpu")]
mod flex;
pub mod reference;

/// Added to the attention scores of padding positions by [`reference::attention`]: their
/// softmax weight is exactly 0 (the kernels skip those positions).
pub const MASKED_SCORE: f32 = -1e9;

/// A LayerNorm's scale and shift, each `[1, d]`, and its epsilon.
#[derive(Clone)]
pub struct LayerNorm {
    pub gamma: Tensor<2>,
    pub beta: Tensor<2>,
    pub eps: f32,
}

/// The embedder's fused steps on a backend's own tensors.
#[backend_extension(Cube: cfg(any(feature = "wgpu", feature = "webgpu")), Flex: cfg(feature = "cpu"))]
pub trait EmbedderKernels: Backend {
    /// LayerNorm of `words[ids] + positions[t mod l] + token_type` for each token `t` of `ids
    /// [n]` (`l = seq_len`): the input embeddings, `[n, d]`.
    #[allow(clippy::too_many_arguments)]
    fn embeddings(ids: IntTensor<Self>, words: FloatTensor<Self>, positions: FloatTensor<Self>, token_type: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f32, seq_len: usize) -> FloatTensor<Self>;

    /// LayerNorm of `x + bias + residual` (`x`, `residual` `[n, d]`, `bias [1, d]`): a linear
    /// layer's bias, the residual connection and the norm after it.
    fn bias_residual_layer_norm(x: FloatTensor<Self>, bias: FloatTensor<Self>, residual: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f32) -> FloatTensor<Self>;

    /// Exact (erf) GELU of `x + bias` (`x [n, f]`, `bias [1, f]`).
    fn bias_gelu(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Self-attention of each text's tokens over its real (unmasked) tokens, every head, from
    /// the stacked product `qkv [n, 3d]` (queries, keys, values, each `heads × d / heads` wide)
    /// plus its bias `[1, 3d]`; scores scaled by `1 / sqrt(d / heads)`. Returns the context
    /// `[n, d]`, heads side by side. Padding rows get a context too (they attend to the real
    /// tokens); pooling leaves them out.
    fn attention(qkv: FloatTensor<Self>, bias: FloatTensor<Self>, mask: FloatTensor<Self>, heads: usize) -> FloatTensor<Self>;

    /// Mean of each text's real token rows of `x [n, d]`, scaled to unit length: `[b, d]`
    /// (sentence-transformers' mean pooling and normalisation).
    fn mean_pool(x: FloatTensor<Self>, mask: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// See [`EmbedderKernels::embeddings`].
pub fn embeddings(ids: Tensor<1, Int>, words: &Tensor<2>, positions: &Tensor<2>, token_type: &Tensor<2>, norm: &LayerNorm, seq_len: usize) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::embeddings(
        ids.into_dispatch(),
        words.clone().into_dispatch(),
        positions.clone().into_dispatch(),
        token_type.clone().into_dispatch(),
        norm.gamma.clone().into_dispatch(),
        norm.beta.clone().into_dispatch(),
        norm.eps,
        seq_len,
    ))
}

/// See [`EmbedderKernels::bias_residual_layer_norm`].
pub fn bias_residual_layer_norm(x: Tensor<2>, bias: &Tensor<2>, residual: Tensor<2>, norm: &LayerNorm) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::bias_residual_layer_norm(
        x.into_dispatch(),
        bias.clone().into_dispatch(),
        residual.into_dispatch(),
        norm.gamma.clone().into_dispatch(),
        norm.beta.clone().into_dispatch(),
        norm.eps,
    ))
}

/// See [`EmbedderKernels::bias_gelu`].
pub fn bias_gelu(x: Tensor<2>, bias: &Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::bias_gelu(x.into_dispatch(), bias.clone().into_dispatch()))
}

/// See [`EmbedderKernels::attention`].
pub fn attention(qkv: Tensor<2>, bias: &Tensor<2>, mask: &Tensor<2>, heads: usize) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::attention(qkv.into_dispatch(), bias.clone().into_dispatch(), mask.clone().into_dispatch(), heads))
}

/// See [`EmbedderKernels::mean_pool`].
pub fn mean_pool(x: Tensor<2>, mask: &Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::mean_pool(x.into_dispatch(), mask.clone().into_dispatch()))
}
