//! The memory store in the browser's IndexedDB, through the `idb` crate (a thin, maintained
//! futures layer over web-sys: its requests and transactions are the browser's own, so nothing
//! hides when a transaction commits or aborts).
//!
//! Database `confidant` (one per origin, memories and chats together), object stores:
//! - `records`: memory records in their stored form (`memory::record::encode_record`), key path
//!   `id`, index `character_id`;
//! - `indexes`: each character's serialised HNSW index (bytes), keyed by character id;
//! - `meta`: `schema_version` of the records;
//! - `characters` (since version 2): stored characters (`engine::StoredCharacter`), key path `id`;
//! - `sessions` (since version 2): chat sessions with their messages, key path `id`, index
//!   `characterId`.
//!
//! Opening a version-1 database upgrades it in place: the new stores are added, nothing is
//! rewritten.
//!
//! Every [`WriteBatch`] is one `readwrite` transaction over `records` and `meta`: the browser
//! applies all of it or none (a quota refusal or a closed tab aborts it).

use idb::{Database, DatabaseEvent, Factory, IndexParams, KeyPath, ObjectStoreParams, Query, TransactionMode, TransactionResult};
use memory::record::{decode_record, encode_record};
use memory::{MemoryError, MemoryRecord, Result, Store, WriteBatch};
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};

pub const DATABASE_VERSION: u32 = 2;
const RECORDS: &str = "records";
const INDEXES: &str = "indexes";
const META: &str = "meta";
const BY_CHARACTER: &str = "character_id";
const SCHEMA_KEY: &str = "schema_version";
const CHARACTERS: &str = "characters";
const SESSIONS: &str = "sessions";
const SESSIONS_BY_CHARACTER: &str = "characterId";
const ALL_STORES: [&str; 5] = [RECORDS, INDEXES, META, CHARACTERS, SESSIONS];

fn storage(what: &str, e: impl std::fmt::Display) -> MemoryError {
    MemoryError::Storage(format!("{what}: {e}"))
}

/// A refused transaction as a memory error: quota refusals get their own kind.
fn aborted(what: &str, error: Option<web_sys::DomException>) -> MemoryError {
    match error {
        Some(e) if e.name() == "QuotaExceededError" => MemoryError::Quota(format!("{what}: {}", e.message())),
        Some(e) => MemoryError::Storage(format!("{what}: {}: {}", e.name(), e.message())),
        None => MemoryError::Storage(format!("{what}: the transaction was aborted")),
    }
}

fn idb_error(what: &str, e: idb::Error) -> MemoryError {
    match e {
        idb::Error::DomException(d) => aborted(what, Some(d)),
        other => storage(what, other),
    }
}

fn to_js_value(value: &serde_json::Value) -> Result<JsValue> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| storage("encoding a record", e))
}

fn from_js_value(value: JsValue) -> Result<serde_json::Value> {
    serde_wasm_bindgen::from_value(value).map_err(|e| MemoryError::Corrupt(format!("a stored record: {e}")))
}

/// The memory store in IndexedDB; see the module docs.
pub struct IdbStore {
    db: Database,
}

impl IdbStore {
    /// Open (creating or upgrading) the database `name`.
    pub async fn open(name: &str) -> Result<Self> {
        let factory = Factory::new().map_err(|e| storage("IndexedDB is not available", e))?;
        let mut request = factory.open(name, Some(DATABASE_VERSION)).map_err(|e| storage("opening IndexedDB", e))?;
        request.on_upgrade_needed(|event| {
            let Ok(db) = event.database() else { return };
            let existing = db.store_names();
            if !existing.iter().any(|s| s == RECORDS) {
                let mut params = ObjectStoreParams::new();
                params.key_path(Some(KeyPath::new_single("id")));
                if let Ok(records) = db.create_object_store(RECORDS, params) {
                    let _ = records.create_index(BY_CHARACTER, KeyPath::new_single("character_id"), Some(IndexParams::new()));
                }
            }
            for store in [INDEXES, META] {
                if !existing.iter().any(|s| s == store) {
                    let _ = db.create_object_store(store, ObjectStoreParams::new());
                }
            }
            if !existing.iter().any(|s| s == CHARACTERS) {
                let mut params = ObjectStoreParams::new();
                params.key_path(Some(KeyPath::new_single("id")));
                let _ = db.create_object_store(CHARACTERS, params);
            }
            if !existing.iter().any(|s| s == SESSIONS) {
                let mut params = ObjectStoreParams::new();
                params.key_path(Some(KeyPath::new_single("id")));
                if let Ok(sessions) = db.create_object_store(SESSIONS, params) {
                    let _ = sessions.create_index(SESSIONS_BY_CHARACTER, KeyPath::new_single("characterId"), Some(IndexParams::new()));
                }
            }
        });
        let db = request.await.map_err(|e| idb_error("opening IndexedDB", e))?;
        for store in ALL_STORES {
            if !db.store_names().iter().any(|s| s == store) {
                return Err(MemoryError::Storage(format!("the database lacks its {store:?} object store")));
            }
        }
        Ok(Self { db })
    }

