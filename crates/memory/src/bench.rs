//! The index benchmark's workload, shared by the native example (`examples/memory_bench.rs`)
//! and the wasm build (`benchIndex` in `crates/web`), so both measure exactly the same thing.
//!
//! Vectors are synthetic unit vectors clustered like topic-grouped embeddings (random vectors
//! would be the hardest case for any graph index, real embeddings are easier). The caller
//! passes its clock: `std::time::Instant` does not exist on wasm32-unknown-unknown.

use serde::Serialize;

use crate::embedder::EMBEDDING_DIM;
use crate::index::{IndexConfig, MemoryIndex, RestoreOutcome};

/// A small deterministic generator (splitmix64), so every run and every target sees the
/// same vectors.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-7), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

/// `n` unit vectors around `n / 100` random centres: clusters of about 100, like memories of a
/// topic.
pub fn clustered(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    let clusters = (n / 100).max(10);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| {
            let mut c: Vec<f32> = (0..EMBEDDING_DIM).map(|_| rng.normal()).collect();
            normalize(&mut c);
            c
        })
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[(rng.next_u64() % clusters as u64) as usize];
            let mut v: Vec<f32> = c.iter().map(|x| x + rng.normal() / (EMBEDDING_DIM as f32).sqrt()).collect();
            normalize(&mut v);
            v
        })
        .collect()
}

/// The `p` quantile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// What one index size measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexBenchResult {
    pub records: usize,
    pub queries: usize,
    pub build_seconds: f64,
    pub hnsw_p50_us: f64,
    pub hnsw_p99_us: f64,
    pub exact_p50_us: f64,
    /// Share of the exact top 10 that HNSW also returned.
    pub recall_at_10: f64,
    pub stored_index_bytes_per_record: f64,
    pub restore_seconds: f64,
}

/// Build an index of `n` clustered vectors, time `queries` searches against an exact scan,
/// serialise and restore it. `now_seconds` is the caller's monotonic clock.
pub fn index_bench(n: usize, queries: usize, config: &IndexConfig, now_seconds: &dyn Fn() -> f64) -> IndexBenchResult {
    let vectors = clustered(n + queries, n as u64);
    let (data, probes) = vectors.split_at(n);
    let ids: Vec<String> = (0..n).map(|i| format!("{i:08x}-0000-4000-8000-000000000000")).collect();
    let mut index = MemoryIndex::new(EMBEDDING_DIM, config.clone());
    for (id, v) in ids.iter().zip(data) {
        // The vectors are unit length and of the right size: insert cannot refuse them.
        let _ = index.insert(id, v);
    }
    let started = now_seconds();
    index.rebuild();
    let build_seconds = now_seconds() - started;

    let mut hnsw_us = Vec::with_capacity(queries);
    let mut exact_us = Vec::with_capacity(queries);
    let mut found = 0;
    for q in probes {
        let t = now_seconds();
        let approx = index.search(q, 10);
        hnsw_us.push((now_seconds() - t) * 1e6);
        let t = now_seconds();
        let exact = index.exact_search(q, 10);
        exact_us.push((now_seconds() - t) * 1e6);
        found += approx.iter().filter(|h| exact.iter().any(|e| e.id == h.id)).count();
    }
    hnsw_us.sort_by(f64::total_cmp);
    exact_us.sort_by(f64::total_cmp);

    let blob = index.to_bytes().ok().flatten().unwrap_or_default();
    let started = now_seconds();
    let restored = MemoryIndex::restore(EMBEDDING_DIM, config.clone(), Some(&blob), ids.iter().map(String::as_str).zip(data.iter().map(Vec::as_slice)));
    let restore_seconds = now_seconds() - started;
    let restored_ok = matches!(restored, Ok((_, RestoreOutcome::Restored)));

    IndexBenchResult {
        records: n,
        queries,
        build_seconds,
        hnsw_p50_us: percentile(&hnsw_us, 0.5),
        hnsw_p99_us: percentile(&hnsw_us, 0.99),
        exact_p50_us: percentile(&exact_us, 0.5),
        recall_at_10: found as f64 / (10 * queries.max(1)) as f64,
        stored_index_bytes_per_record: blob.len() as f64 / n.max(1) as f64,
        // A restore that fell back to a rebuild is reported as not restored (NaN).
        restore_seconds: if restored_ok { restore_seconds } else { f64::NAN },
    }
}
