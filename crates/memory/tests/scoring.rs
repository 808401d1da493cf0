//! Generative Agents scoring: normalisation, weights, order, threshold, pinned eligibility.

use memory::ScoreParts;
use memory::score::{Candidate, ScoringConfig, rank, recency};

const HOUR: u64 = 3_600_000;
const NOW: u64 = 1_000 * HOUR;

fn pure_min_max() -> ScoringConfig {
    ScoringConfig { min_spread: ScoreParts::default(), min_relevance: 0.0, ..ScoringConfig::default() }
}

fn candidate(relevance: f32, hours_ago: u64, importance: f32) -> Candidate {
    Candidate { relevance, last_accessed: NOW - hours_ago * HOUR, importance, pinned: false }
}

#[test]
fn recency_decays_per_hour() {
    assert_eq!(recency(NOW, NOW, 0.995), 1.0);
    assert!((recency(NOW - HOUR, NOW, 0.995) - 0.995).abs() < 1e-6);
    assert!((recency(NOW - 100 * HOUR, NOW, 0.995) - 0.995f32.powi(100)).abs() < 1e-5);
    // Accessed "in the future" (clock skew) counts as now.
    assert_eq!(recency(NOW + HOUR, NOW, 0.995), 1.0);
}

#[test]
fn each_component_is_min_max_normalised_and_summed() {
    let candidates = [candidate(0.9, 100, 0.1), candidate(0.5, 0, 0.5), candidate(0.3, 50, 1.0)];
    let ranked = rank(&candidates, NOW, &pure_min_max(), 10);
    assert_eq!(ranked.len(), 3);
    for r in &ranked {
        let n = r.normalized;
        for v in [n.relevance, n.recency, n.importance] {
            assert!((0.0..=1.0).contains(&v));
        }
        assert!((r.score - (n.relevance + n.recency + n.importance)).abs() < 1e-6);
    }
    let by_index = |i: usize| ranked.iter().find(|r| r.index == i).unwrap();
    assert!((by_index(0).normalized.relevance - 1.0).abs() < 1e-6);
    assert!((by_index(2).normalized.relevance - 0.0).abs() < 1e-6);
    assert!((by_index(1).normalized.relevance - (0.2 / 0.6)).abs() < 1e-5);
    assert!((by_index(1).normalized.recency - 1.0).abs() < 1e-6);
    assert!((by_index(0).normalized.recency - 0.0).abs() < 1e-6);
    assert!((by_index(2).normalized.importance - 1.0).abs() < 1e-6);
    // Raw parts are reported as they were.
    assert!((by_index(0).raw.recency - 0.995f32.powi(100)).abs() < 1e-5);
    assert_eq!(by_index(2).raw.importance, 1.0);
    // Best first: 1 + 0 + 0 = 1; 0.33 + 1 + 0.44 = 1.78; 0 + 0.64 + 1 = 1.64.
    assert_eq!(ranked.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 2, 0]);
}

#[test]
fn weights_change_the_order() {
    let candidates = [candidate(0.9, 100, 0.1), candidate(0.5, 0, 0.5), candidate(0.3, 50, 1.0)];
    let relevance_only = ScoringConfig { weights: ScoreParts { relevance: 1.0, recency: 0.0, importance: 0.0 }, ..pure_min_max() };
    assert_eq!(rank(&candidates, NOW, &relevance_only, 3).iter().map(|r| r.index).collect::<Vec<_>>(), vec![0, 1, 2]);
    let importance_only = ScoringConfig { weights: ScoreParts { relevance: 0.0, recency: 0.0, importance: 2.0 }, ..pure_min_max() };
    let ranked = rank(&candidates, NOW, &importance_only, 3);
    assert_eq!(ranked.iter().map(|r| r.index).collect::<Vec<_>>(), vec![2, 1, 0]);
    assert!((ranked[0].score - 2.0).abs() < 1e-6);
}

#[test]
fn top_k_after_scoring() {
    let candidates: Vec<Candidate> = (0..20).map(|i| candidate(0.3 + i as f32 * 0.03, 0, 0.5)).collect();
    let ranked = rank(&candidates, NOW, &pure_min_max(), 5);
    assert_eq!(ranked.iter().map(|r| r.index).collect::<Vec<_>>(), vec![19, 18, 17, 16, 15]);
    assert!(rank(&candidates, NOW, &pure_min_max(), 0).is_empty());
    assert!(rank(&[], NOW, &pure_min_max(), 5).is_empty());
}

#[test]
fn equal_values_sit_at_the_midpoint() {
    let candidates = [candidate(0.5, 0, 0.5), candidate(0.5, 0, 0.5)];
    for r in rank(&candidates, NOW, &pure_min_max(), 2) {
        assert_eq!(r.normalized, ScoreParts { relevance: 0.5, recency: 0.5, importance: 0.5 });
    }
}

#[test]
fn minimum_spread_damps_negligible_differences() {
    // Written seconds apart, same importance: with pure min-max the tiny recency gap is worth a
    // full point and beats a more relevant memory.
    let seconds_ago = |s: u64, relevance: f32| Candidate { relevance, last_accessed: NOW - s * 1000, importance: 0.5, pinned: false };
    let candidates = [seconds_ago(5, 0.62), seconds_ago(0, 0.60), seconds_ago(5, 0.30)];
    assert_eq!(rank(&candidates, NOW, &pure_min_max(), 1)[0].index, 1, "pure min-max: recency noise wins");
    let damped = ScoringConfig { min_relevance: 0.0, ..ScoringConfig::default() };
    let ranked = rank(&candidates, NOW, &damped, 3);
    assert_eq!(ranked[0].index, 0, "with a minimum spread relevance decides");
    for r in &ranked {
        assert!((r.normalized.recency - 0.5).abs() < 0.001, "{:?}", r.normalized);
        assert_eq!(r.normalized.importance, 0.5);
    }
    // A range at or above the minimum is plain min-max.
    assert_eq!(ranked[0].normalized.relevance, 1.0);
    // A narrower one is divided by the minimum and centred on 0.5: 0.62 and 0.60 over 0.1.
    let ranked = rank(&candidates[..2], NOW, &damped, 2);
    let a = ranked.iter().find(|r| r.index == 0).unwrap();
    let b = ranked.iter().find(|r| r.index == 1).unwrap();
    assert!((a.normalized.relevance - 0.6).abs() < 1e-4 && (b.normalized.relevance - 0.4).abs() < 1e-4, "{a:?} {b:?}");
}

#[test]
fn threshold_drops_irrelevant_but_pinned_stay_eligible() {
    let config = ScoringConfig { min_relevance: 0.3, ..pure_min_max() };
    let mut pinned = candidate(0.05, 0, 1.0);
    pinned.pinned = true;
    let candidates = [candidate(0.8, 0, 0.5), candidate(0.1, 0, 1.0), pinned, candidate(0.29, 0, 0.5)];
    let ranked = rank(&candidates, NOW, &config, 10);
    let indices: Vec<usize> = ranked.iter().map(|r| r.index).collect();
    assert!(indices.contains(&0));
    assert!(indices.contains(&2), "pinned memories are always eligible");
    assert!(!indices.contains(&1) && !indices.contains(&3), "under the threshold");
    // Only eligible candidates enter the normalisation: relevance spans 0.05..0.8.
    let first = ranked.iter().find(|r| r.index == 0).unwrap();
    assert_eq!(first.normalized.relevance, 1.0);
    // Nothing relevant and nothing pinned: nothing.
    assert!(rank(&[candidate(0.1, 0, 1.0)], NOW, &config, 5).is_empty());
}