    /// Wait for a transaction to end; anything but a commit is an error.
    async fn finish(transaction: idb::Transaction, what: &str) -> Result<()> {
        // Keep a handle on the raw transaction: its `error` says why it aborted.
        let raw = ALL_STORES
            .iter()
            .find_map(|name| transaction.object_store(name).ok())
            .map(|store| store.transaction())
            .ok_or_else(|| storage(what, "the transaction has no object store"))?;
        match transaction.await {
            Ok(TransactionResult::Committed) => Ok(()),
            Ok(TransactionResult::Aborted) => Err(aborted(what, raw.error())),
            Err(e) => Err(match raw.error() {
                Some(d) => aborted(what, Some(d)),
                None => idb_error(what, e),
            }),
        }
    }

    /// The value under `key` in object store `name`, in a read-only transaction of its own.
    async fn get(&self, name: &str, key: &str, what: &str) -> Result<Option<JsValue>> {
        let transaction = self.db.transaction(&[name], TransactionMode::ReadOnly).map_err(|e| storage(what, e))?;
        let store = transaction.object_store(name).map_err(|e| storage(what, e))?;
        store.get(JsValue::from_str(key)).map_err(|e| storage(what, e))?.await.map_err(|e| idb_error(what, e))
    }

    async fn read_records(&self, character_id: Option<&str>) -> Result<Vec<JsValue>> {
        let transaction = self.db.transaction(&[RECORDS], TransactionMode::ReadOnly).map_err(|e| storage("reading memories", e))?;
        let store = transaction.object_store(RECORDS).map_err(|e| storage("reading memories", e))?;
        let request = match character_id {
            Some(c) => store
                .index(BY_CHARACTER)
                .and_then(|index| index.get_all(Some(Query::Key(JsValue::from_str(c))), None))
                .map_err(|e| storage("reading memories", e))?,
            None => store.get_all(None, None).map_err(|e| storage("reading memories", e))?,
        };
        request.await.map_err(|e| idb_error("reading memories", e))
    }
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        // Let a later open (another version, or a wipe) proceed without waiting for us.
        self.db.close();
    }
}

