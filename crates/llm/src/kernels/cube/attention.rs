//! Rope, the KV cache write and causal attention: separate passes for a prompt, one kernel for
//! a decoded position. The caches hold f32 or f16 values (`C`); everything is computed in f32.

use burn::tensor::{DType, Shape};
use burn_cubecl::tensor::CubeTensor;
use cubecl::ir::FloatKind;
use cubecl::prelude::*;

use super::{buffer, check_f32, contiguous, elementwise_launch, elements, empty_f32};
use crate::device_work::count_dispatch;
use crate::kernels::Heads;

/// One invocation per pair of values of `qkv`: rotate query and key pairs, copy value pairs,
/// and place keys and values in the caches. Pair `p` of a head is `(x[2p], x[2p+1])`, or with
/// `neox` `(x[p], x[p + rope_pairs])` for the rotated pairs (the rest stay neighbours).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn rope_and_cache_kernel<C: Float>(
    qkv: &[f32],
    cos: &[f32],
    sin: &[f32],
    q_out: &mut [f32],
    k_cache: &mut [C],
    v_cache: &mut [C],
    pairs_total: usize,
    start: usize,
    capacity: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    rope_pairs: usize,
    #[comptime] neox: bool,
    #[define(C)] _cache_type: ElemType,
) {
    if ABSOLUTE_POS >= pairs_total {
        terminate!();
    }
    let half = head_dim / 2;
    let slots = heads + 2 * kv_heads;
    let pair = ABSOLUTE_POS % half;
    let slot = (ABSOLUTE_POS / half) % slots;
    let t = ABSOLUTE_POS / (half * slots);
    // Offsets of the pair's two values within the head.
    let mut a = pair * 2;
    let mut b = pair * 2 + 1;
    if neox {
        if pair < rope_pairs {
            a = pair;
            b = pair + rope_pairs;
        }
    }
    let head_base = (ABSOLUTE_POS / half) * head_dim;
    let x0 = qkv[head_base + a];
    let x1 = qkv[head_base + b];
    let mut y0 = x0;
    let mut y1 = x1;
    if slot < heads + kv_heads && pair < rope_pairs {
        let c = cos[t * rope_pairs + pair];
        let s = sin[t * rope_pairs + pair];
        y0 = x0 * c - x1 * s;
        y1 = x0 * s + x1 * c;
    }
    if slot < heads {
        let o = t * heads * head_dim + slot * head_dim;
        q_out[o + a] = y0;
        q_out[o + b] = y1;
    } else {
        let kv_slot = select(slot < heads + kv_heads, slot - heads, slot - heads - kv_heads);
        let o = (kv_slot * capacity + start + t) * head_dim;
        if slot < heads + kv_heads {
            k_cache[o + a] = C::cast_from(y0);
            k_cache[o + b] = C::cast_from(y1);
        } else {
            v_cache[o + a] = C::cast_from(y0);
            v_cache[o + b] = C::cast_from(y1);
        }
    }
}

/// Value `d` of head `head_base`'s row in `qkv` after rope (pairs as in
/// [`rope_and_cache_kernel`]), at table row 0.
#[cube]
fn roped(qkv: &[f32], cos: &[f32], sin: &[f32], head_base: usize, d: usize, rope_pairs: usize, #[comptime] neox: bool) -> f32 {
    let x = qkv[head_base + d];
    let mut y = x;
    if neox {
        if d < rope_pairs {
            y = x * cos[d] - qkv[head_base + d + rope_pairs] * sin[d];
        } else {
            if d < 2 * rope_pairs {
                let p = d - rope_pairs;
                y = qkv[head_base + p] * sin[p] + x * cos[p];
            }
        }
    } else {
        let p = d / 2;
        if p < rope_pairs {
            if d % 2 == 0 {
                y = x * cos[p] - qkv[head_base + d + 1] * sin[p];
            } else {
                y = qkv[head_base + d - 1] * sin[p] + x * cos[p];
            }
        }
    }
    y
}

