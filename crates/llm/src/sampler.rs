//! Choosing the next token from logits.
//!
//! The chain runs in llama.cpp's default order: penalties (repetition, frequency, presence),
//! DRY ([`dry`]), top-k, top-p, min-p, temperature, then a draw. Temperature 0 (or below) is
//! greedy: the highest logit wins, the lowest id on ties, after the penalties.

pub mod dry;

use std::collections::HashMap;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

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

/// A seeded sampler: the same seed, logits and history give the same tokens on every platform.
pub struct Sampler {
    params: SamplingParams,
    /// DRY's sequence breakers as token sequences.
    breakers: Arc<SequenceBreakers>,
    rng: ChaCha8Rng,
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
        let rng = ChaCha8Rng::seed_from_u64(params.seed);
        Ok(Self { params, breakers, rng })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Pick the next token. `logits` is modified (penalties applied); `history` holds the
    /// tokens so far, prompt included.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        if p.has_penalties() {
            apply_penalties(p, logits, &history[history.len().saturating_sub(p.repeat_last_n)..]);
        }
        dry::apply(&p.dry, &self.breakers, logits, history);
        if p.temperature <= 0.0 {
            return argmax(logits);
        }

        // Candidates sorted by logit, highest first (ties: lower id first).
        let mut candidates: Vec<(u32, f32)> =
            logits.iter().enumerate().filter(|(_, l)| !l.is_nan()).map(|(i, &l)| (i as u32, l)).collect();
        let keep = if p.top_k > 0 { p.top_k.min(candidates.len()) } else { candidates.len() };
        if keep < candidates.len() {
            candidates.select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            candidates.truncate(keep);
        }
        candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if candidates.is_empty() {
            return 0;
        }

        // Probabilities at temperature 1 for top-p and min-p, as llama.cpp does.
        let probs = softmax(candidates.iter().map(|c| c.1), 1.0);
        if p.top_p < 1.0 {
            let mut cumulative = 0.0;
            let mut cut = candidates.len();
            for (i, prob) in probs.iter().enumerate() {
                cumulative += prob;
                if cumulative >= p.top_p {
                    cut = i + 1;
                    break;
                }
            }
            candidates.truncate(cut);
        }
        if p.min_p > 0.0 {
            let threshold = probs[0] * p.min_p;
            let cut = probs.iter().take(candidates.len()).take_while(|&&prob| prob >= threshold).count().max(1);
            candidates.truncate(cut);
        }

        let probs = softmax(candidates.iter().map(|c| c.1), p.temperature);
        let draw = (self.rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
        let mut cumulative = 0.0;
        for (c, prob) in candidates.iter().zip(&probs) {
            cumulative += prob;
            if draw < cumulative {
                return c.0;
            }
        }
        candidates[candidates.len() - 1].0
    }
}

/// Repetition, frequency and presence penalties on the tokens of `recent`, as llama.cpp's
/// `penalties` sampler: the repetition penalty divides a positive logit (multiplies a negative
/// one), then `count · frequency + presence` is subtracted.
fn apply_penalties(p: &SamplingParams, logits: &mut [f32], recent: &[u32]) {
    let mut counts: HashMap<u32, u32> = HashMap::new();
    for &id in recent {
        *counts.entry(id).or_insert(0) += 1;
    }
    for (id, count) in counts {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = if *l > 0.0 { *l / p.repeat_penalty } else { *l * p.repeat_penalty };
            *l -= count as f32 * p.frequency_penalty + p.presence_penalty;
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
