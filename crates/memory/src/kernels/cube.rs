//! The [`EmbedderKernels`] seam on GPUs: CubeCL kernels (WGSL in browsers, SPIR-V natively),
//! one dispatch per step of a BERT layer. Only f32, so no kernel needs `shader-f16`.
//!
//! burn runs the same steps as chains of small passes (a bias add, a slice made contiguous, a
//! softmax's max, exp, sum and divide...); on software adapters (lavapipe, SwiftShader) each
//! pass costs tens of microseconds and on real GPUs each costs a dispatch's overhead, whatever
//! the arithmetic. Rows are a few hundred values, so each kernel keeps a row in one workgroup.

use burn::tensor::{DType, Shape};
use burn_cubecl::{CubeBackend, tensor::CubeTensor};
use cubecl::prelude::*;

use super::EmbedderKernels;

/// Lanes of a workgroup that owns one row (LayerNorm, pooling).
const ROW_LANES: usize = 64;
/// Partials added by one lane in the first level of [`workgroup_sum`].
const SUM_GROUP: usize = 8;
/// Queries per attention workgroup, one lane each.
const QUERY_LANES: usize = 32;
/// Threads per workgroup of an elementwise kernel.
const ELEMENTWISE_LANES: usize = 64;

/// The sum of every lane's `partial`, for all lanes of a workgroup of [`ROW_LANES`], in two
/// levels of [`SUM_GROUP`] (16 shared reads per lane instead of 64): the first lanes each
/// add one group of partials, then every lane adds the group sums.
#[cube]
fn workgroup_sum(partial: f32) -> f32 {
    let lane = UNIT_POS_X as usize;
    let group = comptime!(SUM_GROUP);
    let groups = comptime!(ROW_LANES / SUM_GROUP);
    let mut partials = Shared::new_slice(comptime!(ROW_LANES));
    let mut group_sums = Shared::new_slice(comptime!(ROW_LANES / SUM_GROUP));
    partials[lane] = partial;
    sync_cube();
    if lane < groups {
        let mut sum = 0.0f32;
        #[unroll]
        for i in 0..group {
            sum += partials[lane * group + i];
        }
        group_sums[lane] = sum;
    }
    sync_cube();
    let mut total = 0.0f32;
    #[unroll]
    for g in 0..groups {
        total += group_sums[g];
    }
    total
}

/// LayerNorm of row `base..base + d` of `out`, which holds the values before the norm: each
/// lane reads and writes only its own columns (`lane`, `lane + ROW_LANES`, ...).
#[cube]
fn layer_norm_row(out: &mut [f32], gamma: &[f32], beta: &[f32], base: usize, d: usize, eps: f32) {
    let lane = UNIT_POS_X as usize;
    let lanes = comptime!(ROW_LANES);
    let mut sum = 0.0f32;
    let mut i = lane;
    while i < d {
        sum += out[base + i];
        i += lanes;
    }
    let mean = workgroup_sum(sum) / f32::cast_from(d);
    let mut squares = 0.0f32;
    let mut i = lane;
    while i < d {
        let centred = out[base + i] - mean;
        squares += centred * centred;
        i += lanes;
    }
    let inv_std = 1.0 / (workgroup_sum(squares) / f32::cast_from(d) + eps).sqrt();
    let mut i = lane;
    while i < d {
        out[base + i] = (out[base + i] - mean) * inv_std * gamma[i] + beta[i];
        i += lanes;
    }
}

/// One workgroup per token: its word, position and token-type embeddings summed, then normed.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn embeddings_kernel(
    ids: &[i32],
    words: &[f32],
    positions: &[f32],
    token_type: &[f32],
    gamma: &[f32],
    beta: &[f32],
    out: &mut [f32],
    seq_len: usize,
    d: usize,
    eps: f32,
) {
    let lane = UNIT_POS_X as usize;
    let token = CUBE_POS_X as usize;
    let word = usize::cast_from(ids[token]) * d;
    let position = (token % seq_len) * d;
    let base = token * d;
    let mut i = lane;
    while i < d {
        out[base + i] = words[word + i] + positions[position + i] + token_type[i];
        i += comptime!(ROW_LANES);
    }
    layer_norm_row(out, gamma, beta, base, d, eps);
}

