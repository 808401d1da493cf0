//! `out = x · Wᵀ` with int8 activations and packed group-quantized weights: argument checks,
//! the split of output columns across threads, and the portable reference kernel.
//!
//! Every kernel computes, for activation row `t` and weight row `n`,
//! `Σ_blocks Σ_groups in block (scale · d) · Σ q_w · q_x  +  Σ_groups offset · (d · Σ q_x)`,
//! the second sum as one dot product of the row's interleaved `[scale, offset]` with the
//! activations' `[0, d · Σq]` vectors (see [`Q8Activations`]).

use rayon::prelude::*;

use crate::error::{KernelError, Result};
use crate::quant::{BLOCK, Q8Activations, QuantMatrix};
use crate::Backend;

/// One kernel: output columns `n0 .. n0 + out[t].len()` of every activation row `t`.
pub(crate) type Kernel = fn(&Q8Activations, &QuantMatrix<'_>, usize, &mut [&mut [f32]]);

/// `out[t][n] = Σ_c x[t][c] · w[n][c]`: `out` is `[x.rows(), w.rows()]` row-major.
///
/// Output columns are split across rayon's threads; where rayon has no threads (wasm32 without
/// atomics, WASI) it all runs on the calling thread. Call it from inside the pool
/// (`ThreadPool::install`) so the calling thread works too instead of waiting.
pub fn quant_matmul(x: &Q8Activations, w: &QuantMatrix<'_>, out: &mut [f32]) -> Result<()> {
    quant_matmul_with(Backend::best(), x, w, out)
}

/// [`quant_matmul`] on a chosen backend (tests and benchmarks compare them).
pub fn quant_matmul_with(backend: Backend, x: &Q8Activations, w: &QuantMatrix<'_>, out: &mut [f32]) -> Result<()> {
    if x.cols() != w.cols() {
        return Err(KernelError::InnerDim { x_cols: x.cols(), w_cols: w.cols() });
    }
    if x.bits() != w.bits() {
        return Err(KernelError::OrderMismatch { x_bits: x.bits(), w_bits: w.bits() });
    }
    let (t_rows, n) = (x.rows(), w.rows());
    if out.len() != t_rows * n {
        return Err(KernelError::Length { what: "matmul output", expected: t_rows * n, got: out.len() });
    }
    let kernel = backend.kernel()?;
    if t_rows == 0 || n == 0 {
        return Ok(());
    }
    let chunk = column_chunk(n, rayon::current_num_threads());
    let mut tasks: Vec<(usize, Vec<&mut [f32]>)> = (0..n.div_ceil(chunk)).map(|c| (c * chunk, Vec::with_capacity(t_rows))).collect();
    for row in out.chunks_exact_mut(n) {
        for (task, piece) in tasks.iter_mut().zip(row.chunks_mut(chunk)) {
            task.1.push(piece);
        }
    }
    if tasks.len() == 1 {
        for (n0, rows) in &mut tasks {
            kernel(x, w, *n0, rows);
        }
    } else {
        tasks.into_par_iter().for_each(|(n0, mut rows)| kernel(x, w, n0, &mut rows));
    }
    Ok(())
}

/// Output columns per task: about four tasks per thread, so a thread slowed by something else
/// hands work over, while each task stays far above rayon's per-task cost (microseconds); a
/// multiple of 8 so the column tiles of the kernels divide it.
fn column_chunk(n: usize, threads: usize) -> usize {
    if threads <= 1 {
        return n.max(1);
    }
    n.div_ceil(threads * 4).next_multiple_of(8)
}

/// The portable kernel, and the reference the SIMD ones are tested against: each weight row is
/// unpacked once into bytes in the activations' order, then dotted with every activation row.
pub(crate) fn portable_kernel(x: &Q8Activations, w: &QuantMatrix<'_>, n0: usize, out: &mut [&mut [f32]]) {
    let cols = w.cols();
    let blocks = cols / BLOCK;
    let row_scales = 2 * cols / w.group();
    let row_bytes = w.row_bytes();
    let n_cols = out.first().map_or(0, |r| r.len());
    let mut unpacked = vec![0u8; cols];
    for i in 0..n_cols {
        let n = n0 + i;
        let packed = &w.bytes()[n * row_bytes..(n + 1) * row_bytes];
        if w.bits() == 4 {
            // Low nibbles are the even elements, high nibbles the odd ones: the 4-bit order.
            for (u, p) in unpacked.chunks_exact_mut(BLOCK).zip(packed.chunks_exact(BLOCK / 2)) {
                let (evens, odds) = u.split_at_mut(BLOCK / 2);
                for ((e, o), &byte) in evens.iter_mut().zip(odds).zip(p) {
                    *e = byte & 0xF;
                    *o = byte >> 4;
                }
            }
        } else {
            unpacked.copy_from_slice(packed);
        }
        let scales = &w.scales()[n * row_scales..(n + 1) * row_scales];
        for (t, o) in out.iter_mut().enumerate() {
            let qs = &x.qs[t * cols..(t + 1) * cols];
            let d = &x.d[t * blocks..(t + 1) * blocks];
            let mut acc = 0f32;
            for (b, (wq, xq)) in unpacked.chunks_exact(BLOCK).zip(qs.chunks_exact(BLOCK)).enumerate() {
                if w.group() == BLOCK {
                    acc += scales[2 * b] * d[b] * idot(wq, xq) as f32;
                } else {
                    let (lo, hi) = (idot(&wq[..16], &xq[..16]), idot(&wq[16..], &xq[16..]));
                    acc += scales[4 * b] * d[b] * lo as f32 + scales[4 * b + 2] * d[b] * hi as f32;
                }
            }
            let dsz = if w.group() == BLOCK { &x.dsz32[t * row_scales..] } else { &x.dsz16[t * row_scales..] };
            o[i] = acc + crate::ops::dot_portable(scales, &dsz[..row_scales]);
        }
    }
}

fn idot(w: &[u8], x: &[i8]) -> i32 {
    w.iter().zip(x).map(|(&w, &x)| w as i32 * x as i32).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_small_matrices() {
        assert_eq!(column_chunk(576, 1), 576);
        assert_eq!(column_chunk(576, 2), 72);
        assert_eq!(column_chunk(49152, 2), 6144);
        assert_eq!(column_chunk(5, 2), 8);
    }
}
