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
//!   `characterId`;
//! - `quarantine` (since version 3): stored values that could not be read, moved out of their
//!   store (keyed `"store/key"`, as [`engine::UnreadableRecord`]) so everything else stays
//!   usable; reported, exported, cleared by a wipe.
//! - `profile` (since version 4): the user's profile shared across characters
//!   (`engine::UserFact`, superseded facts included), key path `id`.
//!
//! Opening an older database upgrades it in place: the new stores are added, nothing is
//! rewritten. A tab still holding the database open closes its connection when a newer version
//! asks (`versionchange`), so it never blocks the upgrade; its later calls fail with a clear
//! error asking for a reload.
//!
//! Every [`WriteBatch`] is one `readwrite` transaction over `records` and `meta`: the browser
//! applies all of it or none (a quota refusal or a closed tab aborts it). Values are decoded
//! one by one: one that fails is quarantined, never fails a list, an export or a wipe.
//!
//! No request is placed after an await in the same transaction, and every request listens from
//! the moment it is placed: the multi-threaded build resumes futures a task later, when the
//! transaction has moved on. A write that depends on a read goes through [`ReadWrite`].

mod read_write;

use std::cell::Cell;
use std::future::IntoFuture;
use std::rc::Rc;

use idb::{Database, DatabaseEvent, Factory, IndexParams, KeyPath, ObjectStoreParams, Query, TransactionMode, TransactionResult};
use memory::record::{decode_record, encode_record};
use memory::{MemoryError, MemoryRecord, Result, Store, WriteBatch};
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};

use read_write::{ReadWrite, Write};

pub const DATABASE_VERSION: u32 = 4;
const RECORDS: &str = "records";
const INDEXES: &str = "indexes";
const META: &str = "meta";
const BY_CHARACTER: &str = "character_id";
const SCHEMA_KEY: &str = "schema_version";
const CHARACTERS: &str = "characters";
const SESSIONS: &str = "sessions";
const SESSIONS_BY_CHARACTER: &str = "characterId";
const QUARANTINE: &str = "quarantine";
const PROFILE: &str = "profile";
const ALL_STORES: [&str; 7] = [RECORDS, INDEXES, META, CHARACTERS, SESSIONS, QUARANTINE, PROFILE];

/// A stored value that did not decode: its key, the value, why.
type Unread = (JsValue, JsValue, String);

/// The value as JSON text (for the quarantine, and to compare two reads of it).
fn json_text(value: &JsValue) -> Option<String> {
    js_sys::JSON::stringify(value).ok().and_then(|s| s.as_string())
}

fn key_text(key: &JsValue) -> String {
    key.as_string().or_else(|| json_text(key)).unwrap_or_else(|| format!("{key:?}"))
}

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
    /// Set when a newer version of the site, in another tab, asked for the database: the
    /// connection is closed and every call fails with a clear error.
    superseded: Rc<Cell<bool>>,
}