/// One workgroup per (query position, head). Each lane takes every `lanes`-th visible key (the
/// last `window` positions when `window` > 0) and keeps a running softmax (max, sum, weighted
/// values); the lanes' partial results are merged in shared memory.
///
/// With `fused` (decoding: one new position, `start`), `q` is that position's `qkv` row and
/// `cos`/`sin` its rope table row: rope, the cache write and attention are one dispatch. Every
/// lane rotates its head's query and its key/value head's new key itself (a few hundred flops),
/// so no workgroup waits for another: the new key and value are used from registers, older ones
/// from the cache, and the first query head of each key/value group writes the new ones to the
/// cache for the next steps, and uses them as the cache holds them (rounded to `C`), so a
/// decoded position attends as a prompt's does. Without it `cos` and `sin` are unused.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn attention_kernel<C: Float>(
    q: &[f32],
    cos: &[f32],
    sin: &[f32],
    k_cache: &mut [C],
    v_cache: &mut [C],
    out: &mut [f32],
    start: usize,
    capacity: usize,
    heads: usize,
    kv_heads: usize,
    group: usize,
    rope_pairs: usize,
    scale: f32,
    window: usize,
    #[comptime] head_dim: usize,
    #[comptime] lanes: usize,
    #[comptime] neox: bool,
    #[comptime] fused: bool,
    #[define(C)] _cache_type: ElemType,
) {
    let lane = UNIT_POS_X as usize;
    let head = CUBE_POS_X as usize;
    let t = CUBE_POS_Y as usize;
    let kv_head = head / group;
    let visible = start + t + 1;
    // Queries first in a `qkv` row too: the same offset either way (t = 0 when fused).
    let q_base = (t * heads + head) * head_dim;
    let k_base_new = (heads + kv_head) * head_dim;
    let v_base_new = (heads + kv_heads + kv_head) * head_dim;

    let mut query = Array::<f32>::new(head_dim);
    let mut key = Array::<f32>::new(head_dim);
    let mut acc = Array::<f32>::new(head_dim);
    #[unroll]
    for d in 0..head_dim {
        if fused {
            query[d] = roped(q, cos, sin, q_base, d, rope_pairs, neox) * scale;
            key[d] = f32::cast_from(C::cast_from(roped(q, cos, sin, k_base_new, d, rope_pairs, neox)));
        } else {
            query[d] = q[q_base + d] * scale;
            key[d] = 0.0;
        }
        acc[d] = 0.0;
    }
    if fused {
        // The group's first query head stores the new key and value (values are not rotated).
        if head % group == 0 {
            let o = (kv_head * capacity + start) * head_dim;
            let mut d = lane;
            while d < head_dim {
                k_cache[o + d] = C::cast_from(roped(q, cos, sin, k_base_new, d, rope_pairs, neox));
                v_cache[o + d] = C::cast_from(q[v_base_new + d]);
                d += lanes;
            }
        }
    }
    // A large finite floor instead of -inf keeps exp(max_old - max_new) finite for idle lanes.
    let mut running_max = f32::new(-1.0e30);
    let mut running_sum = 0.0f32;

    let mut first = 0usize;
    if window > 0 && visible > window {
        first = visible - window;
    }
    let mut s = first + lane;
    while s < visible {
        let k_base = (kv_head * capacity + s) * head_dim;
        // When fused, the cache at `start` may be being written by another workgroup: it is
        // read (in bounds) but not used.
        let mut fresh = false;
        if fused {
            fresh = s == start;
        }
        let mut score = 0.0f32;
        #[unroll]
        for d in 0..head_dim {
            score += query[d] * select(fresh, key[d], f32::cast_from(k_cache[k_base + d]));
        }
        let new_max = max(running_max, score);
        let correction = (running_max - new_max).exp();
        let weight = (score - new_max).exp();
        running_sum = running_sum * correction + weight;
        #[unroll]
        for d in 0..head_dim {
            let mut v = f32::cast_from(v_cache[k_base + d]);
            if fused {
                v = select(fresh, f32::cast_from(C::cast_from(q[v_base_new + d])), v);
            }
            acc[d] = acc[d] * correction + weight * v;
        }
        running_max = new_max;
        s += lanes;
    }

    let mut shared_max = Shared::new_slice(lanes);
    let mut shared_sum = Shared::new_slice(lanes);
    let mut shared_acc = Shared::new_slice(comptime!(lanes * head_dim));
    shared_max[lane] = running_max;
    shared_sum[lane] = running_sum;
    #[unroll]
    for d in 0..head_dim {
        shared_acc[lane * head_dim + d] = acc[d];
    }
    sync_cube();

    let mut global_max = f32::new(-1.0e30);
    for i in 0..lanes {
        global_max = max(global_max, shared_max[i]);
    }
    let mut total = 0.0f32;
    for i in 0..lanes {
        total += shared_sum[i] * (shared_max[i] - global_max).exp();
    }
    let mut d = lane;
    while d < head_dim {
        let mut value = 0.0f32;
        for i in 0..lanes {
            value += shared_acc[i * head_dim + d] * (shared_max[i] - global_max).exp();
        }
        out[q_base + d] = value / total;
        d += lanes;
    }
}

/// The kernels' `C` for caches of `k_cache`'s and `v_cache`'s type: f32, or f16 (see
/// [`crate::kv_cache::KvPrecision`]).
pub(super) fn cache_type(k_cache: &CubeTensor, v_cache: &CubeTensor) -> ElemType {
    assert_eq!(k_cache.dtype, v_cache.dtype, "keys and values in one type");
    match k_cache.dtype {
        DType::F32 => ElemType::Float(FloatKind::F32),
        DType::F16 => ElemType::Float(FloatKind::F16),
        other => panic!("a key/value cache of {other:?} values"),
    }
}

