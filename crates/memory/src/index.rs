//! The vector index of one character's memories: an HNSW graph (`instant-distance`) over the
//! bulk of the vectors plus a small exact segment for fresh inserts.
//!
//! `instant-distance` builds a graph from a full set of points; it cannot insert. So new
//! vectors go to the *fresh* segment, searched by brute force (a few thousand dot products cost
//! well under a millisecond), and when that segment outgrows its allowance the graph is rebuilt
//! from every live vector. Deletes mark the graph slot dead (a tombstone): searches skip it and
//! the next rebuild drops it.
//!
//! Rebuilding is split so that it can run off the caller's path: [`MemoryIndex::begin_rebuild`]
//! copies what the build needs into a [`RebuildJob`] (owned, `Send`), [`RebuildJob::build`] does
//! the work anywhere (a native thread, a Web Worker, an idle callback), and
//! [`MemoryIndex::finish_rebuild`] swaps the new graph in, keeping whatever was inserted or
//! deleted meanwhile. [`MemoryIndex::rebuild`] does all three at once.
//!
//! Vectors are compared by cosine similarity; they are normalised on the way in, so the graph's
//! distance is `1 − dot`.
//!
//! The graph serialises ([`MemoryIndex::to_bytes`]) without its vectors: the records hold them,
//! and [`MemoryIndex::restore`] takes the records and the stored graph, checks each graph slot
//! against its record by checksum, and falls back to a rebuild when the stored graph is missing,
//! of another format, corrupt, or stale.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use instant_distance::{Builder, Heuristic, Hnsw, Point, Search};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{MemoryError, Result};

/// Version of the serialised index layout; another version is rebuilt from the records.
pub const INDEX_FORMAT: u32 = 1;

/// When to rebuild and how to build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexConfig {
    /// The fresh segment may hold this many vectors (or `fresh_fraction` of the graph's size,
    /// if larger) before a rebuild is wanted.
    pub fresh_limit: usize,
    pub fresh_fraction: f32,
    /// Past `urgent_factor` times the allowance, the owner should rebuild at once rather than
    /// wait for an idle moment ([`MemoryIndex::rebuild_urgent`]).
    pub urgent_factor: usize,
    /// A rebuild is wanted once this fraction of the graph's slots are tombstones.
    pub tombstone_fraction: f32,
    /// HNSW `efConstruction`: candidates kept while linking each point during a build.
    pub ef_construction: usize,
    /// HNSW `ef` at query time: candidates kept while searching (at least `k`).
    pub ef_search: usize,
    /// Choose each point's neighbours with the HNSW paper's diversity heuristic (better graphs
    /// on clustered data, slower builds) rather than simply the nearest ones.
    pub neighbour_heuristic: bool,
    /// Seed of the level assignment, so builds are reproducible.
    pub seed: u64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            fresh_limit: 1024,
            fresh_fraction: 0.05,
            urgent_factor: 4,
            tombstone_fraction: 0.2,
            ef_construction: 100,
            ef_search: 100,
            neighbour_heuristic: true,
            seed: 0x5eed_cafe,
        }
    }
}

/// A search result: a record id and its cosine similarity to the query.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexHit {
    pub id: String,
    pub similarity: f32,
}

/// What the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexStats {
    /// Live vectors in the HNSW graph.
    pub hnsw: usize,
    /// Vectors in the exact segment.
    pub fresh: usize,
    /// Dead graph slots awaiting the next rebuild.
    pub tombstones: usize,
    pub rebuild_wanted: bool,
}

/// How [`MemoryIndex::restore`] got its graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// The stored graph was used; records it did not cover went to the fresh segment.
    Restored,
    /// The stored graph was unusable (the reason says why) and a new one was built.
    Rebuilt { reason: String },
    /// No graph: too few vectors to need one, all in the fresh segment.
    FreshOnly { reason: String },
}

/// Row-major unit vectors; graph slot `i` is row `i`.
#[derive(Debug)]
struct VectorTable {
    dim: usize,
    values: Vec<f32>,
}