impl IdbStore {
    /// Open (creating or upgrading) the database `name`. `on_blocked` is called when an older
    /// tab holds the database open and does not let the upgrade through (a release without the
    /// `versionchange` handler below): the open waits until that tab closes or reloads.
    pub async fn open(name: &str, on_blocked: Option<js_sys::Function>) -> Result<Self> {
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
            if !existing.iter().any(|s| s == QUARANTINE) {
                let _ = db.create_object_store(QUARANTINE, ObjectStoreParams::new());
            }
            if !existing.iter().any(|s| s == PROFILE) {
                let mut params = ObjectStoreParams::new();
                params.key_path(Some(KeyPath::new_single("id")));
                let _ = db.create_object_store(PROFILE, params);
            }
        });
        // Older tabs close their connection when asked (below); one that does not (an older
        // release) holds the upgrade until it is closed or reloaded: the caller tells the person.
        request.on_blocked(move |_| {
            web_sys::console::warn_1(&"Confidant: another tab of this site keeps the database open with an older version; close or reload it".into());
            if let Some(callback) = on_blocked {
                let _ = callback.call0(&JsValue::NULL);
            }
        });
        let mut db = request.await.map_err(|e| idb_error("opening IndexedDB", e))?;
        for store in ALL_STORES {
            if !db.store_names().iter().any(|s| s == store) {
                return Err(MemoryError::Storage(format!("the database lacks its {store:?} object store")));
            }
        }
        let superseded = Rc::new(Cell::new(false));
        let flag = superseded.clone();
        db.on_version_change(move |event| {
            // A newer version (another tab) wants to upgrade: let it, and fail from now on.
            flag.set(true);
            if let Some(db) = event.target().and_then(|t| t.dyn_into::<web_sys::IdbDatabase>().ok()) {
                db.close();
            }
        });
        Ok(Self { db, superseded })
    }

    /// Every call starts here: a connection given up to a newer version is not used again.
    fn check_open(&self) -> Result<()> {
        if self.superseded.get() {
            return Err(MemoryError::Storage(
                "a newer version of this site, open in another tab, upgraded the database: reload this page".into(),
            ));
        }
        Ok(())
    }

    fn transaction(&self, names: &[&str], mode: TransactionMode, what: &str) -> Result<idb::Transaction> {
        self.check_open()?;
        self.db.transaction(names, mode).map_err(|e| storage(what, e))
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
        let transaction = self.transaction(&[name], TransactionMode::ReadOnly, what)?;
        let store = transaction.object_store(name).map_err(|e| storage(what, e))?;
        store.get(JsValue::from_str(key)).map_err(|e| storage(what, e))?.await.map_err(|e| idb_error(what, e))
    }

    /// The value under `key`, decoded; one that does not decode is quarantined and read as none.
    async fn get_decoded<T>(&self, name: &'static str, key: &str, what: &str, decode: impl Fn(JsValue) -> std::result::Result<T, String>) -> Result<Option<T>> {
        let Some(value) = self.get(name, key, what).await? else { return Ok(None) };
        match decode(value.clone()) {
            Ok(item) => Ok(Some(item)),
            Err(error) => {
                // Best effort: if even this write fails, the value is skipped again next time.
                let _ = self.quarantine(name, vec![(JsValue::from_str(key), value, error)]).await;
                Ok(None)
            }
        }
    }

    /// Every value of store `name` (or those under `key` of its index `index`), decoded one by
    /// one; those that do not decode are quarantined and left out.
    async fn read_decoded<T>(
        &self,
        name: &'static str,
        by: Option<(&str, &str)>,
        what: &str,
        decode: impl Fn(JsValue) -> std::result::Result<T, String>,
    ) -> Result<Vec<T>> {
        let transaction = self.transaction(&[name], TransactionMode::ReadOnly, what)?;
        let store = transaction.object_store(name).map_err(|e| storage(what, e))?;
        let (values, keys) = match by {
            Some((index, key)) => {
                let index = store.index(index).map_err(|e| storage(what, e))?;
                let query = || Some(Query::Key(JsValue::from_str(key)));
                (index.get_all(query(), None).map_err(|e| storage(what, e))?, index.get_all_keys(query(), None).map_err(|e| storage(what, e))?)
            }
            None => (store.get_all(None, None).map_err(|e| storage(what, e))?, store.get_all_keys(None, None).map_err(|e| storage(what, e))?),
        };
        // Both listen from now on: on the threaded build the first await resumes a task later,
        // after the second request's result has been delivered (see read_write.rs).
        let (values, keys) = (values.into_future(), keys.into_future());
        let values = values.await.map_err(|e| idb_error(what, e))?;
        // Primary keys, in the same order as the values (an index lists them too).
        let keys = keys.await.map_err(|e| idb_error(what, e))?;
        let mut items = Vec::with_capacity(values.len());
        let mut unread = Vec::new();
        for (value, key) in values.into_iter().zip(keys) {
            match decode(value.clone()) {
                Ok(item) => items.push(item),
                Err(error) => unread.push((key, value, error)),
            }
        }
        if !unread.is_empty() {
            let _ = self.quarantine(name, unread).await;
        }
        Ok(items)
    }

    /// Move values that did not decode from store `name` to the quarantine, in one transaction;
    /// each only if it is still the value that failed (another tab may have rewritten it).
    async fn quarantine(&self, name: &'static str, unread: Vec<Unread>) -> Result<()> {
        let what = "setting an unreadable record aside";
        let transaction = ReadWrite::begin(self, &[name, QUARANTINE], what)?;
        let reads = unread.iter().map(|(key, _, _)| transaction.get(name, key.clone())).collect::<Result<Vec<_>>>()?;
        let now = js_sys::Date::now();
        let mut writes = Vec::new();
        for ((key, value, error), current) in unread.into_iter().zip(reads) {
            let Some(current) = current.await? else { continue };
            let text = json_text(&value);
            if json_text(&current) != text {
                continue;
            }
            let entry = js_sys::Object::new();
            let key_text = key_text(&key);
            for (field, v) in [
                ("store", JsValue::from_str(name)),
                ("key", JsValue::from_str(&key_text)),
                ("error", JsValue::from_str(&error)),
                ("value", text.map_or(JsValue::NULL, |t| JsValue::from_str(&t))),
                ("foundAt", JsValue::from_f64(now)),
            ] {
                let _ = js_sys::Reflect::set(&entry, &field.into(), &v);
            }
            writes.push(Write::Put { store: QUARANTINE, value: entry.into(), key: Some(JsValue::from_str(&format!("{name}/{key_text}"))) });
            writes.push(Write::Delete { store: name, key });
        }
        transaction.commit(writes).await
    }

    async fn read_records(&self, character_id: Option<&str>) -> Result<Vec<JsValue>> {
        let transaction = self.transaction(&[RECORDS], TransactionMode::ReadOnly, "reading memories")?;
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
        // An unreadable version is set aside and read as none: the records are then decoded (and
        // migrated) one by one and the version written again.
        self.get_decoded(META, SCHEMA_KEY, "reading the schema version", |v| match v.as_f64() {
            Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64 => Ok(n as u32),
            _ => Err(format!("schema version {v:?} is not a whole number")),
        })
        .await
    }

    async fn load_records(&self, character_id: Option<&str>) -> Result<Vec<MemoryRecord>> {
        let by = character_id.map(|c| (BY_CHARACTER, c));
        self.read_decoded(RECORDS, by, "reading memories", decode_stored_record).await
    }

    async fn get_record(&self, id: &str) -> Result<Option<MemoryRecord>> {
        self.get_decoded(RECORDS, id, "reading a memory", decode_stored_record).await
    }

    async fn write(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // Encode everything before the transaction starts: a record that cannot be encoded
        // fails the call with nothing written.
        let values: Vec<JsValue> = batch.put.iter().map(|r| encode_record(r).and_then(|v| to_js_value(&v))).collect::<Result<_>>()?;
        let transaction = self.transaction(&[RECORDS, META], TransactionMode::ReadWrite, "saving memories")?;
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
        // A value of another type is set aside and read as no index: it is rebuilt from the
        // records (bytes that do not make an index are caught, and rebuilt, by the memory).
        self.get_decoded(INDEXES, character_id, "reading an index", |v| {
            v.dyn_into::<js_sys::Uint8Array>().map(|a| a.to_vec()).map_err(|_| "an index that is not bytes".to_string())
        })
        .await
    }

    async fn save_index(&self, character_id: &str, bytes: Option<&[u8]>) -> Result<()> {
        let transaction = self.transaction(&[INDEXES], TransactionMode::ReadWrite, "saving an index")?;
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
        let transaction = self.transaction(&[INDEXES], TransactionMode::ReadOnly, "reading indexes")?;
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

    async fn touch(&self, ids: &[String], at: u64) -> Result<()> {
        // Read and written in one transaction, field by field on the stored value: a record
        // another tab forgot meanwhile is not brought back.
        let what = "noting when memories were used";
        let transaction = ReadWrite::begin(self, &[RECORDS], what)?;
        let reads = ids.iter().map(|id| transaction.get(RECORDS, JsValue::from_str(id))).collect::<Result<Vec<_>>>()?;
        let mut writes = Vec::with_capacity(reads.len());
        for read in reads {
            let Some(value) = read.await?.filter(|v| v.is_object()) else { continue };
            let _ = js_sys::Reflect::set(&value, &"last_accessed".into(), &JsValue::from_f64(at as f64));
            writes.push(Write::Put { store: RECORDS, value, key: None });
        }
        transaction.commit(writes).await
    }
}

