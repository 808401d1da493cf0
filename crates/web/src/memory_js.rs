//! Long-term memory for JavaScript: all-MiniLM-L6-v2 on the engine's device (WebGPU or CPU), records and
//! indexes in IndexedDB ([`crate::idb_store`]). The npm package exposes it as `engine.memory`.
//! The store opens first (`openStore`) and the embedding model joins it later (`loadEmbedder`),
//! so a page lists, forgets and backs up memories before any model is downloaded.
//!
//! Errors carry the memory crate's codes (`storage_quota`, `storage`, `storage_corrupt`,
//! `schema_too_new`, `not_found`, `embedder_format`, `device_lost`, `bad_request`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use memory::{Embedder, Embedding, ListFilter, Memory, MemoryConfig, MemoryError, MemoryPatch, MemoryRecord, NewMemory, RestoreOutcome, SearchQuery, TextEmbedder};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::idb_store::IdbStore;
use crate::{Backend, device, from_js, js_error, to_js};

fn memory_error(e: MemoryError) -> JsValue {
    js_error(e.code(), &e.to_string())
}

/// Through JSON text rather than value by value: f32 fields then print as their shortest form
/// (an importance of 0.7 reaches JS as 0.7, not 0.699999988079071).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HitJs {
    record: MemoryRecord,
    score: f32,
    relevance: f32,
    recency: f32,
    importance: f32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexJs {
    /// Vectors in the HNSW graph.
    hnsw: usize,
    /// Vectors in the exact segment of fresh inserts.
    fresh: usize,
    /// Deleted vectors still in the graph (hidden from search until the next rebuild).
    tombstones: usize,
    rebuild_wanted: bool,
    /// How the index came back when this character was first used since the page loaded:
    /// `restored` (from storage), `rebuilt` (stored index missing or stale) or `fresh_only`
    /// (too few records to need a graph).
    loaded: &'static str,
    /// Why it was rebuilt or kept fresh-only.
    reason: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatsJs {
    records: usize,
    by_kind: std::collections::BTreeMap<memory::MemoryKind, usize>,
    pinned: usize,
    index: Option<IndexJs>,
    bytes_used: u64,
    /// Texts embedded since this page opened the memory (memories, queries, `embed` calls).
    embedded_texts: u64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct StatsQuery {
    character_id: Option<String>,
}

/// The embedder, counting the texts it embeds: `stats().embeddedTexts` shows that a reload
/// restores memories without embedding them again. Absent until `loadEmbedder`: listing,
/// forgetting, backups and wiping work on the stored vectors alone, so a page can show its
/// characters and chats before any model is downloaded.
pub(crate) struct CountingEmbedder {
    embedder: RefCell<Option<Rc<Embedder>>>,
    texts: Cell<u64>,
}

impl CountingEmbedder {
    /// The embedding model, once loaded (the browser's `confidant eval` run shares it).
    pub(crate) fn shared(&self) -> Option<Rc<Embedder>> {
        self.embedder.borrow().clone()
    }
}

impl TextEmbedder for CountingEmbedder {
    async fn embed(&self, texts: &[&str]) -> memory::Result<Vec<Embedding>> {
        // A clone of the handle, so no RefCell borrow is held across the await.
        let embedder = self.embedder.borrow().clone();
        let Some(embedder) = embedder else {
            return Err(MemoryError::BadRequest("the embedding model is not loaded yet (it loads with the language model)".into()));
        };
        self.texts.set(self.texts.get() + texts.len() as u64);
        embedder.embed(texts).await
    }
}

pub(crate) type Inner = Memory<CountingEmbedder, IdbStore>;

/// The memory of every character on this origin. Calls must not overlap (the worker serialises
/// them).
#[wasm_bindgen(js_name = MemoryEngine)]
pub struct MemoryEngine {
    pub(crate) inner: Rc<RefCell<Inner>>,
}

/// Load the embedding model on `backend` into an open memory (its store was opened before).
async fn load_embedder(inner: &Rc<RefCell<Inner>>, safetensors: &[u8], tokenizer_json: &[u8], config_json: &[u8], backend: &str) -> Result<(), JsValue> {
    let (device, _) = device(Backend::parse(backend)?).await?;
    let embedder = Embedder::load(safetensors, tokenizer_json, config_json, &device).map_err(memory_error)?;
    let memory = inner.try_borrow().map_err(|_| js_error("busy", "a memory call is still running"))?;
    *memory.embedder().embedder.borrow_mut() = Some(Rc::new(embedder));
    Ok(())
}

/// Run `f` on the memory; a call that overlaps another fails instead of waiting.
macro_rules! with_memory {
    ($self:ident, |$m:ident| $body:expr) => {{
        let inner = $self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = inner.try_borrow_mut().map_err(|_| js_error("bad_request", "another memory call is still running"))?;
            let $m = &mut *guard;
            $body
        })
    }};
}

#[wasm_bindgen(js_class = MemoryEngine)]
impl MemoryEngine {
    /// Open the IndexedDB database `databaseName` without an embedding model: everything but
    /// embedding new text (add, search, a changed text) works until `loadEmbedder`.
    /// `onBlocked` is called if an older tab holds the database and the open must wait for it.
    #[wasm_bindgen(js_name = openStore)]
    pub async fn open_store(database_name: String, on_blocked: Option<js_sys::Function>) -> Result<MemoryEngine, JsValue> {
        console_error_panic_hook::set_once();
        let store = IdbStore::open(&database_name, on_blocked).await.map_err(memory_error)?;
        let embedder = CountingEmbedder { embedder: RefCell::new(None), texts: Cell::new(0) };
        let memory = Memory::open(embedder, store, MemoryConfig::default()).await.map_err(memory_error)?;
        Ok(MemoryEngine { inner: Rc::new(RefCell::new(memory)) })
    }

