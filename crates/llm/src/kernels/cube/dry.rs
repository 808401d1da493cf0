//! DRY on the device: the penalty for each token that would extend a repeat, from the history
//! the sampling kernel appends to, so a decode step with DRY on reads back only its id.
//!
//! [`crate::sampler::dry::apply`] finds the repeats with a Z-function, a sequential scan. Here
//! two passes over the window's offsets do the same: for each offset `k` (1 ≤ k < window) the
//! first finds how many of the window's last tokens also end `k` tokens earlier, stopping at a
//! breaker among those last tokens (a repeat may not reach back past the latest breaker);
//! the second subtracts the penalty for that length from the logit of the token that followed
//! the earlier occurrence, by one offset per token: the one with the longest repeat, the
//! nearest on ties (the CPU takes each token's longest repeat). Penalties come from a table
//! computed on the CPU, in f64 as there, since WebGPU has no f64.

use burn::tensor::Shape;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::{buffer, check_f32, contiguous, elementwise_launch, elements};
use crate::device_work::count_dispatch;
use crate::kernels::DryChoice;

/// One invocation per offset `k = i + 1` of the window `history[first..first + window]`:
/// `lengths[i]` = how many of its last tokens match those ending `k` earlier, none of them a
/// breaker.
#[cube(launch_unchecked)]
fn dry_lengths_kernel(history: &[i32], breakers: &[i32], lengths: &mut [u32], first: usize, window: usize) {
    let i = ABSOLUTE_POS;
    if i + 1 >= window {
        terminate!();
    }
    let k = i + 1;
    let last = first + window - 1;
    let mut len = 0usize;
    let mut going = true;
    while going && len < window - k {
        let token = history[last - len];
        if breakers[usize::cast_from(token)] != 0 || token != history[last - k - len] {
            going = false;
        } else {
            len += 1;
        }
    }
    lengths[i] = u32::cast_from(len);
}

/// One invocation per offset, as [`dry_lengths_kernel`]: the token after the earlier occurrence
/// gets `penalties[length]` (lengths past the table take its last entry) subtracted, unless it
/// is a breaker, by the offset with the longest repeat for that token (the smallest offset on
/// ties), so every logit has at most one writer.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn dry_apply_kernel(logits: &mut [f32], history: &[i32], breakers: &[i32], lengths: &[u32], penalties: &[f32], first: usize, window: usize, table: usize) {
    let i = ABSOLUTE_POS;
    if i + 1 >= window {
        terminate!();
    }
    let len = lengths[i];
    let at = usize::cast_from(len);
    let penalty = penalties[select(at < table, at, table - 1)];
    // The token that followed the earlier occurrence: `k = i + 1` before the window's end.
    let token = history[first + window - 1 - i];
    if penalty != f32::new(0.0) && breakers[usize::cast_from(token)] == 0 {
        let mut owner = true;
        for j in 0..window - 1 {
            if j != i && history[first + window - 1 - j] == token {
                let other = lengths[j];
                if other > len || (other == len && j < i) {
                    owner = false;
                }
            }
        }
        if owner {
            let index = usize::cast_from(token);
            logits[index] = logits[index] - penalty;
        }
    }
}

pub(super) fn dry(logits: CubeTensor, history: CubeTensor, breakers: CubeTensor, penalties: CubeTensor, choice: DryChoice) -> (CubeTensor, CubeTensor) {
    let DryChoice { window, position, .. } = choice;
    check_f32(&logits, "logits");
    check_f32(&penalties, "DRY's penalties");
    assert_eq!(history.dtype.size(), 4, "token ids must be 32-bit");
    assert_eq!(breakers.dtype.size(), 4, "breaker flags must be 32-bit");
    // The logits are written in place; the rest is read.
    let (logits, history, breakers, penalties) = (contiguous(logits), contiguous(history), contiguous(breakers), contiguous(penalties));
    assert!(position <= elements(&history) && window <= position, "the history holds {} tokens", elements(&history));
    assert_eq!(elements(&breakers), elements(&logits), "one breaker flag per token");
    let table = elements(&penalties);
    assert!(table > window, "DRY's table has {table} lengths for a window of {window}");
    // A window of one token has no earlier occurrence of anything.
    if window < 2 {
        return (logits, history);
    }
    let offsets = window - 1;
    let lengths = CubeTensor::new_contiguous(history.client.clone(), history.device.clone(), Shape::from(vec![offsets]), history.client.empty(offsets * 4), history.dtype);
    let first = position - window;
    let (cube_count, cube_dim) = elementwise_launch(offsets);
    count_dispatch();
    unsafe {
        dry_lengths_kernel::launch_unchecked(&logits.client, cube_count.clone(), cube_dim, buffer(&history), buffer(&breakers), buffer(&lengths), first, window);
    }
    count_dispatch();
    unsafe {
        dry_apply_kernel::launch_unchecked(
            &logits.client,
            cube_count,
            cube_dim,
            buffer(&logits),
            buffer(&history),
            buffer(&breakers),
            buffer(&lengths),
            buffer(&penalties),
            first,
            window,
            table,
        );
    }
    (logits, history)
}
