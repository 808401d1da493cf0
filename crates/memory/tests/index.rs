//! The vector index: recall against an exact scan, fresh inserts, tombstones, rebuilds that
//! overlap inserts and deletes, and the stored form (round trip, stale and corrupt blobs).

mod common;

use std::collections::HashSet;

use common::{Rng, clustered_vectors};
use memory::{IndexConfig, MemoryIndex, RestoreOutcome};

const DIM: usize = 384;

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i}")).collect()
}

fn recall_at_10(index: &MemoryIndex, queries: &[Vec<f32>]) -> f32 {
    let mut found = 0;
    for q in queries {
        let exact: HashSet<String> = index.exact_search(q, 10).into_iter().map(|h| h.id).collect();
        found += index.search(q, 10).into_iter().filter(|h| exact.contains(&h.id)).count();
    }
    found as f32 / (10 * queries.len()) as f32
}

fn built_index(vectors: &[Vec<f32>], config: IndexConfig) -> MemoryIndex {
    let mut index = MemoryIndex::new(DIM, config);
    for (id, v) in ids(vectors.len()).iter().zip(vectors) {
        index.insert(id, v).unwrap();
    }
    index.rebuild();
    index
}

#[test]
fn recall_at_10_against_exact_scan() {
    let n = 6000;
    let vectors = clustered_vectors(n + 100, DIM, 60, 1.0, 1);
    let (data, queries) = vectors.split_at(n);
    let index = built_index(data, IndexConfig::default());
    let stats = index.stats();
    assert_eq!((stats.hnsw, stats.fresh, stats.tombstones), (n, 0, 0));
    let recall = recall_at_10(&index, queries);
    eprintln!("recall@10 at {n} vectors: {recall:.4}");
    assert!(recall >= 0.95, "recall@10 {recall}");
    // Results come most similar first, similarities are cosines.
    let hits = index.search(&queries[0], 10);
    assert_eq!(hits.len(), 10);
    assert!(hits.windows(2).all(|w| w[0].similarity >= w[1].similarity));
    assert!(hits.iter().all(|h| h.similarity <= 1.0001 && h.similarity >= -1.0001));
}

#[test]
fn fresh_segment_is_exact_and_merged() {
    let vectors = clustered_vectors(1500, DIM, 20, 1.0, 2);
    let index_data = &vectors[..1000];
    let mut index = built_index(index_data, IndexConfig::default());
    for (i, v) in vectors[1000..1400].iter().enumerate() {
        index.insert(&format!("fresh{i}"), v).unwrap();
    }
    assert_eq!(index.stats().fresh, 400);
    assert_eq!(index.len(), 1400);
    // A fresh vector is its own nearest neighbour.
    for (i, v) in vectors[1000..1400].iter().enumerate().step_by(37) {
        assert_eq!(index.search(v, 1)[0].id, format!("fresh{i}"));
    }
    assert!(recall_at_10(&index, &vectors[1400..]) >= 0.95);
}

#[test]
fn tombstones_hide_and_rebuild_purges() {
    let vectors = clustered_vectors(3000, DIM, 30, 1.0, 3);
    let mut index = built_index(&vectors[..2000], IndexConfig::default());
    let all = ids(2000);
    let removed: Vec<&String> = all.iter().step_by(3).collect();
    for id in &removed {
        assert!(index.remove(id));
    }
    assert!(!index.remove("m0"), "removing twice");
    assert!(!index.remove("nobody"));
    let stats = index.stats();
    assert_eq!(stats.tombstones, removed.len());
    assert_eq!(stats.hnsw, 2000 - removed.len());
    assert!(stats.rebuild_wanted, "a third of the graph is dead");
    let removed: HashSet<&str> = removed.iter().map(|s| s.as_str()).collect();
    for q in &vectors[2000..2100] {
        let hits = index.search(q, 10);
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| !removed.contains(h.id.as_str())), "a tombstone came back");
    }
    // Removed vectors are not found even when queried exactly.
    assert!(index.search(&vectors[0], 5).iter().all(|h| h.id != "m0"));
    assert!(index.vector("m0").is_none());

    index.rebuild();
    let stats = index.stats();
    assert_eq!((stats.hnsw, stats.fresh, stats.tombstones, stats.rebuild_wanted), (2000 - removed.len(), 0, 0, false));
    assert!(recall_at_10(&index, &vectors[2000..2100]) >= 0.95);
}

