//! DRY ("don't repeat yourself"): a penalty on the token that would extend a sequence already
//! present earlier in the context, growing exponentially with the length of the repeat.
//!
//! Designed by p-e-w (text-generation-webui #5677); this follows llama.cpp's
//! `llama_sampler_dry` (from koboldcpp) so that the same settings give the same penalties:
//!
//! - the window is the last `penalty_last_n` tokens (-1: all of them);
//! - a repeat may not reach back past the latest *sequence breaker* (a newline, a quote, a
//!   speaker's colon...), so only text since then counts;
//! - for every earlier place where the window's last `len` tokens occur (`len` ≥
//!   `allowed_length`), the token that followed there gets `multiplier · base^(len −
//!   allowed_length)` subtracted from its logit (the largest `len` per token); a token that is a
//!   breaker by itself is never penalised.
//!
//! Breakers are strings; a token "is" one when its text contains it, or when its text ends
//! with the start of it and the tokens that follow spell the rest (the vocabulary is scanned
//! once per list of breakers).

use std::collections::HashMap;

use confidant_tokenizer::Tokenizer;

use crate::error::{LlmError, Result};

/// Longest breaker kept, in bytes (llama.cpp truncates at 40 too).
pub const MAX_BREAKER_BYTES: usize = 40;
/// Most tokens kept after a breaker's first token: bounds the breaker scan per context token.
pub const MAX_BREAKER_TAIL_TOKENS: usize = 20;
/// Most breakers in one request: each costs a pass over the vocabulary.
pub const MAX_BREAKERS: usize = 64;

/// ln(f32::MAX): exponents above this / ln(base) would overflow to infinity.
const F32_MAX_LN: f32 = 88.722_84;

/// DRY settings, with llama.cpp's names and defaults (multiplier 0 = off).
#[derive(Debug, Clone, PartialEq)]
pub struct DryParams {
    /// Scale of the penalty; 0 is off.
    pub multiplier: f32,
    /// Growth per token of repeat beyond `allowed_length`; at least 1.
    pub base: f32,
    /// Repeats this long or shorter go unpenalised.
    pub allowed_length: usize,
    /// How many of the latest tokens are searched; -1 is all of them, 0 is off.
    pub penalty_last_n: i32,
    /// Text that ends a repeat: a match never reaches back past the latest one.
    pub sequence_breakers: Vec<String>,
}

impl Default for DryParams {
    fn default() -> Self {
        Self {
            multiplier: 0.0,
            base: 1.75,
            allowed_length: 2,
            penalty_last_n: -1,
            sequence_breakers: ["\n", ":", "\"", "*"].map(String::from).to_vec(),
        }
    }
}

impl DryParams {
    pub fn is_enabled(&self) -> bool {
        self.multiplier != 0.0 && self.penalty_last_n != 0
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(LlmError::BadRequest(what.to_string()));
        if !(self.multiplier.is_finite() && self.multiplier >= 0.0) {
            return bad("dry_multiplier must be a number ≥ 0");
        }
        if !(self.base.is_finite() && self.base >= 1.0) {
            return bad("dry_base must be a number ≥ 1");
        }
        if self.penalty_last_n < -1 {
            return bad("dry_penalty_last_n must be -1 (the whole context), 0 (off) or a token count");
        }
        if self.sequence_breakers.len() > MAX_BREAKERS {
            return Err(LlmError::BadRequest(format!("at most {MAX_BREAKERS} dry_sequence_breakers")));
        }
        Ok(())
    }
}

/// Sequence breakers as token sequences, keyed by their first token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SequenceBreakers {
    /// First token → the tokens that must follow it (empty: the token alone is a breaker).
    by_head: HashMap<u32, Vec<Vec<u32>>>,
}

impl SequenceBreakers {
    /// Breakers given directly as token sequences.
    pub fn from_token_sequences(sequences: impl IntoIterator<Item = Vec<u32>>) -> Self {
        let mut out = Self::default();
        for sequence in sequences {
            if let Some((&head, tail)) = sequence.split_first() {
                out.insert(head, tail.iter().copied().take(MAX_BREAKER_TAIL_TOKENS).collect());
            }
        }
        out
    }