fn decode_stored_record(value: JsValue) -> std::result::Result<MemoryRecord, String> {
    from_js_value(value).and_then(decode_record).map_err(|e| e.to_string())
}

// ---- characters and sessions --------------------------------------------------------------

use engine::{ChatStore, EngineError, Session, StoredCharacter, UnreadableRecord, UserFact};

fn chat_value<T: Serialize>(value: &T, what: &str) -> engine::Result<JsValue> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| EngineError::Storage(format!("{what}: {e}")))
}

fn chat_item<T: serde::de::DeserializeOwned>(value: JsValue, what: &str) -> engine::Result<T> {
    serde_wasm_bindgen::from_value(value).map_err(|e| EngineError::Corrupt(format!("{what}: {e}")))
}

/// A stored character that decodes and whose card parses.
fn decode_character(value: JsValue) -> std::result::Result<StoredCharacter, String> {
    let character: StoredCharacter = chat_item(value, "a stored character").map_err(|e| e.to_string())?;
    character.character().map_err(|e| e.to_string())?;
    Ok(character)
}

fn decode_session(value: JsValue) -> std::result::Result<Session, String> {
    chat_item(value, "a stored session").map_err(|e| e.to_string())
}

fn decode_user_fact(value: JsValue) -> std::result::Result<UserFact, String> {
    chat_item(value, "a stored profile fact").map_err(|e| e.to_string())
}