impl VectorTable {
    fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    fn rows(&self) -> usize {
        self.values.len() / self.dim.max(1)
    }
}

/// A graph point: a row of a shared table. Serialised as the row number alone, so the stored
/// graph carries no vectors (see [`MemoryIndex::restore`]).
#[derive(Clone, Debug)]
struct TablePoint {
    table: Arc<VectorTable>,
    slot: u32,
}

impl TablePoint {
    fn vector(&self) -> &[f32] {
        self.table.row(self.slot as usize)
    }
}

impl Point for TablePoint {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(self.vector(), other.vector())
    }
}

impl Serialize for TablePoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.slot)
    }
}

thread_local! {
    /// The table that points being deserialised refer to: set by `restore` around the call
    /// into serde, because derived `Deserialize` impls cannot carry context.
    static LOADING_TABLE: RefCell<Option<Arc<VectorTable>>> = const { RefCell::new(None) };
}

impl<'de> Deserialize<'de> for TablePoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let slot = u32::deserialize(deserializer)?;
        let table = LOADING_TABLE
            .with(|t| t.borrow().clone())
            .ok_or_else(|| D::Error::custom("graph points read outside MemoryIndex::restore"))?;
        if slot as usize >= table.rows() {
            return Err(D::Error::custom(format!("graph point {slot} outside {} slots", table.rows())));
        }
        Ok(Self { table, slot })
    }
}

/// Dot product, eight lanes at a time so the compiler vectorises it.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (a8.remainder(), b8.remainder());
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// `v` scaled to unit length. Vectors already of unit length (within rounding, as the
/// embedder's are) and zero vectors are kept bit for bit, so normalising is idempotent and a
/// record's embedding equals the indexed vector.
fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = dot(v, v).sqrt();
    if norm == 0.0 || (norm - 1.0).abs() < 1e-5 { v.to_vec() } else { v.iter().map(|x| x / norm).collect() }
}

/// FNV-1a over the bits of a vector: tells whether a stored graph slot still matches its record.
fn checksum(v: &[f32]) -> u64 {
    fnv(v.iter().flat_map(|x| x.to_bits().to_le_bytes()))
}

fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for b in bytes {
        hash = (hash ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The built HNSW graph and what each of its slots holds.
struct Graph {
    hnsw: Hnsw<TablePoint>,
    table: Arc<VectorTable>,
    ids: Vec<String>,
    /// The insert sequence number of each slot's vector, to tell a vector from a later one under
    /// the same id when a rebuild finishes.
    seqs: Vec<u64>,
    alive: Vec<bool>,
    dead: usize,
}

impl Graph {
    fn live(&self) -> usize {
        self.ids.len() - self.dead
    }
}

#[derive(Debug, Clone, Copy)]
enum Location {
    Graph(u32),
    Fresh(usize),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    location: Location,
}

/// An HNSW graph plus an exact segment over one character's memory vectors; see the module docs.
pub struct MemoryIndex {
    dim: usize,
    config: IndexConfig,
    graph: Option<Graph>,
    /// Counts graph replacements, so a rebuild begun before another finished is refused.
    generation: u64,
    fresh_ids: Vec<String>,
    fresh_seqs: Vec<u64>,
    fresh_values: Vec<f32>,
    entries: HashMap<String, Entry>,
    next_seq: u64,
}

/// Everything a graph build needs, copied out of the index. `Send`: it can be built on another
/// thread while the index keeps serving searches and taking inserts and deletes.
pub struct RebuildJob {
    generation: u64,
    dim: usize,
    config: IndexConfig,
    ids: Vec<String>,
    seqs: Vec<u64>,
    values: Vec<f32>,
}

/// A finished build, to hand to [`MemoryIndex::finish_rebuild`].
pub struct BuiltGraph {
    generation: u64,
    graph: Option<Graph>,
}

impl RebuildJob {
    /// Vectors to build over.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Build the graph. CPU-bound (rayon threads natively; one thread in the browser).
    pub fn build(self) -> BuiltGraph {
        if self.ids.is_empty() {
            return BuiltGraph { generation: self.generation, graph: None };
        }
        let table = Arc::new(VectorTable { dim: self.dim, values: self.values });
        let points = (0..self.ids.len() as u32).map(|slot| TablePoint { table: table.clone(), slot }).collect();
        let (hnsw, _) = Builder::default()
            .ef_construction(self.config.ef_construction.max(1))
            .ef_search(self.config.ef_search.max(1))
            .select_heuristic(self.config.neighbour_heuristic.then(Heuristic::default))
            .seed(self.config.seed)
            .build_hnsw(points);
        let alive = vec![true; self.ids.len()];
        BuiltGraph { generation: self.generation, graph: Some(Graph { hnsw, table, ids: self.ids, seqs: self.seqs, alive, dead: 0 }) }
    }
}

/// The serialised index: the graph without its vectors, plus what is needed to match slots to
/// records again.
#[derive(Serialize, Deserialize)]
struct StoredIndex {
    format: u32,
    dim: u32,
    slots: Vec<StoredSlot>,
    /// postcard bytes of `Hnsw<TablePoint>`.
    graph: Vec<u8>,
    graph_checksum: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredSlot {
    id: String,
    checksum: u64,
}

impl MemoryIndex {
    pub fn new(dim: usize, config: IndexConfig) -> Self {
        Self {
            dim,
            config,
            graph: None,
            generation: 0,
            fresh_ids: Vec::new(),
            fresh_seqs: Vec::new(),
            fresh_values: Vec::new(),
            entries: HashMap::new(),
            next_seq: 0,
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// Add a vector, or replace the one under `id`. It lands in the fresh segment.
    pub fn insert(&mut self, id: &str, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dim || vector.iter().any(|v| !v.is_finite()) {
            return Err(MemoryError::BadRequest(format!("vector of {} values, {} finite ones expected", vector.len(), self.dim)));
        }
        self.remove(id);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.push_fresh(id.to_string(), seq, &normalized(vector));
        Ok(())
    }

    fn push_fresh(&mut self, id: String, seq: u64, unit: &[f32]) {
        self.entries.insert(id.clone(), Entry { seq, location: Location::Fresh(self.fresh_ids.len()) });
        self.fresh_ids.push(id);
        self.fresh_seqs.push(seq);
        self.fresh_values.extend_from_slice(unit);
    }

    /// Forget `id`: a tombstone if it is in the graph, gone at once if fresh. False if absent.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(entry) = self.entries.remove(id) else { return false };
        match entry.location {
            Location::Graph(slot) => {
                if let Some(graph) = &mut self.graph
                    && graph.alive[slot as usize]
                {
                    graph.alive[slot as usize] = false;
                    graph.dead += 1;
                }
            }
            Location::Fresh(i) => {
                let last = self.fresh_ids.len() - 1;
                self.fresh_ids.swap_remove(i);
                self.fresh_seqs.swap_remove(i);
                if i != last {
                    self.fresh_values.copy_within(last * self.dim..(last + 1) * self.dim, i * self.dim);
                    if let Some(moved) = self.entries.get_mut(&self.fresh_ids[i]) {
                        moved.location = Location::Fresh(i);
                    }
                }
                self.fresh_values.truncate(last * self.dim);
            }
        }
        true
    }

    /// The (normalised) vector stored under `id`.
    pub fn vector(&self, id: &str) -> Option<&[f32]> {
        match self.entries.get(id)?.location {
            Location::Graph(slot) => Some(self.graph.as_ref()?.table.row(slot as usize)),
            Location::Fresh(i) => Some(&self.fresh_values[i * self.dim..(i + 1) * self.dim]),
        }
    }

    /// Ids of every live vector (in no particular order).
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The `k` vectors most similar to `query`: approximate in the graph, exact in the fresh
    /// segment, merged. Most similar first.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<IndexHit> {
        if k == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let unit = normalized(query);
        let mut hits: Vec<(f32, &str)> = self.fresh_top(&unit, k);
        if let Some(graph) = &self.graph
            && graph.live() > 0
        {
            // The graph returns at most `ef_search` results, tombstones included; when that
            // cannot cover `k` live ones, scan the graph's vectors exactly instead.
            if k + graph.dead > self.config.ef_search.max(1) {
                hits.extend(Self::scan(&graph.table, &graph.alive, &graph.ids, &unit, k));
            } else {
                let query_point = TablePoint { table: Arc::new(VectorTable { dim: self.dim, values: unit.clone() }), slot: 0 };
                let mut search = Search::default();
                hits.extend(
                    graph
                        .hnsw
                        .search(&query_point, &mut search)
                        .filter(|item| graph.alive[item.point.slot as usize])
                        .take(k)
                        .map(|item| (1.0 - item.distance, graph.ids[item.point.slot as usize].as_str())),
                );
            }
        }
        finish_top(hits, k)
    }

    /// The exact top `k` over every live vector (the ground truth [`Self::search`] approximates).
    pub fn exact_search(&self, query: &[f32], k: usize) -> Vec<IndexHit> {
        if k == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let unit = normalized(query);
        let mut hits = self.fresh_top(&unit, k);
        if let Some(graph) = &self.graph {
            hits.extend(Self::scan(&graph.table, &graph.alive, &graph.ids, &unit, k));
        }
        finish_top(hits, k)
    }

    fn fresh_top(&self, unit: &[f32], k: usize) -> Vec<(f32, &str)> {
        let mut hits: Vec<(f32, &str)> = self
            .fresh_values
            .chunks_exact(self.dim.max(1))
            .zip(&self.fresh_ids)
            .map(|(v, id)| (dot(unit, v), id.as_str()))
            .collect();
        keep_top(&mut hits, k);
        hits
    }

    fn scan<'a>(table: &VectorTable, alive: &[bool], ids: &'a [String], unit: &[f32], k: usize) -> Vec<(f32, &'a str)> {
        let mut hits: Vec<(f32, &str)> = (0..ids.len()).filter(|&i| alive[i]).map(|i| (dot(unit, table.row(i)), ids[i].as_str())).collect();
        keep_top(&mut hits, k);
        hits
    }

    pub fn stats(&self) -> IndexStats {
        IndexStats {
            hnsw: self.graph.as_ref().map_or(0, Graph::live),
            fresh: self.fresh_ids.len(),
            tombstones: self.graph.as_ref().map_or(0, |g| g.dead),
            rebuild_wanted: self.wants_rebuild(),
        }
    }

    /// How many vectors the fresh segment may hold before a rebuild is wanted.
    fn fresh_allowance(&self) -> usize {
        let graph = self.graph.as_ref().map_or(0, Graph::live);
        self.config.fresh_limit.max((graph as f32 * self.config.fresh_fraction) as usize)
    }

    fn too_many_tombstones(&self, factor: f32) -> bool {
        self.graph.as_ref().is_some_and(|g| g.dead >= 16 && g.dead as f32 > factor * self.config.tombstone_fraction * g.ids.len() as f32)
    }

    /// The fresh segment or the tombstones have grown past the policy: schedule a rebuild at the
    /// next idle moment.
    pub fn wants_rebuild(&self) -> bool {
        self.fresh_ids.len() > self.fresh_allowance() || self.too_many_tombstones(1.0)
    }

    /// Far past the policy (fresh segment `urgent_factor` times its allowance, or over half the
    /// graph dead): searches are slowing down, rebuild now rather than at an idle moment.
    pub fn rebuild_urgent(&self) -> bool {
        let factor = self.config.urgent_factor.max(1);
        self.fresh_ids.len() > factor * self.fresh_allowance()
            || self.graph.as_ref().is_some_and(|g| g.dead >= 16 && g.dead * 2 > g.ids.len())
    }

    /// Copy every live vector out for a build; see [`RebuildJob`].
    pub fn begin_rebuild(&self) -> RebuildJob {
        let mut job = RebuildJob {
            generation: self.generation,
            dim: self.dim,
            config: self.config.clone(),
            ids: Vec::with_capacity(self.len()),
            seqs: Vec::with_capacity(self.len()),
            values: Vec::with_capacity(self.len() * self.dim),
        };
        if let Some(graph) = &self.graph {
            for slot in (0..graph.ids.len()).filter(|&s| graph.alive[s]) {
                job.ids.push(graph.ids[slot].clone());
                job.seqs.push(graph.seqs[slot]);
                job.values.extend_from_slice(graph.table.row(slot));
            }
        }
        job.ids.extend(self.fresh_ids.iter().cloned());
        job.seqs.extend(&self.fresh_seqs);
        job.values.extend_from_slice(&self.fresh_values);
        job
    }

    /// Swap in a finished build. Vectors inserted since [`Self::begin_rebuild`] stay in the fresh
    /// segment; ones deleted or replaced since become tombstones of the new graph. Returns false
    /// (and changes nothing) for a build begun before another build was swapped in.
    pub fn finish_rebuild(&mut self, built: BuiltGraph) -> bool {
        if built.generation != self.generation {
            return false;
        }
        let old_graph = self.graph.take();
        let mut adopted_fresh = vec![false; self.fresh_ids.len()];
        let mut new_graph = built.graph;
        if let Some(graph) = &mut new_graph {
            for slot in 0..graph.ids.len() {
                match self.entries.get_mut(&graph.ids[slot]) {
                    Some(entry) if entry.seq == graph.seqs[slot] => {
                        if let Location::Fresh(i) = entry.location {
                            adopted_fresh[i] = true;
                        }
                        entry.location = Location::Graph(slot as u32);
                    }
                    _ => {
                        graph.alive[slot] = false;
                        graph.dead += 1;
                    }
                }
            }
        }
        // Anything still pointing into the old graph was not in the build (cannot happen for a
        // job of this generation, but a wrong slot would be worse than a move): back to fresh.
        let mut leftovers = Vec::new();
        for (id, entry) in &self.entries {
            if let Location::Graph(slot) = entry.location
                && new_graph.as_ref().is_none_or(|g| g.ids.get(slot as usize) != Some(id) || g.seqs[slot as usize] != entry.seq)
                && let Some(old) = &old_graph
            {
                leftovers.push((id.clone(), entry.seq, old.table.row(slot as usize).to_vec()));
            }
        }
        let fresh_ids = std::mem::take(&mut self.fresh_ids);
        let fresh_seqs = std::mem::take(&mut self.fresh_seqs);
        let fresh_values = std::mem::take(&mut self.fresh_values);
        for (i, (id, seq)) in fresh_ids.into_iter().zip(fresh_seqs).enumerate() {
            if !adopted_fresh[i] {
                let v = fresh_values[i * self.dim..(i + 1) * self.dim].to_vec();
                self.push_fresh(id, seq, &v);
            }
        }
        for (id, seq, v) in leftovers {
            self.push_fresh(id, seq, &v);
        }
        self.graph = new_graph;
        self.generation += 1;
        true
    }

    /// Rebuild the graph over every live vector now, purging tombstones and emptying the fresh
    /// segment.
    pub fn rebuild(&mut self) {
        let built = self.begin_rebuild().build();
        self.finish_rebuild(built);
    }

    /// The graph, serialised without vectors (the fresh segment is not stored: its records are
    /// re-inserted by [`Self::restore`]). `None` when there is no graph.
    pub fn to_bytes(&self) -> Result<Option<Vec<u8>>> {
        let Some(graph) = &self.graph else { return Ok(None) };
        let bytes = postcard::to_allocvec(&graph.hnsw).map_err(|e| MemoryError::Storage(format!("serialising the index: {e}")))?;
        let stored = StoredIndex {
            format: INDEX_FORMAT,
            dim: self.dim as u32,
            slots: (0..graph.ids.len())
                .map(|s| StoredSlot {
                    id: graph.ids[s].clone(),
                    // Dead slots never match a record on restore.
                    checksum: if graph.alive[s] { checksum(graph.table.row(s)) } else { 0 },
                })
                .collect(),
            graph_checksum: fnv(bytes.iter().copied()),
            graph: bytes,
        };
        postcard::to_allocvec(&stored).map(Some).map_err(|e| MemoryError::Storage(format!("serialising the index: {e}")))
    }

    /// The index over `records` (id and vector of every live memory), using the stored graph
    /// `blob` when it is usable, else building one (when there are enough vectors to want one).
    pub fn restore<'a>(
        dim: usize,
        config: IndexConfig,
        blob: Option<&[u8]>,
        records: impl IntoIterator<Item = (&'a str, &'a [f32])>,
    ) -> Result<(Self, RestoreOutcome)> {
        let mut index = Self::new(dim, config);
        let mut vectors: Vec<(&str, Vec<f32>)> = Vec::new();
        for (id, v) in records {
            if v.len() != dim || v.iter().any(|x| !x.is_finite()) {
                return Err(MemoryError::Corrupt(format!("memory {id:?}: vector of {} values, {dim} finite ones expected", v.len())));
            }
            vectors.push((id, normalized(v)));
        }

        let reason = match blob {
            None => "no stored index".to_string(),
            Some(blob) => match index.adopt_stored(blob, &vectors) {
                Ok(()) => return Ok((index, RestoreOutcome::Restored)),
                Err(reason) => reason,
            },
        };
        index = Self::new(dim, index.config);
        for (id, v) in vectors {
            let seq = index.next_seq;
            index.next_seq += 1;
            index.push_fresh(id.to_string(), seq, &v);
        }
        if index.wants_rebuild() {
            index.rebuild();
            Ok((index, RestoreOutcome::Rebuilt { reason }))
        } else {
            Ok((index, RestoreOutcome::FreshOnly { reason }))
        }
    }

    /// Use a stored graph for `vectors`; `Err(reason)` when it cannot be used.
    fn adopt_stored(&mut self, blob: &[u8], vectors: &[(&str, Vec<f32>)]) -> Result<(), String> {
        let stored: StoredIndex = postcard::from_bytes(blob).map_err(|e| format!("unreadable stored index: {e}"))?;
        if stored.format != INDEX_FORMAT {
            return Err(format!("stored index format {} (this build reads {INDEX_FORMAT})", stored.format));
        }
        if stored.dim as usize != self.dim {
            return Err(format!("stored index of dimension {} (expected {})", stored.dim, self.dim));
        }
        if fnv(stored.graph.iter().copied()) != stored.graph_checksum {
            return Err("stored index fails its checksum".into());
        }
        check_graph_shape(&stored.graph, stored.slots.len())?;

        // Match slots to records: a slot is live when its record exists with the same vector.
        let by_id: HashMap<&str, usize> = vectors.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
        let mut claimed = vec![false; vectors.len()];
        let mut table = Vec::with_capacity(stored.slots.len() * self.dim);
        let mut alive = Vec::with_capacity(stored.slots.len());
        for s in &stored.slots {
            match by_id.get(s.id.as_str()) {
                Some(&i) if !claimed[i] && checksum(&vectors[i].1) == s.checksum => {
                    claimed[i] = true;
                    table.extend_from_slice(&vectors[i].1);
                    alive.push(true);
                }
                _ => {
                    // Deleted or changed: a tombstone. The stored index keeps no vectors (a
                    // forgotten memory must not linger in it), so the slot gets a zero vector:
                    // the graph keeps its shape and only routes a little worse through it.
                    table.extend(std::iter::repeat_n(0.0, self.dim));
                    alive.push(false);
                }
            }
        }
        let dead = alive.iter().filter(|a| !**a).count();
        if dead >= 16 && dead as f32 > self.config.tombstone_fraction * stored.slots.len() as f32 {
            return Err(format!("stale stored index: {dead} of {} graph slots no longer match a record", stored.slots.len()));
        }

        let table = Arc::new(VectorTable { dim: self.dim, values: table });
        LOADING_TABLE.with(|t| *t.borrow_mut() = Some(table.clone()));
        let hnsw = postcard::from_bytes::<Hnsw<TablePoint>>(&stored.graph);
        LOADING_TABLE.with(|t| *t.borrow_mut() = None);
        let hnsw = hnsw.map_err(|e| format!("unreadable stored graph: {e}"))?;

        let ids: Vec<String> = stored.slots.into_iter().map(|s| s.id).collect();
        let mut seqs = Vec::with_capacity(ids.len());
        for (slot, id) in ids.iter().enumerate() {
            let seq = self.next_seq;
            self.next_seq += 1;
            seqs.push(seq);
            if alive[slot] {
                self.entries.insert(id.clone(), Entry { seq, location: Location::Graph(slot as u32) });
            }
        }
        self.graph = Some(Graph { hnsw, table, ids, seqs, alive, dead });
        for (i, (id, v)) in vectors.iter().enumerate() {
            if !claimed[i] {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.push_fresh(id.to_string(), seq, v);
            }
        }
        Ok(())
    }
}

/// Sort by similarity (then id, for a stable order) and keep `k`.
fn keep_top(hits: &mut Vec<(f32, &str)>, k: usize) {
    let order = |a: &(f32, &str), b: &(f32, &str)| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1));
    if hits.len() > k {
        hits.select_nth_unstable_by(k, order);
        hits.truncate(k);
    }
    hits.sort_unstable_by(order);
}

