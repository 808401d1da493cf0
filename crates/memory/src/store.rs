//! Where memories live: the [`Store`] trait and two implementations, [`InMemoryStore`] and (off
//! the browser) [`FileStore`]. The browser's IndexedDB store lives with the JS bindings.
//!
//! Records are the source of truth. The serialised index is a cache of them: it is written
//! separately, and checked against the records when loaded (see [`crate::index`]), so a crash
//! between a record write and an index write costs at most a rebuild, never a memory.
//!
//! The trait is written for IndexedDB: async methods whose futures need not be `Send` (wasm is
//! single-threaded), `&self` receivers (a database handle is shared), and one method,
//! [`Store::write`], for every change to records, so that an implementation can make each batch
//! one `readwrite` transaction over the record and metadata object stores: all of it or none.
//! A suggested IndexedDB layout: object store `records` (key path `id`, index on `character_id`)
//! holding [`encode_record`] values, `indexes` keyed by character id holding the index bytes,
//! and `meta` holding `schema_version`. A refused write (quota) maps to [`MemoryError::Quota`].

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{MemoryError, Result};
use crate::record::{MemoryRecord, decode_record, encode_record};

/// Changes applied together or not at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    /// Records to write (replacing any with the same id).
    pub put: Vec<MemoryRecord>,
    /// Ids to delete; absent ids are ignored.
    pub delete: Vec<String>,
    /// Record the schema version the stored data now has.
    pub schema_version: Option<u32>,
}

impl WriteBatch {
    pub fn put(records: Vec<MemoryRecord>) -> Self {
        Self { put: records, ..Self::default() }
    }

    pub fn delete(ids: Vec<String>) -> Self {
        Self { delete: ids, ..Self::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.delete.is_empty() && self.schema_version.is_none()
    }
}

/// Persistent storage of memory records and serialised indexes; see the module docs.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// The schema version recorded by the last write that set one; `None` for an empty store.
    async fn schema_version(&self) -> Result<Option<u32>>;

    /// Every record of `character_id`, or of every character for `None`, migrated to the
    /// current schema as they are decoded (see [`decode_record`]).
    async fn load_records(&self, character_id: Option<&str>) -> Result<Vec<MemoryRecord>>;

    async fn get_record(&self, id: &str) -> Result<Option<MemoryRecord>>;

    /// Apply `batch` atomically: after a failure or a crash, either all of it or none of it is
    /// stored.
    async fn write(&self, batch: WriteBatch) -> Result<()>;

    /// The serialised index of `character_id`, if one was saved.
    async fn load_index(&self, character_id: &str) -> Result<Option<Vec<u8>>>;

    /// Save (or with `None` delete) the serialised index of `character_id`, atomically.
    async fn save_index(&self, character_id: &str, bytes: Option<&[u8]>) -> Result<()>;

    /// Bytes the stored data takes, for one character or in all.
    async fn bytes_used(&self, character_id: Option<&str>) -> Result<u64>;

    /// Bookkeeping: set `last_accessed` of the records `ids` that still exist to `at`. A record
    /// forgotten meanwhile (in another tab) stays forgotten: nothing is written back from a copy.
    /// Stores shared between tabs do it in one read-write transaction.
    async fn touch(&self, ids: &[String], at: u64) -> Result<()> {
        let mut put = Vec::new();
        for id in ids {
            if let Some(mut record) = self.get_record(id).await? {
                record.last_accessed = at;
                put.push(record);
            }
        }
        if put.is_empty() { Ok(()) } else { self.write(WriteBatch::put(put)).await }
    }
}

/// Records keyed by id, in their stored (encoded) form.
#[derive(Debug, Clone, Default)]
struct Records {
    schema_version: Option<u32>,
    encoded: BTreeMap<String, Value>,
}

impl Records {
    /// `batch` applied to a copy; the original is untouched if encoding fails.
    fn apply(&self, batch: &WriteBatch) -> Result<Self> {
        let mut next = self.clone();
        for id in &batch.delete {
            next.encoded.remove(id);
        }
        for record in &batch.put {
            next.encoded.insert(record.id.clone(), encode_record(record)?);
        }
        if let Some(v) = batch.schema_version {
            next.schema_version = Some(v);
        }
        Ok(next)
    }

    fn load(&self, character_id: Option<&str>) -> Result<Vec<MemoryRecord>> {
        self.encoded
            .values()
            .filter(|v| character_id.is_none_or(|c| v.get("character_id").and_then(Value::as_str) == Some(c)))
            .map(|v| decode_record(v.clone()))
            .collect()
    }