    /// Breakers given as text, matched against every token of the vocabulary: a token whose
    /// text contains the breaker is a breaker by itself; a token whose text ends with the
    /// breaker's beginning is one when the rest of the breaker (tokenized) follows it.
    /// Empty strings are skipped; longer ones are cut at [`MAX_BREAKER_BYTES`].
    pub fn from_strings(tokenizer: &Tokenizer, breakers: &[String]) -> Result<Self> {
        if breakers.len() > MAX_BREAKERS {
            return Err(LlmError::BadRequest(format!("at most {MAX_BREAKERS} dry_sequence_breakers")));
        }
        let mut out = Self::default();
        let pieces: Vec<&[u8]> = (0..tokenizer.vocab_size() as u32).map(|id| tokenizer.token_piece(id).unwrap_or(&[])).collect();
        for breaker in breakers {
            let breaker = truncate_at_char(breaker, MAX_BREAKER_BYTES).as_bytes();
            if breaker.is_empty() {
                continue;
            }
            for (id, piece) in pieces.iter().enumerate() {
                out.add_overlaps(tokenizer, id as u32, piece, breaker)?;
            }
        }
        Ok(out)
    }

    fn add_overlaps(&mut self, tokenizer: &Tokenizer, id: u32, piece: &[u8], breaker: &[u8]) -> Result<()> {
        if piece.windows(breaker.len()).any(|w| w == breaker) {
            self.insert(id, Vec::new());
            return Ok(());
        }
        // Every place where the piece's end is the breaker's beginning.
        for start in 0..piece.len() {
            let overlap = &piece[start..];
            if overlap.len() >= breaker.len() || !breaker.starts_with(overlap) {
                continue;
            }
            // A rest that is not whole characters cannot be tokenized as text: skipped.
            let Ok(rest) = std::str::from_utf8(&breaker[overlap.len()..]) else { continue };
            let mut tail = tokenizer.encode(rest, false, false)?;
            tail.truncate(MAX_BREAKER_TAIL_TOKENS);
            self.insert(id, tail);
        }
        Ok(())
    }

