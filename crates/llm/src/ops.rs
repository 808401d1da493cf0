//! Tensor-level entry points to the kernels of [`crate::kernels`], so model code reads as
//! tensor code whatever the backend.

use burn::backend::{Dispatch, DispatchTensor};
use burn::tensor::{Int, Tensor};

pub use crate::kernels::{DryChoice, Heads, TokenChoice};
use crate::kernels::LlmKernels;

/// RMSNorm over the last dimension, times `weight`.
pub fn rms_norm(x: Tensor<2>, weight: &Tensor<1>, eps: f32) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::rms_norm(x.into_dispatch(), weight.clone().into_dispatch(), eps))
}

/// See [`LlmKernels::rope_and_cache`]: returns the rotated queries and the updated caches.
pub fn rope_and_cache(qkv: Tensor<2>, cos: &Tensor<2>, sin: &Tensor<2>, k_cache: Tensor<3>, v_cache: Tensor<3>, start: usize, h: Heads) -> (Tensor<2>, Tensor<3>, Tensor<3>) {
    with_cache(Dispatch::rope_and_cache, qkv, (cos, sin), (k_cache, v_cache), start, h)
}

/// See [`LlmKernels::rope_cache_attention`]: returns the attended values and the updated caches.
pub fn rope_cache_attention(qkv: Tensor<2>, cos: &Tensor<2>, sin: &Tensor<2>, k_cache: Tensor<3>, v_cache: Tensor<3>, start: usize, h: Heads) -> (Tensor<2>, Tensor<3>, Tensor<3>) {
    with_cache(Dispatch::rope_cache_attention, qkv, (cos, sin), (k_cache, v_cache), start, h)
}

/// A seam operation over `qkv`, the rope tables and the caches (which it returns updated).
type CacheOp = fn(DispatchTensor, DispatchTensor, DispatchTensor, DispatchTensor, DispatchTensor, usize, Heads) -> (DispatchTensor, DispatchTensor, DispatchTensor);

fn with_cache(op: CacheOp, qkv: Tensor<2>, (cos, sin): (&Tensor<2>, &Tensor<2>), (k, v): (Tensor<3>, Tensor<3>), start: usize, h: Heads) -> (Tensor<2>, Tensor<3>, Tensor<3>) {
    let (out, k, v) = op(qkv.into_dispatch(), cos.clone().into_dispatch(), sin.clone().into_dispatch(), k.into_dispatch(), v.into_dispatch(), start, h);
    (Tensor::from_dispatch(out), Tensor::from_dispatch(k), Tensor::from_dispatch(v))
}

/// See [`LlmKernels::attention`].
pub fn attention(q: Tensor<2>, k_cache: &Tensor<3>, v_cache: &Tensor<3>, start: usize, h: Heads) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::attention(q.into_dispatch(), k_cache.clone().into_dispatch(), v_cache.clone().into_dispatch(), start, h))
}

/// See [`LlmKernels::gelu_mul`].
pub fn gelu_mul(gate: Tensor<2>, up: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::gelu_mul(gate.into_dispatch(), up.into_dispatch()))
}

/// See [`LlmKernels::qk_norm`].
pub fn qk_norm(qkv: Tensor<2>, q_weight: &Tensor<1>, k_weight: &Tensor<1>, eps: f32, h: Heads) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::qk_norm(qkv.into_dispatch(), q_weight.clone().into_dispatch(), k_weight.clone().into_dispatch(), eps, h))
}

/// See [`LlmKernels::sample`]: returns the chosen id `[1]` and the history holding it.
pub fn sample(logits: Tensor<2>, history: Tensor<1, Int>, choice: TokenChoice) -> (Tensor<1, Int>, Tensor<1, Int>) {
    let (ids, history) = Dispatch::sample(logits.into_dispatch(), history.into_dispatch(), choice);
    (Tensor::from_dispatch(ids), Tensor::from_dispatch(history))
}

/// See [`LlmKernels::dry`]: returns the penalised logits and the history.
pub fn dry(logits: Tensor<2>, history: Tensor<1, Int>, breakers: &Tensor<1, Int>, penalties: &Tensor<1>, choice: DryChoice) -> (Tensor<2>, Tensor<1, Int>) {
    let (logits, history) = Dispatch::dry(logits.into_dispatch(), history.into_dispatch(), breakers.clone().into_dispatch(), penalties.clone().into_dispatch(), choice);
    (Tensor::from_dispatch(logits), Tensor::from_dispatch(history))
}
