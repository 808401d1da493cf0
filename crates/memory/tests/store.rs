//! Stores: batches are all or nothing; the file store survives a crash mid-write; schema
//! migration of stored records.

mod common;

use common::{Rng, random_embedding};
use memory::record::{SCHEMA_VERSION, decode_record, encode_record, importance_from_rating};
use memory::{FileStore, InMemoryStore, MemoryError, MemoryKind, MemoryRecord, Store, WriteBatch};
use pollster::block_on;
use serde_json::json;

fn record(id: &str, character: &str, rng: &mut Rng) -> MemoryRecord {
    MemoryRecord {
        id: id.into(),
        character_id: character.into(),
        session_id: Some("s1".into()),
        kind: MemoryKind::UserFact,
        text: format!("fact {id} — ünïcödé ✓"),
        embedding: random_embedding(rng),
        created_at: 1_700_000_000_000,
        last_accessed: 1_700_000_360_000,
        importance: 0.75,
        pinned: false,
        source_message_ids: vec!["msg-1".into(), "msg-2".into()],
    }
}

#[test]
fn encode_decode_round_trip_is_exact() {
    let mut rng = Rng::new(1);
    let r = record("a", "alice", &mut rng);
    let stored = encode_record(&r).unwrap();
    assert_eq!(stored["schema_version"], json!(SCHEMA_VERSION));
    assert!(stored["embedding"].is_string(), "embedding stored as base64");
    assert_eq!(decode_record(stored).unwrap(), r);
    // What a store must never hold is refused.
    let mut bad = r.clone();
    bad.importance = 3.0;
    assert!(encode_record(&bad).is_err());
    bad = r.clone();
    bad.embedding.pop();
    assert!(encode_record(&bad).is_err());
}

#[test]
fn version_1_records_migrate_without_loss() {
    let mut rng = Rng::new(2);
    let embedding = random_embedding(&mut rng);
    // The draft layout: no schema_version, no last_accessed, no source_message_ids,
    // importance 1–10, embedding as a number array.
    let v1 = json!({
        "id": "old-1",
        "character_id": "alice",
        "session_id": "s0",
        "kind": "event_summary",
        "text": "We went to the fair and rode the Ferris wheel.",
        "embedding": embedding,
        "created_at": 1_600_000_000_000u64,
        "importance": 7,
        "pinned": true,
    });
    let r = decode_record(v1.clone()).unwrap();
    assert_eq!(r.id, "old-1");
    assert_eq!(r.character_id, "alice");
    assert_eq!(r.session_id.as_deref(), Some("s0"));
    assert_eq!(r.kind, MemoryKind::EventSummary);
    assert_eq!(r.text, "We went to the fair and rode the Ferris wheel.");
    assert_eq!(r.embedding, embedding, "every float survives exactly");
    assert_eq!(r.created_at, 1_600_000_000_000);
    assert_eq!(r.last_accessed, r.created_at);
    assert!((r.importance - importance_from_rating(7.0)).abs() < 1e-6 && (r.importance - 6.0 / 9.0).abs() < 1e-6);
    assert!(r.pinned);
    assert!(r.source_message_ids.is_empty());
    // An explicit "schema_version": 1 reads the same.
    let mut explicit = v1.clone();
    explicit["schema_version"] = json!(1);
    assert_eq!(decode_record(explicit).unwrap(), r);

    // Through a store: old data loads migrated; Memory::open rewrites it (tests/memory.rs).
    let store = InMemoryStore::new();
    store.insert_raw(v1).unwrap();
    store.set_schema_version_raw(Some(1));
    assert_eq!(block_on(store.load_records(Some("alice"))).unwrap(), vec![r]);
}

#[test]
fn newer_or_broken_records_are_refused() {
    let mut rng = Rng::new(3);
    let mut stored = encode_record(&record("a", "alice", &mut rng)).unwrap();
    stored["schema_version"] = json!(SCHEMA_VERSION + 1);
    assert!(matches!(decode_record(stored), Err(MemoryError::NewerSchema { .. })));
    for broken in [json!("text"), json!({"id": "x"}), json!({"id": "x", "schema_version": 2, "embedding": "!!"})] {
        assert!(matches!(decode_record(broken), Err(MemoryError::Corrupt(_))));
    }
}

