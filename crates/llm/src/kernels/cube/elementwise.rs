//! Elementwise steps: GeGLU over float weights, and the embedding look-up (dequantized rows).

use burn::tensor::Shape;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::{buffer, check_f32, contiguous, elementwise_launch, elements, empty_f32};
use crate::device_work::count_dispatch;
use crate::kernels::QuantLayout;

/// GELU, tanh approximation (as ggml's `ggml_gelu_f32`). `tanh` is written with `exp` of a
/// negative argument, which cannot overflow.
#[cube]
pub(super) fn gelu_tanh(x: f32) -> f32 {
    let u = f32::new(0.797_884_6) * x * (f32::new(1.0) + f32::new(0.044_715) * x * x);
    let negative = u < f32::new(0.0);
    let magnitude = select(negative, -u, u);
    let e = (f32::new(-2.0) * magnitude).exp();
    let t = (f32::new(1.0) - e) / (f32::new(1.0) + e);
    let tanh = select(negative, -t, t);
    f32::new(0.5) * x * (f32::new(1.0) + tanh)
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

/// One invocation per element.
#[cube(launch_unchecked)]
fn gelu_mul_kernel(gate: &[f32], up: &[f32], out: &mut [f32], count: usize) {
    if ABSOLUTE_POS >= count {
        terminate!();
    }
    out[ABSOLUTE_POS] = gelu_tanh(gate[ABSOLUTE_POS]) * up[ABSOLUTE_POS];
}

pub(super) fn gelu_mul(gate: CubeTensor, up: CubeTensor) -> CubeTensor {
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

pub(super) fn quant_rows(ids: CubeTensor, packed: CubeTensor, scales: CubeTensor, w: QuantLayout) -> CubeTensor {
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
