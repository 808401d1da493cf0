//! The facade (`add / search / list / update / forget / embed / stats`) over a stand-in
//! embedder: retrieval updates `last_accessed`, reloads need no re-embedding, forgetting is for
//! good, failed writes change nothing, old schemas migrate.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{WordHashEmbedder, random_embedding};
use memory::record::encode_record;
use memory::{
    FileStore, IndexConfig, InMemoryStore, ListFilter, Memory, MemoryConfig, MemoryKind, MemoryPatch, NewMemory, RestoreOutcome, SCHEMA_VERSION,
    SearchQuery, Store,
};
use pollster::block_on;
use serde_json::json;

const HOUR: u64 = 3_600_000;
const T0: u64 = 1_750_000_000_000;

fn memory_with<S: Store>(store: S, config: MemoryConfig) -> (Memory<WordHashEmbedder, S>, Rc<Cell<u64>>) {
    let mut memory = block_on(Memory::open(WordHashEmbedder::default(), store, config)).unwrap();
    let now = Rc::new(Cell::new(T0));
    let clock = now.clone();
    memory.set_clock(move || clock.get());
    (memory, now)
}

fn note(character: &str, kind: MemoryKind, text: &str) -> NewMemory {
    NewMemory::new(character, kind, text)
}

#[test]
fn add_search_list_update_forget_stats() {
    let (mut memory, now) = memory_with(InMemoryStore::new(), MemoryConfig::default());
    let added = block_on(memory.add_many(vec![
        note("alice", MemoryKind::UserFact, "the user has a dog named Biscuit"),
        note("alice", MemoryKind::Message, "we talked about the weather in Paris"),
        NewMemory { importance: Some(0.9), session_id: Some("s1".into()), ..note("alice", MemoryKind::EventSummary, "the user got a new job as a nurse") },
        note("alice", MemoryKind::PinnedNote, "always answer in French"),
        note("bob", MemoryKind::UserFact, "the user has a cat"),
    ]))
    .unwrap();
    assert_eq!(added.len(), 5);
    assert!(added.iter().all(|r| r.created_at == T0 && r.last_accessed == T0 && r.embedding.len() == 384));
    assert!(added[3].pinned, "pinned notes are pinned by default");
    assert_eq!(added[0].importance, 0.5);
    assert_ne!(added[0].id, added[1].id);

    now.set(T0 + 5 * HOUR);
    let hits = block_on(memory.search(SearchQuery::new("alice", "what is the name of my dog", 3))).unwrap();
    assert_eq!(hits[0].record.text, "the user has a dog named Biscuit");
    assert!(hits.iter().all(|h| h.record.character_id == "alice"), "search is per character");
    assert!(hits.iter().any(|h| h.record.kind == MemoryKind::PinnedNote), "the pinned note is a candidate whatever its relevance");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    let top = &hits[0];
    assert!(top.relevance > 0.25 && (top.recency - 0.995f32.powi(5)).abs() < 1e-4 && top.importance == 0.5);
    assert_eq!(top.record.last_accessed, T0 + 5 * HOUR, "retrieval moves last_accessed");
    let stored = block_on(memory.store().get_record(&top.record.id)).unwrap().unwrap();
    assert_eq!(stored.last_accessed, T0 + 5 * HOUR, "and persists it");
    let untouched = block_on(memory.store().get_record(&added[1].id)).unwrap().unwrap();
    assert!(hits.iter().any(|h| h.record.id == added[1].id) || untouched.last_accessed == T0);

    // Kinds filter.
    let hits = block_on(memory.search(SearchQuery { kinds: Some(vec![MemoryKind::EventSummary]), ..SearchQuery::new("alice", "job", 5) })).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].record.kind, MemoryKind::EventSummary);

    // list: newest first, filters, paging.
    now.set(T0 + 6 * HOUR);
    block_on(memory.add(note("alice", MemoryKind::Message, "later message"))).unwrap();
    let all = block_on(memory.list(ListFilter { character_id: Some("alice".into()), ..ListFilter::default() })).unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].text, "later message");
    let page = block_on(memory.list(ListFilter { character_id: Some("alice".into()), offset: 1, limit: Some(2), ..ListFilter::default() })).unwrap();
    assert_eq!(page, all[1..3].to_vec());
    let messages = block_on(memory.list(ListFilter { kind: Some(MemoryKind::Message), ..ListFilter::default() })).unwrap();
    assert_eq!(messages.len(), 2);
    let session = block_on(memory.list(ListFilter { session_id: Some("s1".into()), ..ListFilter::default() })).unwrap();
    assert_eq!(session.len(), 1);
    let pinned = block_on(memory.list(ListFilter { pinned: Some(true), ..ListFilter::default() })).unwrap();
    assert_eq!(pinned.len(), 1);

    // update: new text is embedded again and found by its new words.
    let dog = &added[0];
    let calls = memory.embedder().calls.get();
    let updated = block_on(memory.update(&dog.id, MemoryPatch { text: Some("the user has a parrot named Kiwi".into()), ..MemoryPatch::default() })).unwrap();
    assert_eq!(memory.embedder().calls.get(), calls + 1);
    assert_ne!(updated.embedding, dog.embedding);
    let hits = block_on(memory.search(SearchQuery::new("alice", "parrot Kiwi", 1))).unwrap();
    assert_eq!(hits[0].record.id, dog.id);
    assert_eq!(hits[0].record.text, "the user has a parrot named Kiwi");
    let hits = block_on(memory.search(SearchQuery::new("alice", "dog Biscuit", 5))).unwrap();
    assert!(hits.iter().all(|h| !h.record.text.contains("Biscuit")));
    // update without a new text does not embed.
    let calls = memory.embedder().calls.get();
    let updated = block_on(memory.update(&dog.id, MemoryPatch { pinned: Some(true), importance: Some(1.0), ..MemoryPatch::default() })).unwrap();
    assert_eq!(memory.embedder().calls.get(), calls);
    assert!(updated.pinned && updated.importance == 1.0);
    assert!(block_on(memory.update(&dog.id, MemoryPatch { importance: Some(2.0), ..MemoryPatch::default() })).is_err());
    assert_eq!(block_on(memory.update("nope", MemoryPatch::default())).unwrap_err().code(), "not_found");

    // forget: gone from search, list and storage.
    assert!(block_on(memory.forget(&dog.id)).unwrap());
    assert!(!block_on(memory.forget(&dog.id)).unwrap());
    assert!(block_on(memory.store().get_record(&dog.id)).unwrap().is_none());
    let hits = block_on(memory.search(SearchQuery::new("alice", "parrot Kiwi", 5))).unwrap();
    assert!(hits.iter().all(|h| h.record.id != dog.id));
    assert!(block_on(memory.get(&dog.id)).unwrap().is_none());

    // stats.
    let stats = block_on(memory.stats(Some("alice"))).unwrap();
    assert_eq!(stats.records, 4);
    assert_eq!(stats.by_kind.get(&MemoryKind::Message), Some(&2));
    assert_eq!(stats.by_kind.get(&MemoryKind::UserFact), None);
    assert_eq!(stats.pinned, 1);
    let index = stats.index.unwrap();
    assert_eq!(index.hnsw + index.fresh, 4);
    assert!(stats.bytes_used > 4 * 2000);
    let everyone = block_on(memory.stats(None)).unwrap();
    assert_eq!(everyone.records, 5);
    assert!(everyone.index.is_none());

    // embed.
    let v = block_on(memory.embed(&["hello", "world"])).unwrap();
    assert_eq!(v.len(), 2);

    // Bad requests.
    assert!(block_on(memory.add(note("", MemoryKind::Message, "x"))).is_err());
    assert!(block_on(memory.add(NewMemory { importance: Some(-0.1), ..note("alice", MemoryKind::Message, "x") })).is_err());
    let explicit = NewMemory { id: Some("msg-42".into()), ..note("alice", MemoryKind::Message, "explicit id") };
    assert_eq!(block_on(memory.add(explicit.clone())).unwrap().id, "msg-42");
    assert_eq!(block_on(memory.add(explicit)).unwrap_err().code(), "bad_request");
}