fn check_batches_are_atomic(store: &impl Store) {
    let mut rng = Rng::new(4);
    let a = record("a", "alice", &mut rng);
    let b = record("b", "bob", &mut rng);
    block_on(store.write(WriteBatch { put: vec![a.clone(), b.clone()], delete: vec![], schema_version: Some(SCHEMA_VERSION) })).unwrap();
    assert_eq!(block_on(store.schema_version()).unwrap(), Some(SCHEMA_VERSION));
    assert_eq!(block_on(store.load_records(Some("alice"))).unwrap(), vec![a.clone()]);
    assert_eq!(block_on(store.load_records(None)).unwrap().len(), 2);
    assert_eq!(block_on(store.get_record("b")).unwrap(), Some(b.clone()));

    // One bad record spoils the batch: the delete and the good put do not happen either.
    let c = record("c", "alice", &mut rng);
    let mut bad = record("d", "alice", &mut rng);
    bad.importance = f32::NAN;
    let failed = block_on(store.write(WriteBatch { put: vec![c.clone(), bad], delete: vec!["a".into()], schema_version: None }));
    assert!(failed.is_err());
    assert_eq!(block_on(store.load_records(None)).unwrap(), vec![a.clone(), b.clone()]);

    block_on(store.write(WriteBatch { put: vec![c.clone()], delete: vec!["a".into(), "missing".into()], schema_version: None })).unwrap();
    let ids: Vec<String> = block_on(store.load_records(None)).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, vec!["b", "c"]);

    block_on(store.save_index("alice", Some(b"graph bytes"))).unwrap();
    assert_eq!(block_on(store.load_index("alice")).unwrap().as_deref(), Some(&b"graph bytes"[..]));
    assert_eq!(block_on(store.load_index("bob")).unwrap(), None);
    assert!(block_on(store.bytes_used(Some("alice"))).unwrap() > 2000);
    block_on(store.save_index("alice", None)).unwrap();
    assert_eq!(block_on(store.load_index("alice")).unwrap(), None);
}

#[test]
fn in_memory_store_batches_are_atomic() {
    check_batches_are_atomic(&InMemoryStore::new());
}

#[test]
fn in_memory_store_quota_fails_whole_writes() {
    let mut rng = Rng::new(5);
    let store = InMemoryStore::with_quota(6_000);
    block_on(store.write(WriteBatch::put(vec![record("a", "alice", &mut rng)]))).unwrap();
    let err = block_on(store.write(WriteBatch::put(vec![record("b", "alice", &mut rng), record("c", "alice", &mut rng)]))).unwrap_err();
    assert_eq!(err.code(), "storage_quota");
    let ids: Vec<String> = block_on(store.load_records(None)).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, vec!["a"]);
}

#[test]
fn file_store_batches_are_atomic_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = FileStore::open(dir.path()).unwrap();
        check_batches_are_atomic(&store);
        block_on(store.save_index("bob", Some(b"bob's graph"))).unwrap();
    }
    let store = FileStore::open(dir.path()).unwrap();
    let ids: Vec<String> = block_on(store.load_records(None)).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, vec!["b", "c"]);
    assert_eq!(block_on(store.schema_version()).unwrap(), Some(SCHEMA_VERSION));
    assert_eq!(block_on(store.load_index("bob")).unwrap().as_deref(), Some(&b"bob's graph"[..]));
}

#[test]
fn file_store_survives_a_crash_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(6);
    let a = record("a", "alice", &mut rng);
    {
        let store = FileStore::open(dir.path()).unwrap();
        block_on(store.write(WriteBatch { put: vec![a.clone()], delete: vec![], schema_version: Some(SCHEMA_VERSION) })).unwrap();
        block_on(store.save_index("alice", Some(b"old graph"))).unwrap();
    }
    let before = std::fs::read(dir.path().join("records.json")).unwrap();

    // A crash while writing the next batch: the temporary file is half written (a torn JSON
    // document), and the rename never happened. Same for an index write.
    let half = br#"{"schema_version":2,"records":[{"id":"b","character_id":"alice","te"#;
    std::fs::write(dir.path().join("records.json.tmp"), half).unwrap();
    let index_file = std::fs::read_dir(dir.path().join("index")).unwrap().next().unwrap().unwrap().path();
    let mut torn_index = index_file.clone().into_os_string();
    torn_index.push(".tmp");
    std::fs::write(&torn_index, b"new gr").unwrap();

    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(block_on(store.load_records(None)).unwrap(), vec![a.clone()], "the old state, whole");
    assert_eq!(block_on(store.load_index("alice")).unwrap().as_deref(), Some(&b"old graph"[..]));
    assert!(!dir.path().join("records.json.tmp").exists(), "leftovers are cleaned up");
    assert!(!std::path::Path::new(&torn_index).exists());
    assert_eq!(std::fs::read(dir.path().join("records.json")).unwrap(), before);

    // A crash after the temporary file was complete but before the rename: still the old state
    // (the new one was never committed), and writing goes on normally.
    let b = record("b", "alice", &mut rng);
    let complete = serde_json::to_vec(&json!({
        "schema_version": 2,
        "records": [encode_record(&a).unwrap(), encode_record(&b).unwrap()],
    }))
    .unwrap();
    std::fs::write(dir.path().join("records.json.tmp"), complete).unwrap();
    drop(store);
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(block_on(store.load_records(None)).unwrap(), vec![a.clone()]);
    block_on(store.write(WriteBatch::put(vec![b.clone()]))).unwrap();
    drop(store);
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(block_on(store.load_records(None)).unwrap(), vec![a, b]);

    // A corrupt committed file is reported, never silently replaced by an empty store.
    std::fs::write(dir.path().join("records.json"), b"{ not json").unwrap();
    assert_eq!(FileStore::open(dir.path()).unwrap_err().code(), "storage_corrupt");
}