#[test]
fn rebuild_policy() {
    let config = IndexConfig { fresh_limit: 100, fresh_fraction: 0.1, urgent_factor: 4, ..IndexConfig::default() };
    let vectors = clustered_vectors(2000, DIM, 10, 1.0, 4);
    let mut index = MemoryIndex::new(DIM, config);
    for (i, v) in vectors.iter().take(100).enumerate() {
        index.insert(&format!("m{i}"), v).unwrap();
    }
    assert!(!index.wants_rebuild(), "at the limit");
    index.insert("m100", &vectors[100]).unwrap();
    assert!(index.wants_rebuild() && !index.rebuild_urgent());
    for (i, v) in vectors.iter().enumerate().take(401).skip(101) {
        index.insert(&format!("m{i}"), v).unwrap();
    }
    assert!(index.rebuild_urgent());
    index.rebuild();
    assert_eq!(index.stats().hnsw, 401);
    // The allowance grows with the graph: 10% of 1500 = 150 > 100.
    for (i, v) in vectors.iter().enumerate().take(1500).skip(401) {
        index.insert(&format!("m{i}"), v).unwrap();
    }
    index.rebuild();
    for (i, v) in vectors.iter().enumerate().skip(1500).take(150) {
        index.insert(&format!("m{i}"), v).unwrap();
    }
    assert!(!index.wants_rebuild());
    index.insert("extra", &vectors[1999]).unwrap();
    assert!(index.wants_rebuild());
}

#[test]
fn rebuild_job_keeps_changes_made_while_it_ran() {
    let vectors = clustered_vectors(1300, DIM, 10, 1.0, 5);
    let mut index = built_index(&vectors[..1000], IndexConfig::default());
    for i in 1000..1100 {
        index.insert(&format!("m{i}"), &vectors[i]).unwrap();
    }
    let job = index.begin_rebuild();
    assert_eq!(job.len(), 1100);
    // Meanwhile: new inserts, deletes from the graph and the fresh segment, a replaced vector.
    for i in 1100..1200 {
        index.insert(&format!("m{i}"), &vectors[i]).unwrap();
    }
    for id in ["m5", "m1050", "m1150"] {
        assert!(index.remove(id));
    }
    index.insert("m7", &vectors[1250]).unwrap();
    let built = std::thread::spawn(move || job.build()).join().unwrap();
    // A second, older job is refused once the first is in.
    let stale = index.begin_rebuild();
    assert!(index.finish_rebuild(built));
    assert!(!index.finish_rebuild(stale.build()));

    let stats = index.stats();
    // 1100 built, minus m5, m1050 and the old m7: dead; 100 later inserts (less m1150) + new m7 fresh.
    assert_eq!(stats.tombstones, 3);
    assert_eq!(stats.hnsw, 1097);
    assert_eq!(stats.fresh, 100);
    assert_eq!(index.len(), 1197);
    for gone in ["m5", "m1050", "m1150"] {
        assert!(!index.contains(gone));
        assert!(index.exact_search(&vectors[gone[1..].parse::<usize>().unwrap()], 3).iter().all(|h| h.id != gone));
    }
    assert_eq!(index.search(&vectors[1250], 1)[0].id, "m7", "the replaced vector is the live one");
    assert_eq!(index.search(&vectors[1150 - 1], 1)[0].id, "m1149");
    assert_eq!(index.search(&vectors[42], 1)[0].id, "m42");
}

fn records(vectors: &[Vec<f32>]) -> Vec<(String, Vec<f32>)> {
    ids(vectors.len()).into_iter().zip(vectors.iter().cloned()).collect()
}

fn restore(blob: Option<&[u8]>, records: &[(String, Vec<f32>)]) -> (MemoryIndex, RestoreOutcome) {
    MemoryIndex::restore(DIM, IndexConfig::default(), blob, records.iter().map(|(id, v)| (id.as_str(), v.as_slice()))).unwrap()
}

#[test]
fn stored_index_round_trip() {
    let vectors = clustered_vectors(2200, DIM, 20, 1.0, 6);
    let recs = records(&vectors[..2000]);
    let mut index = built_index(&vectors[..2000], IndexConfig::default());
    index.remove("m3");
    let blob = index.to_bytes().unwrap().expect("a graph");
    eprintln!("stored index: {} bytes for 2000 vectors ({:.0} bytes each)", blob.len(), blob.len() as f64 / 2000.0);
    assert!(blob.len() < 2000 * 400, "the stored graph carries no vectors");

    // The records now lack m3 and have two newcomers.
    let mut now: Vec<(String, Vec<f32>)> = recs.iter().filter(|(id, _)| id != "m3").cloned().collect();
    now.push(("new1".into(), vectors[2100].clone()));
    now.push(("new2".into(), vectors[2101].clone()));
    let (restored, outcome) = restore(Some(&blob), &now);
    assert_eq!(outcome, RestoreOutcome::Restored);
    let stats = restored.stats();
    assert_eq!((stats.hnsw, stats.fresh, stats.tombstones), (1999, 2, 1));
    for q in &vectors[2000..2050] {
        let mut expected = index.search(q, 10);
        expected.retain(|h| h.id != "m3");
        let got: Vec<String> = restored.search(q, 10).into_iter().map(|h| h.id).filter(|id| !id.starts_with("new")).collect();
        assert_eq!(got[..expected.len().min(got.len())], expected.iter().map(|h| h.id.clone()).collect::<Vec<_>>()[..expected.len().min(got.len())]);
    }
    assert_eq!(restored.search(&vectors[2100], 1)[0].id, "new1");
    assert!(recall_at_10(&restored, &vectors[2050..2150]) >= 0.95);
}