    fn encoded_bytes(&self, character_id: Option<&str>) -> u64 {
        self.encoded
            .values()
            .filter(|v| character_id.is_none_or(|c| v.get("character_id").and_then(Value::as_str) == Some(c)))
            .map(|v| v.to_string().len() as u64)
            .sum()
    }
}

/// A store in memory: for tests, and for a session that must not persist anything.
///
/// It keeps records encoded, exactly as a persistent store would, so migrations and the codec
/// are exercised; [`Self::insert_raw`] plants stored values of any schema version.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    state: RefCell<InMemoryState>,
}

#[derive(Debug, Default)]
struct InMemoryState {
    records: Records,
    indexes: BTreeMap<String, Vec<u8>>,
    /// Writes that would take the encoded records past this many bytes fail with
    /// [`MemoryError::Quota`], as a browser's IndexedDB does.
    quota: Option<u64>,
}

impl InMemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that refuses writes beyond `bytes` of encoded records (to test quota failures).
    pub fn with_quota(bytes: u64) -> Self {
        let store = Self::default();
        store.state.borrow_mut().quota = Some(bytes);
        store
    }

    /// Put a stored value as is (any schema version), bypassing encoding.
    pub fn insert_raw(&self, value: Value) -> Result<()> {
        let id = value.get("id").and_then(Value::as_str).ok_or_else(|| MemoryError::BadRequest("a stored record needs an id".into()))?;
        self.state.borrow_mut().records.encoded.insert(id.to_string(), value);
        Ok(())
    }

    /// The stored value of a record.
    pub fn raw(&self, id: &str) -> Option<Value> {
        self.state.borrow().records.encoded.get(id).cloned()
    }

    /// Set the recorded schema version directly (to plant old data).
    pub fn set_schema_version_raw(&self, version: Option<u32>) {
        self.state.borrow_mut().records.schema_version = version;
    }
}

impl Store for InMemoryStore {
    async fn schema_version(&self) -> Result<Option<u32>> {
        Ok(self.state.borrow().records.schema_version)
    }

    async fn load_records(&self, character_id: Option<&str>) -> Result<Vec<MemoryRecord>> {
        self.state.borrow().records.load(character_id)
    }

    async fn get_record(&self, id: &str) -> Result<Option<MemoryRecord>> {
        self.state.borrow().records.encoded.get(id).cloned().map(decode_record).transpose()
    }

    async fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut state = self.state.borrow_mut();
        let next = state.records.apply(&batch)?;
        if let Some(quota) = state.quota {
            let used = next.encoded_bytes(None);
            if used > quota {
                return Err(MemoryError::Quota(format!("{used} bytes would exceed the quota of {quota}")));
            }
        }
        state.records = next;
        Ok(())
    }

    async fn load_index(&self, character_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.state.borrow().indexes.get(character_id).cloned())
    }

    async fn save_index(&self, character_id: &str, bytes: Option<&[u8]>) -> Result<()> {
        let mut state = self.state.borrow_mut();
        match bytes {
            Some(b) => state.indexes.insert(character_id.to_string(), b.to_vec()),
            None => state.indexes.remove(character_id),
        };
        Ok(())
    }

    async fn bytes_used(&self, character_id: Option<&str>) -> Result<u64> {
        let state = self.state.borrow();
        let indexes: u64 = state.indexes.iter().filter(|(c, _)| character_id.is_none_or(|id| id == *c)).map(|(_, b)| b.len() as u64).sum();
        Ok(state.records.encoded_bytes(character_id) + indexes)
    }
}

#[cfg(not(target_family = "wasm"))]
pub use file::FileStore;

