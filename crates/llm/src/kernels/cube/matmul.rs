//! Quantized matrix products, with their epilogues (residual add, SwiGLU, GeGLU) and the
//! RMSNorm that may run inside them.

use burn::tensor::Shape;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::elementwise::gelu_tanh;
use super::{buffer, check_f32, contiguous, empty_f32};
use crate::device_work::count_dispatch;
use crate::kernels::{Projection, QuantLayout};

/// What the matmul kernel does with each dot product before writing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Epilogue {
    Plain,
    AddResidual,
    SwiGlu,
    /// `gelu(gate) * up` with the tanh approximation (Gemma's GeGLU).
    GeGlu,
}

/// What a product kernel writes for the dot product `value` at output `index` (`up`: the up
/// projection's, for the gated epilogues; `side`: the residual, for `AddResidual`).
#[cube]
fn epilogue_value(value: f32, up: f32, side: &[f32], index: usize, #[comptime] epilogue: Epilogue) -> f32 {
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
    result
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
            out[index] = epilogue_value(value, up, side, index, epilogue);
        }
    }
}

/// Activation rows of the tiled product's output tile.
const TILE_M: usize = 32;
/// Weight rows (output columns) of the tiled product's output tile.
const TILE_N: usize = 32;
/// Values of `k` staged in workgroup memory per step.
const TILE_K: usize = 32;
/// Invocations of the tiled product: 8 × 8, each accumulating a 4 × 4 block of the tile.
const TILE_LANES: usize = 64;
/// Each invocation's rows and columns of the tile (`TILE_M / 8`, `TILE_N / 8`).
const REG: usize = 4;

