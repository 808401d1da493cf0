//! The [`EmbedderKernels`] seam on the CPU: burn's own operations ([`reference`]), so the CPU
//! path computes exactly what it did before the GPU got its kernels. The Flex tensors are
//! wrapped back into burn tensors for that, and unwrapped from the result.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{BackendTensor, DispatchTensor, DispatchTensorKind, Flex};
use burn::tensor::{Int, Tensor};

use super::{EmbedderKernels, LayerNorm, reference};

fn wrap(kind: BackendTensor<Flex>) -> DispatchTensor {
    DispatchTensor { kind: DispatchTensorKind::Flex(kind), autodiff: Default::default() }
}

fn float<const D: usize>(t: FloatTensor<Flex>) -> Tensor<D> {
    Tensor::from_dispatch(wrap(BackendTensor::Float(t)))
}

fn int(t: IntTensor<Flex>) -> Tensor<1, Int> {
    Tensor::from_dispatch(wrap(BackendTensor::Int(t)))
}

fn unwrap<const D: usize>(t: Tensor<D>) -> FloatTensor<Flex> {
    #[allow(unreachable_patterns)] // The only variant when the CPU is the only backend built.
    match t.into_dispatch().kind {
        DispatchTensorKind::Flex(t) => t.float(),
        _ => unreachable!("burn's operations on Flex tensors give Flex tensors"),
    }
}

fn norm(gamma: FloatTensor<Flex>, beta: FloatTensor<Flex>, eps: f32) -> LayerNorm {
    LayerNorm { gamma: float(gamma), beta: float(beta), eps }
}

impl EmbedderKernels for Flex {
    fn embeddings(ids: IntTensor<Self>, words: FloatTensor<Self>, positions: FloatTensor<Self>, token_type: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f32, seq_len: usize) -> FloatTensor<Self> {
        unwrap(reference::embeddings(int(ids), &float(words), &float(positions), &float(token_type), &norm(gamma, beta, eps), seq_len))
    }

    fn bias_residual_layer_norm(x: FloatTensor<Self>, bias: FloatTensor<Self>, residual: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        unwrap(reference::bias_residual_layer_norm(float(x), &float(bias), float(residual), &norm(gamma, beta, eps)))
    }

    fn bias_gelu(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        unwrap(reference::bias_gelu(float(x), &float(bias)))
    }

    fn attention(qkv: FloatTensor<Self>, bias: FloatTensor<Self>, mask: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        unwrap(reference::attention(float(qkv), &float(bias), &float(mask), heads))
    }

    fn mean_pool(x: FloatTensor<Self>, mask: FloatTensor<Self>) -> FloatTensor<Self> {
        unwrap(reference::mean_pool(float(x), &float(mask)))
    }
}