impl Store for IdbStore {
    async fn schema_version(&self) -> Result<Option<u32>> {
        match self.get(META, SCHEMA_KEY, "reading the schema version").await? {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64 => Ok(Some(n as u32)),
                _ => Err(MemoryError::Corrupt(format!("schema version {v:?}"))),
            },
        }
    }

    async fn load_records(&self, character_id: Option<&str>) -> Result<Vec<MemoryRecord>> {
        self.read_records(character_id).await?.into_iter().map(|v| decode_record(from_js_value(v)?)).collect()
    }

    async fn get_record(&self, id: &str) -> Result<Option<MemoryRecord>> {
        let value = self.get(RECORDS, id, "reading a memory").await?;
        value.map(|v| decode_record(from_js_value(v)?)).transpose()
    }

    async fn write(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // Encode everything before the transaction starts: a record that cannot be encoded
        // fails the call with nothing written.
        let values: Vec<JsValue> = batch.put.iter().map(|r| encode_record(r).and_then(|v| to_js_value(&v))).collect::<Result<_>>()?;
        let transaction = self.db.transaction(&[RECORDS, META], TransactionMode::ReadWrite).map_err(|e| storage("saving memories", e))?;
        let records = transaction.object_store(RECORDS).map_err(|e| storage("saving memories", e))?;
        let queued: std::result::Result<(), idb::Error> = (|| {
            for id in &batch.delete {
                records.delete(JsValue::from_str(id))?;
            }
            for value in &values {
                records.put(value, None)?;
            }
            if let Some(version) = batch.schema_version {
                let meta = transaction.object_store(META)?;
                meta.put(&JsValue::from(version), Some(&JsValue::from_str(SCHEMA_KEY)))?;
            }
            Ok(())
        })();
        if let Err(e) = queued {
            // Undo the requests already queued: all or nothing.
            let _ = records.transaction().abort();
            return Err(storage("saving memories", e));
        }
        Self::finish(transaction, "saving memories").await
    }

    async fn load_index(&self, character_id: &str) -> Result<Option<Vec<u8>>> {
        let value = self.get(INDEXES, character_id, "reading an index").await?;
        // A value of another type is treated as no index: it is rebuilt from the records.
        Ok(value.and_then(|v| v.dyn_into::<js_sys::Uint8Array>().ok()).map(|a| a.to_vec()))
    }

    async fn save_index(&self, character_id: &str, bytes: Option<&[u8]>) -> Result<()> {
        let transaction = self.db.transaction(&[INDEXES], TransactionMode::ReadWrite).map_err(|e| storage("saving an index", e))?;
        let store = transaction.object_store(INDEXES).map_err(|e| storage("saving an index", e))?;
        let key = JsValue::from_str(character_id);
        match bytes {
            Some(b) => store.put(&js_sys::Uint8Array::from(b).into(), Some(&key)).map(|_| ()),
            None => store.delete(key).map(|_| ()),
        }
        .map_err(|e| storage("saving an index", e))?;
        Self::finish(transaction, "saving an index").await
    }

    async fn bytes_used(&self, character_id: Option<&str>) -> Result<u64> {
        let mut bytes = 0u64;
        for value in self.read_records(character_id).await? {
            if let Some(json) = js_sys::JSON::stringify(&value).ok().and_then(|s| s.as_string()) {
                bytes += json.len() as u64;
            }
        }
        let transaction = self.db.transaction(&[INDEXES], TransactionMode::ReadOnly).map_err(|e| storage("reading indexes", e))?;
        let store = transaction.object_store(INDEXES).map_err(|e| storage("reading indexes", e))?;
        let query = character_id.map(|c| Query::Key(JsValue::from_str(c)));
        let indexes = store.get_all(query, None).map_err(|e| storage("reading indexes", e))?.await.map_err(|e| idb_error("reading indexes", e))?;
        for value in indexes {
            if let Ok(array) = value.dyn_into::<js_sys::Uint8Array>() {
                bytes += array.length() as u64;
            }
        }
        Ok(bytes)
    }
}

// ---- characters and sessions --------------------------------------------------------------

use engine::{ChatStore, EngineError, Session, StoredCharacter};

fn chat_value<T: Serialize>(value: &T, what: &str) -> engine::Result<JsValue> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| EngineError::Storage(format!("{what}: {e}")))
}

fn chat_item<T: serde::de::DeserializeOwned>(value: JsValue, what: &str) -> engine::Result<T> {
    serde_wasm_bindgen::from_value(value).map_err(|e| EngineError::Corrupt(format!("{what}: {e}")))
}

impl IdbStore {
    async fn get_all(&self, name: &str, by_character: Option<&str>, what: &str) -> Result<Vec<JsValue>> {
        let transaction = self.db.transaction(&[name], TransactionMode::ReadOnly).map_err(|e| storage(what, e))?;
        let store = transaction.object_store(name).map_err(|e| storage(what, e))?;
        let request = match by_character {
            Some(c) => store
                .index(SESSIONS_BY_CHARACTER)
                .and_then(|index| index.get_all(Some(Query::Key(JsValue::from_str(c))), None))
                .map_err(|e| storage(what, e))?,
            None => store.get_all(None, None).map_err(|e| storage(what, e))?,
        };
        request.await.map_err(|e| idb_error(what, e))
    }