/// [`attention_kernel`] for `count` query positions of `q`, or with `rope` (the table rows of
/// one new position) over that position's `qkv` row, rotating and caching it on the way.
fn launch_attention(q: &CubeTensor, rope: Option<(&CubeTensor, &CubeTensor)>, k_cache: &CubeTensor, v_cache: &CubeTensor, start: usize, h: Heads, count: usize) -> CubeTensor {
    let Heads { heads, kv_heads, head_dim, rope_dims, neox, window } = h;
    let capacity = k_cache.meta.shape()[1];
    let out = empty_f32(q, Shape::from(vec![count, heads * head_dim]));
    // Keep the merge buffer (lanes × head_dim floats) within WebGPU's 16 KiB guarantee.
    let lanes = (2048 / head_dim).clamp(1, 32);
    // Unused without rope: the (read-only) input bound in their place.
    let (cos, sin) = rope.unwrap_or((q, q));
    count_dispatch();
    unsafe {
        attention_kernel::launch_unchecked(
            &q.client,
            CubeCount::new_2d(heads as u32, count as u32),
            CubeDim::new_1d(lanes as u32),
            buffer(q),
            buffer(cos),
            buffer(sin),
            buffer(k_cache),
            buffer(v_cache),
            buffer(&out),
            start,
            capacity,
            heads,
            kv_heads,
            heads / kv_heads,
            rope_dims / 2,
            1.0 / (head_dim as f32).sqrt(),
            window.unwrap_or(0),
            head_dim,
            lanes,
            neox,
            rope.is_some(),
            cache_type(k_cache, v_cache),
        );
    }
    out
}

pub(super) fn rope_and_cache(
    qkv: CubeTensor,
    cos: CubeTensor,
    sin: CubeTensor,
    k_cache: CubeTensor,
    v_cache: CubeTensor,
    start: usize,
    h: Heads,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let Heads { heads, kv_heads, head_dim, rope_dims, neox, .. } = h;
    check_f32(&qkv, "qkv");
    let (qkv, cos, sin) = (contiguous(qkv), contiguous(cos), contiguous(sin));
    // The caches are written in place: they must be plain contiguous buffers of their own.
    let (k_cache, v_cache) = (contiguous(k_cache), contiguous(v_cache));
    let capacity = k_cache.meta.shape()[1];
    let count = qkv.meta.shape()[0];
    let q = empty_f32(&qkv, Shape::from(vec![count, heads * head_dim]));
    let pairs_total = elements(&qkv) / 2;
    let (cube_count, cube_dim) = elementwise_launch(pairs_total);
    count_dispatch();
    unsafe {
        rope_and_cache_kernel::launch_unchecked(
            &qkv.client,
            cube_count,
            cube_dim,
            buffer(&qkv),
            buffer(&cos),
            buffer(&sin),
            buffer(&q),
            buffer(&k_cache),
            buffer(&v_cache),
            pairs_total,
            start,
            capacity,
            heads,
            kv_heads,
            head_dim,
            rope_dims / 2,
            neox,
            cache_type(&k_cache, &v_cache),
        );
    }
    (q, k_cache, v_cache)
}

pub(super) fn rope_cache_attention(
    qkv: CubeTensor,
    cos: CubeTensor,
    sin: CubeTensor,
    k_cache: CubeTensor,
    v_cache: CubeTensor,
    start: usize,
    h: Heads,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    check_f32(&qkv, "qkv");
    if qkv.meta.shape()[0] != 1 {
        // Several new positions: each query needs keys that other workgroups rotate.
        let (q, k_cache, v_cache) = rope_and_cache(qkv, cos, sin, k_cache, v_cache, start, h);
        let out = attention(q, k_cache.clone(), v_cache.clone(), start, h);
        return (out, k_cache, v_cache);
    }
    let (qkv, cos, sin) = (contiguous(qkv), contiguous(cos), contiguous(sin));
    // The caches are written in place: they must be plain contiguous buffers of their own.
    let (k_cache, v_cache) = (contiguous(k_cache), contiguous(v_cache));
    let out = launch_attention(&qkv, Some((&cos, &sin)), &k_cache, &v_cache, start, h, 1);
    (out, k_cache, v_cache)
}

pub(super) fn attention(q: CubeTensor, k_cache: CubeTensor, v_cache: CubeTensor, start: usize, h: Heads) -> CubeTensor {
    check_f32(&q, "queries");
    let q = contiguous(q);
    let count = q.meta.shape()[0];
    launch_attention(&q, None, &k_cache, &v_cache, start, h, count)
}
