//! CubeCL kernels: the [`LlmKernels`] seam on GPUs (WebGPU in browsers, Vulkan natively).
//! They exist for what burn has no fast built-in for, and to fuse the small steps of a decoder
//! block so a token costs a handful of GPU dispatches instead of hundreds (on software adapters
//! such as SwiftShader or lavapipe each dispatch costs tens of microseconds). Everything is
//! f32, so no kernel needs `shader-f16`.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::tensor::{DType, Shape};
use burn_cubecl::{CubeBackend, tensor::CubeTensor};
use cubecl::prelude::*;

use super::{Heads, LlmKernels, Projection, QuantLayout, TokenChoice};
use crate::device_work::count_dispatch;

/// What the matmul kernel does with each dot product before writing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Epilogue {
    Plain,
    AddResidual,
    SwiGlu,
    /// `gelu(gate) * up` with the tanh approximation (Gemma's GeGLU).
    GeGlu,
}

/// GELU, tanh approximation (as ggml's `ggml_gelu_f32`). `tanh` is written with `exp` of a
/// negative argument, which cannot overflow.
#[cube]
fn gelu_tanh(x: f32) -> f32 {
    let u = f32::new(0.797_884_6) * x * (f32::new(1.0) + f32::new(0.044_715) * x * x);
    let negative = u < f32::new(0.0);
    let magnitude = select(negative, -u, u);
    let e = (f32::new(-2.0) * magnitude).exp();
    let t = (f32::new(1.0) - e) / (f32::new(1.0) + e);
    let tanh = select(negative, -t, t);
    f32::new(0.5) * x * (f32::new(1.0) + tanh)
}