    /// One readwrite transaction over `names`: `queue` adds its requests, then the commit is awaited.
    async fn change(
        &self,
        names: &[&str],
        what: &str,
        queue: impl FnOnce(&idb::Transaction) -> std::result::Result<(), idb::Error>,
    ) -> Result<()> {
        let transaction = self.db.transaction(names, TransactionMode::ReadWrite).map_err(|e| storage(what, e))?;
        if let Err(e) = queue(&transaction) {
            let _ = transaction.abort();
            return Err(storage(what, e));
        }
        Self::finish(transaction, what).await
    }
}

impl ChatStore for IdbStore {
    async fn list_characters(&self) -> engine::Result<Vec<StoredCharacter>> {
        self.get_all(CHARACTERS, None, "reading characters").await?.into_iter().map(|v| chat_item(v, "a stored character")).collect()
    }

    async fn get_character(&self, id: &str) -> engine::Result<Option<StoredCharacter>> {
        self.get(CHARACTERS, id, "reading a character").await?.map(|v| chat_item(v, "a stored character")).transpose()
    }

    async fn put_character(&self, character: &StoredCharacter) -> engine::Result<()> {
        let value = chat_value(character, "saving a character")?;
        Ok(self.change(&[CHARACTERS], "saving a character", |t| t.object_store(CHARACTERS)?.put(&value, None).map(|_| ())).await?)
    }

    async fn delete_character(&self, id: &str) -> engine::Result<()> {
        let sessions: Vec<Session> = self.list_sessions(Some(id)).await?;
        let what = "removing a character";
        Ok(self
            .change(&[CHARACTERS, SESSIONS], what, |t| {
                t.object_store(CHARACTERS)?.delete(JsValue::from_str(id))?;
                let store = t.object_store(SESSIONS)?;
                for s in &sessions {
                    store.delete(JsValue::from_str(&s.id))?;
                }
                Ok(())
            })
            .await?)
    }

    async fn list_sessions(&self, character_id: Option<&str>) -> engine::Result<Vec<Session>> {
        self.get_all(SESSIONS, character_id, "reading sessions").await?.into_iter().map(|v| chat_item(v, "a stored session")).collect()
    }

    async fn get_session(&self, id: &str) -> engine::Result<Option<Session>> {
        self.get(SESSIONS, id, "reading a session").await?.map(|v| chat_item(v, "a stored session")).transpose()
    }

    async fn put_session(&self, session: &Session) -> engine::Result<()> {
        let value = chat_value(session, "saving a session")?;
        Ok(self.change(&[SESSIONS], "saving a session", |t| t.object_store(SESSIONS)?.put(&value, None).map(|_| ())).await?)
    }

    async fn delete_session(&self, id: &str) -> engine::Result<()> {
        Ok(self.change(&[SESSIONS], "removing a session", |t| t.object_store(SESSIONS)?.delete(JsValue::from_str(id)).map(|_| ())).await?)
    }

    async fn put_all(&self, characters: &[StoredCharacter], sessions: &[Session]) -> engine::Result<()> {
        let characters: Vec<JsValue> = characters.iter().map(|c| chat_value(c, "importing characters")).collect::<engine::Result<_>>()?;
        let sessions: Vec<JsValue> = sessions.iter().map(|s| chat_value(s, "importing sessions")).collect::<engine::Result<_>>()?;
        Ok(self
            .change(&[CHARACTERS, SESSIONS], "importing", |t| {
                let store = t.object_store(CHARACTERS)?;
                for c in &characters {
                    store.put(c, None)?;
                }
                let store = t.object_store(SESSIONS)?;
                for s in &sessions {
                    store.put(s, None)?;
                }
                Ok(())
            })
            .await?)
    }

    async fn clear(&self) -> engine::Result<()> {
        Ok(self
            .change(&[CHARACTERS, SESSIONS], "wiping", |t| {
                t.object_store(CHARACTERS)?.clear()?;
                t.object_store(SESSIONS)?.clear()?;
                Ok(())
            })
            .await?)
    }
}