/// One workgroup per row: `x + bias + residual`, then normed.
#[cube(launch_unchecked)]
fn bias_residual_layer_norm_kernel(x: &[f32], bias: &[f32], residual: &[f32], gamma: &[f32], beta: &[f32], out: &mut [f32], d: usize, eps: f32) {
    let lane = UNIT_POS_X as usize;
    let base = CUBE_POS_X as usize * d;
    let mut i = lane;
    while i < d {
        out[base + i] = x[base + i] + bias[i] + residual[base + i];
        i += comptime!(ROW_LANES);
    }
    layer_norm_row(out, gamma, beta, base, d, eps);
}

/// One invocation per element, workgroups along a row (x) and one row of them per row of `x`
/// (y: a batch's 1536-wide rows would pass WebGPU's 65535 workgroups along one dimension):
/// `gelu(x + bias)` with erf, as burn's `gelu` computes it.
#[cube(launch_unchecked)]
fn bias_gelu_kernel(x: &[f32], bias: &[f32], out: &mut [f32], cols: usize) {
    let col = CUBE_POS_X as usize * comptime!(ELEMENTWISE_LANES) + UNIT_POS_X as usize;
    if col >= cols {
        terminate!();
    }
    let at = CUBE_POS_Y as usize * cols + col;
    let v = x[at] + bias[col];
    out[at] = v * (Erf::erf(v / f32::new(core::f32::consts::SQRT_2)) + 1.0) / 2.0;
}

/// One workgroup per (text, head, block of [`QUERY_LANES`] queries), one lane per query. Each
/// lane reads its query, and every real key and value of its text and head, straight from the
/// stacked `qkv` product, and keeps a running softmax (max, sum, weighted values) over the
/// keys: no score matrix, no copies of q, k or v. Padding keys are skipped (their weight in
/// burn's masked softmax is exactly 0). The context lands in `[n, d]` order.
///
/// The bias is added to the query only: the key bias adds `q · b_k` to every score of a query,
/// which its softmax does not see, and the value bias adds `b_v` to a context whose weights sum
/// to 1, so it is added once at the end. That halves the reads per key.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn attention_kernel(qkv: &[f32], bias: &[f32], mask: &[f32], out: &mut [f32], seq_len: usize, heads: usize, scale: f32, #[comptime] head_dim: usize) {
    let text = CUBE_POS_X as usize / heads;
    let head = CUBE_POS_X as usize % heads;
    let query = CUBE_POS_Y as usize * comptime!(QUERY_LANES) + UNIT_POS_X as usize;
    if query >= seq_len {
        terminate!();
    }
    let d = heads * head_dim;
    let width = 3 * d;
    let q_offset = head * head_dim;
    let k_offset = d + q_offset;
    let v_offset = 2 * d + q_offset;
    let first_row = text * seq_len;

    let mut q = Array::<f32>::new(head_dim);
    let mut acc = Array::<f32>::new(head_dim);
    let q_base = (first_row + query) * width + q_offset;
    #[unroll]
    for c in 0..head_dim {
        q[c] = (qkv[q_base + c] + bias[q_offset + c]) * scale;
        acc[c] = 0.0;
    }
    // A large finite floor instead of -inf keeps exp(old max - new max) finite at the start.
    let mut running_max = f32::new(-1.0e30);
    let mut running_sum = 0.0f32;
    for key in 0..seq_len {
        if mask[first_row + key] > 0.5 {
            let row = (first_row + key) * width;
            let mut score = 0.0f32;
            #[unroll]
            for c in 0..head_dim {
                score += q[c] * qkv[row + k_offset + c];
            }
            // Rescaled only when the maximum moves: one exp per key otherwise.
            if score > running_max {
                let shrink = (running_max - score).exp();
                running_sum *= shrink;
                #[unroll]
                for c in 0..head_dim {
                    acc[c] *= shrink;
                }
                running_max = score;
            }
            let weight = (score - running_max).exp();
            running_sum += weight;
            #[unroll]
            for c in 0..head_dim {
                acc[c] += weight * qkv[row + v_offset + c];
            }
        }
    }
    // A text without a single real token (never made by the embedder) gets the value bias, not NaN.
    let inv_sum = select(running_sum > 0.0, 1.0 / running_sum, 0.0);
    let out_base = (first_row + query) * d + q_offset;
    #[unroll]
    for c in 0..head_dim {
        out[out_base + c] = acc[c] * inv_sum + bias[v_offset + c];
    }
}