impl IdbStore {
    /// One readwrite transaction over `names`: `queue` adds its requests, then the commit is awaited.
    async fn change(
        &self,
        names: &[&str],
        what: &str,
        queue: impl FnOnce(&idb::Transaction) -> std::result::Result<(), idb::Error>,
    ) -> Result<()> {
        let transaction = self.transaction(names, TransactionMode::ReadWrite, what)?;
        if let Err(e) = queue(&transaction) {
            let _ = transaction.abort();
            return Err(storage(what, e));
        }
        Self::finish(transaction, what).await
    }
}

impl ChatStore for IdbStore {
    async fn list_characters(&self) -> engine::Result<Vec<StoredCharacter>> {
        Ok(self.read_decoded(CHARACTERS, None, "reading characters", decode_character).await?)
    }

    async fn get_character(&self, id: &str) -> engine::Result<Option<StoredCharacter>> {
        Ok(self.get_decoded(CHARACTERS, id, "reading a character", decode_character).await?)
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
        let by = character_id.map(|c| (SESSIONS_BY_CHARACTER, c));
        Ok(self.read_decoded(SESSIONS, by, "reading sessions", decode_session).await?)
    }

    async fn get_session(&self, id: &str) -> engine::Result<Option<Session>> {
        Ok(self.get_decoded(SESSIONS, id, "reading a session", decode_session).await?)
    }

    async fn put_session(&self, session: &Session) -> engine::Result<()> {
        let value = chat_value(session, "saving a session")?;
        Ok(self.change(&[SESSIONS], "saving a session", |t| t.object_store(SESSIONS)?.put(&value, None).map(|_| ())).await?)
    }

    async fn update_session<R>(&self, id: &str, change: impl FnOnce(&mut Session) -> engine::Result<R>) -> engine::Result<R> {
        let what = "saving a session";
        // The read, the change and the write in one transaction: nothing written by another tab
        // between them can be lost (IndexedDB runs overlapping read-write transactions one after
        // the other). Dropped on an error, the transaction writes nothing.
        let transaction = ReadWrite::begin(self, &[SESSIONS], what)?;
        let value = transaction.get(SESSIONS, JsValue::from_str(id))?.await?;
        let Some(value) = value else { return Err(EngineError::NotFound { what: "session", id: id.to_string() }) };
        let mut session = chat_item::<Session>(value, "a stored session")?;
        let result = change(&mut session)?;
        let value = chat_value(&session, what)?;
        transaction.commit(vec![Write::Put { store: SESSIONS, value, key: None }]).await?;
        Ok(result)
    }

