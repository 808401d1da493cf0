//! CubeCL kernels for the operations burn has no fast built-in for: matrix products against
//! weights that stay quantized on the device, and the embedding look-up from them.
//!
//! Weights use one of two device layouts (see [`crate::quant`]): 4-bit values packed eight to a
//! `u32`, or 8-bit values packed four to a `u32`; each group of `group` values has an f32 scale
//! and offset, `w = scale * q + offset`. Scales are f32 so no kernel needs `shader-f16`.

use burn::backend::{Backend, backend_extension, tensor::FloatTensor, tensor::IntTensor};
use burn::tensor::{DType, Shape};
use burn_cubecl::{CubeBackend, tensor::CubeTensor};
use cubecl::prelude::*;

/// Device operations on quantized weights. Implemented for burn's CubeCL backend (WebGPU,
/// Vulkan); a CPU backend (wasm SIMD) slots in by implementing this trait for its own backend.
#[backend_extension(Cube)]
pub trait LlmKernels: Backend {
    /// `x [m, k] · wᵀ` where `w [n, k]` is quantized: `bits` 4 or 8, `group` values per scale.
    fn quant_matmul(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scale: FloatTensor<Self>,
        offset: FloatTensor<Self>,
        n: usize,
        bits: u32,
        group: usize,
    ) -> FloatTensor<Self>;

    /// Rows `ids` of a quantized `[rows, cols]` matrix, dequantized: `[ids.len(), cols]`.
    fn quant_rows(
        ids: IntTensor<Self>,
        packed: IntTensor<Self>,
        scale: FloatTensor<Self>,
        offset: FloatTensor<Self>,
        cols: usize,
        bits: u32,
        group: usize,
    ) -> FloatTensor<Self>;

    /// Rotary position embedding on `x [positions, heads × head_dim]`, rotating adjacent pairs
    /// `(x[2i], x[2i+1])` of each head by the angle whose cos and sin are `[positions, i]`, for
    /// the first `rope_dims` dimensions of each head (the rest pass through).
    fn rope(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        heads: usize,
        head_dim: usize,
        rope_dims: usize,
    ) -> FloatTensor<Self>;
}

/// One invocation per pair of values.
#[cube(launch_unchecked)]
fn rope_kernel(
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    out: &mut [f32],
    pairs_total: usize,
    heads: usize,
    head_dim: usize,
    rope_pairs: usize,
) {
    if ABSOLUTE_POS >= pairs_total {
        terminate!();
    }
    let half = head_dim / 2;
    let pair = ABSOLUTE_POS % half;
    let position = ABSOLUTE_POS / (half * heads);
    let i = ABSOLUTE_POS * 2;
    let x0 = x[i];
    let x1 = x[i + 1];
    if pair < rope_pairs {
        let c = cos[position * rope_pairs + pair];
        let s = sin[position * rope_pairs + pair];
        out[i] = x0 * c - x1 * s;
        out[i + 1] = x0 * s + x1 * c;
    } else {
        out[i] = x0;
        out[i + 1] = x1;
    }
}

/// One invocation per output element.
#[cube(launch_unchecked)]
fn quant_rows_kernel(
    ids: &[i32],
    packed: &[u32],
    scale: &[f32],
    offset: &[f32],
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
    out[ABSOLUTE_POS] = scale[index / group] * q + offset[index / group];
}

/// One invocation per output row `n` and block of `rows` input rows: each weight is
/// dequantized once and used for `rows` activations. The inner loop walks one packed word at a
/// time; groups are whole words, so the scale and offset change only between words.
#[cube(launch_unchecked)]
fn quant_matmul_kernel(
    x: &[f32],
    packed: &[u32],
    scale: &[f32],
    offset: &[f32],
    out: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    #[comptime] bits: u32,
    #[comptime] group: usize,
    #[comptime] rows: usize,
) {
    let per_word = comptime!(32 / bits) as usize;
    let mask = comptime!((1u32 << bits) - 1);
    let col = ABSOLUTE_POS % n;
    let row0 = (ABSOLUTE_POS / n) * rows;
    if row0 >= m {
        terminate!();
    }
    let words_per_row = k / per_word;
    let groups_per_row = k / group;
    let words_per_group = comptime!(group / (32 / bits as usize));

    let mut acc = Array::<f32>::new(rows);
    #[unroll]
    for r in 0..rows {
        acc[r] = 0.0;
    }

    for g in 0..groups_per_row {
        let s = scale[col * groups_per_row + g];
        let o = offset[col * groups_per_row + g];
        let mut dot = Array::<f32>::new(rows);
        let mut sum = Array::<f32>::new(rows);
        #[unroll]
        for r in 0..rows {
            dot[r] = 0.0;
            sum[r] = 0.0;
        }
        #[unroll]
        for w in 0..words_per_group {
            let word = packed[col * words_per_row + g * words_per_group + w];
            let kk = g * group + w * per_word;
            #[unroll]
            for e in 0..per_word {
                let q = f32::cast_from((word >> (e as u32 * bits)) & mask);
                #[unroll]
                for r in 0..rows {
                    let row = row0 + r;
                    // Rows past `m` read row 0 (always valid) and are discarded below.
                    let xi = select(row < m, row, 0usize) * k + kk + e;
                    let xv = x[xi];
                    dot[r] += xv * q;
                    sum[r] += xv;
                }
            }
        }
        #[unroll]
        for r in 0..rows {
            acc[r] += s * dot[r] + o * sum[r];
        }
    }
    #[unroll]
    for r in 0..rows {
        let row = row0 + r;
        if row < m {
            out[row * n + col] = acc[r];
        }
    }
}