/// Quantized matrix product: one invocation per weight row and block of `rows` activation rows,
/// so each weight is dequantized once per block. Each invocation walks its row group by group
/// with no barriers: on software adapters (lavapipe, SwiftShader) that measured over twice as
/// fast as lanes sharing a row and reducing through shared memory. With `SwiGlu` the invocation
/// also reads row `n + col` (the up projection stacked under the gate).
///
/// With `normed`, the workgroup first takes the RMSNorm of its activation rows (`side` is then
/// the norm's weight): its lanes stage `x ∘ weight` in workgroup memory (`staged` values: the
/// rows × k) and sum the squares, then every invocation's dot products read the staged rows and
/// are scaled by `1 / rms` at the end (`rms_norm(x) · w = inv_rms × ((x ∘ weight) · w)`). That
/// saves the norm's own dispatch and its trip through memory; the staging costs one pass over
/// the rows per workgroup (each invocation taking the norm itself measured slower on lavapipe:
/// two more operations per weight).
///
/// Five storage buffers (plus CubeCL's own) stay within WebGPU's default limit of eight: `side`
/// is the residual for `AddResidual`, the norm's weight when `normed`, else unused.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn quant_matmul_kernel(
    x: &[f32],
    packed: &[u32],
    scales: &[f32],
    side: &[f32],
    out: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    eps: f32,
    #[comptime] bits: u32,
    #[comptime] group: usize,
    #[comptime] rows: usize,
    #[comptime] epilogue: Epilogue,
    #[comptime] normed: bool,
    #[comptime] staged: usize,
) {
    let per_word = comptime!(32 / bits) as usize;
    let mask = comptime!((1u32 << bits) - 1);
    let words_per_group = comptime!(group / (32 / bits as usize));
    // Gated epilogues read a second row, the up projection's.
    let swiglu = comptime!(epilogue == Epilogue::SwiGlu || epilogue == Epilogue::GeGlu);

    // The activation block comes from the workgroup's position, so every lane of a workgroup
    // reads the same activations: uniform loads, which software adapters turn into broadcasts.
    let lane = UNIT_POS_X as usize;
    let col = CUBE_POS_X as usize * CUBE_DIM_X as usize + lane;
    let row0 = CUBE_POS_Y as usize * rows;
    let last_row = m - 1;
    let groups_per_row = k / group;

    // Staging comes before any lane leaves: every lane must reach the barrier.
    let lanes = comptime!(MATMUL_LANES);
    let mut rows_in = Shared::new_slice(staged);
    let mut partial = Shared::new_slice(comptime!(rows * MATMUL_LANES));
    let mut inv = Array::<f32>::new(rows);
    if normed {
        #[unroll]
        for r in 0..rows {
            let base = min(row0 + r, last_row) * k;
            let mut squares = 0.0f32;
            let mut i = lane;
            while i < k {
                let v = x[base + i];
                rows_in[r * k + i] = v * side[i];
                squares += v * v;
                i += lanes;
            }
            partial[r * lanes + lane] = squares;
        }
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let mut total = 0.0f32;
            for i in 0..lanes {
                total += partial[r * lanes + i];
            }
            inv[r] = 1.0 / (total / f32::cast_from(k) + eps).sqrt();
        }
    }
    if col >= n {
        terminate!();
    }

    let mut acc = Array::<f32>::new(rows);
    let mut acc2 = Array::<f32>::new(rows);
    #[unroll]
    for r in 0..rows {
        acc[r] = 0.0;
        acc2[r] = 0.0;
    }
    // The up projection's row, when there is one.
    let col2 = col + n;
    for g in 0..groups_per_row {
        let gi = col * groups_per_row + g;
        let gi2 = col2 * groups_per_row + g;
        let mut dot = Array::<f32>::new(rows);
        let mut dot2 = Array::<f32>::new(rows);
        let mut sum = Array::<f32>::new(rows);
        #[unroll]
        for r in 0..rows {
            dot[r] = 0.0;
            dot2[r] = 0.0;
            sum[r] = 0.0;
        }
        #[unroll]
        for w in 0..words_per_group {
            let word = packed[gi * words_per_group + w];
            let mut word2 = 0u32;
            if swiglu {
                word2 = packed[gi2 * words_per_group + w];
            }
            let kk = g * group + w * per_word;
            #[unroll]
            for e in 0..per_word {
                let shift = comptime!(e as u32 * bits);
                let q = f32::cast_from((word >> shift) & mask);
                let mut q2 = 0.0f32;
                if swiglu {
                    q2 = f32::cast_from((word2 >> shift) & mask);
                }
                #[unroll]
                for r in 0..rows {
                    let xv = if normed { rows_in[r * k + kk + e] } else { x[min(row0 + r, last_row) * k + kk + e] };
                    dot[r] += xv * q;
                    sum[r] += xv;
                    if swiglu {
                        dot2[r] += xv * q2;
                    }
                }
            }
        }
        let s = scales[2 * gi];
        let o = scales[2 * gi + 1];
        let mut s2 = 0.0f32;
        let mut o2 = 0.0f32;
        if swiglu {
            s2 = scales[2 * gi2];
            o2 = scales[2 * gi2 + 1];
        }
        #[unroll]
        for r in 0..rows {
            acc[r] += s * dot[r] + o * sum[r];
            if swiglu {
                acc2[r] += s2 * dot2[r] + o2 * sum[r];
            }
        }
    }
    #[unroll]
    for r in 0..rows {
        let row = row0 + r;
        if row < m {
            let index = row * n + col;
            let mut value = acc[r];
            let mut up = acc2[r];
            if normed {
                value *= inv[r];
                up *= inv[r];
            }
            let mut result = value;
            if comptime!(epilogue == Epilogue::AddResidual) {
                result = side[index] + value;
            }
            if comptime!(epilogue == Epilogue::SwiGlu) {
                result = value / (1.0 + (-value).exp()) * up;
            }
            if comptime!(epilogue == Epilogue::GeGlu) {
                result = gelu_tanh(value) * up;
            }
            out[index] = result;
        }
    }
}