/// Quantized matrix-matrix product for prompts: each workgroup computes a `TILE_M × TILE_N`
/// block of the output, walking `k` in steps of `TILE_K`. Per step the lanes stage the
/// activation block and the weight block, dequantized once (`scale × q + offset`), in workgroup
/// memory, then every lane accumulates its 4 × 4 outputs from there, so each weight is read and
/// unpacked once per `TILE_M` activation rows (the row kernel: once per 8) and each activation
/// once per `TILE_N` weight rows (the row kernel: once per weight row). Rows are padded to
/// `TILE_K + 1` values so the lanes of one column read different banks. Lane `(tx, ty)` owns
/// activation rows `ty + 8i` and weight rows `tx + 8j`: neighbouring lanes read neighbouring rows.
///
/// Epilogues as in [`quant_matmul_kernel`]; the gated ones stage the up projection's rows
/// (`n + col`) beside the gate's. Workgroup memory: two or three 32 × 33 f32 blocks, 12.4 KiB at
/// most, within WebGPU's 16 KiB.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn tiled_quant_matmul_kernel(
    x: &[f32],
    packed: &[u32],
    scales: &[f32],
    side: &[f32],
    out: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    #[comptime] bits: u32,
    #[comptime] group: usize,
    #[comptime] epilogue: Epilogue,
) {
    let per_word = comptime!(32 / bits) as usize;
    let mask = comptime!((1u32 << bits) - 1);
    let swiglu = comptime!(epilogue == Epilogue::SwiGlu || epilogue == Epilogue::GeGlu);
    let stride = comptime!(TILE_K + 1);
    let words_per_tile_row = comptime!(TILE_K / (32 / bits as usize));
    let word_loads = comptime!(TILE_N * TILE_K / (32 / bits as usize) / TILE_LANES);
    let x_loads = comptime!(TILE_M * TILE_K / TILE_LANES);
    let matrices = comptime!(if swiglu { 2usize } else { 1usize });

    let lane = UNIT_POS_X as usize;
    let tx = lane % 8;
    let ty = lane / 8;
    let row0 = CUBE_POS_Y as usize * TILE_M;
    let col0 = CUBE_POS_X as usize * TILE_N;

    let mut xs = Shared::<[f32]>::new_slice(comptime!(TILE_M * (TILE_K + 1)));
    let mut ws = Shared::<[f32]>::new_slice(comptime!(TILE_N * (TILE_K + 1)));
    let mut us = Shared::<[f32]>::new_slice(comptime!(if swiglu { TILE_N * (TILE_K + 1) } else { 1 }));

    let mut acc = Array::<f32>::new(comptime!(REG * REG));
    let mut acc2 = Array::<f32>::new(comptime!(REG * REG));
    #[unroll]
    for i in 0..comptime!(REG * REG) {
        acc[i] = 0.0;
        acc2[i] = 0.0;
    }
    let mut a = Array::<f32>::new(REG);
    let mut b = Array::<f32>::new(REG);
    let mut b2 = Array::<f32>::new(REG);

    let mut k0 = 0usize;
    while k0 < k {
        // Activations, zero outside the matrix (ragged last rows and steps).
        #[unroll]
        for j in 0..x_loads {
            let i = lane + j * TILE_LANES;
            let r = i / TILE_K;
            let c = i % TILE_K;
            let row = row0 + r;
            let kk = k0 + c;
            let mut v = 0.0f32;
            if row < m && kk < k {
                v = x[row * k + kk];
            }
            xs[r * stride + c] = v;
        }
        // Weights, one packed word per load; a word never straddles a group (groups hold whole
        // words) nor the end of a row (`k` is a multiple of the group).
        #[unroll]
        for j in 0..word_loads {
            let i = lane + j * TILE_LANES;
            let r = i / words_per_tile_row;
            let c = (i % words_per_tile_row) * per_word;
            let col = col0 + r;
            let kk = k0 + c;
            let inside = col < n && kk < k;
            // The gate's row, then with a gated epilogue the up projection's (`n` rows below).
            #[unroll]
            for half in 0..matrices {
                let mut word = 0u32;
                let mut s = 0.0f32;
                let mut o = 0.0f32;
                if inside {
                    let at = (col + half * n) * k + kk;
                    word = packed[at / per_word];
                    let gi = at / group;
                    s = scales[2 * gi];
                    o = scales[2 * gi + 1];
                }
                #[unroll]
                for e in 0..per_word {
                    let shift = comptime!(e as u32 * bits);
                    let value = s * f32::cast_from((word >> shift) & mask) + o;
                    if half == 0 {
                        ws[r * stride + c + e] = value;
                    } else {
                        us[r * stride + c + e] = value;
                    }
                }
            }
        }
        sync_cube();
        for c in 0..TILE_K {
            #[unroll]
            for i in 0..REG {
                a[i] = xs[(ty + 8 * i) * stride + c];
                b[i] = ws[(tx + 8 * i) * stride + c];
                if swiglu {
                    b2[i] = us[(tx + 8 * i) * stride + c];
                }
            }
            #[unroll]
            for i in 0..REG {
                #[unroll]
                for j in 0..REG {
                    acc[i * REG + j] += a[i] * b[j];
                    if swiglu {
                        acc2[i * REG + j] += a[i] * b2[j];
                    }
                }
            }
        }
        // The next step overwrites the blocks every lane is reading.
        sync_cube();
        k0 += TILE_K;
    }

    #[unroll]
    for i in 0..REG {
        #[unroll]
        for j in 0..REG {
            let row = row0 + ty + 8 * i;
            let col = col0 + tx + 8 * j;
            if row < m && col < n {
                let index = row * n + col;
                let value = acc[i * REG + j];
                let up = acc2[i * REG + j];
                out[index] = epilogue_value(value, up, side, index, epilogue);
            }
        }
    }
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

    let (side, eps, normed) = match side {
        Side::None => (None, 0.0, false),
        Side::Residual(r) => (Some(contiguous(r)), 0.0, false),
        Side::Norm(weight, eps) => (Some(contiguous(weight)), eps, true),
    };
    // Unused without a side input: bind the (read-only) input in its place, since WebGPU refuses
    // a buffer bound both read-only and writable.
    let side_arg = buffer(side.as_ref().unwrap_or(&x));
    // The buffers every product binds, in the kernels' order.
    let (x_arg, packed_arg, scales_arg, out_arg) = (buffer(&x), buffer(&packed), buffer(&scales), buffer(&out));
    if !normed && super::tiled_prefill(m) {
        let cube_count = CubeCount::new_2d(n.div_ceil(TILE_N) as u32, m.div_ceil(TILE_M) as u32);
        let cube_dim = CubeDim::new_1d(TILE_LANES as u32);
        count_dispatch();
        unsafe {
            tiled_quant_matmul_kernel::launch_unchecked(&x.client, cube_count, cube_dim, x_arg, packed_arg, scales_arg, side_arg, out_arg, m, n, k, bits, group, epilogue);
        }
        return out;
    }

    // Larger activation blocks reuse each dequantized weight more; 8 keeps registers modest.
    let rows = match m {
        1 => 1,
        2 => 2,
        3 | 4 => 4,
        _ => 8,
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
            x_arg,
            packed_arg,
            scales_arg,
            side_arg,
            out_arg,
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

pub(super) fn quant_matmul(x: CubeTensor, packed: CubeTensor, scales: CubeTensor, w: QuantLayout) -> CubeTensor {
    launch_quant_matmul(x, packed, scales, Side::None, w.rows, w, Epilogue::Plain)
}

pub(super) fn quant_matmul_add(
    x: CubeTensor,
    packed: CubeTensor,
    scales: CubeTensor,
    residual: CubeTensor,
    w: QuantLayout,
) -> CubeTensor {
    launch_quant_matmul(x, packed, scales, Side::Residual(residual), w.rows, w, Epilogue::AddResidual)
}

pub(super) fn quant_swiglu(x: CubeTensor, packed: CubeTensor, scales: CubeTensor, w: QuantLayout) -> CubeTensor {
    launch_quant_matmul(x, packed, scales, Side::None, w.rows / 2, w, Epilogue::SwiGlu)
}

pub(super) fn quant_geglu(x: CubeTensor, packed: CubeTensor, scales: CubeTensor, w: QuantLayout) -> CubeTensor {
    launch_quant_matmul(x, packed, scales, Side::None, w.rows / 2, w, Epilogue::GeGlu)
}

pub(super) fn normed_quant_matmul(
    x: CubeTensor,
    norm: CubeTensor,
    eps: f32,
    packed: CubeTensor,
    scales: CubeTensor,
    w: QuantLayout,
    projection: Projection,
) -> CubeTensor {
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
        let x = super::norms::rms_norm(x, norm, eps);
        launch_quant_matmul(x, packed, scales, Side::None, n, w, epilogue)
    }
}