    async fn delete_session(&self, id: &str) -> engine::Result<()> {
        Ok(self.change(&[SESSIONS], "removing a session", |t| t.object_store(SESSIONS)?.delete(JsValue::from_str(id)).map(|_| ())).await?)
    }

    async fn list_user_facts(&self) -> engine::Result<Vec<UserFact>> {
        Ok(self.read_decoded(PROFILE, None, "reading the user's profile", decode_user_fact).await?)
    }

    async fn put_user_facts(&self, facts: &[UserFact]) -> engine::Result<()> {
        let what = "saving the user's profile";
        let values: Vec<JsValue> = facts.iter().map(|f| chat_value(f, what)).collect::<engine::Result<_>>()?;
        Ok(self
            .change(&[PROFILE], what, |t| {
                let store = t.object_store(PROFILE)?;
                for v in &values {
                    store.put(v, None)?;
                }
                Ok(())
            })
            .await?)
    }

    async fn delete_user_facts(&self, ids: &[String]) -> engine::Result<()> {
        Ok(self
            .change(&[PROFILE], "removing profile facts", |t| {
                let store = t.object_store(PROFILE)?;
                for id in ids {
                    store.delete(JsValue::from_str(id))?;
                }
                Ok(())
            })
            .await?)
    }

    fn holds_memories(&self) -> bool {
        true
    }

    async fn put_all(&self, characters: &[StoredCharacter], sessions: &[Session], user_facts: &[UserFact], memories: &[MemoryRecord]) -> engine::Result<()> {
        // Everything encoded before the transaction starts: a value that cannot be encoded fails
        // the import with nothing written.
        let characters: Vec<JsValue> = characters.iter().map(|c| chat_value(c, "importing characters")).collect::<engine::Result<_>>()?;
        let sessions: Vec<JsValue> = sessions.iter().map(|s| chat_value(s, "importing sessions")).collect::<engine::Result<_>>()?;
        let user_facts: Vec<JsValue> = user_facts.iter().map(|f| chat_value(f, "importing the user's profile")).collect::<engine::Result<_>>()?;
        let records: Vec<JsValue> = memories.iter().map(|r| encode_record(r).and_then(|v| to_js_value(&v))).collect::<Result<_>>()?;
        Ok(self
            .change(&[CHARACTERS, SESSIONS, RECORDS, META, PROFILE], "importing", |t| {
                let store = t.object_store(CHARACTERS)?;
                for c in &characters {
                    store.put(c, None)?;
                }
                let store = t.object_store(SESSIONS)?;
                for s in &sessions {
                    store.put(s, None)?;
                }
                let store = t.object_store(PROFILE)?;
                for f in &user_facts {
                    store.put(f, None)?;
                }
                let store = t.object_store(RECORDS)?;
                for r in &records {
                    store.put(r, None)?;
                }
                if !records.is_empty() {
                    t.object_store(META)?.put(&JsValue::from(memory::SCHEMA_VERSION), Some(&JsValue::from_str(SCHEMA_KEY)))?;
                }
                Ok(())
            })
            .await?)
    }

    async fn clear(&self) -> engine::Result<()> {
        // Every store at once, values unread: nothing stored can make a wipe fail.
        Ok(self
            .change(&ALL_STORES, "wiping", |t| {
                for name in ALL_STORES {
                    t.object_store(name)?.clear()?;
                }
                Ok(())
            })
            .await?)
    }

    async fn unreadable(&self) -> engine::Result<Vec<UnreadableRecord>> {
        let what = "reading the unreadable records";
        let transaction = self.transaction(&[QUARANTINE], TransactionMode::ReadOnly, what)?;
        let store = transaction.object_store(QUARANTINE).map_err(|e| storage(what, e))?;
        let values = store.get_all(None, None).map_err(|e| storage(what, e))?.await.map_err(|e| idb_error(what, e))?;
        Ok(values
            .into_iter()
            .map(|v| {
                chat_item::<UnreadableRecord>(v.clone(), "a quarantined record").unwrap_or_else(|e| UnreadableRecord {
                    store: QUARANTINE.into(),
                    key: String::new(),
                    error: e.to_string(),
                    value: json_text(&v),
                    found_at: 0,
                })
            })
            .collect())
    }
}