/// One invocation per output element.
#[cube(launch_unchecked)]
fn quant_rows_kernel(
    ids: &[i32],
    packed: &[u32],
    scales: &[f32],
    out: &mut [f32],
    count: usize,
    cols: usize,
    #[comptime] bits: u32,
    #[comptime] group: usize,
) {
    let per_word = comptime!(32 / bits) as usize;
    let mask = comptime!((1u32 << bits) - 1);
    if ABSOLUTE_POS >= count * cols {
        terminate!();
    }
    let t = ABSOLUTE_POS / cols;
    let c = ABSOLUTE_POS % cols;
    let index = usize::cast_from(ids[t]) * cols + c;
    let word = packed[index / per_word];
    let q = f32::cast_from((word >> (u32::cast_from(index % per_word) * bits)) & mask);
    let g = index / group;
    out[ABSOLUTE_POS] = scales[2 * g] * q + scales[2 * g + 1];
}

/// Lanes per row in the RMSNorm kernel.
const NORM_LANES: usize = 64;

/// One workgroup per row: lanes sum squares in turn, then scale their share of the row.
#[cube(launch_unchecked)]
fn rms_norm_kernel(x: &[f32], weight: &[f32], out: &mut [f32], d: usize, eps: f32) {
    let lane = UNIT_POS_X as usize;
    let base = CUBE_POS_X as usize * d;
    let lanes = comptime!(NORM_LANES);
    let mut partial = 0.0f32;
    let mut i = lane;
    while i < d {
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
    let inv = 1.0 / (shared[0] / f32::cast_from(d) + eps).sqrt();
    let mut i = lane;
    while i < d {
        out[base + i] = x[base + i] * inv * weight[i];
        i += lanes;
    }
}

/// One invocation per element.
#[cube(launch_unchecked)]
fn gelu_mul_kernel(gate: &[f32], up: &[f32], out: &mut [f32], count: usize) {
    if ABSOLUTE_POS >= count {
        terminate!();
    }
    out[ABSOLUTE_POS] = gelu_tanh(gate[ABSOLUTE_POS]) * up[ABSOLUTE_POS];
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
    let mut partial = 0.0f32;
    let mut i = lane;
    while i < head_dim {
        let v = qkv[base + i];
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
    let inv = 1.0 / (shared[0] / f32::cast_from(head_dim) + eps).sqrt();
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

/// One invocation per pair of values of `qkv`: rotate query and key pairs, copy value pairs,
/// and place keys and values in the caches. Pair `p` of a head is `(x[2p], x[2p+1])`, or with
/// `neox` `(x[p], x[p + rope_pairs])` for the rotated pairs (the rest stay neighbours).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn rope_and_cache_kernel(
    qkv: &[f32],
    cos: &[f32],
    sin: &[f32],
    q_out: &mut [f32],
    k_cache: &mut [f32],
    v_cache: &mut [f32],
    pairs_total: usize,
    start: usize,
    capacity: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    rope_pairs: usize,
    #[comptime] neox: bool,
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
            k_cache[o + a] = y0;
            k_cache[o + b] = y1;
        } else {
            v_cache[o + a] = y0;
            v_cache[o + b] = y1;
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
/// cache for the next steps. Without it `cos` and `sin` are unused.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn attention_kernel(
    q: &[f32],
    cos: &[f32],
    sin: &[f32],
    k_cache: &mut [f32],
    v_cache: &mut [f32],
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
            key[d] = roped(q, cos, sin, k_base_new, d, rope_pairs, neox);
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
                k_cache[o + d] = roped(q, cos, sin, k_base_new, d, rope_pairs, neox);
                v_cache[o + d] = q[v_base_new + d];
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
            score += query[d] * select(fresh, key[d], k_cache[k_base + d]);
        }
        let new_max = max(running_max, score);
        let correction = (running_max - new_max).exp();
        let weight = (score - new_max).exp();
        running_sum = running_sum * correction + weight;
        #[unroll]
        for d in 0..head_dim {
            let mut v = v_cache[k_base + d];
            if fused {
                v = select(fresh, q[v_base_new + d], v);
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

/// Lanes of the sampling kernel's single workgroup (WebGPU's default limit per workgroup).
const SAMPLE_LANES: usize = 256;

/// One invocation per token of the penalty window `history[first..first + window]`: the first
/// occurrence of each token applies the repetition, frequency and presence penalties to its
/// logit in place, so every logit has at most one writer.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn penalties_kernel(logits: &mut [f32], history: &[i32], first: usize, window: usize, repeat: f32, frequency: f32, presence: f32) {
    let i = ABSOLUTE_POS;
    if i >= window {
        terminate!();
    }
    let token = history[first + i];
    let mut count = 0u32;
    let mut earlier = false;
    for j in 0..window {
        if history[first + j] == token {
            count += 1;
            if j < i {
                earlier = true;
            }
        }
    }
    if !earlier {
        let index = usize::cast_from(token);
        let logit = logits[index];
        let scaled = select(logit > f32::new(0.0), logit / repeat, logit * repeat);
        logits[index] = scaled - (f32::cast_from(count) * frequency + presence);
    }
}

/// The sampler's choice on the device, in one workgroup, as [`crate::sampler::pick`] makes it:
/// `top_k` passes over the logits each find the best candidate after the previous one (higher
/// logit first, lower id on ties; NaN never), the lanes' bests merged through workgroup memory;
/// then the first lane cuts top-p and min-p from the probabilities at temperature 1 and draws at
/// the temperature with `draw`'s 24 high bits. Greedy is `top_k` 1 at temperature 0. `passes`
/// (a power of two ≥ `top_k`) bounds the loop at compile time, so every barrier is reached by
/// every lane; passes past `top_k` skip the scan. The id goes to `ids[0]` and `history[position]`.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn sample_kernel(
    logits: &[f32],
    history: &mut [i32],
    ids: &mut [i32],
    vocab: usize,
    top_k: usize,
    position: usize,
    temperature: f32,
    top_p: f32,
    min_p: f32,
    draw: u32,
    #[comptime] passes: usize,
) {
    let lane = UNIT_POS_X as usize;
    let lanes = comptime!(SAMPLE_LANES);
    let none = u32::cast_from(vocab);
    let mut best_values = Shared::<[f32]>::new_slice(comptime!(SAMPLE_LANES));
    let mut best_ids = Shared::<[u32]>::new_slice(comptime!(SAMPLE_LANES));
    let mut kept_values = Shared::<[f32]>::new_slice(passes);
    let mut kept_ids = Shared::<[u32]>::new_slice(passes);
    let mut previous_value = f32::new(0.0);
    let mut previous_id = none;
    for j in 0..passes {
        let mut value = f32::new(0.0);
        let mut id = none;
        // After the first pass, no previous pick means every logit is taken (or NaN).
        let exhausted = j > 0 && previous_id == none;
        if j < top_k && !exhausted {
            let mut i = lane;
            while i < vocab {
                let v = logits[i];
                let index = u32::cast_from(i);
                let after = j == 0 || v < previous_value || (v == previous_value && index > previous_id);
                if v == v && after && (id == none || v > value) {
                    value = v;
                    id = index;
                }
                i += lanes;
            }
        }
        best_values[lane] = value;
        best_ids[lane] = id;
        sync_cube();
        #[unroll]
        for level in 0..comptime!(SAMPLE_LANES.trailing_zeros()) {
            let half = comptime!(SAMPLE_LANES >> (level + 1));
            if lane < half {
                let other_id = best_ids[lane + half];
                let other = best_values[lane + half];
                let mine_id = best_ids[lane];
                let mine = best_values[lane];
                if other_id != none && (mine_id == none || other > mine || (other == mine && other_id < mine_id)) {
                    best_values[lane] = other;
                    best_ids[lane] = other_id;
                }
            }
            sync_cube();
        }
        previous_value = best_values[0];
        previous_id = best_ids[0];
        if lane == 0 {
            kept_values[j] = previous_value;
            kept_ids[j] = previous_id;
        }
        sync_cube();
    }

    if lane == 0 {
        let mut count = 0usize;
        for j in 0..passes {
            if j < top_k {
                if kept_ids[j] != none {
                    count = j + 1;
                }
            }
        }
        let mut chosen = kept_ids[0];
        if temperature > f32::new(0.0) && count > 1 {
            let top = kept_values[0];
            let mut total = f32::new(0.0);
            for j in 0..count {
                total += (kept_values[j] - top).exp();
            }
            let mut cut = count;
            if top_p < f32::new(1.0) {
                let mut cumulative = f32::new(0.0);
                let mut found = false;
                for j in 0..count {
                    cumulative += (kept_values[j] - top).exp() / total;
                    if !found && cumulative >= top_p {
                        cut = j + 1;
                        found = true;
                    }
                }
            }
            if min_p > f32::new(0.0) {
                let threshold = (f32::new(1.0) / total) * min_p;
                let mut kept = 0usize;
                let mut going = true;
                for j in 0..cut {
                    let p = (kept_values[j] - top).exp() / total;
                    if going && p >= threshold {
                        kept = j + 1;
                    } else {
                        going = false;
                    }
                }
                if kept == 0 {
                    kept = 1;
                }
                cut = kept;
            }
            let mut weights = f32::new(0.0);
            for j in 0..cut {
                weights += ((kept_values[j] - top) / temperature).exp();
            }
            let u = f32::cast_from(draw >> 8u32) / f32::new(16777216.0);
            let mut cumulative = f32::new(0.0);
            let mut found = false;
            chosen = kept_ids[cut - 1];
            for j in 0..cut {
                cumulative += ((kept_values[j] - top) / temperature).exp() / weights;
                if !found && u < cumulative {
                    chosen = kept_ids[j];
                    found = true;
                }
            }
        }
        // Every logit NaN: token 0, as the CPU sampler gives.
        if chosen == none {
            chosen = 0u32;
        }
        ids[0] = i32::cast_from(chosen);
        history[position] = i32::cast_from(chosen);
    }
}

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

/// The matmul kernel's fourth buffer: see [`quant_matmul_kernel`].
enum Side {
    None,
    Residual(CubeTensor),
    /// RMSNorm of the activations with this weight and epsilon first.
    Norm(CubeTensor, f32),
}

/// Most activation rows for which the matmul takes the RMSNorm itself: each workgroup stages its
/// rows, which pays for decode (one row: a dispatch saved) but, with many rows, repeats the
/// staging in every workgroup; a separate norm kernel does each row once.
const FUSED_NORM_MAX_ROWS: usize = 4;

/// Invocations per workgroup of the matmul kernel.
const MATMUL_LANES: usize = 64;

/// Workgroup memory a fused norm may stage (rows × k f32 values plus the partial sums): WebGPU
/// guarantees 16 KiB per workgroup; the rest is left for the compiler's own use.
const MAX_STAGED_BYTES: usize = 12 << 10;

fn launch_quant_matmul(
    x: CubeTensor,
    packed: CubeTensor,
    scales: CubeTensor,
    side: Side,
    n: usize,
    w: QuantLayout,
    epilogue: Epilogue,
) -> CubeTensor {
    let QuantLayout { bits, group, .. } = w;
    check_f32(&x, "activations");
    let x = contiguous(x);
    let dims = x.meta.shape().clone();
    let k = dims[dims.len() - 1];
    let m = dims.num_elements() / k;
    let mut out_dims = dims.to_vec();
    let last = out_dims.len() - 1;
    out_dims[last] = n;
    let out = empty_f32(&x, Shape::from(out_dims));

    // Larger activation blocks reuse each dequantized weight more; 8 keeps registers modest.
    let rows = match m {
        1 => 1,
        2 => 2,
        3 | 4 => 4,
        _ => 8,
    };
    let (side, eps, normed) = match side {
        Side::None => (None, 0.0, false),
        Side::Residual(r) => (Some(contiguous(r)), 0.0, false),
        Side::Norm(weight, eps) => (Some(contiguous(weight)), eps, true),
    };
    // Workgroup memory cannot be empty: one unused value without a norm.
    let staged = if normed { rows * k } else { 1 };
    let cube_count = CubeCount::new_2d(n.div_ceil(MATMUL_LANES) as u32, m.div_ceil(rows) as u32);
    count_dispatch();
    unsafe {
        quant_matmul_kernel::launch_unchecked(
            &x.client,
            cube_count,
            CubeDim::new_1d(MATMUL_LANES as u32),
            buffer(&x),
            buffer(&packed),
            buffer(&scales),
            // Unused without a side input: bind the (read-only) input in its place, since
            // WebGPU refuses a buffer bound both read-only and writable.
            buffer(side.as_ref().unwrap_or(&x)),
            buffer(&out),
            m,
            n,
            k,
            eps,
            bits,
            group,
            rows,
            epilogue,
            normed,
            staged,
        );
    }
    out
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
        );
    }
    out
}