    fn insert(&mut self, head: u32, tail: Vec<u32>) {
        let tails = self.by_head.entry(head).or_default();
        if !tails.contains(&tail) {
            tails.push(tail);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_head.is_empty()
    }

    /// One flag per token of a vocabulary of `vocab` ids (1: a breaker by itself), when every
    /// breaker is a single token: what the device's DRY kernels read. `None` when a breaker
    /// needs tokens after its first to count (a token ending with the start of a breaker): the
    /// device cannot follow those, and the CPU samples.
    pub fn single_token_flags(&self, vocab: usize) -> Option<Vec<i32>> {
        let mut flags = vec![0; vocab];
        for (&head, tails) in &self.by_head {
            if tails.iter().any(|tail| !tail.is_empty()) {
                return None;
            }
            if let Some(flag) = flags.get_mut(head as usize) {
                *flag = 1;
            }
        }
        Some(flags)
    }

    /// Whether the token is a breaker by itself.
    fn is_single_token(&self, id: u32) -> bool {
        self.by_head.get(&id).is_some_and(|tails| tails.iter().any(Vec::is_empty))
    }

    /// How many of the latest tokens of `window` come after its latest complete breaker (all
    /// of them when there is none).
    fn tokens_since_latest(&self, window: &[u32]) -> usize {
        let n = window.len();
        for back in 0..n {
            let Some(tails) = self.by_head.get(&window[n - 1 - back]) else { continue };
            // The longest breaker starting here whose tail fits before the end and matches.
            let after = &window[n - back..];
            let longest = tails.iter().filter(|tail| tail.len() <= back && after.starts_with(tail)).map(Vec::len).max();
            if let Some(len) = longest {
                return back - len;
            }
        }
        n
    }
}

fn truncate_at_char(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Subtract DRY's penalties from `logits`, given the tokens so far.
pub(crate) fn apply(params: &DryParams, breakers: &SequenceBreakers, logits: &mut [f32], history: &[u32]) {
    if !params.is_enabled() {
        return;
    }
    let window = &history[history.len() - window(params, history.len())..];
    let n = window.len();
    if n <= params.allowed_length {
        return;
    }
    let limit = breakers.tokens_since_latest(window);
    if limit < params.allowed_length {
        return;
    }

    // z[k] = how many of the window's last tokens also end `k` tokens earlier: the Z-function
    // of the reversed window, linear in its length.
    let reversed: Vec<u32> = window.iter().rev().copied().collect();
    let z = z_function(&reversed);
    // Longest repeat each token would extend.
    let mut longest: HashMap<u32, usize> = HashMap::new();
    for (k, &matched) in z.iter().enumerate().skip(1) {
        let len = matched.min(limit);
        if len >= params.allowed_length {
            let next = window[n - k];
            let entry = longest.entry(next).or_insert(0);
            *entry = (*entry).max(len);
        }
    }

    for (token, len) in longest {
        if breakers.is_single_token(token) {
            continue;
        }
        let Some(logit) = logits.get_mut(token as usize) else { continue };
        *logit -= penalty(params, len);
    }
}

/// The penalty for extending a repeat of `len` tokens: `multiplier · base^(len − allowed_length)`,
/// the exponent capped where it would overflow f32; 0 for a repeat shorter than `allowed_length`.
pub fn penalty(params: &DryParams, len: usize) -> f32 {
    let Some(mut exponent) = len.checked_sub(params.allowed_length) else { return 0.0 };
    let max_exponent = if params.base > 1.000_001 { (F32_MAX_LN / params.base.ln()) as usize } else { 0 };
    if max_exponent > 0 {
        exponent = exponent.min(max_exponent);
    }
    // In f64 as C++'s pow(float, int) computes it, then rounded once.
    (params.multiplier as f64 * (params.base as f64).powi(exponent.min(i32::MAX as usize) as i32)) as f32
}

/// [`penalty`] for every repeat length `0..lengths`: the device's DRY kernel looks its penalties
/// up here (a GPU has no f64 to compute them the CPU's way), computed once per request.
pub fn penalty_table(params: &DryParams, lengths: usize) -> Vec<f32> {
    (0..lengths).map(|len| penalty(params, len)).collect()
}

/// How many tokens before `position` DRY looks at: its window (`penalty_last_n`, -1 for all).
pub fn window(params: &DryParams, position: usize) -> usize {
    if params.penalty_last_n < 0 { position } else { (params.penalty_last_n as usize).min(position) }
}

/// `z[k]`: the length of the longest common prefix of `s` and `s[k..]` (`z[0]` = `s.len()`).
fn z_function(s: &[u32]) -> Vec<usize> {
    let n = s.len();
    let mut z = vec![0; n];
    if n == 0 {
        return z;
    }
    z[0] = n;
    // [left, right): the rightmost segment found so far that matches a prefix of `s`.
    let (mut left, mut right) = (0, 0);
    for k in 1..n {
        let mut len = if k < right { z[k - left].min(right - k) } else { 0 };
        while k + len < n && s[len] == s[k + len] {
            len += 1;
        }
        z[k] = len;
        if k + len > right {
            (left, right) = (k, k + len);
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dry(multiplier: f32, base: f32, allowed_length: usize) -> DryParams {
        DryParams { multiplier, base, allowed_length, penalty_last_n: -1, sequence_breakers: Vec::new() }
    }

    /// Penalties DRY gives each token of a vocabulary of `vocab` ids, from zero logits.
    fn penalties(params: &DryParams, breakers: &SequenceBreakers, history: &[u32], vocab: usize) -> Vec<f32> {
        let mut logits = vec![0.0; vocab];
        apply(params, breakers, &mut logits, history);
        logits.iter().map(|l| -l).collect()
    }

    #[test]
    fn z_function_by_hand() {
        // a a b a a b: prefixes of length 1, 0, 3, 1, 0 start at 1..6.
        assert_eq!(z_function(&[1, 1, 2, 1, 1, 2]), vec![6, 1, 0, 3, 1, 0]);
        assert_eq!(z_function(&[5, 5, 5, 5]), vec![4, 3, 2, 1]);
        assert_eq!(z_function(&[]), Vec::<usize>::new());
    }

    #[test]
    fn z_function_matches_the_naive_definition() {
        // Every binary string up to length 10.
        for len in 1..=10 {
            for bits in 0u32..1 << len {
                let s: Vec<u32> = (0..len).map(|i| (bits >> i) & 1).collect();
                let naive: Vec<usize> = (0..len).map(|k| s.iter().zip(&s[k..]).take_while(|(a, b)| a == b).count()).collect();
                assert_eq!(z_function(&s), naive, "{s:?}");
            }
        }
    }

    #[test]
    fn hand_worked_repeat() {
        // Context a b c d a b c (a=0 ...): the last three tokens "a b c" occurred before,
        // followed by d. Extending to "a b c d" is a repeat of 3 ≥ allowed 2, so d (3) gets
        // 1.0 · 2^(3−2) = 2. Also "c" at index 2 ends a match of length 1 (< 2): no penalty.
        let p = penalties(&dry(1.0, 2.0, 2), &SequenceBreakers::default(), &[0, 1, 2, 3, 0, 1, 2], 5);
        assert_eq!(p, vec![0.0, 0.0, 0.0, 2.0, 0.0]);
        // With allowed length 3 the repeat of 3 gets base^0 = the multiplier.
        let p = penalties(&dry(0.5, 2.0, 3), &SequenceBreakers::default(), &[0, 1, 2, 3, 0, 1, 2], 5);
        assert_eq!(p, vec![0.0, 0.0, 0.0, 0.5, 0.0]);
        // Allowed length 4: a repeat of 3 is allowed.
        let p = penalties(&dry(1.0, 2.0, 4), &SequenceBreakers::default(), &[0, 1, 2, 3, 0, 1, 2], 5);
        assert_eq!(p, vec![0.0; 5]);
    }

    #[test]
    fn llama_cpp_example_counts() {
        // llama.cpp's comment: context a b c c b c y a b c; the suffix "a b c" also ends at
        // index 2 (→ c would extend it: 3), "c" at index 3 (→ b: 1) and "b c" at index 5
        // (→ y: 2). With allowed length 1 and base 2: c gets 2^2 = 4, y gets 2^1 = 2, b 2^0 = 1.
        let (a, b, c, y) = (0, 1, 2, 3);
        let p = penalties(&dry(1.0, 2.0, 1), &SequenceBreakers::default(), &[a, b, c, c, b, c, y, a, b, c], 4);
        assert_eq!(p, vec![0.0, 1.0, 4.0, 2.0]);
    }

    #[test]
    fn the_longest_repeat_per_token_counts() {
        // x y z at the start and y z later are both followed by w: the longer one (3) counts.
        let (w, x, y, z, q) = (0, 1, 2, 3, 4);
        let history = [x, y, z, w, q, y, z, w, q, x, y, z];
        let p = penalties(&dry(1.0, 3.0, 2), &SequenceBreakers::default(), &history, 5);
        assert_eq!(p[w as usize], 3.0); // 3^(3-2)
    }

    #[test]
    fn a_breaker_stops_the_repeat() {
        // a b c d | a b c, with "a" a single-token breaker: the repeat cannot reach back past
        // the latest "a", so only "b c" (2 tokens) counts: d gets 2^(2-2) = 1, not 2.
        let breakers = SequenceBreakers::from_token_sequences([vec![0]]);
        let p = penalties(&dry(1.0, 2.0, 2), &breakers, &[0, 1, 2, 3, 0, 1, 2], 5);
        assert_eq!(p[3], 1.0);
        // A breaker as the latest token: nothing since it, no penalty at all.
        let p = penalties(&dry(1.0, 2.0, 2), &breakers, &[1, 2, 3, 1, 2, 0], 5);
        assert_eq!(p, vec![0.0; 5]);
    }

    #[test]
    fn a_single_token_breaker_is_never_penalised() {
        // "b c" repeats and was followed by 4; make 4 a breaker: it is spared.
        let history = [1, 2, 4, 1, 2];
        let p = penalties(&dry(1.0, 2.0, 2), &SequenceBreakers::default(), &history, 5);
        assert_eq!(p[4], 1.0);
        let p = penalties(&dry(1.0, 2.0, 2), &SequenceBreakers::from_token_sequences([vec![4]]), &history, 5);
        assert_eq!(p[4], 0.0);
    }

    #[test]
    fn multi_token_breakers_need_their_whole_sequence() {
        // Breaker "7 8". History: 1 2 3 9 | 7 8 | 1 2 — the latest breaker is complete, so
        // only "1 2" counts (→ 3 gets 1·2^0). With "7 9" in its place nothing breaks and
        // "… 1 2" still matches only 2 tokens; use a longer repeat to tell them apart.
        let breakers = SequenceBreakers::from_token_sequences([vec![7, 8]]);
        let history = [5, 1, 2, 3, 5, 1, 2];
        // No breaker in it: "5 1 2" (3 tokens) repeats → 3 gets 2^1.
        assert_eq!(penalties(&dry(1.0, 2.0, 2), &breakers, &history, 10)[3], 2.0);
        // "5 7 8 1 2 3 … 5 7 8 1 2": the breaker 7 8 cuts the repeat to "1 2".
        let history = [5, 7, 8, 1, 2, 3, 5, 7, 8, 1, 2];
        assert_eq!(penalties(&dry(1.0, 2.0, 2), &breakers, &history, 10)[3], 1.0);
        // "7" alone (without 8 after it) is no breaker: the repeat "5 7 9 1 2" counts in full.
        let history = [5, 7, 9, 1, 2, 3, 5, 7, 9, 1, 2];
        assert_eq!(penalties(&dry(1.0, 2.0, 2), &breakers, &history, 10)[3], 8.0);
    }

    #[test]
    fn penalty_last_n_limits_the_search() {
        // The repeat "0 1 2" begins 7 tokens back; a window of 6 sees only "1 2 3 … 1 2".
        let history = [0, 1, 2, 3, 0, 1, 2];
        let mut params = dry(1.0, 2.0, 2);
        params.penalty_last_n = 6;
        assert_eq!(penalties(&params, &SequenceBreakers::default(), &history, 5)[3], 1.0);
        params.penalty_last_n = 0;
        assert_eq!(penalties(&params, &SequenceBreakers::default(), &history, 5), vec![0.0; 5]);
    }

    #[test]
    fn huge_repeats_stay_finite() {
        let history = vec![1u32; 3000];
        let p = penalties(&dry(1.0, 1.75, 2), &SequenceBreakers::default(), &history, 3);
        assert!(p[1].is_finite() && p[1] > 1e30, "{}", p[1]);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(DryParams { base: 0.5, ..DryParams::default() }.validate().is_err());
        assert!(DryParams { multiplier: -1.0, ..DryParams::default() }.validate().is_err());
        assert!(DryParams { multiplier: f32::NAN, ..DryParams::default() }.validate().is_err());
        assert!(DryParams { penalty_last_n: -2, ..DryParams::default() }.validate().is_err());
        assert!(DryParams { sequence_breakers: vec!["x".into(); MAX_BREAKERS + 1], ..DryParams::default() }.validate().is_err());
        assert!(DryParams::default().validate().is_ok());
    }

    #[test]
    fn long_breakers_are_cut_at_a_character_boundary() {
        let text = "é".repeat(30); // 60 bytes
        let cut = truncate_at_char(&text, MAX_BREAKER_BYTES);
        assert_eq!(cut.len(), 40);
        assert_eq!(truncate_at_char("aé", 2), "a");
    }
}
