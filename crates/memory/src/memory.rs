//! The memory of every character: embedder + index + store behind the operations of the JS API
//! (`memory.add / search / list / update / forget / embed / stats`).
//!
//! Records are written to the store first and applied in memory only once the store accepted
//! them, so a failed write (quota, crash) changes nothing. Each character's records and index
//! are loaded on first use; the records are kept in memory without their embeddings (the index
//! holds those) to avoid keeping every vector twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::embedder::{EMBEDDING_DIM, Embedding, TextEmbedder};
use crate::error::{MemoryError, Result};
use crate::index::{IndexConfig, IndexStats, MemoryIndex, RestoreOutcome, dot};
use crate::record::{DEFAULT_IMPORTANCE, MemoryKind, MemoryRecord, SCHEMA_VERSION, new_id, now_ms};
use crate::score::{Candidate, ScoreParts, ScoringConfig, rank};
use crate::store::{Store, WriteBatch};

/// Tuning of retrieval and of the index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryConfig {
    pub scoring: ScoringConfig,
    pub index: IndexConfig,
}

/// A memory to write (`memory.add`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMemory {
    /// An id of the caller's choosing (a chat message's id, say); a random one when `None`.
    #[serde(default)]
    pub id: Option<String>,
    pub character_id: String,
    #[serde(default)]
    pub session_id: Option<String>,
    pub kind: MemoryKind,
    pub text: String,
    /// `0..=1`; [`DEFAULT_IMPORTANCE`] when `None`.
    #[serde(default)]
    pub importance: Option<f32>,
    /// Defaults to true for [`MemoryKind::PinnedNote`], false otherwise.
    #[serde(default)]
    pub pinned: Option<bool>,
    #[serde(default)]
    pub source_message_ids: Vec<String>,
    /// Unix ms; now when `None` (set it when importing older history).
    #[serde(default)]
    pub created_at: Option<u64>,
}

impl NewMemory {
    pub fn new(character_id: impl Into<String>, kind: MemoryKind, text: impl Into<String>) -> Self {
        Self {
            id: None,
            character_id: character_id.into(),
            session_id: None,
            kind,
            text: text.into(),
            importance: None,
            pinned: None,
            source_message_ids: Vec::new(),
            created_at: None,
        }
    }
}

/// Changes to a memory (`memory.update`); `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MemoryPatch {
    /// New text: the memory is embedded again.
    pub text: Option<String>,
    pub pinned: Option<bool>,
    pub importance: Option<f32>,
    pub kind: Option<MemoryKind>,
}

/// A retrieval request (`memory.search`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchQuery {
    pub character_id: String,
    pub query: String,
    /// How many memories to return.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Only memories of these kinds.
    #[serde(default)]
    pub kinds: Option<Vec<MemoryKind>>,
}

fn default_k() -> usize {
    5
}

impl SearchQuery {
    pub fn new(character_id: impl Into<String>, query: impl Into<String>, k: usize) -> Self {
        Self { character_id: character_id.into(), query: query.into(), k, kinds: None }
    }
}

/// A retrieved memory and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    /// The memory, with `last_accessed` already moved to the time of this retrieval.
    pub record: MemoryRecord,
    /// Weighted sum of the normalised components.
    pub score: f32,
    /// Cosine similarity to the query.
    pub relevance: f32,
    /// `decay^hours` since the memory was last retrieved (before this retrieval).
    pub recency: f32,
    /// The memory's importance, `0..=1`.
    pub importance: f32,
    /// The three components as normalised over the candidates, as they entered the score.
    pub normalized: ScoreParts,
}

/// Which records `memory.list` returns: newest first, then `offset` and `limit`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListFilter {
    pub character_id: Option<String>,
    pub kind: Option<MemoryKind>,
    pub session_id: Option<String>,
    pub pinned: Option<bool>,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// What is remembered (`memory.stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub records: usize,
    pub by_kind: BTreeMap<MemoryKind, usize>,
    pub pinned: usize,
    /// The character's index (for stats of one character).
    pub index: Option<IndexStats>,
    /// Bytes the store holds for these records and their index.
    pub bytes_used: u64,
}