/// One workgroup per text: the mean of its real token rows, then scaled to unit length (each
/// lane writes its columns' means, then rescales those same columns).
#[cube(launch_unchecked)]
fn mean_pool_kernel(x: &[f32], mask: &[f32], out: &mut [f32], seq_len: usize, d: usize) {
    let lane = UNIT_POS_X as usize;
    let text = CUBE_POS_X as usize;
    let first_row = text * seq_len;
    let mut tokens = 0.0f32;
    for t in 0..seq_len {
        tokens += mask[first_row + t];
    }
    let tokens = max(tokens, f32::new(1.0e-9));
    let base = text * d;
    let mut squares = 0.0f32;
    let mut i = lane;
    while i < d {
        let mut sum = 0.0f32;
        for t in 0..seq_len {
            sum += x[(first_row + t) * d + i] * mask[first_row + t];
        }
        let mean = sum / tokens;
        out[base + i] = mean;
        squares += mean * mean;
        i += comptime!(ROW_LANES);
    }
    let norm = max(workgroup_sum(squares).sqrt(), f32::new(1.0e-12));
    let mut i = lane;
    while i < d {
        out[base + i] = out[base + i] / norm;
        i += comptime!(ROW_LANES);
    }
}

/// The tensor as one dense buffer: burn copies it (one more dispatch) only when it is a view.
fn dense(t: CubeTensor) -> CubeTensor {
    burn_cubecl::kernel::into_contiguous(t)
}

fn count(t: &CubeTensor) -> usize {
    t.meta.shape().num_elements()
}

fn arg(t: &CubeTensor) -> BufferArg {
    // SAFETY: the handle holds `count(t)` values of 4 bytes (f32 or i32), as every kernel here
    // reads them.
    unsafe { BufferArg::from_raw_parts(t.handle.clone(), count(t)) }
}

fn new_f32(like: &CubeTensor, dims: Vec<usize>) -> CubeTensor {
    let shape = Shape::from(dims);
    let handle = like.client.empty(shape.num_elements() * 4);
    CubeTensor::new_contiguous(like.client.clone(), like.device.clone(), shape, handle, DType::F32)
}

fn dims2(t: &CubeTensor) -> (usize, usize) {
    let shape = t.meta.shape();
    let cols = shape[shape.len() - 1];
    (shape.num_elements() / cols.max(1), cols)
}

/// The workgroup of a kernel that keeps one row in one workgroup.
fn row_lanes() -> CubeDim {
    CubeDim::new_1d(ROW_LANES as u32)
}

fn expect_f32(tensors: &[&CubeTensor]) {
    for t in tensors {
        assert_eq!(t.dtype, DType::F32, "the embedder's kernels take f32 tensors");
    }
}