#[test]
fn stale_or_broken_stored_index_is_rebuilt() {
    let vectors = clustered_vectors(2000, DIM, 20, 1.0, 7);
    let recs = records(&vectors[..1500]);
    let index = built_index(&vectors[..1500], IndexConfig::default());
    let blob = index.to_bytes().unwrap().unwrap();

    // Missing.
    let (rebuilt, outcome) = restore(None, &recs);
    assert!(matches!(outcome, RestoreOutcome::Rebuilt { .. }), "{outcome:?}");
    assert_eq!(rebuilt.stats().hnsw, 1500);

    // Half the records changed vectors since the index was saved.
    let mut changed = recs.clone();
    for (i, r) in changed.iter_mut().enumerate().filter(|(i, _)| i % 2 == 0) {
        r.1 = vectors[1500 + i % 500].clone();
    }
    let (rebuilt, outcome) = restore(Some(&blob), &changed);
    let RestoreOutcome::Rebuilt { reason } = outcome else { panic!("{outcome:?}") };
    assert!(reason.contains("stale"), "{reason}");
    assert_eq!(rebuilt.stats().tombstones, 0);
    assert_eq!(rebuilt.search(&vectors[1500], 1)[0].id, "m0");

    // A few changed: restored, the changed ones tombstoned in the graph and live in fresh.
    let mut few = recs.clone();
    few[10].1 = vectors[1999].clone();
    let (restored, outcome) = restore(Some(&blob), &few);
    assert_eq!(outcome, RestoreOutcome::Restored);
    assert_eq!((restored.stats().tombstones, restored.stats().fresh), (1, 1));
    assert_eq!(restored.search(&vectors[1999], 1)[0].id, "m10");

    // Corrupt bytes, truncation, other dimension: never a panic; a rebuild, or (when only a
    // slot's id or checksum was hit) the stored graph with that slot dead and its record fresh.
    let mut rng = Rng::new(8);
    let mut rebuilt = 0;
    for trial in 0..24 {
        let mut bad = blob.clone();
        match trial % 4 {
            0 => bad.truncate(rng.below(blob.len())),
            1 => {
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(bad.len());
                    bad[at] ^= 1 << rng.below(8);
                }
            }
            2 => bad = (0..rng.below(4096)).map(|_| rng.next_u64() as u8).collect(),
            _ => {
                let at = rng.below(bad.len());
                bad[at] = bad[at].wrapping_add(1);
            }
        }
        let (index, outcome) = restore(Some(&bad), &recs);
        if outcome != RestoreOutcome::Restored {
            rebuilt += 1;
        }
        assert_eq!(index.len(), 1500, "trial {trial}");
        assert!(index.stats().tombstones <= 1, "trial {trial}");
        for i in (0..1500).step_by(100) {
            assert_eq!(index.search(&vectors[i], 1)[0].id, format!("m{i}"), "trial {trial}");
        }
    }
    assert!(rebuilt >= 20, "only {rebuilt} of 24 corrupt blobs were rebuilt");
    let mut small_dim = MemoryIndex::new(8, IndexConfig::default());
    for (i, v) in clustered_vectors(100, 8, 4, 1.0, 9).iter().enumerate() {
        small_dim.insert(&format!("m{i}"), v).unwrap();
    }
    small_dim.rebuild();
    let (_, outcome) = restore(Some(&small_dim.to_bytes().unwrap().unwrap()), &recs);
    let RestoreOutcome::Rebuilt { reason } = outcome else { panic!("{outcome:?}") };
    assert!(reason.contains("dimension"), "{reason}");

    // Few records and no usable graph: all fresh, no build.
    let (small, outcome) = restore(None, &recs[..50]);
    assert!(matches!(outcome, RestoreOutcome::FreshOnly { .. }));
    assert_eq!((small.stats().hnsw, small.stats().fresh), (0, 50));
    assert!(small.to_bytes().unwrap().is_none());
}

#[test]
fn rejects_bad_vectors() {
    let mut index = MemoryIndex::new(DIM, IndexConfig::default());
    assert!(index.insert("short", &[1.0; 10]).is_err());
    assert!(index.insert("nan", &[f32::NAN; DIM]).is_err());
    assert!(index.is_empty());
    assert!(index.search(&[0.5; DIM], 0).is_empty());
    assert!(index.search(&[0.5; 3], 5).is_empty());
    assert!(index.search(&[0.5; DIM], 5).is_empty());
}