/// One character's loaded memories.
struct CharacterMemory {
    index: MemoryIndex,
    /// Records without their embeddings (see the module docs).
    records: HashMap<String, MemoryRecord>,
    restored: RestoreOutcome,
    /// The stored index no longer matches the graph (rebuilt or tombstoned since).
    index_dirty: bool,
}

impl CharacterMemory {
    /// The cached record with its embedding put back.
    fn full_record(&self, id: &str) -> Option<MemoryRecord> {
        let mut record = self.records.get(id)?.clone();
        record.embedding = self.index.vector(id)?.to_vec();
        Some(record)
    }
}

/// Long-term memory of every character; see the module docs.
pub struct Memory<E: TextEmbedder, S: Store> {
    embedder: E,
    store: S,
    config: MemoryConfig,
    characters: HashMap<String, CharacterMemory>,
    clock: Box<dyn Fn() -> u64>,
}

impl<E: TextEmbedder, S: Store> Memory<E, S> {
    /// Open the memory kept in `store`, migrating stored data of an older schema (all records
    /// rewritten in one batch). Fails with [`MemoryError::NewerSchema`] for data written by a
    /// newer release, which is left untouched.
    pub async fn open(embedder: E, store: S, config: MemoryConfig) -> Result<Self> {
        match store.schema_version().await? {
            Some(v) if v > SCHEMA_VERSION => return Err(MemoryError::NewerSchema { found: v, supported: SCHEMA_VERSION }),
            Some(v) if v == SCHEMA_VERSION => {}
            old => {
                // Records decode (and migrate) as they load; writing them back stores the current form.
                let records = store.load_records(None).await?;
                if old.is_some() || !records.is_empty() {
                    store.write(WriteBatch { put: records, delete: Vec::new(), schema_version: Some(SCHEMA_VERSION) }).await?;
                }
            }
        }
        Ok(Self { embedder, store, config, characters: HashMap::new(), clock: Box::new(now_ms) })
    }