impl LlmKernels for CubeBackend {
    fn quant_matmul(x: FloatTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self> {
        launch_quant_matmul(x, packed, scales, Side::None, w.rows, w, Epilogue::Plain)
    }

    fn quant_matmul_add(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        w: QuantLayout,
    ) -> FloatTensor<Self> {
        launch_quant_matmul(x, packed, scales, Side::Residual(residual), w.rows, w, Epilogue::AddResidual)
    }

    fn quant_swiglu(x: FloatTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self> {
        launch_quant_matmul(x, packed, scales, Side::None, w.rows / 2, w, Epilogue::SwiGlu)
    }

    fn quant_geglu(x: FloatTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self> {
        launch_quant_matmul(x, packed, scales, Side::None, w.rows / 2, w, Epilogue::GeGlu)
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
        let (n, epilogue) = match projection {
            Projection::Plain => (w.rows, Epilogue::Plain),
            Projection::SwiGlu => (w.rows / 2, Epilogue::SwiGlu),
            Projection::GeGlu => (w.rows / 2, Epilogue::GeGlu),
        };
        let dims = x.meta.shape();
        let k = dims[dims.len() - 1];
        let m = dims.num_elements() / k;
        let rows = m.next_power_of_two();
        if m <= FUSED_NORM_MAX_ROWS && (rows * k + rows * MATMUL_LANES) * 4 <= MAX_STAGED_BYTES {
            launch_quant_matmul(x, packed, scales, Side::Norm(norm, eps), n, w, epilogue)
        } else {
            let x = Self::rms_norm(x, norm, eps);
            launch_quant_matmul(x, packed, scales, Side::None, n, w, epilogue)
        }
    }

    fn gelu_mul(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        check_f32(&gate, "gelu_mul input");
        let (gate, up) = (contiguous(gate), contiguous(up));
        let count = elements(&gate);
        assert_eq!(count, elements(&up), "gelu_mul: gate and up differ in size");
        let out = empty_f32(&gate, gate.meta.shape().clone());
        let (cube_count, cube_dim) = elementwise_launch(count);
        count_dispatch();
        unsafe {
            gelu_mul_kernel::launch_unchecked(&gate.client, cube_count, cube_dim, buffer(&gate), buffer(&up), buffer(&out), count);
        }
        out
    }

    fn qk_norm(qkv: FloatTensor<Self>, q_weight: FloatTensor<Self>, k_weight: FloatTensor<Self>, eps: f32, h: Heads) -> FloatTensor<Self> {
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

    fn quant_rows(ids: IntTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self> {
        let QuantLayout { cols, bits, group, .. } = w;
        assert_eq!(ids.dtype.size(), 4, "token ids must be 32-bit");
        let ids = contiguous(ids);
        let count = elements(&ids);
        let out = empty_f32(&scales, Shape::from(vec![count, cols]));
        let (cube_count, cube_dim) = elementwise_launch(count * cols);
        count_dispatch();
        unsafe {
            quant_rows_kernel::launch_unchecked(
                &out.client,
                cube_count,
                cube_dim,
                buffer(&ids),
                buffer(&packed),
                buffer(&scales),
                buffer(&out),
                count,
                cols,
                bits,
                group,
            );
        }
        out
    }

    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
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

    fn rope_and_cache(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        start: usize,
        h: Heads,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
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
            );
        }
        (q, k_cache, v_cache)
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
        check_f32(&qkv, "qkv");
        if qkv.meta.shape()[0] != 1 {
            // Several new positions: each query needs keys that other workgroups rotate.
            let (q, k_cache, v_cache) = Self::rope_and_cache(qkv, cos, sin, k_cache, v_cache, start, h);
            let out = Self::attention(q, k_cache.clone(), v_cache.clone(), start, h);
            return (out, k_cache, v_cache);
        }
        let (qkv, cos, sin) = (contiguous(qkv), contiguous(cos), contiguous(sin));
        // The caches are written in place: they must be plain contiguous buffers of their own.
        let (k_cache, v_cache) = (contiguous(k_cache), contiguous(v_cache));
        let out = launch_attention(&qkv, Some((&cos, &sin)), &k_cache, &v_cache, start, h, 1);
        (out, k_cache, v_cache)
    }

    fn attention(q: FloatTensor<Self>, k_cache: FloatTensor<Self>, v_cache: FloatTensor<Self>, start: usize, h: Heads) -> FloatTensor<Self> {
        check_f32(&q, "queries");
        let q = contiguous(q);
        let count = q.meta.shape()[0];
        launch_attention(&q, None, &k_cache, &v_cache, start, h, count)
    }

    fn sample(logits: FloatTensor<Self>, history: IntTensor<Self>, choice: TokenChoice) -> (IntTensor<Self>, IntTensor<Self>) {
        let TokenChoice { cuts, repeat_penalty, frequency_penalty, presence_penalty, window, position, draw } = choice;
        check_f32(&logits, "logits");
        assert_eq!(history.dtype.size(), 4, "token ids must be 32-bit");
        // Both are written in place: the penalties change the logits, the choice joins the history.
        let (logits, history) = (contiguous(logits), contiguous(history));
        assert!(position < elements(&history) && window <= position, "the history holds {} tokens", elements(&history));
        let vocab = elements(&logits);
        if window > 0 {
            let (cube_count, cube_dim) = elementwise_launch(window);
            count_dispatch();
            unsafe {
                penalties_kernel::launch_unchecked(
                    &logits.client,
                    cube_count,
                    cube_dim,
                    buffer(&logits),
                    buffer(&history),
                    position - window,
                    window,
                    repeat_penalty,
                    frequency_penalty,
                    presence_penalty,
                );
            }
        }
        let top_k = if cuts.temperature <= 0.0 { 1 } else { cuts.top_k.clamp(1, crate::sampler::DEVICE_MAX_TOP_K) };
        // A handful of compiled variants: 8, 16, 32, 64, 128 passes.
        let passes = top_k.next_power_of_two().max(8);
        let ids = CubeTensor::new_contiguous(history.client.clone(), history.device.clone(), Shape::from(vec![1]), history.client.empty(4), history.dtype);
        count_dispatch();
        unsafe {
            sample_kernel::launch_unchecked(
                &logits.client,
                CubeCount::new_1d(1),
                CubeDim::new_1d(SAMPLE_LANES as u32),
                buffer(&logits),
                buffer(&history),
                buffer(&ids),
                vocab,
                top_k,
                position,
                cuts.temperature,
                cuts.top_p,
                cuts.min_p,
                draw,
                passes,
            );
        }
        (ids, history)
    }
}
