//! The choice of the next token on the device: penalties, then greedy or a seeded draw.

use burn::tensor::Shape;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::{buffer, check_f32, contiguous, elementwise_launch, elements};
use crate::device_work::count_dispatch;
use crate::kernels::TokenChoice;

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

pub(super) fn sample(logits: CubeTensor, history: CubeTensor, choice: TokenChoice) -> (CubeTensor, CubeTensor) {
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
