//! Retrieval scoring as in Generative Agents (Park et al. 2023): each candidate memory gets
//! relevance (cosine similarity to the query), recency (`0.995^hours` since it was last
//! retrieved) and importance; each is min-max normalised over the candidates, and the weighted
//! sum (weights 1, 1, 1 by default) ranks them.
//!
//! One deviation: pure min-max normalisation turns any spread into the full 0–1 range, so two
//! memories written a second apart would differ by a whole point of recency. Each component
//! therefore has a minimum spread: when the candidates' range is narrower, values are divided by
//! the minimum instead (and centred on 0.5), so differences smaller than it count for
//! proportionally less. Set [`ScoringConfig::min_spread`] to zeros for the paper's behaviour.

use serde::{Deserialize, Serialize};

/// Relevance, recency and importance of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ScoreParts {
    pub relevance: f32,
    pub recency: f32,
    pub importance: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoringConfig {
    /// Weights of the normalised components in the final score.
    pub weights: ScoreParts,
    /// Recency multiplier per hour since last access (Generative Agents: 0.995).
    pub recency_decay_per_hour: f64,
    /// Candidates less similar to the query than this are dropped, unless pinned.
    pub min_relevance: f32,
    /// How many nearest memories the index hands to scoring (pinned ones come on top).
    pub candidates: usize,
    /// Smallest range each component is normalised over; see the module docs.
    pub min_spread: ScoreParts,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            weights: ScoreParts { relevance: 1.0, recency: 1.0, importance: 1.0 },
            recency_decay_per_hour: 0.995,
            // SillyTavern's vector-storage default is 0.25, but MiniLM puts a reworded question
            // and the fact it asks about at 0.2-0.6: at 0.25 the planted-fact test loses one of
            // five ("the topic of the research I'm writing" vs "my thesis on coral reef
            // bleaching", cosine 0.23), so the threshold sits a little lower.
            min_relevance: 0.2,
            candidates: 50,
            // 0.1 of cosine; 0.05 of recency (about 10 hours at 0.995); 0.2 of importance (about
            // two points on the 1–10 scale).
            min_spread: ScoreParts { relevance: 0.1, recency: 0.05, importance: 0.2 },
        }
    }
}

/// What scoring needs to know about a candidate memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Cosine similarity to the query.
    pub relevance: f32,
    /// Unix ms.
    pub last_accessed: u64,
    /// `0..=1`.
    pub importance: f32,
    pub pinned: bool,
}

/// A candidate that made the cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// Position in the candidates passed to [`rank`].
    pub index: usize,
    /// Weighted sum of the normalised parts.
    pub score: f32,
    pub raw: ScoreParts,
    pub normalized: ScoreParts,
}

/// `decay^hours` since `last_accessed` (1 for now or the future).
pub fn recency(last_accessed_ms: u64, now_ms: u64, decay_per_hour: f64) -> f32 {
    let hours = now_ms.saturating_sub(last_accessed_ms) as f64 / 3_600_000.0;
    decay_per_hour.powf(hours) as f32
}

/// Normalise `values` to 0–1 over their range, or over `min_spread` centred on 0.5 when the
/// range is narrower.
fn normalize(values: &[f32], min_spread: f32) -> Vec<f32> {
    let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let range = hi - lo;
    if range >= min_spread && range > 0.0 {
        values.iter().map(|v| (v - lo) / range).collect()
    } else if min_spread > 0.0 {
        let offset = 0.5 * (1.0 - range / min_spread);
        values.iter().map(|v| offset + (v - lo) / min_spread).collect()
    } else {
        // All equal and no minimum: the midpoint, as Generative Agents' code does.
        vec![0.5; values.len()]
    }
}

/// The `k` best candidates, best first: drop the ones under the relevance threshold (pinned
/// ones stay eligible), normalise each component over the rest, weigh and sort.
pub fn rank(candidates: &[Candidate], now_ms: u64, config: &ScoringConfig, k: usize) -> Vec<Ranked> {
    let eligible: Vec<usize> =
        (0..candidates.len()).filter(|&i| candidates[i].pinned || candidates[i].relevance >= config.min_relevance).collect();
    if eligible.is_empty() || k == 0 {
        return Vec::new();
    }
    let raw: Vec<ScoreParts> = eligible
        .iter()
        .map(|&i| {
            let c = &candidates[i];
            ScoreParts {
                relevance: c.relevance,
                recency: recency(c.last_accessed, now_ms, config.recency_decay_per_hour),
                importance: c.importance,
            }
        })
        .collect();
    let relevance = normalize(&raw.iter().map(|p| p.relevance).collect::<Vec<_>>(), config.min_spread.relevance);
    let recency = normalize(&raw.iter().map(|p| p.recency).collect::<Vec<_>>(), config.min_spread.recency);
    let importance = normalize(&raw.iter().map(|p| p.importance).collect::<Vec<_>>(), config.min_spread.importance);
    let w = config.weights;
    let mut ranked: Vec<Ranked> = eligible
        .iter()
        .enumerate()
        .map(|(j, &index)| {
            let normalized = ScoreParts { relevance: relevance[j], recency: recency[j], importance: importance[j] };
            let score = w.relevance * normalized.relevance + w.recency * normalized.recency + w.importance * normalized.importance;
            Ranked { index, score, raw: raw[j], normalized }
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then_with(|| b.raw.relevance.total_cmp(&a.raw.relevance)).then_with(|| a.index.cmp(&b.index))
    });
    ranked.truncate(k);
    ranked
}
