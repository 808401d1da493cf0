//! Choosing the next token from logits.
//!
//! The chain runs in llama.cpp's default order: penalties (repetition, frequency, presence),
//! DRY ([`dry`]), top-k, top-p, min-p, temperature, then a draw. Temperature 0 (or below) is
//! greedy: the highest logit wins, the lowest id on ties, after the penalties.
//!
//! The draw's random number is a counter-based hash of (seed, the token's index in the reply)
//! ([`draw_bits`]) rather than a stream: the GPU's sampling kernel (see
//! [`crate::kernels::LlmKernels::sample`]) gets the same number for the same token without any
//! state shared with the CPU, so a seed gives the same tokens wherever the choice is made.

pub mod dry;

use std::collections::HashMap;
use std::sync::Arc;

pub use dry::{DryParams, SequenceBreakers};

use crate::error::{LlmError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 is greedy.
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p`; 1 keeps all.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one; 0 keeps all.
    pub min_p: f32,
    /// Divide positive logits (multiply negative ones) of recently seen tokens; 1 is off.
    pub repeat_penalty: f32,
    /// How many of the latest tokens the repetition, frequency and presence penalties look at.
    pub repeat_last_n: usize,
    /// Subtracted from the logit of every token seen in the latest `repeat_last_n`, once
    /// (OpenAI's `presence_penalty`, applied as llama.cpp does); 0 is off.
    pub presence_penalty: f32,
    /// Subtracted from the logit of a token seen in the latest `repeat_last_n` once per time it
    /// was seen; 0 is off.
    pub frequency_penalty: f32,
    /// The DRY sampler; off by default.
    pub dry: DryParams,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            dry: DryParams::default(),
            seed: 0,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }

    /// Whether the choice depends on the logits alone (greedy, no penalties, no DRY), so the
    /// device can make it without the logits coming back to the CPU.
    pub fn is_plain_greedy(&self) -> bool {
        self.temperature <= 0.0 && !self.has_penalties() && !self.dry.is_enabled()
    }

    /// Whether the GPU's sampling kernel can make the choice: top-k within
    /// [`DEVICE_MAX_TOP_K`] when sampling, as the kernel sorts that many candidates; a penalty
    /// window within [`DEVICE_MAX_PENALTY_WINDOW`]. DRY runs on the device too when its
    /// breakers are single tokens ([`SequenceBreakers::single_token_flags`]; the generator
    /// checks, as that needs the vocabulary).
    pub fn fits_device(&self) -> bool {
        let top_k_fits = self.temperature <= 0.0 || (1..=DEVICE_MAX_TOP_K).contains(&self.top_k);
        let window_fits = !self.has_penalties() || self.repeat_last_n <= DEVICE_MAX_PENALTY_WINDOW;
        top_k_fits && window_fits
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(LlmError::BadRequest(what.to_string()));
        if !self.temperature.is_finite() {
            return bad("temperature must be a finite number");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p must be in [0, 1]");
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad("repeat_penalty must be a positive number");
        }
        if !self.presence_penalty.is_finite() {
            return bad("presence_penalty must be a finite number");
        }
        if !self.frequency_penalty.is_finite() {
            return bad("frequency_penalty must be a finite number");
        }
        self.dry.validate()
    }

    pub(crate) fn has_penalties(&self) -> bool {
        self.repeat_last_n > 0 && (self.repeat_penalty != 1.0 || self.presence_penalty != 0.0 || self.frequency_penalty != 0.0)
    }
}

/// Most candidates the GPU's sampling kernel sorts: top-k above this (or 0, all) samples on
/// the CPU from logits read back.
pub const DEVICE_MAX_TOP_K: usize = 128;

/// Longest penalty window (`repeat_last_n`) the GPU applies penalties over (each recent token
/// counts its repeats across the window).
pub const DEVICE_MAX_PENALTY_WINDOW: usize = 1024;

/// The random bits of the draw for token `step` (its index in the reply) under `seed`: PCG's
/// hash (Jarzynski and Olano, "Hash Functions for GPU Rendering", 2020) chained over the seed's
/// halves and the step.
pub fn draw_bits(seed: u64, step: u32) -> u32 {
    pcg_hash(step ^ pcg_hash(seed as u32 ^ pcg_hash((seed >> 32) as u32)))
}

fn pcg_hash(input: u32) -> u32 {
    let state = input.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The draw in [0, 1) from [`draw_bits`]: 24 bits, exact in f32 (the kernel divides the same way).
pub fn unit_draw(bits: u32) -> f32 {
    (bits >> 8) as f32 / (1u32 << 24) as f32
}

/// A seeded sampler: the same seed, logits and history give the same tokens on every platform.
pub struct Sampler {
    params: SamplingParams,
    /// DRY's sequence breakers as token sequences.
    breakers: Arc<SequenceBreakers>,
    /// Index in the reply of the next token chosen: the draw's counter.
    step: u32,
}

impl Sampler {
    /// A sampler whose DRY has no sequence breakers. Breakers are text, matched against the
    /// vocabulary: with DRY on and breakers given, use [`Self::with_breakers`] (the generator
    /// does).
    pub fn new(params: SamplingParams) -> Result<Self> {
        if params.dry.is_enabled() && !params.dry.sequence_breakers.is_empty() {
            return Err(LlmError::BadRequest("DRY sequence breakers need the vocabulary: use Sampler::with_breakers".into()));
        }
        Self::with_breakers(params, Arc::default())
    }

    /// A sampler with DRY's sequence breakers already matched against the vocabulary
    /// ([`SequenceBreakers::from_strings`]).
    pub fn with_breakers(params: SamplingParams, breakers: Arc<SequenceBreakers>) -> Result<Self> {
        params.validate()?;
        Ok(Self { params, breakers, step: 0 })
    }

    /// Index in the reply of the next token [`Self::sample`] chooses.
    pub fn step(&self) -> u32 {
        self.step
    }

    /// The next `count` tokens were chosen elsewhere (on the device): later draws follow them.
    pub fn skip(&mut self, count: u32) {
        self.step = self.step.wrapping_add(count);
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Pick the next token. `logits` is modified (penalties applied); `history` holds the
    /// tokens so far, prompt included.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        if p.has_penalties() {
            apply_penalties(logits, &history[history.len().saturating_sub(p.repeat_last_n)..], p.repeat_penalty, p.frequency_penalty, p.presence_penalty);
        }
        dry::apply(&p.dry, &self.breakers, logits, history);
        let bits = draw_bits(p.seed, self.step);
        self.step = self.step.wrapping_add(1);
        pick(logits, Cuts::of(p), bits)
    }
}

/// What [`pick`] keeps of the candidates and how it draws (see [`SamplingParams`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cuts {
    /// 0 or below: greedy.
    pub temperature: f32,
    /// 0 keeps all.
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
}

impl Cuts {
    pub fn of(p: &SamplingParams) -> Self {
        Self { temperature: p.temperature, top_k: p.top_k, top_p: p.top_p, min_p: p.min_p }
    }
}

/// Choose a token from `logits` (penalties already applied): greedy when `cuts.temperature` ≤ 0,
/// else top-k, top-p, min-p and a draw at the temperature with [`unit_draw`]`(bits)`. The GPU's
/// sampling kernel follows the same steps in the same order.
pub fn pick(logits: &[f32], cuts: Cuts, bits: u32) -> u32 {
    if cuts.temperature <= 0.0 {
        return argmax(logits);
    }

    // Candidates sorted by logit, highest first (ties: lower id first).
    let mut candidates: Vec<(u32, f32)> = logits.iter().enumerate().filter(|(_, l)| !l.is_nan()).map(|(i, &l)| (i as u32, l)).collect();
    let keep = if cuts.top_k > 0 { cuts.top_k.min(candidates.len()) } else { candidates.len() };
    if keep == 0 {
        return 0;
    }
    if keep < candidates.len() {
        candidates.select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        candidates.truncate(keep);
    }
    candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

    // Probabilities at temperature 1 for top-p and min-p, as llama.cpp does.
    let probs = softmax(candidates.iter().map(|c| c.1), 1.0);
    if cuts.top_p < 1.0 {
        let mut cumulative = 0.0;
        let mut cut = candidates.len();
        for (i, prob) in probs.iter().enumerate() {
            cumulative += prob;
            if cumulative >= cuts.top_p {
                cut = i + 1;
                break;
            }
        }
        candidates.truncate(cut);
    }
    if cuts.min_p > 0.0 {
        let threshold = probs[0] * cuts.min_p;
        let cut = probs.iter().take(candidates.len()).take_while(|&&prob| prob >= threshold).count().max(1);
        candidates.truncate(cut);
    }

    let probs = softmax(candidates.iter().map(|c| c.1), cuts.temperature);
    let draw = unit_draw(bits);
    let mut cumulative = 0.0;
    for (c, prob) in candidates.iter().zip(&probs) {
        cumulative += prob;
        if draw < cumulative {
            return c.0;
        }
    }
    candidates[candidates.len() - 1].0
}

/// Repetition, frequency and presence penalties on the tokens of `recent`, as llama.cpp's
/// `penalties` sampler: the repetition penalty divides a positive logit (multiplies a negative
/// one), then `count · frequency + presence` is subtracted.
pub fn apply_penalties(logits: &mut [f32], recent: &[u32], repeat: f32, frequency: f32, presence: f32) {
    let mut counts: HashMap<u32, u32> = HashMap::new();
    for &id in recent {
        *counts.entry(id).or_insert(0) += 1;
    }
    for (id, count) in counts {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = if *l > 0.0 { *l / repeat } else { *l * repeat };
            *l -= count as f32 * frequency + presence;
        }
    }
}

/// Index of the largest logit; the lowest index on ties.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn softmax(logits: impl Iterator<Item = f32> + Clone, temperature: f32) -> Vec<f32> {
    let max = logits.clone().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.map(|l| ((l - max) / temperature).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(params: SamplingParams) -> Sampler {
        Sampler::new(params).unwrap()
    }

    #[test]
    fn greedy_takes_the_max_and_the_lowest_id_on_ties() {
        let mut s = sampler(SamplingParams::greedy());
        assert_eq!(s.sample(&mut [0.0, 3.0, 1.0, 3.0], &[]), 1);
    }

    #[test]
    fn repetition_penalty_changes_the_greedy_choice() {
        let params = SamplingParams { repeat_penalty: 2.0, ..SamplingParams::greedy() };
        let mut s = sampler(params);
        // 3.0 / 2 = 1.5 < 2.0, so the unseen token 2 wins.
        assert_eq!(s.sample(&mut [0.0, 3.0, 2.0], &[1]), 2);
        // Negative logits are multiplied, pushing them further down.
        let mut logits = [-1.0, -2.0];
        s.sample(&mut logits, &[0]);
        assert_eq!(logits, [-2.0, -2.0]);
    }

    #[test]
    fn frequency_and_presence_penalties_by_hand() {
        // Token 1 seen three times, token 2 once; frequency 0.5, presence 1.0:
        // 1: 4 − 3·0.5 − 1 = 1.5; 2: 3 − 0.5 − 1 = 1.5; 0 unseen stays 2 and now wins.
        let params = SamplingParams { frequency_penalty: 0.5, presence_penalty: 1.0, ..SamplingParams::greedy() };
        let mut logits = [2.0, 4.0, 3.0];
        assert_eq!(sampler(params.clone()).sample(&mut logits, &[1, 2, 1, 1]), 0);
        assert_eq!(logits, [2.0, 1.5, 1.5]);
        // Only the latest `repeat_last_n` tokens count: with 2, token 1 is seen once.
        let mut logits = [2.0, 4.0, 3.0];
        sampler(SamplingParams { repeat_last_n: 2, ..params.clone() }).sample(&mut logits, &[1, 2, 1, 1]);
        assert_eq!(logits, [2.0, 2.0, 3.0]);
        // Repetition penalty first, then the subtraction: (4 / 2) − 3·0.5 − 1 = −0.5.
        let mut logits = [2.0, 4.0, 3.0];
        sampler(SamplingParams { repeat_penalty: 2.0, ..params }).sample(&mut logits, &[1, 1, 1]);
        assert_eq!(logits, [2.0, -0.5, 3.0]);
    }

    #[test]
    fn negative_presence_penalty_favours_seen_tokens() {
        let params = SamplingParams { presence_penalty: -2.0, ..SamplingParams::greedy() };
        assert_eq!(sampler(params).sample(&mut [3.0, 2.0], &[1]), 1);
    }

    #[test]
    fn dry_changes_the_greedy_choice() {
        // "0 1 2 3 0 1 2": DRY (multiplier 1, base 2, allowed 2) takes 2 off token 3, so 4 wins.
        let dry = DryParams { multiplier: 1.0, base: 2.0, allowed_length: 2, penalty_last_n: -1, sequence_breakers: Vec::new() };
        let params = SamplingParams { dry, ..SamplingParams::greedy() };
        let mut logits = [0.0, 0.0, 0.0, 5.0, 4.0];
        assert_eq!(sampler(params.clone()).sample(&mut logits, &[0, 1, 2, 3, 0, 1, 2]), 4);
        assert_eq!(logits[3], 3.0);
        // Off by default: the same logits keep token 3.
        assert_eq!(sampler(SamplingParams::greedy()).sample(&mut [0.0, 0.0, 0.0, 5.0, 4.0], &[0, 1, 2, 3, 0, 1, 2]), 3);
        // Token breakers are given as sequences to `with_breakers`; text breakers need a vocabulary.
        let breakers = Arc::new(SequenceBreakers::from_token_sequences([vec![0]]));
        let mut logits = [0.0, 0.0, 0.0, 5.0, 4.0];
        Sampler::with_breakers(params.clone(), breakers).unwrap().sample(&mut logits, &[0, 1, 2, 3, 0, 1, 2]);
        assert_eq!(logits[3], 4.0); // only "1 2" counts after the breaker: 2^0 = 1
        let with_text = SamplingParams { dry: DryParams { sequence_breakers: vec!["\n".into()], ..params.dry.clone() }, ..params };
        assert!(Sampler::new(with_text).is_err());
    }

    #[test]
    fn top_k_one_is_greedy_whatever_the_seed() {
        for seed in 0..20 {
            let params = SamplingParams { temperature: 5.0, top_k: 1, top_p: 1.0, min_p: 0.0, seed, ..Default::default() };
            assert_eq!(sampler(params).sample(&mut [1.0, 2.0, 1.9, 0.5], &[]), 1);
        }
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        // Token 3 is far less likely than the rest: top-p 0.9 or min-p 0.1 must never pick it.
        let logits = [2.0, 2.0, 2.0, -5.0];
        for seed in 0..200 {
            let top_p = SamplingParams { temperature: 1.0, top_k: 0, top_p: 0.9, min_p: 0.0, seed, ..Default::default() };
            assert_ne!(sampler(top_p).sample(&mut logits.clone(), &[]), 3);
            let min_p = SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.1, seed, ..Default::default() };
            assert_ne!(sampler(min_p).sample(&mut logits.clone(), &[]), 3);
        }
    }

    #[test]
    fn same_seed_same_tokens_and_draws_follow_the_distribution() {
        let params = SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, seed: 7, ..Default::default() };
        let logits = [0.0, (3.0f32).ln()]; // probabilities 1/4 and 3/4
        let mut a = sampler(params.clone());
        let mut b = sampler(params);
        let draws: Vec<u32> = (0..4000).map(|_| a.sample(&mut logits.clone(), &[])).collect();
        let again: Vec<u32> = (0..4000).map(|_| b.sample(&mut logits.clone(), &[])).collect();
        assert_eq!(draws, again);
        let ones = draws.iter().filter(|&&t| t == 1).count() as f32 / 4000.0;
        assert!((ones - 0.75).abs() < 0.03, "token 1 drawn {ones} of the time");
    }

    #[test]
    fn bad_params_are_refused() {
        assert!(Sampler::new(SamplingParams { top_p: 0.0, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplingParams { temperature: f32::NAN, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplingParams { repeat_penalty: 0.0, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplingParams { presence_penalty: f32::INFINITY, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplingParams { frequency_penalty: f32::NAN, ..Default::default() }).is_err());
    }
}
