//! Tensor-level entry points to the custom kernels of [`crate::kernels`], so model code reads
//! as tensor code.

use burn::backend::Dispatch;
use burn::tensor::Tensor;

use crate::kernels::LlmKernels;

/// See [`LlmKernels::rope`].
pub fn rope(x: Tensor<2>, cos: &Tensor<2>, sin: &Tensor<2>, heads: usize, head_dim: usize, rope_dims: usize) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::rope(
        x.into_dispatch(),
        cos.clone().into_dispatch(),
        sin.clone().into_dispatch(),
        heads,
        head_dim,
        rope_dims,
    ))
}
