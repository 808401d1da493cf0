//! CubeCL kernels: the [`LlmKernels`] seam on GPUs (WebGPU in browsers, Vulkan natively).
//! They exist for what burn has no fast built-in for, and to fuse the small steps of a decoder
//! block so a token costs a handful of GPU dispatches instead of hundreds (on software adapters
//! such as SwiftShader or lavapipe each dispatch costs tens of microseconds). Everything is
//! f32 but the KV cache, which the attention kernels read and write through a generic float
//! type: f16 where the adapter has `shader-f16`, else f32.
//!
//! One file per kind of work: quantized products (`matmul`), attention with rope and the KV
//! cache (`attention`), row norms (`norms`), elementwise steps and the embedding look-up
//! (`elementwise`), the choice of the next token (`sampling`) and DRY's penalties before it
//! (`dry`). This file holds the seam's implementation, which only forwards, and the buffer
//! plumbing they share.

mod attention;
mod dry;
mod elementwise;
mod matmul;
mod norms;
mod prefill_attention;
mod sampling;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::tensor::{DType, Shape};
use burn_cubecl::{CubeBackend, tensor::CubeTensor};
use cubecl::prelude::*;

use super::{DryChoice, Heads, LlmKernels, Projection, QuantLayout, TokenChoice};
use crate::device_work::count_dispatch;

fn check_f32(t: &CubeTensor, what: &str) {
    assert_eq!(t.dtype, DType::F32, "{what} must be f32");
}

fn contiguous(t: CubeTensor) -> CubeTensor {
    if !t.is_contiguous() {
        count_dispatch();
    }
    burn_cubecl::kernel::into_contiguous(t)
}

fn elements(t: &CubeTensor) -> usize {
    t.meta.shape().num_elements()
}

fn buffer(t: &CubeTensor) -> BufferArg {
    // SAFETY: the handle holds at least `elements(t)` values of 4 bytes (f32, i32 or u32).
    unsafe { BufferArg::from_raw_parts(t.handle.clone(), elements(t)) }
}

fn empty_f32(like: &CubeTensor, shape: Shape) -> CubeTensor {
    let handle = like.client.empty(shape.num_elements() * 4);
    CubeTensor::new_contiguous(like.client.clone(), like.device.clone(), shape, handle, DType::F32)
}

fn elementwise_launch(units: usize) -> (CubeCount, CubeDim) {
    (CubeCount::new_1d(units.div_ceil(64) as u32), CubeDim::new_1d(64))
}

/// Fewest rows (prompt positions) for which [`super::PrefillKernels::Tiled`] runs the tiled
/// kernels: below it most of a 32-row tile or query block would be idle.
const TILED_MIN_ROWS: usize = 16;

/// Whether `rows` rows at once take the tiled prompt kernels (see [`super::PrefillKernels`]).
fn tiled_prefill(rows: usize) -> bool {
    rows >= TILED_MIN_ROWS && super::prefill_kernels() == super::PrefillKernels::Tiled
}

impl LlmKernels for CubeBackend {
    fn quant_matmul(x: FloatTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self> {
        matmul::quant_matmul(x, packed, scales, w)
    }

    fn quant_matmul_add(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        w: QuantLayout,
    ) -> FloatTensor<Self> {
        matmul::quant_matmul_add(x, packed, scales, residual, w)
    }

    fn quant_swiglu(x: FloatTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self> {
        matmul::quant_swiglu(x, packed, scales, w)
    }

    fn quant_geglu(x: FloatTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self> {
        matmul::quant_geglu(x, packed, scales, w)
    }

    fn normed_quant_matmul(
        x: FloatTensor<Self>,
        norm: FloatTensor<Self>,
        eps: f32,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        w: QuantLayout,
        projection: Projection,
    ) -> FloatTensor<Self> {
        matmul::normed_quant_matmul(x, norm, eps, packed, scales, w, projection)
    }

    fn gelu_mul(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        elementwise::gelu_mul(gate, up)
    }

    fn qk_norm(qkv: FloatTensor<Self>, q_weight: FloatTensor<Self>, k_weight: FloatTensor<Self>, eps: f32, h: Heads) -> FloatTensor<Self> {
        norms::qk_norm(qkv, q_weight, k_weight, eps, h)
    }

    fn quant_rows(ids: IntTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self> {
        elementwise::quant_rows(ids, packed, scales, w)
    }

    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        norms::rms_norm(x, weight, eps)
    }

    fn rope_and_cache(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        start: usize,
        h: Heads,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        attention::rope_and_cache(qkv, cos, sin, k_cache, v_cache, start, h)
    }

    fn rope_cache_attention(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        start: usize,
        h: Heads,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if tiled_prefill(qkv.meta.shape()[0]) {
            let (q, k_cache, v_cache) = attention::rope_and_cache(qkv, cos, sin, k_cache, v_cache, start, h);
            return (prefill_attention::prefill_attention(q, &k_cache, &v_cache, start, h), k_cache, v_cache);
        }
        attention::rope_cache_attention(qkv, cos, sin, k_cache, v_cache, start, h)
    }

    fn attention(q: FloatTensor<Self>, k_cache: FloatTensor<Self>, v_cache: FloatTensor<Self>, start: usize, h: Heads) -> FloatTensor<Self> {
        if tiled_prefill(q.meta.shape()[0]) {
            return prefill_attention::prefill_attention(q, &k_cache, &v_cache, start, h);
        }
        attention::attention(q, k_cache, v_cache, start, h)
    }

    fn sample(logits: FloatTensor<Self>, history: IntTensor<Self>, choice: TokenChoice) -> (IntTensor<Self>, IntTensor<Self>) {
        sampling::sample(logits, history, choice)
    }

    fn dry(
        logits: FloatTensor<Self>,
        history: IntTensor<Self>,
        breakers: IntTensor<Self>,
        penalties: FloatTensor<Self>,
        choice: DryChoice,
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        dry::dry(logits, history, breakers, penalties, choice)
    }
}