fn contiguous_f32(t: &CubeTensor, what: &str) {
    assert_eq!(t.dtype, DType::F32, "{what} must be f32");
}

fn empty_f32(like: &CubeTensor, shape: Shape) -> CubeTensor {
    let handle = like.client.empty(shape.num_elements() * 4);
    CubeTensor::new_contiguous(like.client.clone(), like.device.clone(), shape, handle, DType::F32)
}

fn elementwise_launch(units: usize) -> (CubeCount, CubeDim) {
    (CubeCount::new_1d(units.div_ceil(64) as u32), CubeDim::new_1d(64))
}

impl LlmKernels for CubeBackend {
    fn rope(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        heads: usize,
        head_dim: usize,
        rope_dims: usize,
    ) -> FloatTensor<Self> {
        contiguous_f32(&x, "rope input");
        let x = burn_cubecl::kernel::into_contiguous(x);
        let cos = burn_cubecl::kernel::into_contiguous(cos);
        let sin = burn_cubecl::kernel::into_contiguous(sin);
        let elements = x.meta.shape().num_elements();
        let out = empty_f32(&x, x.meta.shape().clone());
        let pairs_total = elements / 2;
        let (cube_count, cube_dim) = elementwise_launch(pairs_total);
        unsafe {
            rope_kernel::launch_unchecked(
                &out.client,
                cube_count,
                cube_dim,
                BufferArg::from_raw_parts(x.handle.clone(), elements),
                BufferArg::from_raw_parts(cos.handle.clone(), cos.meta.shape().num_elements()),
                BufferArg::from_raw_parts(sin.handle.clone(), sin.meta.shape().num_elements()),
                BufferArg::from_raw_parts(out.handle.clone(), elements),
                pairs_total,
                heads,
                head_dim,
                rope_dims / 2,
            );
        }
        out
    }

    fn quant_rows(
        ids: IntTensor<Self>,
        packed: IntTensor<Self>,
        scale: FloatTensor<Self>,
        offset: FloatTensor<Self>,
        cols: usize,
        bits: u32,
        group: usize,
    ) -> FloatTensor<Self> {
        assert_eq!(ids.dtype.size(), 4, "token ids must be 32-bit");
        let ids = burn_cubecl::kernel::into_contiguous(ids);
        let count = ids.meta.shape().num_elements();
        let out = empty_f32(&scale, Shape::from(vec![count, cols]));
        let (cube_count, cube_dim) = elementwise_launch(count * cols);
        unsafe {
            quant_rows_kernel::launch_unchecked(
                &out.client,
                cube_count,
                cube_dim,
                BufferArg::from_raw_parts(ids.handle.clone(), count),
                BufferArg::from_raw_parts(packed.handle.clone(), packed.meta.shape().num_elements()),
                BufferArg::from_raw_parts(scale.handle.clone(), scale.meta.shape().num_elements()),
                BufferArg::from_raw_parts(offset.handle.clone(), offset.meta.shape().num_elements()),
                BufferArg::from_raw_parts(out.handle.clone(), count * cols),
                count,
                cols,
                bits,
                group,
            );
        }
        out
    }

    fn quant_matmul(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scale: FloatTensor<Self>,
        offset: FloatTensor<Self>,
        n: usize,
        bits: u32,
        group: usize,
    ) -> FloatTensor<Self> {
        contiguous_f32(&x, "activations");
        let dims = x.meta.shape().clone();
        let k = dims[dims.len() - 1];
        let m = dims.num_elements() / k;
        let x = burn_cubecl::kernel::into_contiguous(x);
        let client = x.client.clone();
        let mut out_dims = dims.clone();
        let last = out_dims.len() - 1;
        out_dims[last] = n;
        let out = empty_f32(&x, Shape::from(out_dims.to_vec()));

        let rows = if m >= 8 { 8 } else if m >= 4 { 4 } else { 1 };
        let units = n * m.div_ceil(rows);
        let cube_dim = CubeDim::new_1d(64);
        let cube_count = CubeCount::new_1d(units.div_ceil(64) as u32);
        let per_word = 32 / bits as usize;
        unsafe {
            quant_matmul_kernel::launch_unchecked(
                &client,
                cube_count,
                cube_dim,
                BufferArg::from_raw_parts(x.handle.clone(), m * k),
                BufferArg::from_raw_parts(packed.handle.clone(), n * k / per_word),
                BufferArg::from_raw_parts(scale.handle.clone(), n * k / group),
                BufferArg::from_raw_parts(offset.handle.clone(), n * k / group),
                BufferArg::from_raw_parts(out.handle.clone(), m * n),
                m,
                n,
                k,
                bits,
                group,
                rows,
            );
        }
        out
    }
}