impl EmbedderKernels for CubeBackend {
    fn embeddings(ids: CubeTensor, words: CubeTensor, positions: CubeTensor, token_type: CubeTensor, gamma: CubeTensor, beta: CubeTensor, eps: f32, seq_len: usize) -> CubeTensor {
        assert_eq!(ids.dtype.size(), 4, "token ids must be 32-bit");
        expect_f32(&[&words, &positions, &token_type, &gamma, &beta]);
        let (ids, words, positions, token_type, gamma, beta) = (dense(ids), dense(words), dense(positions), dense(token_type), dense(gamma), dense(beta));
        let tokens = count(&ids);
        let d = dims2(&words).1;
        let out = new_f32(&words, vec![tokens, d]);
        unsafe {
            embeddings_kernel::launch_unchecked(&words.client, CubeCount::new_1d(tokens as u32), row_lanes(), arg(&ids), arg(&words), arg(&positions), arg(&token_type), arg(&gamma), arg(&beta), arg(&out), seq_len.max(1), d, eps);
        }
        out
    }

    fn bias_residual_layer_norm(x: CubeTensor, bias: CubeTensor, residual: CubeTensor, gamma: CubeTensor, beta: CubeTensor, eps: f32) -> CubeTensor {
        expect_f32(&[&x, &bias, &residual, &gamma, &beta]);
        let (x, bias, residual, gamma, beta) = (dense(x), dense(bias), dense(residual), dense(gamma), dense(beta));
        let (rows, d) = dims2(&x);
        assert_eq!(count(&residual), rows * d, "bias_residual_layer_norm: x and residual differ in size");
        let out = new_f32(&x, vec![rows, d]);
        unsafe {
            bias_residual_layer_norm_kernel::launch_unchecked(&x.client, CubeCount::new_1d(rows as u32), row_lanes(), arg(&x), arg(&bias), arg(&residual), arg(&gamma), arg(&beta), arg(&out), d, eps);
        }
        out
    }

    fn bias_gelu(x: CubeTensor, bias: CubeTensor) -> CubeTensor {
        expect_f32(&[&x, &bias]);
        let (x, bias) = (dense(x), dense(bias));
        let (rows, cols) = dims2(&x);
        let out = new_f32(&x, vec![rows, cols]);
        unsafe {
            bias_gelu_kernel::launch_unchecked(&x.client, CubeCount::new_2d(cols.div_ceil(ELEMENTWISE_LANES) as u32, rows as u32), CubeDim::new_1d(ELEMENTWISE_LANES as u32), arg(&x), arg(&bias), arg(&out), cols);
        }
        out
    }

    fn attention(qkv: CubeTensor, bias: CubeTensor, mask: CubeTensor, heads: usize) -> CubeTensor {
        expect_f32(&[&qkv, &bias, &mask]);
        let (qkv, bias, mask) = (dense(qkv), dense(bias), dense(mask));
        let (rows, width) = dims2(&qkv);
        let (texts, seq_len) = dims2(&mask);
        assert_eq!(texts * seq_len, rows, "attention: the mask does not cover qkv's rows");
        let d = width / 3;
        let head_dim = d / heads;
        let out = new_f32(&qkv, vec![rows, d]);
        unsafe {
            attention_kernel::launch_unchecked(&qkv.client, CubeCount::new_2d((texts * heads) as u32, seq_len.div_ceil(QUERY_LANES) as u32), CubeDim::new_1d(QUERY_LANES as u32), arg(&qkv), arg(&bias), arg(&mask), arg(&out), seq_len, heads, 1.0 / (head_dim as f32).sqrt(), head_dim);
        }
        out
    }

    fn mean_pool(x: CubeTensor, mask: CubeTensor) -> CubeTensor {
        expect_f32(&[&x, &mask]);
        let (x, mask) = (dense(x), dense(mask));
        let (texts, seq_len) = dims2(&mask);
        let d = dims2(&x).1;
        let out = new_f32(&x, vec![texts, d]);
        unsafe {
            mean_pool_kernel::launch_unchecked(&x.client, CubeCount::new_1d(texts as u32), row_lanes(), arg(&x), arg(&mask), arg(&out), seq_len, d);
        }
        out
    }
}
