//! Causal attention for a prompt's many queries, flash-attention style: a workgroup takes a block
//! of queries of one head and streams the cache's keys and values through workgroup memory in
//! tiles, each lane keeping its query's online softmax. Every key and value is then read from
//! global memory once per block of queries instead of once per query, as [`super::attention`]'s
//! one-workgroup-per-(query, head) kernel does (the right shape for one decoded query).
//!
//! The caches are read through a generic float type, so a cache kept in f16 is one parameter
//! away: the kernel converts each value to f32 as it stages it.

use burn::tensor::{DType, Shape};
use burn_cubecl::tensor::CubeTensor;
use cubecl::ir::FloatKind;
use cubecl::prelude::*;

use super::{buffer, check_f32, contiguous, empty_f32};
use crate::device_work::count_dispatch;
use crate::kernels::Heads;

/// Queries per workgroup, one per lane.
const QUERY_BLOCK: usize = 32;

/// Workgroup memory for one key tile and one value tile: 8 KiB, within WebGPU's 16 KiB.
const TILE_BYTES: usize = 8 << 10;

/// Lane `l` of workgroup `(head, b)` attends query `b × QUERY_BLOCK + l` of `q [count, heads ×
/// head_dim]` (position `start + t`) over the keys it sees: `0..=start + t`, or the last `window`
/// of them. Per tile of `key_tile` positions the lanes stage the keys and values of the block's
/// whole range (the union of what its queries see), then each lane folds the positions it sees
/// into its running maximum, sum and weighted values; positions it does not see are skipped.
/// Lanes past the last query load tiles too (every lane must reach the barriers) but write
/// nothing.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn prefill_attention_kernel<F: Float>(
    q: &[f32],
    k_cache: &[F],
    v_cache: &[F],
    out: &mut [f32],
    count: usize,
    start: usize,
    capacity: usize,
    heads: usize,
    group: usize,
    scale: f32,
    window: usize,
    #[comptime] head_dim: usize,
    #[comptime] key_tile: usize,
    #[define(F)] _cache_type: ElemType,
) {
    let lane = UNIT_POS_X as usize;
    let head = CUBE_POS_X as usize;
    let t0 = CUBE_POS_Y as usize * QUERY_BLOCK;
    let t = t0 + lane;
    let kv_head = head / group;
    let own = min(t, count - 1);
    let visible = start + own + 1;
    let mut first = 0usize;
    if window > 0 && visible > window {
        first = visible - window;
    }
    // The block's range: from what its first query sees to its last query's own position.
    let block_end = start + min(t0 + QUERY_BLOCK, count);
    let mut block_first = 0usize;
    if window > 0 && start + t0 + 1 > window {
        block_first = start + t0 + 1 - window;
    }

    let q_base = (own * heads + head) * head_dim;
    let mut query = Array::<f32>::new(head_dim);
    let mut acc = Array::<f32>::new(head_dim);
    #[unroll]
    for d in 0..head_dim {
        query[d] = q[q_base + d] * scale;
        acc[d] = 0.0;
    }
    // A large finite floor instead of -inf keeps exp(max_old - max_new) finite.
    let mut running_max = f32::new(-1.0e30);
    let mut running_sum = 0.0f32;

    let tile_values = comptime!(key_tile * head_dim);
    let mut keys = Shared::<[f32]>::new_slice(tile_values);
    let mut values = Shared::<[f32]>::new_slice(tile_values);
    let cache_base = kv_head * capacity;
    let mut s0 = block_first;
    while s0 < block_end {
        let mut i = lane;
        while i < tile_values {
            let s = s0 + i / head_dim;
            let mut key = 0.0f32;
            let mut value = 0.0f32;
            if s < block_end {
                let at = (cache_base + s) * head_dim + i % head_dim;
                key = f32::cast_from(k_cache[at]);
                value = f32::cast_from(v_cache[at]);
            }
            keys[i] = key;
            values[i] = value;
            i += QUERY_BLOCK;
        }
        sync_cube();
        for j in 0..key_tile {
            let s = s0 + j;
            if s >= first && s < visible {
                let mut score = 0.0f32;
                #[unroll]
                for d in 0..head_dim {
                    score += query[d] * keys[j * head_dim + d];
                }
                let new_max = max(running_max, score);
                let correction = (running_max - new_max).exp();
                let weight = (score - new_max).exp();
                running_sum = running_sum * correction + weight;
                #[unroll]
                for d in 0..head_dim {
                    acc[d] = acc[d] * correction + weight * values[j * head_dim + d];
                }
                running_max = new_max;
            }
        }
        // The next tile overwrites what every lane is reading.
        sync_cube();
        s0 += key_tile;
    }
    if t < count {
        #[unroll]
        for d in 0..head_dim {
            out[q_base + d] = acc[d] / running_sum;
        }
    }
}

/// [`super::LlmKernels::attention`] for a prompt's queries `q [count, heads × head_dim]` over
/// caches of f32 or f16 values.
pub(super) fn prefill_attention(q: CubeTensor, k_cache: &CubeTensor, v_cache: &CubeTensor, start: usize, h: Heads) -> CubeTensor {
    let Heads { heads, kv_heads, head_dim, window, .. } = h;
    check_f32(&q, "queries");
    let cache_kind = match k_cache.dtype {
        DType::F32 => FloatKind::F32,
        DType::F16 => FloatKind::F16,
        other => panic!("a key/value cache of {other:?} values"),
    };
    assert_eq!(v_cache.dtype, k_cache.dtype, "keys and values in one type");
    let q = contiguous(q);
    let count = q.meta.shape()[0];
    let capacity = k_cache.meta.shape()[1];
    let out = empty_f32(&q, Shape::from(vec![count, heads * head_dim]));
    // Staged as f32 whatever the cache holds: two tiles of `key_tile × head_dim` values.
    let key_tile = (TILE_BYTES / (2 * 4 * head_dim)).clamp(1, 32);
    count_dispatch();
    unsafe {
        prefill_attention_kernel::launch_unchecked(
            &q.client,
            CubeCount::new_2d(heads as u32, count.div_ceil(QUERY_BLOCK) as u32),
            CubeDim::new_1d(QUERY_BLOCK as u32),
            buffer(&q),
            buffer(k_cache),
            buffer(v_cache),
            buffer(&out),
            count,
            start,
            capacity,
            heads,
            heads / kv_heads,
            1.0 / (head_dim as f32).sqrt(),
            window.unwrap_or(0),
            head_dim,
            key_tile,
            ElemType::Float(cache_kind),
        );
    }
    out
}