    pub fn embedder(&self) -> &E {
        &self.embedder
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn config(&self) -> &MemoryConfig {
        &self.config
    }

    /// Replace the clock (unix ms) used for `created_at`, `last_accessed` and recency.
    pub fn set_clock(&mut self, clock: impl Fn() -> u64 + 'static) {
        self.clock = Box::new(clock);
    }

    /// Embed texts (`memory.embed`).
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>> {
        self.embedder.embed(texts).await
    }

    /// Load a character's records and index on first use.
    async fn character(&mut self, character_id: &str) -> Result<&mut CharacterMemory> {
        if !self.characters.contains_key(character_id) {
            let loaded = self.load_character(character_id).await?;
            self.characters.insert(character_id.to_string(), loaded);
        }
        self.characters.get_mut(character_id).ok_or_else(|| MemoryError::NotFound(character_id.to_string()))
    }

    async fn load_character(&self, character_id: &str) -> Result<CharacterMemory> {
        let records = self.store.load_records(Some(character_id)).await?;
        let blob = self.store.load_index(character_id).await?;
        let (index, restored) = MemoryIndex::restore(
            EMBEDDING_DIM,
            self.config.index.clone(),
            blob.as_deref(),
            records.iter().map(|r| (r.id.as_str(), r.embedding.as_slice())),
        )?;
        if matches!(restored, RestoreOutcome::Rebuilt { .. }) {
            self.store.save_index(character_id, index.to_bytes()?.as_deref()).await?;
        }
        // A stale stored index that was not replaced is deleted at the next `maintain`.
        let index_dirty = matches!(restored, RestoreOutcome::FreshOnly { .. }) && blob.is_some();
        let records = records
            .into_iter()
            .map(|mut r| {
                r.embedding = Vec::new();
                (r.id.clone(), r)
            })
            .collect();
        Ok(CharacterMemory { index, records, restored, index_dirty })
    }

    /// How a character's index was loaded (restored from storage, rebuilt, or fresh only).
    pub async fn restore_outcome(&mut self, character_id: &str) -> Result<RestoreOutcome> {
        Ok(self.character(character_id).await?.restored.clone())
    }

    /// The index of a loaded character, e.g. to run [`MemoryIndex::begin_rebuild`] elsewhere.
    pub fn index_mut(&mut self, character_id: &str) -> Option<&mut MemoryIndex> {
        self.characters.get_mut(character_id).map(|c| {
            c.index_dirty = true;
            &mut c.index
        })
    }

    /// Write one memory (`memory.add`).
    pub async fn add(&mut self, memory: NewMemory) -> Result<MemoryRecord> {
        let mut records = self.add_many(vec![memory]).await?;
        records.pop().ok_or_else(|| MemoryError::Storage("nothing was written".into()))
    }

    /// Write several memories: embedded in batches, stored in one transaction.
    pub async fn add_many(&mut self, memories: Vec<NewMemory>) -> Result<Vec<MemoryRecord>> {
        let now = (self.clock)();
        let mut ids = HashSet::new();
        for m in &memories {
            if m.character_id.is_empty() {
                return Err(MemoryError::BadRequest("a memory needs a character id".into()));
            }
            check_importance(m.importance)?;
            if let Some(id) = &m.id {
                if id.is_empty() || !ids.insert(id.clone()) || self.store.get_record(id).await?.is_some() {
                    return Err(MemoryError::BadRequest(format!("memory id {id:?} is empty or already used")));
                }
            }
        }
        let texts: Vec<&str> = memories.iter().map(|m| m.text.as_str()).collect();
        let embeddings = self.embedder.embed(&texts).await?;
        let records: Vec<MemoryRecord> = memories
            .into_iter()
            .zip(embeddings)
            .map(|(m, embedding)| {
                let created_at = m.created_at.unwrap_or(now);
                MemoryRecord {
                    id: m.id.unwrap_or_else(new_id),
                    character_id: m.character_id,
                    session_id: m.session_id,
                    pinned: m.pinned.unwrap_or(m.kind == MemoryKind::PinnedNote),
                    kind: m.kind,
                    text: m.text,
                    embedding: embedding.to_vec(),
                    created_at,
                    last_accessed: created_at.max(now),
                    importance: m.importance.unwrap_or(DEFAULT_IMPORTANCE),
                    source_message_ids: m.source_message_ids,
                }
            })
            .collect();
        self.store.write(WriteBatch::put(records.clone())).await?;
        for record in &records {
            self.remember(record.clone()).await?;
        }
        self.rebuild_if_urgent(records.iter().map(|r| r.character_id.clone()).collect()).await?;
        Ok(records)
    }

    /// Put a stored record into its character's cache and index.
    async fn remember(&mut self, mut record: MemoryRecord) -> Result<()> {
        let embedding = std::mem::take(&mut record.embedding);
        let character = self.character(&record.character_id).await?;
        character.index.insert(&record.id, &embedding)?;
        character.records.insert(record.id.clone(), record);
        Ok(())
    }

    async fn rebuild_if_urgent(&mut self, character_ids: HashSet<String>) -> Result<()> {
        for id in character_ids {
            if self.characters.get(&id).is_some_and(|c| c.index.rebuild_urgent()) {
                self.rebuild(&id).await?;
            }
        }
        Ok(())
    }

    /// Retrieve memories (`memory.search`): embed the query, take the nearest `candidates` from
    /// the index plus every pinned memory, score them (see [`crate::score`]) and return the best
    /// `k`. Their `last_accessed` moves to now, in storage too.
    pub async fn search(&mut self, query: SearchQuery) -> Result<Vec<SearchHit>> {
        let vectors = self.embedder.embed(&[&query.query]).await?;
        let query_vector = vectors.first().ok_or_else(|| MemoryError::Device("the embedder returned nothing".into()))?;
        self.search_by_vector(&query.character_id, query_vector, query.k, query.kinds.as_deref()).await
    }

    /// [`Self::search`] with a query embedding already at hand.
    pub async fn search_by_vector(
        &mut self,
        character_id: &str,
        query: &[f32],
        k: usize,
        kinds: Option<&[MemoryKind]>,
    ) -> Result<Vec<SearchHit>> {
        let now = (self.clock)();
        let scoring = self.config.scoring.clone();
        let character = self.character(character_id).await?;
        let wanted = |r: &MemoryRecord| kinds.is_none_or(|kinds| kinds.contains(&r.kind));

        let mut chosen: Vec<(String, f32)> = Vec::new();
        for hit in character.index.search(query, scoring.candidates.max(k)) {
            if character.records.get(&hit.id).is_some_and(wanted) {
                chosen.push((hit.id, hit.similarity));
            }
        }
        // Pinned memories are always candidates, however far from the query.
        let seen: HashSet<String> = chosen.iter().map(|(id, _)| id.clone()).collect();
        let mut pinned: Vec<&MemoryRecord> = character.records.values().filter(|r| r.pinned && wanted(r) && !seen.contains(&r.id)).collect();
        pinned.sort_by(|a, b| a.id.cmp(&b.id));
        for record in pinned {
            if let Some(v) = character.index.vector(&record.id) {
                chosen.push((record.id.clone(), dot(query, v) / dot(query, query).sqrt().max(f32::MIN_POSITIVE)));
            }
        }

        let candidates: Vec<Candidate> = chosen
            .iter()
            .filter_map(|(id, relevance)| {
                let r = character.records.get(id)?;
                Some(Candidate { relevance: *relevance, last_accessed: r.last_accessed, importance: r.importance, pinned: r.pinned })
            })
            .collect();
        let ranked = rank(&candidates, now, &scoring, k);

        let mut hits = Vec::with_capacity(ranked.len());
        for r in ranked {
            let id = &chosen[r.index].0;
            if let Some(cached) = character.records.get_mut(id) {
                cached.last_accessed = now;
            }
            let Some(record) = character.full_record(id) else { continue };
            hits.push(SearchHit {
                record,
                score: r.score,
                relevance: r.raw.relevance,
                recency: r.raw.recency,
                importance: r.raw.importance,
                normalized: r.normalized,
            });
        }
        if !hits.is_empty() {
            let ids: Vec<String> = hits.iter().map(|h| h.record.id.clone()).collect();
            // Bookkeeping only: a refused write (a full disk) must not fail the search, nor the
            // chat turn that asked for it; the next search moves the time again.
            let _ = self.store.touch(&ids, now).await;
        }
        Ok(hits)
    }

    /// Records matching `filter`, newest first (`memory.list`).
    pub async fn list(&mut self, filter: ListFilter) -> Result<Vec<MemoryRecord>> {
        let mut records = match &filter.character_id {
            Some(c) => {
                let character = self.character(c).await?;
                character.records.keys().filter_map(|id| character.full_record(id)).collect()
            }
            None => self.store.load_records(None).await?,
        };
        records.retain(|r| {
            filter.kind.is_none_or(|k| r.kind == k)
                && filter.session_id.as_ref().is_none_or(|s| r.session_id.as_ref() == Some(s))
                && filter.pinned.is_none_or(|p| r.pinned == p)
        });
        records.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(records.into_iter().skip(filter.offset).take(filter.limit.unwrap_or(usize::MAX)).collect())
    }

    /// One record by id.
    pub async fn get(&mut self, id: &str) -> Result<Option<MemoryRecord>> {
        let Some(stored) = self.store.get_record(id).await? else { return Ok(None) };
        Ok(self.character(&stored.character_id).await?.full_record(id))
    }

    /// Change a memory (`memory.update`); a new text is embedded again.
    pub async fn update(&mut self, id: &str, patch: MemoryPatch) -> Result<MemoryRecord> {
        check_importance(patch.importance)?;
        let mut record = self.get(id).await?.ok_or_else(|| MemoryError::NotFound(id.to_string()))?;
        if let Some(text) = patch.text
            && text != record.text
        {
            let vectors = self.embedder.embed(&[&text]).await?;
            record.embedding = vectors.first().ok_or_else(|| MemoryError::Device("the embedder returned nothing".into()))?.to_vec();
            record.text = text;
        }
        if let Some(pinned) = patch.pinned {
            record.pinned = pinned;
        }
        if let Some(importance) = patch.importance {
            record.importance = importance;
        }
        if let Some(kind) = patch.kind {
            record.kind = kind;
        }
        self.store.write(WriteBatch::put(vec![record.clone()])).await?;
        let character_id = record.character_id.clone();
        let character = self.character(&character_id).await?;
        if character.index.vector(id) != Some(record.embedding.as_slice()) {
            character.index.insert(id, &record.embedding)?;
            character.index_dirty = true;
        }
        let mut cached = record.clone();
        cached.embedding = Vec::new();
        character.records.insert(id.to_string(), cached);
        self.rebuild_if_urgent(HashSet::from([character_id])).await?;
        Ok(record)
    }

    /// Delete a memory from storage and from search (`memory.forget`). False if there was none.
    pub async fn forget(&mut self, id: &str) -> Result<bool> {
        let Some(stored) = self.store.get_record(id).await? else { return Ok(false) };
        self.store.write(WriteBatch::delete(vec![id.to_string()])).await?;
        let character = self.character(&stored.character_id).await?;
        character.records.remove(id);
        if character.index.remove(id) {
            character.index_dirty = true;
        }
        self.rebuild_if_urgent(HashSet::from([stored.character_id])).await?;
        Ok(true)
    }

    /// Delete several memories in one transaction (a deleted chat message and the facts taken
    /// from it, or a whole character's memories). Absent ids are ignored; returns how many
    /// were stored.
    pub async fn forget_many(&mut self, ids: &[String]) -> Result<usize> {
        let mut found = Vec::new();
        for id in ids {
            if let Some(stored) = self.store.get_record(id).await? {
                found.push(stored);
            }
        }
        if found.is_empty() {
            return Ok(0);
        }
        self.store.write(WriteBatch::delete(found.iter().map(|r| r.id.clone()).collect())).await?;
        let mut touched = HashSet::new();
        for stored in &found {
            if let Some(character) = self.characters.get_mut(&stored.character_id) {
                character.records.remove(&stored.id);
                if character.index.remove(&stored.id) {
                    character.index_dirty = true;
                }
            }
            touched.insert(stored.character_id.clone());
        }
        self.rebuild_if_urgent(touched).await?;
        Ok(found.len())
    }

    /// Every stored record with its embedding, for a backup. Records of one character, or all.
    pub async fn export_records(&self, character_id: Option<&str>) -> Result<Vec<MemoryRecord>> {
        self.store.load_records(character_id).await
    }

    /// Store records as they are (embeddings included, nothing re-embedded), replacing any
    /// with the same id: restoring a backup. One transaction; the characters concerned are
    /// reloaded on next use, their stored index checked against the new records.
    pub async fn import_records(&mut self, records: Vec<MemoryRecord>) -> Result<usize> {
        check_import(&records)?;
        let count = records.len();
        let characters: HashSet<String> = records.iter().map(|r| r.character_id.clone()).collect();
        self.store.write(WriteBatch { put: records, delete: Vec::new(), schema_version: Some(SCHEMA_VERSION) }).await?;
        for c in characters {
            self.characters.remove(&c);
        }
        Ok(count)
    }

    /// Delete every memory and every stored index. Returns how many records there were.
    pub async fn wipe(&mut self) -> Result<usize> {
        let records = self.store.load_records(None).await?;
        let mut characters: HashSet<String> = records.iter().map(|r| r.character_id.clone()).collect();
        characters.extend(self.characters.keys().cloned());
        self.store.write(WriteBatch::delete(records.iter().map(|r| r.id.clone()).collect())).await?;
        self.characters.clear();
        for c in characters {
            self.store.save_index(&c, None).await?;
        }
        Ok(records.len())
    }

    /// Counts, index state and bytes used (`memory.stats`), for one character or all.
    pub async fn stats(&mut self, character_id: Option<&str>) -> Result<MemoryStats> {
        let bytes_used = self.store.bytes_used(character_id).await?;
        let (records, index): (Vec<MemoryRecord>, Option<IndexStats>) = match character_id {
            Some(c) => {
                let character = self.character(c).await?;
                (character.records.values().cloned().collect(), Some(character.index.stats()))
            }
            None => (self.store.load_records(None).await?, None),
        };
        let mut by_kind = BTreeMap::new();
        for r in &records {
            *by_kind.entry(r.kind).or_insert(0) += 1;
        }
        Ok(MemoryStats { records: records.len(), by_kind, pinned: records.iter().filter(|r| r.pinned).count(), index, bytes_used })
    }

    /// Rebuild a character's graph now and save it.
    pub async fn rebuild(&mut self, character_id: &str) -> Result<()> {
        let character = self.character(character_id).await?;
        character.index.rebuild();
        let bytes = character.index.to_bytes()?;
        character.index_dirty = false;
        self.store.save_index(character_id, bytes.as_deref()).await
    }

    /// Work for an idle moment: rebuild the indexes whose policy wants it and save the ones
    /// that changed since they were stored. Returns how many were rebuilt.
    pub async fn maintain(&mut self) -> Result<usize> {
        let mut rebuilt = 0;
        let ids: Vec<String> = self.characters.keys().cloned().collect();
        for id in ids {
            let Some(character) = self.characters.get_mut(&id) else { continue };
            if character.index.wants_rebuild() {
                character.index.rebuild();
                character.index_dirty = true;
                rebuilt += 1;
            }
            if character.index_dirty {
                let bytes = character.index.to_bytes()?;
                self.store.save_index(&id, bytes.as_deref()).await?;
                if let Some(character) = self.characters.get_mut(&id) {
                    character.index_dirty = false;
                }
            }
        }
        Ok(rebuilt)
    }

    /// Drop every loaded character (the next use reloads from the store), as a page reload does.
    pub fn unload(&mut self) {
        self.characters.clear();
    }
}

/// Check records for [`Memory::import_records`] (or for a store that imports them in a
/// transaction of its own, with other data): ids, embedding size and values, importance.
pub fn check_import(records: &[MemoryRecord]) -> Result<()> {
    for r in records {
        if r.id.is_empty() || r.character_id.is_empty() {
            return Err(MemoryError::BadRequest("an imported memory needs an id and a character id".into()));
        }
        if r.embedding.len() != EMBEDDING_DIM || r.embedding.iter().any(|x| !x.is_finite()) {
            return Err(MemoryError::BadRequest(format!("memory {:?}: the embedding is not {EMBEDDING_DIM} finite numbers", r.id)));
        }
        check_importance(Some(r.importance))?;
    }
    Ok(())
}

fn check_importance(importance: Option<f32>) -> Result<()> {
    match importance {
        Some(i) if !(0.0..=1.0).contains(&i) => Err(MemoryError::BadRequest(format!("importance {i} is outside 0..=1"))),
        _ => Ok(()),
    }
}
