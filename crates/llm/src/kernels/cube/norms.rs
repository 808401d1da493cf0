//! RMSNorm of rows, and of query and key heads (Qwen 3, Gemma 3).

use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::{buffer, check_f32, contiguous, elements, empty_f32};
use crate::device_work::count_dispatch;
use crate::kernels::Heads;

/// Lanes per row in the RMSNorm kernel.
const NORM_LANES: usize = 64;

/// `1 / rms` of `x[base..base + len]` (with `eps`), by the workgroup's `NORM_LANES` lanes: each
/// sums the squares of every `NORM_LANES`-th value, then a tree reduction in workgroup memory.
/// Every lane must call it (it holds barriers) and gets the same value.
#[cube]
fn inv_rms(x: &[f32], base: usize, len: usize, eps: f32) -> f32 {
    let lane = UNIT_POS_X as usize;
    let lanes = comptime!(NORM_LANES);
    let mut partial = 0.0f32;
    let mut i = lane;
    while i < len {
        let v = x[base + i];
        partial += v * v;
        i += lanes;
    }
    let mut shared = Shared::new_slice(comptime!(NORM_LANES));
    shared[lane] = partial;
    sync_cube();
    #[unroll]
    for level in 0..comptime!(NORM_LANES.trailing_zeros()) {
        let half = comptime!(NORM_LANES >> (level + 1));
        if lane < half {
            let sum = shared[lane] + shared[lane + half];
            shared[lane] = sum;
        }
        sync_cube();
    }
    1.0 / (shared[0] / f32::cast_from(len) + eps).sqrt()
}

/// One workgroup per row: lanes sum squares in turn, then scale their share of the row.
#[cube(launch_unchecked)]
fn rms_norm_kernel(x: &[f32], weight: &[f32], out: &mut [f32], d: usize, eps: f32) {
    let lane = UNIT_POS_X as usize;
    let base = CUBE_POS_X as usize * d;
    let lanes = comptime!(NORM_LANES);
    let inv = inv_rms(x, base, d, eps);
    let mut i = lane;
    while i < d {
        out[base + i] = x[base + i] * inv * weight[i];
        i += lanes;
    }
}

/// One workgroup per (position, head slot) of `qkv`: query and key heads are RMS-normalized
/// with their weights, value heads copied.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn qk_norm_kernel(qkv: &[f32], q_weight: &[f32], k_weight: &[f32], out: &mut [f32], heads: usize, kv_heads: usize, head_dim: usize, eps: f32) {
    let lane = UNIT_POS_X as usize;
    let lanes = comptime!(NORM_LANES);
    let slots = heads + 2 * kv_heads;
    let slot = CUBE_POS_X as usize % slots;
    let base = CUBE_POS_X as usize * head_dim;
    let inv = inv_rms(qkv, base, head_dim, eps);
    let mut i = lane;
    while i < head_dim {
        let v = qkv[base + i];
        let mut y = v;
        if slot < heads {
            y = v * inv * q_weight[i];
        } else {
            if slot < heads + kv_heads {
                y = v * inv * k_weight[i];
            }
        }
        out[base + i] = y;
        i += lanes;
    }
}

pub(super) fn qk_norm(qkv: CubeTensor, q_weight: CubeTensor, k_weight: CubeTensor, eps: f32, h: Heads) -> CubeTensor {
    let Heads { heads, kv_heads, head_dim, .. } = h;
    check_f32(&qkv, "qkv");
    let (qkv, q_weight, k_weight) = (contiguous(qkv), contiguous(q_weight), contiguous(k_weight));
    let head_slots = elements(&qkv) / head_dim;
    assert_eq!(head_slots % (heads + 2 * kv_heads), 0, "qkv width");
    let out = empty_f32(&qkv, qkv.meta.shape().clone());
    count_dispatch();
    unsafe {
        qk_norm_kernel::launch_unchecked(
            &qkv.client,
            CubeCount::new_1d(head_slots as u32),
            CubeDim::new_1d(NORM_LANES as u32),
            buffer(&qkv),
            buffer(&q_weight),
            buffer(&k_weight),
            buffer(&out),
            heads,
            kv_heads,
            head_dim,
            eps,
        );
    }
    out
}

pub(super) fn rms_norm(x: CubeTensor, weight: CubeTensor, eps: f32) -> CubeTensor {
    check_f32(&x, "rms_norm input");
    let x = contiguous(x);
    let weight = contiguous(weight);
    let dims = x.meta.shape().clone();
    let d = dims[dims.len() - 1];
    let rows = dims.num_elements() / d;
    let out = empty_f32(&x, dims);
    count_dispatch();
    unsafe {
        rms_norm_kernel::launch_unchecked(
            &x.client,
            CubeCount::new_1d(rows as u32),
            CubeDim::new_1d(NORM_LANES as u32),
            buffer(&x),
            buffer(&weight),
            buffer(&out),
            d,
            eps,
        );
    }
    out
}