#[test]
fn reload_searches_the_same_without_re_embedding() {
    let dir = tempfile::tempdir().unwrap();
    let config = MemoryConfig { index: IndexConfig { fresh_limit: 64, ..IndexConfig::default() }, ..MemoryConfig::default() };
    let texts: Vec<String> = (0..300).map(|i| format!("memory number {i} about topic{} and thing{}", i % 17, i % 5)).collect();
    let queries = ["topic3 thing2", "memory number 42", "topic16", "thing4 topic0"];
    let (before, first_ids) = {
        let (mut memory, _) = memory_with(FileStore::open(dir.path()).unwrap(), config.clone());
        let news: Vec<NewMemory> = texts.iter().map(|t| note("alice", MemoryKind::Message, t)).collect();
        let ids: Vec<String> = block_on(memory.add_many(news)).unwrap().into_iter().map(|r| r.id).collect();
        // 300 > 4 × 64: the add rebuilt the graph at once.
        let stats = block_on(memory.stats(Some("alice"))).unwrap().index.unwrap();
        assert_eq!((stats.hnsw, stats.fresh), (300, 0));
        block_on(memory.add(note("alice", MemoryKind::Message, "one more about topic3 thing2"))).unwrap();
        block_on(memory.forget(&ids[7])).unwrap();
        block_on(memory.maintain()).unwrap();
        let results: Vec<Vec<String>> = queries
            .iter()
            .map(|q| block_on(memory.search(SearchQuery::new("alice", *q, 5))).unwrap().into_iter().map(|h| h.record.id).collect())
            .collect();
        (results, ids)
    };
    let (mut memory, _) = memory_with(FileStore::open(dir.path()).unwrap(), config);
    assert_eq!(block_on(memory.restore_outcome("alice")).unwrap(), RestoreOutcome::Restored);
    let stats = block_on(memory.stats(Some("alice"))).unwrap().index.unwrap();
    assert_eq!((stats.hnsw, stats.fresh, stats.tombstones), (299, 1, 1));
    let after: Vec<Vec<String>> = queries
        .iter()
        .map(|q| block_on(memory.search(SearchQuery::new("alice", *q, 5))).unwrap().into_iter().map(|h| h.record.id).collect())
        .collect();
    assert_eq!(memory.embedder().calls.get(), queries.len(), "only the queries were embedded");
    // Same memories, in the same order or reordered only by the recency the first searches gave them.
    for (a, b) in before.iter().zip(&after) {
        let (mut a, mut b) = (a.clone(), b.clone());
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
    assert!(after.iter().flatten().all(|id| id != &first_ids[7]), "forgotten stays forgotten");

    // A missing stored index is rebuilt from the records.
    block_on(memory.store().save_index("alice", None)).unwrap();
    memory.unload();
    assert!(matches!(block_on(memory.restore_outcome("alice")).unwrap(), RestoreOutcome::Rebuilt { .. }));
    assert!(block_on(memory.store().load_index("alice")).unwrap().is_some(), "and saved again");
}

#[test]
fn failed_writes_change_nothing() {
    let (mut memory, _) = memory_with(InMemoryStore::with_quota(12_000), MemoryConfig::default());
    let kept = block_on(memory.add(note("alice", MemoryKind::UserFact, "the user likes tea"))).unwrap();
    let err = block_on(memory.add_many((0..5).map(|i| note("alice", MemoryKind::Message, &format!("message {i}"))).collect())).unwrap_err();
    assert_eq!(err.code(), "storage_quota");
    let all = block_on(memory.list(ListFilter::default())).unwrap();
    assert_eq!(all, vec![kept.clone()]);
    let stats = block_on(memory.stats(Some("alice"))).unwrap();
    assert_eq!(stats.records, 1);
    assert_eq!(stats.index.unwrap().fresh, 1, "the index did not take the refused records");
    let hits = block_on(memory.search(SearchQuery::new("alice", "message 3", 5))).unwrap();
    assert!(hits.iter().all(|h| h.record.id == kept.id));
}

#[test]
fn open_migrates_old_data_and_refuses_newer() {
    let store = InMemoryStore::new();
    let embedding = WordHashEmbedder::vector("the user was born in Oslo");
    store
        .insert_raw(json!({
            "id": "v1", "character_id": "alice", "session_id": null, "kind": "user_fact",
            "text": "the user was born in Oslo", "embedding": embedding.to_vec(),
            "created_at": T0, "importance": 10, "pinned": false,
        }))
        .unwrap();
    store.set_schema_version_raw(Some(1));
    let (mut memory, _) = memory_with(store, MemoryConfig::default());
    assert_eq!(block_on(memory.store().schema_version()).unwrap(), Some(SCHEMA_VERSION));
    let raw = memory.store().raw("v1").unwrap();
    assert_eq!(raw["schema_version"], json!(SCHEMA_VERSION), "rewritten in the current form");
    let hits = block_on(memory.search(SearchQuery::new("alice", "where was I born Oslo", 1))).unwrap();
    assert_eq!(hits[0].record.id, "v1");
    assert_eq!(hits[0].record.importance, 1.0);
    assert_eq!(hits[0].record.embedding, embedding.to_vec());

    let newer = InMemoryStore::new();
    let mut rng = common::Rng::new(9);
    let mut record = encode_record(&memory::MemoryRecord {
        id: "n".into(),
        character_id: "alice".into(),
        session_id: None,
        kind: MemoryKind::Message,
        text: "from the future".into(),
        embedding: random_embedding(&mut rng),
        created_at: T0,
        last_accessed: T0,
        importance: 0.5,
        pinned: false,
        source_message_ids: vec![],
    })
    .unwrap();
    record["schema_version"] = json!(SCHEMA_VERSION + 1);
    newer.insert_raw(record.clone()).unwrap();
    newer.set_schema_version_raw(Some(SCHEMA_VERSION + 1));
    let err = block_on(Memory::open(WordHashEmbedder::default(), newer, MemoryConfig::default())).err().unwrap();
    assert_eq!(err.code(), "schema_too_new");
}

#[test]
fn js_facing_types_serialise_in_camel_case() {
    let query: SearchQuery = serde_json::from_value(json!({"characterId": "alice", "query": "hi"})).unwrap();
    assert_eq!(query.k, 5);
    let new: NewMemory = serde_json::from_value(json!({"characterId": "a", "kind": "pinned_note", "text": "t", "importance": 0.3})).unwrap();
    assert_eq!(new.kind, MemoryKind::PinnedNote);
    let patch: MemoryPatch = serde_json::from_value(json!({"pinned": true})).unwrap();
    assert_eq!(patch.pinned, Some(true));
    let filter: ListFilter = serde_json::from_value(json!({"characterId": "a", "limit": 10})).unwrap();
    assert_eq!(filter.limit, Some(10));
}