#[cfg(not(target_family = "wasm"))]
mod file {
    use std::fs;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Serialize};

    use super::*;

    const RECORDS_FILE: &str = "records.json";
    const INDEX_DIR: &str = "index";
    const TEMP_SUFFIX: &str = ".tmp";

    /// A store in a directory, for native use and tests: `records.json` holds every record,
    /// `index/<hex of the character id>.bin` each serialised index.
    ///
    /// Every write goes to a temporary file that is flushed to disk and then renamed over the
    /// old one, so a crash leaves the old or the new file, never a torn one; temporary files
    /// left by a crash are deleted on [`FileStore::open`]. The whole record file is rewritten on
    /// each batch: simple and safe, fine for thousands of records, not meant for hundreds of
    /// thousands.
    #[derive(Debug)]
    pub struct FileStore {
        dir: PathBuf,
        records: RefCell<Records>,
    }

    #[derive(Serialize, Deserialize)]
    struct RecordsFile {
        schema_version: Option<u32>,
        records: Vec<Value>,
    }

    fn io_error(path: &Path, e: std::io::Error) -> MemoryError {
        if e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded {
            MemoryError::Quota(format!("{}: {e}", path.display()))
        } else {
            MemoryError::Storage(format!("{}: {e}", path.display()))
        }
    }

    /// Replace `path` with `bytes`: temporary file, fsync, rename, fsync of the directory.
    fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
        let mut temp = path.as_os_str().to_owned();
        temp.push(TEMP_SUFFIX);
        let temp = PathBuf::from(temp);
        let result = (|| {
            let mut file = fs::File::create(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temp, path)?;
            if let Some(dir) = path.parent() {
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        result.map_err(|e| {
            let _ = fs::remove_file(&temp);
            io_error(path, e)
        })
    }

    /// Delete temporary files a crash left behind in `dir`.
    fn remove_leftovers(dir: &Path) -> Result<()> {
        for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
            let path = entry.map_err(|e| io_error(dir, e))?.path();
            if path.is_file() && path.to_string_lossy().ends_with(TEMP_SUFFIX) {
                fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
            }
        }
        Ok(())
    }

    impl FileStore {
        /// Open (creating if needed) the store in `dir`.
        pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
            let dir = dir.as_ref().to_path_buf();
            let index_dir = dir.join(INDEX_DIR);
            fs::create_dir_all(&index_dir).map_err(|e| io_error(&index_dir, e))?;
            remove_leftovers(&dir)?;
            remove_leftovers(&index_dir)?;
            let path = dir.join(RECORDS_FILE);
            let records = match fs::read(&path) {
                Ok(bytes) => {
                    let file: RecordsFile = serde_json::from_slice(&bytes)
                        .map_err(|e| MemoryError::Corrupt(format!("{}: {e}", path.display())))?;
                    let mut encoded = BTreeMap::new();
                    for value in file.records {
                        let id = value.get("id").and_then(Value::as_str).ok_or_else(|| {
                            MemoryError::Corrupt(format!("{}: a record without an id", path.display()))
                        })?;
                        encoded.insert(id.to_string(), value);
                    }
                    Records { schema_version: file.schema_version, encoded }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Records::default(),
                Err(e) => return Err(io_error(&path, e)),
            };
            Ok(Self { dir, records: RefCell::new(records) })
        }

        pub fn dir(&self) -> &Path {
            &self.dir
        }

        fn index_path(&self, character_id: &str) -> PathBuf {
            let hex: String = character_id.bytes().map(|b| format!("{b:02x}")).collect();
            self.dir.join(INDEX_DIR).join(format!("{hex}.bin"))
        }
    }

    impl Store for FileStore {
        async fn schema_version(&self) -> Result<Option<u32>> {
            Ok(self.records.borrow().schema_version)
        }

        async fn load_records(&self, character_id: Option<&str>) -> Result<Vec<MemoryRecord>> {
            self.records.borrow().load(character_id)
        }

        async fn get_record(&self, id: &str) -> Result<Option<MemoryRecord>> {
            self.records.borrow().encoded.get(id).cloned().map(decode_record).transpose()
        }

        async fn write(&self, batch: WriteBatch) -> Result<()> {
            let next = self.records.borrow().apply(&batch)?;
            let file = RecordsFile { schema_version: next.schema_version, records: next.encoded.values().cloned().collect() };
            let bytes = serde_json::to_vec(&file).map_err(|e| MemoryError::Storage(format!("encoding records: {e}")))?;
            write_atomically(&self.dir.join(RECORDS_FILE), &bytes)?;
            // Only a write that reached the disk changes what this handle reads.
            *self.records.borrow_mut() = next;
            Ok(())
        }

        async fn load_index(&self, character_id: &str) -> Result<Option<Vec<u8>>> {
            let path = self.index_path(character_id);
            match fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_error(&path, e)),
            }
        }

        async fn save_index(&self, character_id: &str, bytes: Option<&[u8]>) -> Result<()> {
            let path = self.index_path(character_id);
            match bytes {
                Some(bytes) => write_atomically(&path, bytes),
                None => match fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&path, e)),
                    _ => Ok(()),
                },
            }
        }

        async fn bytes_used(&self, character_id: Option<&str>) -> Result<u64> {
            match character_id {
                Some(c) => {
                    let index = fs::metadata(self.index_path(c)).map(|m| m.len()).unwrap_or(0);
                    Ok(self.records.borrow().encoded_bytes(Some(c)) + index)
                }
                None => {
                    let mut total = fs::metadata(self.dir.join(RECORDS_FILE)).map(|m| m.len()).unwrap_or(0);
                    let index_dir = self.dir.join(INDEX_DIR);
                    for entry in fs::read_dir(&index_dir).map_err(|e| io_error(&index_dir, e))?.flatten() {
                        total += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    }
                    Ok(total)
                }
            }
        }
    }
}