fn finish_top(mut hits: Vec<(f32, &str)>, k: usize) -> Vec<IndexHit> {
    keep_top(&mut hits, k);
    hits.into_iter().map(|(similarity, id)| IndexHit { id: id.to_string(), similarity }).collect()
}

/// The serde shape of `instant_distance::Hnsw`, read first to check every neighbour reference
/// is in range: a corrupt stored graph must fall back to a rebuild, never index out of bounds
/// (a panic in the browser ends the whole engine).
#[derive(Deserialize)]
struct HnswShape {
    ef_search: usize,
    points: Vec<u32>,
    zero: Vec<ZeroLayerNode>,
    layers: Vec<Vec<UpperLayerNode>>,
}

/// instant-distance's `M` is 32: nodes link to `2M` neighbours on layer zero, `M` above.
#[derive(Deserialize)]
struct ZeroLayerNode(#[serde(with = "serde_big_array::BigArray")] [u32; 64]);

#[derive(Deserialize)]
struct UpperLayerNode([u32; 32]);

const NO_NEIGHBOUR: u32 = u32::MAX;

fn check_graph_shape(bytes: &[u8], slots: usize) -> Result<(), String> {
    let shape: HnswShape = postcard::from_bytes(bytes).map_err(|e| format!("unreadable stored graph: {e}"))?;
    let n = shape.points.len();
    let bad = |what: &str| Err(format!("stored graph is inconsistent: {what}"));
    if n != slots || shape.zero.len() != n {
        return bad("point counts differ");
    }
    if shape.ef_search == 0 {
        return bad("ef_search is 0");
    }
    let mut seen = vec![false; n];
    for &p in &shape.points {
        if p as usize >= n || std::mem::replace(&mut seen[p as usize], true) {
            return bad("points are not a permutation of the slots");
        }
    }
    if shape.zero.iter().any(|node| node.0.iter().any(|&p| p != NO_NEIGHBOUR && p as usize >= n)) {
        return bad("a neighbour outside the graph");
    }
    let mut above = n;
    for layer in &shape.layers {
        // Upper layers are prefixes of the points, shrinking upwards, never empty.
        if layer.is_empty() || layer.len() > above {
            return bad("layer sizes");
        }
        above = layer.len();
        if layer.iter().any(|node| node.0.iter().any(|&p| p != NO_NEIGHBOUR && p as usize >= layer.len())) {
            return bad("a neighbour outside its layer");
        }
    }
    if n == 0 && !shape.layers.is_empty() {
        return bad("layers without points");
    }
    Ok(())
}