    /// Load all-MiniLM-L6-v2 (its `model.safetensors`, `tokenizer.json` and `config.json`) on
    /// `backend` (`'webgpu'` or `'cpu'`) into a memory opened with `openStore`.
    #[wasm_bindgen(js_name = loadEmbedder)]
    pub fn load_embedder(&self, safetensors: Vec<u8>, tokenizer_json: Vec<u8>, config_json: Vec<u8>, backend: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            load_embedder(&inner, &safetensors, &tokenizer_json, &config_json, &backend).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Whether the embedding model is loaded.
    #[wasm_bindgen(js_name = hasEmbedder)]
    pub fn has_embedder(&self) -> Result<bool, JsValue> {
        let memory = self.inner.try_borrow().map_err(|_| js_error("busy", "a memory call is still running"))?;
        Ok(memory.embedder().embedder.borrow().is_some())
    }

    /// `memory.add({ characterId, sessionId, kind, text, importance, pinned, sourceMessageIds, id, createdAt })`
    /// → the stored record.
    pub fn add(&self, memory: JsValue) -> js_sys::Promise {
        let new: Result<NewMemory, JsValue> = from_js(memory, "memory");
        with_memory!(self, |m| {
            let record = m.add(new?).await.map_err(memory_error)?;
            to_js(&record)
        })
    }

    /// `memory.search({ characterId, query, k, kinds })` → `[{ record, score, relevance, recency, importance }]`.
    pub fn search(&self, query: JsValue) -> js_sys::Promise {
        let query: Result<SearchQuery, JsValue> = from_js(query, "query");
        with_memory!(self, |m| {
            let hits = m.search(query?).await.map_err(memory_error)?;
            let hits: Vec<HitJs> = hits
                .into_iter()
                .map(|h| HitJs { record: h.record, score: h.score, relevance: h.relevance, recency: h.recency, importance: h.importance })
                .collect();
            to_js(&hits)
        })
    }

    /// `memory.list({ characterId, kind, sessionId, pinned, limit, offset })`, newest first.
    pub fn list(&self, filter: JsValue) -> js_sys::Promise {
        let filter: Result<ListFilter, JsValue> =
            if filter.is_undefined() || filter.is_null() { Ok(ListFilter::default()) } else { from_js(filter, "filter") };
        with_memory!(self, |m| {
            let records = m.list(filter?).await.map_err(memory_error)?;
            to_js(&records)
        })
    }

    /// `memory.update(id, { text, pinned, importance, kind })` → the record (re-embedded when
    /// the text changed).
    pub fn update(&self, id: String, patch: JsValue) -> js_sys::Promise {
        let patch: Result<MemoryPatch, JsValue> = from_js(patch, "patch");
        with_memory!(self, |m| {
            let record = m.update(&id, patch?).await.map_err(memory_error)?;
            to_js(&record)
        })
    }

    /// `memory.forget(id)` → whether there was such a memory.
    pub fn forget(&self, id: String) -> js_sys::Promise {
        with_memory!(self, |m| {
            let found = m.forget(&id).await.map_err(memory_error)?;
            Ok(JsValue::from_bool(found))
        })
    }

    /// `memory.embed(texts)` → one `Float32Array` of 384 numbers per text.
    pub fn embed(&self, texts: JsValue) -> js_sys::Promise {
        let texts: Result<Vec<String>, JsValue> = from_js(texts, "texts");
        with_memory!(self, |m| {
            let texts = texts?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = m.embed(&refs).await.map_err(memory_error)?;
            let out = js_sys::Array::new();
            for v in vectors {
                out.push(&js_sys::Float32Array::from(&v[..]).into());
            }
            Ok(out.into())
        })
    }

    /// `memory.stats({ characterId })` → counts, index state and bytes used.
    pub fn stats(&self, query: JsValue) -> js_sys::Promise {
        let query: Result<StatsQuery, JsValue> =
            if query.is_undefined() || query.is_null() { Ok(StatsQuery::default()) } else { from_js(query, "query") };
        with_memory!(self, |m| {
            let query = query?;
            let stats = m.stats(query.character_id.as_deref()).await.map_err(memory_error)?;
            let index = match (&query.character_id, stats.index) {
                (Some(c), Some(index)) => {
                    let (loaded, reason) = match m.restore_outcome(c).await.map_err(memory_error)? {
                        RestoreOutcome::Restored => ("restored", None),
                        RestoreOutcome::Rebuilt { reason } => ("rebuilt", Some(reason)),
                        RestoreOutcome::FreshOnly { reason } => ("fresh_only", Some(reason)),
                    };
                    Some(IndexJs {
                        hnsw: index.hnsw,
                        fresh: index.fresh,
                        tombstones: index.tombstones,
                        rebuild_wanted: index.rebuild_wanted,
                        loaded,
                        reason,
                    })
                }
                _ => None,
            };
            let embedded_texts = m.embedder().texts.get();
            to_js(&StatsJs { records: stats.records, by_kind: stats.by_kind, pinned: stats.pinned, index, bytes_used: stats.bytes_used, embedded_texts })
        })
    }

    /// Forget what is loaded (records and indexes are read again from IndexedDB on next use),
    /// for when another tab changed the stored memories.
    pub fn unload(&self) -> js_sys::Promise {
        with_memory!(self, |m| {
            m.unload();
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Idle-time work: rebuild indexes that want it and save changed ones. Resolves to the
    /// number rebuilt.
    pub fn maintain(&self) -> js_sys::Promise {
        with_memory!(self, |m| {
            let rebuilt = m.maintain().await.map_err(memory_error)?;
            Ok(JsValue::from_f64(rebuilt as f64))
        })
    }
}
